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


def test_sample_without_traces_says_what_to_do(data_dir):
    result = CliRunner().invoke(main, ["sample"])
    assert result.exit_code == 1 and "ingest some traces first" in result.output


def test_demo_run_end_to_end_records_dagster_runs(data_dir):
    result = CliRunner().invoke(main, ["demo", "run", "--weeks", "2", "--traces-per-day", "20"])
    assert result.exit_code == 0, result.output
    assert "Station 1 - weekly samples" in result.stdout and "| 2026-03-09 |" in result.stdout
    assert "Station 2 - scrubbed before anyone reads them" in result.stdout
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        jobs = [r.job_name for r in instance.get_runs()]
    assert jobs.count("weekly_loop_job") == 2 and jobs.count("ingest_job") == 1
    assert "monthly_drift_job" in jobs and "fold_in_job" in jobs
    # Rerun: nothing new ingested, same samples.
    again = CliRunner().invoke(main, ["demo", "run", "--weeks", "2", "--traces-per-day", "20"])
    assert "ingested 0 new" in again.stdout
    from flywheel.core.db import connect

    with connect(data_dir / "flywheel.duckdb") as conn:
        n, distinct = conn.execute("SELECT count(*), count(DISTINCT trace_id) FROM sample.sampled_traces").fetchone()
    assert n == distinct > 0


def test_status_tells_the_story_from_the_warehouse(data_dir):
    empty = CliRunner().invoke(main, ["status"])
    assert empty.exit_code == 1 and "no warehouse" in empty.output
    CliRunner().invoke(main, ["ingest", "--help"])
    from flywheel.core.db import connect
    from flywheel.core.intake import ensure_raw_tables

    with connect(data_dir / "flywheel.duckdb") as conn:
        ensure_raw_tables(conn)
    early = CliRunner().invoke(main, ["status"])
    assert early.exit_code == 0 and "Station 1: nothing yet." in early.stdout
