"""The issue's duplicate through Dagster: the drift-focus week must not sample, scrub, queue or export a
trace its own week already sampled. Demo traffic, the fake scrubber and embedder, a tmp_path warehouse
(the core-level tests: test_review_once.py)."""

import csv

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common import keys
from flywheel.core.common.db import connect
from flywheel.core.drift import station as drift_station
from flywheel.defs.intake import raw_traces
from flywheel.defs.labeling import review_queue
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week
from flywheel.settings import Paths
from flywheel_tests.conftest import demo_in_data_dir, fake_resources

MARCH_WEEKS = ["2026-03-23", "2026-03-30"]  # the last full week of March, and the one it ends in
FOCUS_WEEK = "2026-04-06"  # the first week to start after March: it takes March's drift focus
STATIONS_1_TO_3 = [sampled_traces, scrub_week, review_queue]


@pytest.fixture
def loop(data_dir, tmp_path):
    paths, _ = demo_in_data_dir(data_dir, tmp_path, weeks=6, traces_per_day=12, seed=11)
    resources = fake_resources(paths)
    assert dg.materialize([raw_traces], resources=resources).success
    return paths, resources


def _week(resources, week: str) -> dg.ExecuteInProcessResult:
    result = dg.materialize(STATIONS_1_TO_3, partition_key=week, resources=resources, raise_on_error=False)
    assert result.is_node_success("label__review_queue"), f"stations 1-3 for {week}"
    return result


def _focus_march(paths: Paths) -> tuple[list[str], list[str]]:
    """March's drift result, as monthly_drift stores it: three traces the March weeks sampled, three
    they did not. Returns (already sampled refs, fresh refs)."""
    key = keys.load_key(paths.data_dir)
    with connect(paths.warehouse) as conn:
        march = "timestamp >= '2026-03-01' AND timestamp < '2026-04-01'"
        sampled = [r for (r,) in conn.execute(
            f"SELECT trace_ref FROM scrub.anonymized_traces WHERE {march} ORDER BY timestamp, trace_ref").fetchall()]
        ids = conn.execute(f"SELECT trace_id FROM raw.traces WHERE {march} ORDER BY timestamp, trace_id").fetchall()
        fresh = [ref for ref in (keys.keyed_hash(key, i, kind="trace") for (i,) in ids) if ref not in sampled]
        already, fresh = sampled[::5][:3], fresh[::29][:3]
        drift_station.ensure_tables(conn)
        conn.executemany("INSERT INTO drift.high_distance_traces VALUES ('2026-03-01', ?, 0.9)",
                         [[r] for r in already + fresh])
    assert len(already) == len(fresh) == 3
    return already, fresh


def _once(conn, table: str) -> None:
    n, distinct = conn.execute(f"SELECT count(*), count(DISTINCT trace_ref) FROM {table}").fetchone()
    assert n == distinct > 0, f"{table}: {n - distinct} traces twice"


def test_the_focus_week_does_not_scrub_queue_or_export_a_trace_twice(loop, tmp_path):
    paths, resources = loop
    for week in MARCH_WEEKS:
        _week(resources, week)
    already, fresh = _focus_march(paths)

    result = _week(resources, FOCUS_WEEK)

    with connect(paths.warehouse, read_only=True) as conn:
        n, distinct = conn.execute("SELECT count(*), count(DISTINCT trace_ref) FROM sample.sampled_traces").fetchone()
        assert n == distinct
        _once(conn, "scrub.anonymized_traces")
        _once(conn, "scrub.scrub_report")
        _once(conn, "label.review_queue")
        focus_rows = conn.execute(
            "SELECT trace_ref FROM scrub.anonymized_traces WHERE week_start = ? AND list_contains(reasons, 'drift_focus')",
            [FOCUS_WEEK]).fetchall()
    assert sorted(r for (r,) in focus_rows) == sorted(fresh)
    meta = result.asset_materializations_for_node("sample__sampled_traces")[0].metadata
    assert meta["drift_focus_traces"].value == 6
    assert meta["drift_focus_sampled_in_their_own_week"].value == 3

    sheet = tmp_path / "queue.csv"
    exported = CliRunner().invoke(main, ["labels", "export", "--output", str(sheet)])
    assert exported.exit_code == 0, exported.output
    with open(sheet, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    refs = [r["trace_ref"] for r in rows]
    assert len(refs) == len(set(refs)), "the spreadsheet lists each trace once"
    # A focus trace its own week sampled is listed there, once, with both reasons.
    by_ref = {r["trace_ref"]: r for r in rows}
    for ref in already:
        assert by_ref[ref]["week_start"] in MARCH_WEEKS and "drift_focus" in by_ref[ref]["reasons"]
    for ref in fresh:
        assert by_ref[ref]["week_start"] == FOCUS_WEEK and by_ref[ref]["reasons"].startswith("drift_focus")

    # Reruns, in any order, rewrite their partitions and still hold each trace once.
    with connect(paths.warehouse, read_only=True) as conn:
        before = conn.execute("SELECT week_start, trace_ref, reasons FROM scrub.anonymized_traces ORDER BY ALL").fetchall()
    for week in [FOCUS_WEEK, *MARCH_WEEKS]:
        _week(resources, week)
    with connect(paths.warehouse, read_only=True) as conn:
        assert conn.execute("SELECT week_start, trace_ref, reasons FROM scrub.anonymized_traces ORDER BY ALL").fetchall() == before
        _once(conn, "label.review_queue")
        queued = pl.from_arrow(conn.execute("SELECT trace_ref FROM label.review_queue").fetch_arrow_table())
    assert set(already + fresh) <= set(queued["trace_ref"])
