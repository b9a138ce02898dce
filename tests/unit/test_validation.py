"""Bad input is refused where it is parsed, in one line, before anything runs or is written:
non-finite numbers, empty list items and paths, absurd sizes, unreadable recipes, broken
model files; and report.md shows user-given names as text, never as markup."""

import json
import math
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optbench.carbon import carbon_settings
from optbench.cli import app
from optbench.cli.flags import path_parser, split
from optbench.errors import RecipeError, UsageError
from optbench.models import check_model, resolve_model
from optbench.report.markdown import cell
from optbench.report.recommend import Constraints
from optbench.run.parse import MAX_BATCH_SIZE, MAX_EVAL_SAMPLES, load_recipe, parse_recipe

BASE = {"name": "t", "model": "fake-mlp", "backends": ["fake"],
        "measure": {"preset": "smoke"}}
SERVING = {**BASE, "scenario": {"kind": "server", "rates_per_s": [10]}}
XSS = "<img src=x onerror=alert(1)>"
runner = CliRunner()


def with_(base, section, **values):
    return {**base, section: {**base.get(section, {}), **values}}


def one_line_exit_2(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- numbers: NaN and infinity compare false with everything --------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", 0, -1])
def test_a_timeout_must_be_finite_and_positive(value):
    with pytest.raises(RecipeError, match="recipe.measure.timeout_s: must be positive and "
                                          "finite"):
        parse_recipe(with_(BASE, "measure", timeout_s=value))


@pytest.mark.parametrize("section, key", [
    ("measure", "cpu_tdp_w"),
])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_other_measure_numbers_must_be_finite(section, key, value):
    with pytest.raises(RecipeError, match=f"{key}: must be positive and finite"):
        parse_recipe(with_(BASE, section, **{key: value}))


@pytest.mark.parametrize("key", ["latency_bound_ms", "ttft_bound_ms", "tpot_bound_ms",
                                 "duration_s"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_scenario_bounds_must_be_finite(key, value):
    with pytest.raises(RecipeError, match=f"recipe.scenario.{key}: must be positive"):
        parse_recipe(with_(SERVING, "scenario", **{key: value}))


@pytest.mark.parametrize("rates", [[math.nan], [10, math.inf], "10,nan"])
def test_rates_must_be_finite(rates):
    with pytest.raises(RecipeError, match="recipe.scenario.rates_per_s"):
        parse_recipe(with_(SERVING, "scenario", rates_per_s=rates))


@pytest.mark.parametrize("kwargs, message", [
    ({"max_quality_drop": -1}, "max_quality_drop must be a finite number >= 0"),
    ({"max_quality_drop": math.nan}, "max_quality_drop must be a finite number >= 0"),
    ({"max_latency_p99_s": math.nan}, "max_latency_p99_s must be a positive finite"),
    ({"max_latency_p99_s": 0}, "max_latency_p99_s must be a positive finite"),
    ({"rate_per_s": math.inf}, "rate_per_s must be a positive finite"),
])
def test_constraints_refuse_what_would_disable_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Constraints(**kwargs)
    assert Constraints(max_quality_drop=0).max_quality_drop == 0  # no drop allowed: valid


@pytest.mark.parametrize("kwargs, flag", [
    ({"pue": math.nan}, "--pue"), ({"pue": math.inf}, "--pue"), ({"pue": 0.5}, "--pue"),
    ({"intensity": math.nan}, "--carbon-intensity"),
    ({"intensity": math.inf}, "--carbon-intensity"),
    ({"intensity": -1}, "--carbon-intensity"),
])
def test_carbon_settings_must_be_finite(kwargs, flag):
    with pytest.raises(UsageError, match=flag):
        carbon_settings(**kwargs)
    assert carbon_settings(intensity=0, pue=1.0).intensity_g_per_kwh == 0


@pytest.mark.parametrize("flags, flag", [
    (["--max-quality-drop", "-1"], "--max-quality-drop"),
    (["--max-quality-drop", "nan"], "--max-quality-drop"),
    (["--max-latency-p99-ms", "nan"], "--max-latency-p99-ms"),
    (["--rate", "nan"], "--rate"),
    (["--pue", "nan"], "--pue"),
    (["--pue", "inf"], "--pue"),
    (["--carbon-intensity", "nan"], "--carbon-intensity"),
    (["--price-per-kwh", "nan"], "--price-per-kwh"),
    (["--price-per-kwh", "-inf"], "--price-per-kwh"),
])
def test_report_flags_refuse_non_finite_numbers(tmp_path, flags, flag):
    # checked before the store is opened: the same error with no store at all
    line = one_line_exit_2(runner.invoke(app, ["recommend", "--out", str(tmp_path), *flags]))
    assert flag in line


# -- lists: an empty item is a typo, not a shorter list ----------------------------------------

def test_split_refuses_empty_items_and_names_the_flag():
    assert split("1, 8") == ["1", "8"] and split(None) == []
    for value in ("1,,2", "1,", ",1", " 1 , ,2"):
        with pytest.raises(UsageError, match=r"--batch-sizes: empty item"):
            split(value, "--batch-sizes")
    for value in ("", " "):
        with pytest.raises(UsageError, match=r"--backends: needs at least one value"):
            split(value, "--backends")


@pytest.mark.parametrize("flags, flag", [
    (["-b", "fake,"], "--backends"),
    (["-b", "fake", "--batch-sizes", "1,,2"], "--batch-sizes"),
    (["-b", "fake", "--meters", ",estimate"], "--meters"),
    (["-b", "fake", "--scenario", "server", "--rates", "10,,20"], "--rates"),
    (["-b", "fake", "--scenario", "server", "--max-batch", "1,,8"], "--max-batch"),
    (["-b", "fake", "--scenario", "server", "--max-wait-ms", "0,"], "--max-wait-ms"),
])
def test_compare_lists_with_an_empty_item_name_the_flag(tmp_path, flags, flag):
    out = tmp_path / "out"
    line = one_line_exit_2(runner.invoke(app, ["compare", "-m", "fake-mlp", *flags,
                                               "--out", str(out)]))
    assert f"{flag}: empty item" in line
    assert not out.exists()


@pytest.mark.parametrize("recipe, path", [
    ({**BASE, "backends": "fake,,fake"}, "recipe.backends"),
    (with_(BASE, "sweep", batch_sizes="1,,2"), "recipe.sweep.batch_sizes"),
    (with_(BASE, "measure", meters="estimate,"), "recipe.measure.meters"),
    (with_(SERVING, "scenario", rates_per_s="10,,20"), "recipe.scenario.rates_per_s"),
    (with_(SERVING, "scenario", batching={"max_batch": "1,,8"}),
     "recipe.scenario.batching.max_batch"),
])
def test_recipe_comma_strings_with_an_empty_item_are_refused(recipe, path):
    with pytest.raises(RecipeError, match=f"{re.escape(path)}: empty item"):
        parse_recipe(recipe)


# -- sizes -----------------------------------------------------------------------------------

def test_batch_sizes_have_a_stated_bound():
    assert parse_recipe(with_(BASE, "sweep", batch_sizes=[1, MAX_BATCH_SIZE])).batch_sizes == (
        1, MAX_BATCH_SIZE)
    with pytest.raises(RecipeError, match="recipe.sweep.batch_sizes: batch size 99999999999 "
                                          f"is above the limit of {MAX_BATCH_SIZE}"):
        parse_recipe(with_(BASE, "sweep", batch_sizes=[1, 99999999999]))
    with pytest.raises(RecipeError, match="recipe.scenario.batching.max_batch: batch size"):
        parse_recipe(with_(SERVING, "scenario", batching={"max_batch": [8, 10**9]}))


def test_a_batch_larger_than_the_samples_is_a_warning_not_an_error(caplog):
    recipe = parse_recipe(with_(with_(BASE, "sweep", batch_sizes=[1, 128]),
                                "workload", eval_samples=16))
    assert recipe.batch_sizes == (1, 128)
    assert "batch size 128 is larger than the 16 evaluation samples" in caplog.text
    caplog.clear()
    parse_recipe(with_(BASE, "sweep", batch_sizes=[8]))  # smoke: 64 samples
    assert caplog.text == ""


def test_eval_samples_beyond_the_bound_or_the_dataset_are_refused():
    too_many = MAX_EVAL_SAMPLES + 1
    with pytest.raises(RecipeError, match=f"recipe.workload.eval_samples: {too_many} is more "
                                          f"than the {MAX_EVAL_SAMPLES:,}"):
        parse_recipe(with_(BASE, "workload", eval_samples=too_many))
    with pytest.raises(RecipeError, match="1001 is more than the 1,000 evaluation samples "
                                          "dataset mnist holds"):
        parse_recipe(with_(BASE, "workload", eval_samples=1001, dataset="mnist"))
    kept = parse_recipe(with_(BASE, "workload", eval_samples=1000, dataset="mnist"))
    assert kept.workload.eval_samples == 1000


def test_eval_samples_in_exponent_notation_are_not_an_integer(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: t\nmodel: fake-mlp\nbackends: [fake]\nworkload: {eval_samples: 1e10}\n")
    with pytest.raises(RecipeError, match="recipe.workload.eval_samples: expected an integer"):
        load_recipe(path)
    path.write_text("name: t\nmodel: fake-mlp\nbackends: [fake]\n"
                    "workload: {eval_samples: 10000000000}\n")
    with pytest.raises(RecipeError, match="10000000000 is more than the 50,000"):
        load_recipe(path)


# -- paths -----------------------------------------------------------------------------------

def test_an_empty_output_path_is_refused():
    parse = path_parser("--out")
    assert parse("o") == Path("o") and parse(Path("x")) == Path("x") and parse(".") == Path(".")
    for value in ("", "  "):
        with pytest.raises(UsageError, match="--out must not be an empty path"):
            parse(value)


@pytest.mark.parametrize("args, flag", [
    (["export", "--out", ""], "--out"),
    (["recommend", "-o", ""], "--out"),
    (["report", "--out", ""], "--out"),
    (["report", "--dest", ""], "--dest"),
    (["compare", "-m", "fake-mlp", "-b", "fake", "--out", "", "--print-recipe"], "--out"),
    (["run", "recipe.yaml", "--out", ""], "--out"),
])
def test_every_out_option_refuses_an_empty_path(tmp_path, monkeypatch, args, flag):
    monkeypatch.chdir(tmp_path)
    line = one_line_exit_2(runner.invoke(app, args))
    assert f"{flag} must not be an empty path" in line
    assert list(tmp_path.iterdir()) == []


# -- recipe files ------------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "not a text file"),
    (b"- a\n- list\n", "must be a mapping of keys to values; this one is a list"),
    (b"just a string\n", "this one is a str"),
    (b"", "this one is empty"),
    (b"name: [unclosed\n", "not valid YAML"),
])
def test_unusable_recipe_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "r.yaml"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=re.escape(message)) as info:
        load_recipe(path)
    assert "\n" not in str(info.value)


def test_a_directory_or_an_unreadable_recipe(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="is a directory, not a YAML file"):
        load_recipe(tmp_path)
    path = tmp_path / "r.yaml"
    path.write_text("name: t\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(UsageError, match="cannot read recipe .*r.yaml: Permission denied"):
        load_recipe(path)


# -- model files -------------------------------------------------------------------------------

def onnx_model(path, inputs=(("x", ["b", 3]),), elem=None):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT if elem is None else elem
    values = [helper.make_tensor_value_info(n, elem, s) for n, s in inputs]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])
    graph = helper.make_graph([helper.make_node("Identity", [inputs[0][0]], ["y"])], "g",
                              values, [out])
    onnx.save(helper.make_model(graph), str(path))
    return path


