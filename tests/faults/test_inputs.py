"""Bad input through the real CLI: each is refused with exit 2 in one line on stderr, no
traceback, and nothing written (no --out directory, nothing in the working directory)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"


def refused(result, *needles: str) -> str:
    """The run exited 2 with one `error:` line holding every needle, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def nothing_written(cli, out: Path | None = None) -> None:
    assert out is None or not out.exists(), sorted(out.rglob("*"))
    assert [p for p in cli.cwd.iterdir() if p.name != "inputs"] == []


def compare(cli, *flags: str, model: str = "fake-mlp", backends: str = "fake"):
    return cli.run("compare", "-m", model, "-b", backends, "--preset", "smoke", *flags,
                   "--out", str(cli.cwd / "out"))


@pytest.mark.parametrize("flags, needles", [
    (["--timeout", "nan"], ["recipe.measure.timeout_s", "finite", "nan"]),
    (["--timeout", "inf"], ["recipe.measure.timeout_s", "finite", "inf"]),
    (["--batch-sizes", "1,,2"], ["--batch-sizes: empty item in '1,,2'"]),
    (["--batch-sizes", "99999999999"], ["recipe.sweep.batch_sizes",
                                        "batch size 99999999999 is above the limit of 4096"]),
    (["--eval-samples", "10000000000"], ["recipe.workload.eval_samples",
                                         "10000000000 is more than the 50,000"]),
    (["--price-per-kwh", "nan"], ["--price-per-kwh", "nan"]),
    (["--pue", "inf"], ["--pue", "inf"]),
    (["--scenario", "server", "--latency-bound-ms", "nan"], ["latency_bound_ms", "finite"]),
    (["--scenario", "server", "--rates", "10,,20"], ["--rates: empty item"]),
])
def test_bad_compare_flags(cli, flags, needles):
    refused(compare(cli, *flags), *needles)
    nothing_written(cli, cli.cwd / "out")


@pytest.mark.parametrize("flags", [["--max-quality-drop", "nan"], ["--max-quality-drop", "-1"],
                                   ["--max-latency-p99-ms", "nan"], ["--rate", "nan"]])
def test_bad_constraints(cli, flags):
    refused(cli.run("recommend", "--out", str(cli.cwd / "out"), *flags), flags[0])
    nothing_written(cli, cli.cwd / "out")


def test_eval_samples_in_exponent_notation(cli):
    inputs = cli.cwd / "inputs"
    inputs.mkdir()
    recipe = inputs / "r.yaml"
    recipe.write_text("name: t\nmodel: fake-mlp\nbackends: [fake]\n"
                      "workload: {eval_samples: 1e10}\n")
    refused(cli.run("run", str(recipe), "--out", str(cli.cwd / "out")),
            "recipe.workload.eval_samples: expected an integer, got '1e10'")
    # the flag is an integer option: typer's own usage error, exit 2, no traceback
    flag = compare(cli, "--eval-samples", "1e10")
    assert flag.returncode == 2 and "Traceback" not in flag.stderr
    assert "--eval-samples" in flag.stderr
    nothing_written(cli, cli.cwd / "out")


@pytest.mark.parametrize("args", [
    ["compare", "-m", "fake-mlp", "-b", "fake", "--preset", "smoke", "--out", ""],
    ["report", "--out", ""],
    ["report", "--dest", ""],
    ["recommend", "-o", ""],
    ["export", "--out", ""],
])
def test_an_empty_out_writes_nothing_in_the_working_directory(cli, args):
    refused(cli.run(*args), "must not be an empty path")
    nothing_written(cli)


def bad_recipe(inputs: Path, kind: str) -> Path:
    path = inputs / f"{kind}.yaml"
    if kind == "binary":
        path.write_bytes(os.urandom(512) + b"\xff\xfe\x00")
    elif kind == "directory":
        path.mkdir()
    elif kind == "list":
        path.write_text("- fake-mlp\n- fake\n")
    elif kind == "unreadable":
        path.write_text("name: t\n")
        path.chmod(0)
    return path


@pytest.mark.parametrize("kind, needle", [
    ("binary", "not a text file"),
    ("directory", "is a directory, not a YAML file"),
    ("list", "a recipe must be a mapping of keys to values; this one is a list"),
    pytest.param("unreadable", "cannot read recipe", marks=pytest.mark.skipif(
        os.geteuid() == 0, reason="root reads a file of mode 000")),
])
def test_a_recipe_that_cannot_be_read(cli, kind, needle):
    inputs = cli.cwd / "inputs"
    inputs.mkdir()
    path = bad_recipe(inputs, kind)
    try:
        refused(cli.run("run", str(path), "--out", str(cli.cwd / "out")), str(path), needle)
    finally:
        if path.is_file():
            path.chmod(0o644)
    nothing_written(cli, cli.cwd / "out")


@pytest.mark.parametrize("content, needle", [
    (b"", "the model file is empty (0 bytes)"),
    (None, "not an ONNX model"),  # random bytes
])
def test_a_broken_onnx_file_is_refused_before_the_sweep(cli, content, needle):
    inputs = cli.cwd / "inputs"
    inputs.mkdir()
    model = inputs / "bad.onnx"
    model.write_bytes(os.urandom(4096) if content is None else content)
    refused(compare(cli, model=str(model), backends="ort"), f"{model}: ", needle)
    nothing_written(cli, cli.cwd / "out")


def test_report_md_shows_markup_in_names_as_text(cli):
    inputs = cli.cwd / "inputs"
    inputs.mkdir()
    recipe = inputs / "markup.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": f"markup{SCRIPT}", "model": "fake-mlp", "backends": ["fake"],
        "variants": {XSS: [], f"int8 {SCRIPT}|x": ["int8"]},
        "measure": {"preset": "smoke", "timeout_s": 120}}))
    out = cli.cwd / "out"
    result = cli.run("run", str(recipe), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (markdown,) = out.glob("*/report.md")
    text = markdown.read_text()
    assert "&lt;img src=x onerror=alert(1)>" in text and "&lt;script>" in text
    assert not re.search(r"<(img|script)", text, re.IGNORECASE), text
    assert "int8 &lt;script>alert(1)&lt;/script>\\|x" in text


@pytest.mark.parametrize("flags, needles", [
    (["--min-quality-ratio", "1.5"], ["--min-quality-ratio must be in (0, 1]", "1.5"]),
    (["--min-quality-ratio", "150%"], ["--min-quality-ratio must be in (0, 1]", "150%"]),
    (["--min-quality-ratio", "0"], ["--min-quality-ratio must be in (0, 1]"]),
    (["--max-quality-drop", "-1"], ["--max-quality-drop must be a finite number >= 0"]),
    (["--max-quality-drop", "-1%"], ["--max-quality-drop must be a finite number >= 0"]),
    (["--max-quality-drop", "one"], ["--max-quality-drop takes a number such as 0.01 or 1%"]),
])
@pytest.mark.parametrize("command", ["run", "compare", "recommend"])
def test_bad_quality_gates(cli, command, flags, needles):
    recipe = cli.cwd / "inputs" / "r.yaml"
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(yaml.safe_dump({"name": "r", "models": ["fake-mlp"],
                                      "backends": ["fake"], "preset": "smoke"}))
    args = {"run": ["run", str(recipe)], "compare": ["compare", "-m", "fake-mlp", "-b", "fake"],
            "recommend": ["recommend"]}[command]
    refused(cli.run(*args, *flags, "--out", str(cli.cwd / "out")), *needles)
    nothing_written(cli, cli.cwd / "out")
