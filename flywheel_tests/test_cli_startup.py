"""`flywheel --help` and the light verbs start fast: no verb module pulls a heavy library at import.

The timing itself is measured in benchmarks/cli.py; here we check the cause, which cannot flake: which
packages importing a verb's module brings in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from flywheel.cli.common import VERBS, main

HEAVY = ("spacy", "presidio_analyzer", "torch", "sentence_transformers", "dagster", "dagster_duckdb_polars", "sklearn")
MODULES = sorted({module for module, _ in VERBS.values()})


def modules_after(code: str) -> set[str]:
    """Top-level packages loaded after running `code` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


def test_help_imports_no_verb_module_and_no_heavy_library():
    loaded = modules_after("from flywheel.cli import main\nmain(['--help'], standalone_mode=False)")
    assert not loaded & set(HEAVY)
    flywheel_cli = modules_after("from flywheel.cli import main\nmain(['--help'], standalone_mode=False)\n"
                                 "import sys\nassert not [m for m in sys.modules if m.startswith('flywheel.cli.') "
                                 "and m != 'flywheel.cli.common'], sorted(sys.modules)")
    assert "flywheel" in flywheel_cli


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_verb_module_pulls_no_heavy_library(module):
    # Verbs that scrub, embed or launch a run import those libraries inside the function that needs them.
    assert not modules_after(f"import {module}") & set(HEAVY), module


@pytest.mark.parametrize("verb", ["gate", "lookup", "evalset", "results"])
def test_light_verbs_do_not_pull_polars_or_numpy(verb):
    # Their start-up is compared with `import duckdb` alone (benchmarks/cli.py): polars alone costs as much.
    module = VERBS[verb][0]
    assert not modules_after(f"import {module}\nimport flywheel.core.evalset.regression") & {"polars", "numpy"}


@pytest.mark.parametrize("verb", list(VERBS))
def test_the_help_table_says_what_each_verb_says(verb):
    """`flywheel --help` lists verbs from VERBS without importing them; each line must be the verb's own."""
    command = main.get_command(click.Context(main), verb)
    assert command is not None, f"{verb} is listed but {VERBS[verb][0]} does not register it"
    assert command.get_short_help_str(limit=400) == click.Command(verb, help=VERBS[verb][1]).get_short_help_str(limit=400)


def test_every_registered_verb_is_listed():
    for module in MODULES:
        __import__(module)
    assert set(main.commands) == set(VERBS)
