"""The layout reads like the asset graph, and `flywheel.core` stays pure logic.

`core` is imported by the Dagster wiring, the CLI and the demo; if it imported any of them back, a station
could no longer be tested or reused on its own (and a CLI verb would pay for Dagster's import).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "flywheel" / "core"
FORBIDDEN = ("dagster", "dagster_duckdb", "dagster_duckdb_polars", "flywheel.defs", "flywheel.cli", "flywheel.demo")
STATIONS = {"intake", "sampling", "scrub", "labeling", "evalset", "drift", "privacy", "common"}


def imported_modules(path: Path, top: Path) -> list[tuple[int, str]]:
    """Every module an `import` or `from ... import` in the file names, with its line (relative ones resolved
    against the file's package, counted from `top`, the folder holding `flywheel/`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(top).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def forbidden_imports(root: Path) -> list[str]:
    bad, top = [], root.parent.parent
    for path in sorted(root.rglob("*.py")):
        for line, module in imported_modules(path, top):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{path.relative_to(top)}:{line}: imports {module}")
    return bad


def test_core_imports_nothing_from_dagster_the_cli_or_the_demo():
    assert forbidden_imports(CORE) == []


@pytest.mark.parametrize("source", [
    "import dagster\n", "import dagster as dg\n", "from dagster import asset\n", "from flywheel.defs import jobs\n",
    "from flywheel import cli\n", "from flywheel.demo.model import relay_assist\n", "import flywheel.cli.common\n",
    "def f():\n    from flywheel.defs.runner import run\n", "from ...defs import jobs\n", "from ... import cli\n",
])
def test_the_walk_catches_each_kind_of_forbidden_import(tmp_path, source):
    # The check must be able to fail: plant each shape of forbidden import in a fake core and see it named.
    root = tmp_path / "flywheel" / "core" / "intake"
    root.mkdir(parents=True)
    (root / "planted.py").write_text(source)
    assert forbidden_imports(tmp_path / "flywheel" / "core") != []


def test_core_holds_one_package_per_station_and_nothing_loose():
    entries = {p.name for p in CORE.iterdir() if p.name != "__pycache__"}
    assert entries == STATIONS | {"__init__.py"}
    for name in STATIONS:
        init = CORE / name / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init} needs a docstring saying what the station does and which asset keys it feeds"
