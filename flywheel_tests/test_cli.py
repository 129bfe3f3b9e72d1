import json

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel_tests.conftest import trace, write_jsonl

VERBS = [[], ["ingest"], ["sample"], ["scrub"], ["residue"], ["residue", "add"], ["taxonomy"], ["taxonomy", "list"],
         ["taxonomy", "show"], ["taxonomy", "add"], ["review"], ["labels"], ["labels", "export"], ["labels", "import"],
         ["evalset"], ["evalset", "import"], ["evalset", "export"], ["evalset", "diff"], ["evalset", "versions"],
         ["results"], ["results", "import"], ["gate"], ["lookup"], ["regress"],
         ["drift"], ["drift", "score"], ["status"], ["incident"], ["incident", "open"], ["incident", "list"],
         ["demo"], ["demo", "generate"], ["demo", "run"]]
GROUPS = [["demo"], ["taxonomy"], ["labels"], ["evalset"], ["results"], ["drift"], ["incident"]]


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "flywheel")
def test_every_verb_has_help(verb):
    result = CliRunner().invoke(main, verb + ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    if verb and verb not in GROUPS:
        assert "--data-dir" in result.output


def test_ingest_json_reports_bad_lines_and_second_run_loads_nothing(data_dir, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [trace("a"), "{broken", trace("b"), trace("c", messages=[])])
    runner = CliRunner()
    first = runner.invoke(main, ["ingest", str(path), "--json", "--data-dir", str(data_dir)])
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert (out["ingested"], out["duplicates"], out["quarantined"]) == (2, 0, 2)
    assert [(q["file"], q["line"]) for q in out["quarantine"]] == [(str(path), 2), (str(path), 4)]
    second = json.loads(runner.invoke(main, ["ingest", str(path), "--json", "--data-dir", str(data_dir)]).stdout)
    assert (second["ingested"], second["duplicates"]) == (0, 2)
    assert (data_dir / "flywheel.duckdb").exists()


def test_ingest_human_output_names_file_and_line(data_dir, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [trace("a"), "nope"])
    result = CliRunner().invoke(main, ["ingest", str(path)])
    assert result.exit_code == 0
    assert "Ingested 1 traces" in result.stdout
    assert f"{path}:2: not valid JSON" in result.stderr


def test_ingest_exits_1_only_when_a_file_cannot_be_read(data_dir, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [trace("a")])
    result = CliRunner().invoke(main, ["ingest", str(good), str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1
    assert "missing.jsonl" in result.stderr and "Ingested 1 traces" in result.stdout


def test_demo_generate_rejects_a_non_monday(tmp_path):
    result = CliRunner().invoke(main, ["demo", "generate", "--out", str(tmp_path), "--start", "2026-03-03"])
    assert result.exit_code == 2 and "Monday" in result.output


def test_sample_without_a_warehouse_says_what_to_do(data_dir):
    result = CliRunner().invoke(main, ["sample"])
    assert result.exit_code == 1 and "no flywheel warehouse" in result.output and "flywheel ingest PATH" in result.output


def test_sample_without_traces_says_what_to_do(warehouse):
    result = CliRunner().invoke(main, ["sample"])
    assert result.exit_code == 1 and "ingest some traces first" in result.output


def test_demo_run_replays_the_loop_as_dagster_runs_and_a_rerun_adds_nothing(data_dir):
    """Five weeks (March ends in the fifth), on the real scrubber and embedder."""
    import dagster as dg

    from flywheel.core.common.db import connect

    result = CliRunner().invoke(main, ["demo", "run", "--weeks", "5", "--traces-per-day", "12"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "The story, month by month" in out and "| 2026-03 |" in out
    assert "2026-03-30:" in out and "drift + retirement for 2026-03" in out
    assert "Station 2 - scrubbed before anyone reads them" in out and "eval set versions" in out
    assert "http://127.0.0.1:3000/runs" in out

    def counts():
        with connect(data_dir / "flywheel.duckdb") as conn:
            return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                    for table in ("raw.traces", "sample.sampled_traces", "label.labels", "eval.versions",
                                  "regression.results", "drift.scores")}

    first = counts()
    assert first["eval.versions"] > 1 and first["regression.results"] > 0 and first["drift.scores"] == 1
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    jobs = [r.job_name for r in runs]
    assert jobs.count("weekly_loop_job") == 5 and jobs.count("monthly_drift_job") == 1
    assert all("dagster/sensor_name" in r.tags for r in runs if r.job_name == "fold_in_job"), "labels_sensor's runs"
    assert CliRunner().invoke(main, ["demo", "run", "--weeks", "5", "--traces-per-day", "12"]).exit_code == 0
    assert counts() == first, "a rerun re-ingests, re-labels and re-versions nothing"


def test_status_tells_the_story_from_the_warehouse(data_dir):
    empty = CliRunner().invoke(main, ["status"])
    assert empty.exit_code == 1 and "no flywheel warehouse" in empty.output
    CliRunner().invoke(main, ["ingest", "--help"])
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ensure_raw_tables

    with connect(data_dir / "flywheel.duckdb") as conn:
        ensure_raw_tables(conn)
    early = CliRunner().invoke(main, ["status"])
    assert early.exit_code == 0 and "Station 1: nothing yet." in early.stdout


def test_ingest_of_nothing_that_exists_is_one_line_and_creates_no_warehouse(data_dir, tmp_path):
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "typo.jsonl")])
    assert result.exit_code == 1
    assert "typo.jsonl: no such file or folder" in result.stderr and "Ingested" not in result.stdout
    assert not (data_dir / "flywheel.duckdb").exists()