def bad_onnx(tmp_path, kind):
    path = tmp_path / f"{kind}.onnx"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "text":
        path.write_text("not a model\n")
    elif kind == "two-inputs":
        onnx_model(path, (("x", ["b", 3]), ("z", ["b", 3])))
    elif kind == "dynamic":
        onnx_model(path, (("x", ["b", "n"]),))
    elif kind == "int64":
        from onnx import TensorProto

        onnx_model(path, elem=TensorProto.INT64)
    return path


ONNX_FAULTS = {
    "empty": "the model file is empty (0 bytes)",
    "random": "not an ONNX model",
    "text": "not an ONNX model",
    "two-inputs": "optbench runs single-input models; this one has 2 inputs",
    "dynamic": "needs a static per-sample input shape",
    "int64": "input 'x' is INT64; optbench feeds float tensors",
}


@pytest.mark.parametrize("kind", list(ONNX_FAULTS))
def test_a_bad_onnx_file_is_refused_at_parse_time(tmp_path, kind):
    pytest.importorskip("onnx")
    path = bad_onnx(tmp_path, kind)
    with pytest.raises(UsageError) as info:
        parse_recipe({**BASE, "model": str(path), "backends": ["fake"]})
    assert str(info.value).startswith(str(path.resolve()) + ": ")
    assert ONNX_FAULTS[kind] in str(info.value) and "\n" not in str(info.value)


