import json
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from optbench.cli import app
from optbench.run.parse import parse_recipe

runner = CliRunner()


def test_ls_backends_lists_availability_and_reasons():
    result = runner.invoke(app, ["ls", "backends", "--json"])
    assert result.exit_code == 0
    rows = {row["backend"]: row for row in json.loads(result.stdout)}
    assert {"torch", "ort", "openvino", "trt", "vllm"} <= set(rows)
    assert rows["trt"]["available"] == "no"
    assert "pip install 'optbench[trt]'" in rows["trt"]["notes"]
    assert runner.invoke(app, ["ls", "backends"]).exit_code == 0


def test_ls_unknown_kind_exits_2():
    result = runner.invoke(app, ["ls", "backend"])
    assert result.exit_code == 2
    assert "did you mean 'backends'" in result.stderr


def test_unknown_backend_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", "--model", "fake-mlp", "--backends", "fake,onnxruntim",
                                 "--out", str(out)])
    assert result.exit_code == 2
    assert "unknown backend 'onnxruntim'" in result.stderr
    assert "did you mean 'onnxruntime'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_model_exit_2(tmp_path):
    result = runner.invoke(app, ["compare", "--model", "resnet-50", "--backends", "ort",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "did you mean 'resnet50'" in result.stderr
    assert not (tmp_path / "o").exists()


def test_unknown_recipe_key_exit_2(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: fake-mlp\nbackends: [fake]\nsweeep: {}\n")
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "recipe.sweeep: unknown key" in result.stderr and "did you mean 'sweep'" in result.stderr
    assert not (tmp_path / "o").exists()


def test_print_recipe_is_the_recipe_run_would_use():
    result = runner.invoke(app, ["compare", "--model", "resnet50", "--backends", "ort,trt",
                                 "--int8", "--batch-sizes", "1,8", "--print-recipe"])
    assert result.exit_code == 0
    recipe = parse_recipe(yaml.safe_load(result.stdout))
    assert [b.name for b in recipe.backends] == ["ort", "trt"]
    assert [v.name for v in recipe.variants] == ["fp32", "int8"]
    assert recipe.batch_sizes == (1, 8)


def test_export_without_store_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["export", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no results store" in result.stderr


def test_env_json_reports_meters():
    result = runner.invoke(app, ["env", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert "estimate" in data["meters"] and "cpu" not in data["gpus"]


def test_import_and_help_stay_light():
    code = ("import sys, optbench, optbench.cli, optbench.run.recipe; "
            "from typer.testing import CliRunner; "
            "r = CliRunner().invoke(optbench.cli.app, ['ls', 'backends']); "
            "assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'vllm', "
            "'transformers', 'matplotlib') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
