"""A trace is in review once, even when a later week's drift-focus stratum picks it again.

The drift-focus stratum takes last month's most distant traces into the first weekly sample after the
month. Those traces belong to earlier weeks, whose own draws may already have picked them: station 1
must not sample them a second time, or station 2 scrubs them twice and station 3 queues (and exports)
them twice. Core functions on a small DuckDB; the same story through Dagster is in
test_review_once_assets.py.
"""

import csv
import datetime as dt

import polars as pl
import pytest

from flywheel.core.common.db import connect, transaction
from flywheel.core.intake.ingest import ensure_raw_tables
from flywheel.core.labeling import queue, spreadsheet
from flywheel.core.sampling import sampler as sampling
from flywheel.core.scrub import station
from flywheel.core.scrub.scrubber import ScrubbedText
from flywheel.settings import SamplingSettings

HOME = dt.datetime(2026, 3, 23)  # the last week wholly in March
FOCUS = dt.datetime(2026, 4, 6)  # March ends on Wednesday 1 April: the first week to start after it
SETTINGS = SamplingSettings()


def ref(trace_id: str) -> str:
    """Stands in for the keyed hash: the same function for the sampler, the scrubber and drift."""
    return "ref-" + trace_id


class EchoScrubber:
    """Leaves text as it is: what matters here is which traces are scrubbed, not how."""

    version = "echo-1"

    def scrub_conversations(self, conversations):
        for conversation in conversations:
            yield [ScrubbedText(text) for text in conversation]


def fill(conn, week: dt.datetime, n: int, tag: str, intent: str | None = "billing") -> None:
    """n traces over the week; every 10th tripped a guardrail (an anomaly: its week always takes it)."""
    intent_sql = "NULL" if intent is None else f"'{intent}'"
    conn.execute(
        f"""INSERT INTO raw.traces (sample_key, trace_id, timestamp, messages, cohort, intent, judge_score, turns,
                                   guardrail_tripped, retried, handed_off)
            SELECT md5_number('{tag}-' || i), '{tag}-' || i, TIMESTAMP '{week}' + to_seconds(i * 600000 // {n}),
                   [{{'role': 'user', 'content': 'question ' || i}}], 'smb', {intent_sql}, 0.95, 2,
                   i % 10 = 0, false, false
            FROM range({n}) t(i)"""
    )


def run_week(conn, week: dt.datetime) -> None:
    """Stations 1-3 for one week, as the assets run them: sample, scrub (the partition rewritten, as
    the DuckDB IO manager does), queue."""
    sampling.write_sample(conn, week, SETTINGS, trace_ref=ref)
    sample = sampling.read_sample(conn, week)
    conversations = station.raw_conversations(conn, sample["trace_ref"].to_list())
    anonymized, _ = station.scrub_sample(sample, conversations, EchoScrubber(),
                                         lambda kind, value: ref(value) if kind == "trace" else kind + value, week)
    conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
    conn.register("week_rows", anonymized)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS scrub.anonymized_traces AS SELECT * FROM week_rows WHERE false")
        with transaction(conn):
            conn.execute("DELETE FROM scrub.anonymized_traces WHERE week_start = ?", [week])
            conn.execute("INSERT INTO scrub.anonymized_traces SELECT * FROM week_rows")
    finally:
        conn.unregister("week_rows")
    queue.write_queue(conn, week)


@pytest.fixture
def wh(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        ensure_raw_tables(conn)
        fill(conn, HOME, 300, "mar")
        fill(conn, FOCUS, 300, "apr")
        home_refs = set(sampling.sample_week(conn, HOME, SETTINGS, trace_ref=ref)["trace_ref"])
        home_picks = {i for i in (f"mar-{k}" for k in range(300)) if ref(i) in home_refs}
        # March's drift: two traces its last week samples anyway (an anomaly, and whatever else it
        # picked first), two it does not.
        already = sorted(home_picks, key=lambda i: int(i.split("-")[1]))[:2]
        fresh = [i for i in (f"mar-{k}" for k in range(1, 300)) if i not in home_picks][:2]
        assert "mar-0" in already
        conn.execute("CREATE SCHEMA drift")
        conn.execute("CREATE TABLE drift.high_distance_traces (month DATE, trace_ref VARCHAR, distance DOUBLE)")
        conn.executemany("INSERT INTO drift.high_distance_traces VALUES ('2026-03-01', ?, 0.9)",
                         [[ref(i)] for i in already + fresh])
        yield conn, already, fresh


def _counts(conn, table: str, column: str) -> tuple[int, int]:
    return conn.execute(f"SELECT count(*), count(DISTINCT {column}) FROM {table}").fetchone()


def _assert_each_trace_once(conn, tmp_path) -> None:
    sampled, distinct = _counts(conn, "sample.sampled_traces", "trace_ref")
    assert sampled == distinct, f"{sampled - distinct} traces sampled in two weeks"
    scrubbed, distinct = _counts(conn, "scrub.anonymized_traces", "trace_ref")
    assert scrubbed == distinct, f"{scrubbed - distinct} traces scrubbed twice"
    queued, distinct = _counts(conn, "label.review_queue", "trace_ref")
    assert queued == distinct, f"{queued - distinct} traces queued twice"
    sheet = tmp_path / "queue.csv"
    spreadsheet.export_queue(queue.review_queue(conn), sheet)
    with open(sheet, newline="", encoding="utf-8") as fh:
        exported = [r["trace_ref"] for r in csv.DictReader(fh)]
    assert len(exported) == len(set(exported)) == scrubbed, "the export lists every scrubbed trace, each once"


def test_a_trace_its_own_week_sampled_is_not_sampled_scrubbed_or_queued_again(wh, tmp_path):
    conn, already, fresh = wh
    run_week(conn, HOME)
    home = sampling.read_sample(conn, HOME)
    run_week(conn, FOCUS)

    _assert_each_trace_once(conn, tmp_path)
    focus = sampling.read_sample(conn, FOCUS)
    picked_for_focus = focus.filter(pl.col("reasons").list.contains("drift_focus"))
    assert sorted(picked_for_focus["trace_ref"]) == sorted(ref(i) for i in fresh), "only the focus traces not sampled yet are added"
    assert picked_for_focus["inclusion_probability"].to_list() == [1.0, 1.0]
    # The traces sampled in their own week stay there, with that week's reasons and probability ...
    assert sampling.read_sample(conn, HOME).equals(home)
    # ... and the queue shows them once, with both reasons: their week's draw and the drift focus.
    rows = queue.review_queue(conn).filter(pl.col("trace_ref").is_in([ref(i) for i in already]))
    assert rows["week_start"].to_list() == [HOME, HOME]
    for (trace_ref,), row in zip(home.filter(pl.col("trace_ref").is_in([ref(i) for i in already]))
                                 .sort("timestamp").select("trace_ref").iter_rows(),
                                 rows.sort("timestamp").iter_rows(named=True)):
        assert row["trace_ref"] == trace_ref
        own = home.filter(pl.col("trace_ref") == trace_ref)["reasons"].to_list()[0]
        assert row["reasons"] == [*own, "drift_focus"], (trace_ref, row["reasons"])
        assert row["priority"] <= 1, "a drift-focus trace is reviewed with the strata, or before them"


def test_reruns_rewrite_and_add_nothing(wh, tmp_path):
    conn, _, _ = wh
    for week in (HOME, FOCUS):
        run_week(conn, week)
    before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
              for t in ("sample.sampled_traces", "scrub.anonymized_traces", "label.review_queue")}
    for week in (FOCUS, HOME, FOCUS):
        run_week(conn, week)
    after = {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in before}
    assert after == before
    _assert_each_trace_once(conn, tmp_path)