def test_a_good_onnx_file_passes_the_check(tmp_path):
    path = onnx_model(tmp_path / "ok.onnx")
    check_model(resolve_model(str(path)))
    recipe = parse_recipe({**BASE, "model": str(path)})
    assert recipe.model.ref == str(path.resolve())


def test_a_hugging_face_directory_is_checked_before_the_sweep(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="without config.json"):
        parse_recipe({**BASE, "model": str(empty)})
    model = tmp_path / "hf"
    model.mkdir()
    (model / "config.json").write_text("{not json")
    with pytest.raises(UsageError, match="config.json: not readable JSON"):
        parse_recipe({**BASE, "model": str(model)})
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    with pytest.raises(UsageError, match="no weights"):
        parse_recipe({**BASE, "model": str(model)})
    (model / "model.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(UsageError, match="no tokenizer files"):
        check_model(resolve_model(str(model)))
    (model / "tokenizer.json").write_text("{}")
    check_model(resolve_model(str(model)))


# -- report.md: names are text, not markup -----------------------------------------------------

def test_cell_escapes_markup_links_and_table_breaks():
    assert cell(XSS) == "&lt;img src=x onerror=alert(1)>"
    assert cell("[x](javascript:alert(1)) ![t](http://e/t.png)") == (
        "\\[x\\](javascript:alert(1)) !\\[t\\](http://e/t.png)")
    assert cell("a|b\nc & d") == "a\\|b c &amp; d"


def test_report_md_shows_names_with_markup_as_text(tmp_path):
    from optbench.report.render import render
    from optbench.results.schema import EnergyReading, Metric, RunResult, Trial
    from optbench.results.store import Store

    script = "<script>alert(1)</script>"
    recipe = parse_recipe({"name": f"x{script}", "model": "fake-mlp", "backends": ["fake"],
                           "variants": {XSS: [], f"int8 {script}": ["int8"],
                                        "[link](javascript:alert(1))": []},
                           "measure": {"preset": "smoke"}})
    store = Store.open(tmp_path)
    store.put_environment("env", {"hostname": f"box{script}", "cpu": {"model": XSS}})
    reading = EnergyReading("cpu:package-0", 1.0, 1.0, "measured-counter", "fake")
    for i, spec in enumerate(recipe.expand("cpu")):
        result = (RunResult("failed", f"broke: {XSS} | {script}") if i == 2 else
                  RunResult("ok", quality_metric="top1",
                            metrics=[Metric("top1", 0.9 + i / 100, "fraction")],
                            latencies_s=[0.001] * 20,
                            trials=[Trial(t, "load", 1.0, 100, (reading,)) for t in (1, 2)],
                            details={"workload": {"sample_unit": "image"}}))
        store.add_run(spec.to_dict(), spec.key(), "env", result, git_sha=None,
                      git_dirty=None, started_at="t", finished_at="t", wall_s=1.0,
                      log_path=None)
    store.close()
    markdown = render([tmp_path], html=False).markdown.read_text()
    assert "&lt;img src=x onerror=alert(1)>" in markdown and "&lt;script>" in markdown
    assert not re.search(r"<(img|script)", markdown, re.IGNORECASE)
    assert "\\[link\\](javascript:" in markdown
    assert not re.search(r"(?<!\\)\]\(javascript:", markdown)  # no link made
    for line in markdown.splitlines():  # a `|` in a reason does not add a column
        if line.startswith("| fake-mlp |"):
            assert len(re.split(r"(?<!\\)\|", line)) == 8, line
