"""The layer rule of docs/architecture.md: each layer imports only from layers below it.

Every module under optbench/ is walked with `ast`, imports inside functions included (a
lazy import is still a dependency). `optbench.testing` may import anything; nothing
outside it imports it. Registry target strings ("module:Class") are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "optbench"

# module prefix -> layer; the longest matching prefix wins. Within layer 2 the order
# workloads < models < backends < transforms holds too (sub-layers 2.0 ... 2.3); meters
# sit beside backends and import neither backends nor transforms.
LAYERS: dict[str, float] = {
    "optbench": 0, "optbench.errors": 0, "optbench.registry": 0, "optbench.options": 0,
    "optbench.artifact": 0, "optbench.cache": 0, "optbench.carbon": 0, "optbench.env": 0,
    "optbench.results": 1,
    "optbench.workloads": 2.0, "optbench.models": 2.1, "optbench.backends": 2.2,
    "optbench.meters": 2.2, "optbench.transforms": 2.3,
    "optbench.measure": 3,
    "optbench.run": 4,
    "optbench.report": 5,
    "optbench.search": 5.5,  # searches with the runner, judges fronts with the report's
    "optbench.cli": 6, "optbench.api": 6, "optbench.__main__": 6,
}
FORBIDDEN_SIDEWAYS = {("optbench.meters", "optbench.backends")}
TESTING = "optbench.testing"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def prefix(module: str) -> str:
    best = max((p for p in [*LAYERS, TESTING] if module == p or module.startswith(p + ".")),
               key=len)
    return best


def imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) for every optbench import in the file, at any depth."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from optbench.cli import run` imports the submodule optbench.cli.run
            found += [(node.lineno, f"{target}.{a.name}") if not node.module or
                      _is_module(f"{target}.{a.name}", root) else (node.lineno, target)
                      for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "optbench"]


def _is_module(name: str, root: Path) -> bool:
    relative = Path(*name.split(".")[1:])
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


def violations(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root)
        own = prefix(source)
        for line, target in imports(path, root):
            theirs = prefix(target)
            where = f"{path.relative_to(root.parent)}:{line}"
            if own == TESTING:
                continue
            if theirs == TESTING:
                problems.append(f"{where}: {source} imports {target} (test doubles are for "
                                "tests only)")
            elif theirs == own:
                continue
            elif LAYERS[theirs] > LAYERS[own] or (own, theirs) in FORBIDDEN_SIDEWAYS or (
                    LAYERS[theirs] == LAYERS[own] and {own, theirs} == {"optbench.meters",
                                                                      "optbench.backends"}):
                problems.append(f"{where}: {source} (layer {LAYERS[own]:g}) imports {target} "
                                f"(layer {LAYERS[theirs]:g})")
    return problems


def test_every_top_level_module_has_a_layer():
    top = {module_name(p) for p in PACKAGE.glob("*.py")} | {
        module_name(p / "__init__.py") for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert top - set(LAYERS) - {TESTING} == set()


def test_imports_point_down_the_layers():
    problems = violations()
    assert not problems, "upward imports:\n" + "\n".join(problems)


@pytest.mark.parametrize("code, culprit", [
    ("from optbench.report.data import load\n", "imports optbench.report.data"),
    ("def f():\n    from optbench.run.sweep import Runner\n", "imports optbench.run.sweep"),
    ("from optbench.testing.backend import FakeBackend\n", "test doubles are for tests only"),
    ("from optbench.backends.base import Backend\n", "imports optbench.backends.base"),
])
def test_an_upward_import_is_named_with_file_and_line(tmp_path, code, culprit):
    tree = tmp_path / "optbench"
    (tree / "meters").mkdir(parents=True)
    (tree / "meters" / "bad.py").write_text("import os\n" + code)
    for name in ("report", "run", "testing", "backends"):
        (tree / name).mkdir()
        (tree / name / "__init__.py").write_text("")
    problems = violations(tree)
    assert len(problems) == 1 and culprit in problems[0]
    assert problems[0].startswith("optbench/meters/bad.py:")
