"""The layout keeps its promises: the job path never loads the simulator, each concept has one
home, and modules and functions stay small enough to read (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "survey_mass"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: who may import the simulator: itself, training and validation (their ground truth), the mock
#: source's plug in sources/__init__.py, and the `simulate` verb (lazily, inside its run)
MAY_IMPORT_MOCK = ("mock/", "train/", "validate/", "sources/__init__.py", "cli/simulate.py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_no_production_module_imports_the_simulator():
    offenders = [
        _relative(p)
        for p in MODULES
        if not _relative(p).startswith(MAY_IMPORT_MOCK)
        and any(m == "survey_mass.mock" or m.startswith("survey_mass.mock.") for m in _imports(p))
    ]
    assert offenders == []


def test_running_a_job_and_building_the_cli_load_no_simulator_module():
    code = (
        "import sys, survey_mass.cli, survey_mass.runner.job, survey_mass.catalog.query\n"
        "survey_mass.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m.startswith('survey_mass.mock')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("needle", "home"),
    [
        ("astropy_healpix", ("pixel_math/", "sources/planck.py")),  # Planck maps are RING HEALPix
        ("_healpix_29", ("pixel_math/",)),
        ("Norder=", ("catalog/paths.py",)),
    ],
)
def test_each_concept_has_one_home(needle, home):
    assert [
        _relative(p)
        for p in MODULES
        if needle in p.read_text() and not _relative(p).startswith(home)
    ] == []


def test_modules_and_functions_stay_small():
    long_files = [_relative(p) for p in MODULES if len(p.read_text().splitlines()) > 400]
    long_functions = [
        f"{_relative(p)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for p in MODULES
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert long_files == []
    assert long_functions == []
