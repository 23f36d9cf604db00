"""The floors of srkit: every module imports only from floors below its own.

The table is the house plan that docs/architecture.md draws. A new module gets a
floor here; an import that points sideways or upwards fails this test, which is
how the package keeps no import circles and a readable order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import srkit

PACKAGE = Path(srkit.__file__).parent

#: module -> floor; a module may import srkit modules of lower floors only.
FLOORS = {
    "vocab": 0,
    "layout": 0,
    "atomic": 0,
    "environment": 0,
    "metrics": 1,
    "layers": 1,
    "images": 1,
    "downloads": 1,
    "shipped": 1,
    "windows": 2,
    "losses": 2,
    "models": 2,
    "callbacks": 2,
    "tiles": 2,
    "checkpoints": 2,
    "distribute": 2,
    "data": 3,
    "train": 3,
    "evaluate": 3,
    "records": 4,
    "plots": 4,
    "speed_page": 4,
    "report": 5,
    "bench": 5,
    "bench_train": 5,
    "upscale": 5,
    "book": 5,
    "steps": 5,
    "execute": 6,
    "benchmark_page": 6,
    "summary_page": 6,
    "export": 6,
    "pipeline": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 9,
}


def srkit_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every srkit module that a file imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "srkit":
                names = [alias.name for alias in node.names]
            elif node.module.startswith("srkit."):
                names = [node.module.split(".")[1]]
            else:
                continue
            found += [(node.lineno, name) for name in names if name != "__version__"]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("srkit."):
                    found.append((node.lineno, alias.name.split(".")[1]))
    return found


def test_every_module_has_a_floor():
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert modules - set(FLOORS) == set(), "give the new module a floor in FLOORS"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_imports_point_down(path):
    floor = FLOORS[path.stem]
    wrong = [
        f"{path.name}:{line} imports {name} (floor {FLOORS[name]} >= {floor})"
        for line, name in srkit_imports(path)
        if FLOORS.get(name, 99) >= floor
    ]
    assert wrong == []


def test_the_checker_catches_an_upward_import(tmp_path):
    module = tmp_path / "metrics.py"
    module.write_text("def f():\n    from srkit import pipeline\n")
    assert srkit_imports(module) == [(2, "pipeline")]