def test_out_of_order_runs_still_hold_each_trace_once(wh, tmp_path):
    """A backfill may run the focus week before the weeks its traces come from: whichever week
    samples a trace first keeps it, and the other leaves it out."""
    conn, already, fresh = wh
    run_week(conn, FOCUS)
    run_week(conn, HOME)
    _assert_each_trace_once(conn, tmp_path)
    focus = sampling.read_sample(conn, FOCUS)
    assert {ref(i) for i in already + fresh} <= set(focus["trace_ref"])
    # Both reasons on the one row: the focus week's draw also sees that its own week would take it.
    anomaly = focus.filter(pl.col("trace_ref") == ref("mar-0"))
    assert anomaly["reasons"].to_list() == [["drift_focus", "guardrail_tripped"]]
    assert not {ref(i) for i in already + fresh} & set(sampling.read_sample(conn, HOME)["trace_ref"])


def test_only_other_weeks_are_left_out(tmp_path):
    """The exclusion never reaches into the week's own partition, so a rerun is not emptied by the rows
    it is about to replace."""
    with connect(tmp_path / "one.duckdb") as conn:
        ensure_raw_tables(conn)
        fill(conn, HOME, 300, "mar")
        first = sampling.write_sample(conn, HOME, SETTINGS, trace_ref=ref)
        assert sampling.write_sample(conn, HOME, SETTINGS, trace_ref=ref).equals(first)
        assert sampling.held_elsewhere(conn, HOME, HOME) == set()


def test_a_warehouse_with_duplicates_from_before_queues_the_earliest_week_only(wh, tmp_path):
    """Warehouses written before the rule hold such traces in two weeks until the later week is rerun;
    the queue (and so `flywheel labels export` and `flywheel review`) shows each once meanwhile."""
    conn, already, _ = wh
    run_week(conn, HOME)
    run_week(conn, FOCUS)
    conn.execute("""INSERT INTO scrub.anonymized_traces
                    SELECT * REPLACE (TIMESTAMP '2026-04-06' AS week_start, list_append(reasons, 'drift_focus') AS reasons)
                    FROM scrub.anonymized_traces WHERE trace_ref IN (SELECT unnest(?::VARCHAR[]))""",
                 [[ref(i) for i in already]])
    everything = queue.review_queue(conn)
    assert everything.height == everything["trace_ref"].n_unique()
    assert set(everything.filter(pl.col("trace_ref").is_in([ref(i) for i in already]))["week_start"]) == {HOME}
    assert not set(queue.review_queue(conn, FOCUS)["trace_ref"]) & {ref(i) for i in already}
    run_week(conn, FOCUS)  # the rerun the fix asks for: the focus week's partition loses its copies
    _assert_each_trace_once(conn, tmp_path)


def test_a_week_without_intents_does_not_fix_the_scrub_tables_column_types(tmp_path):
    """The first week's traces carry no intent, the next week's do: the anonymized rows keep the
    sample's types, so the table made from the first week takes the second (a column of nulls inferred
    from the rows was stored as INTEGER and refused "billing")."""
    first, second = dt.datetime(2026, 3, 2), dt.datetime(2026, 3, 9)
    with connect(tmp_path / "w.duckdb") as conn:
        ensure_raw_tables(conn)
        fill(conn, first, 20, "w1", intent=None)
        fill(conn, second, 20, "w2")
        run_week(conn, first)
        run_week(conn, second)
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'anonymized_traces'").fetchall())
        intents = conn.execute("SELECT DISTINCT intent FROM scrub.anonymized_traces WHERE week_start = ?",
                               [second]).fetchall()
    assert types["intent"] == "VARCHAR" and types["customer_ref"] == "VARCHAR"
    assert intents == [("billing",)]
