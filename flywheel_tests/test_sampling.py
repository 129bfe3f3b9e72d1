import datetime as dt

import dagster as dg
import polars as pl
import pytest

from flywheel.core.sampling import sampler as sampling
from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ensure_raw_tables
from flywheel.defs.sampling import sampled_traces
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import SamplingSettings

WEEK = dt.datetime(2026, 3, 2)
N = 100_000


def REF(trace_id):  # noqa: N802 - stands in for the keyed hash (Warehouse.trace_ref())
    return "ref-" + trace_id


def fill_week(conn, n=N, week=WEEK):
    """n traces spread over one week with known strata: every 10th borderline, every 50th anomalous,
    every 25th long, intent 'rare' on 1%."""
    conn.execute(
        f"""INSERT INTO raw.traces (sample_key, trace_id, timestamp, messages, cohort, intent, judge_score, turns,
                                   guardrail_tripped, retried, handed_off)
            SELECT md5_number('tr-' || i), 'tr-' || i, TIMESTAMP '{week}' + to_seconds(i * 604800 // {n}),
                   [{{'role': 'user', 'content': 'q' || i}}], 'smb',
                   CASE WHEN i % 100 = 7 THEN 'rare' ELSE 'common_' || (i % 4) END,
                   CASE WHEN i % 10 = 0 THEN 0.55 ELSE 0.93 END,
                   CASE WHEN i % 25 = 3 THEN 9 ELSE 2 END,
                   i % 50 = 1, i % 50 = 11, i % 50 = 21
            FROM range({n}) t(i)"""
    )


@pytest.fixture(scope="module")
def week_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("sampling") / "w.duckdb"
    with connect(path) as conn:
        ensure_raw_tables(conn)
        fill_week(conn)
        # One trace the week after, to prove the window is respected.
        fill_week(conn, n=1, week=WEEK + dt.timedelta(days=7))
    return path


@pytest.fixture(scope="module")
def sample(week_db):
    with connect(week_db) as conn:
        return sampling.sample_week(conn, WEEK, trace_ref=REF)


def _has(reason):
    return pl.col("reasons").list.contains(reason)


def test_random_rate_within_tolerance(sample):
    picked = sample.filter(_has("random")).height
    # Binomial(100k, 2%): sd ~44, so +-300 is about 7 sd.
    assert abs(picked - 0.02 * N) < 300, picked


def test_every_anomaly_is_included(sample, week_db):
    with connect(week_db) as conn:
        anomalies = conn.execute(
            f"SELECT count(*) FROM raw.traces WHERE (guardrail_tripped OR retried OR handed_off) AND timestamp < '{WEEK + dt.timedelta(days=7)}'"
        ).fetchone()[0]
    assert anomalies == 3 * N // 50
    got = sample.filter(pl.col("modes").list.contains("anomaly"))
    assert got.height == anomalies
    assert got.filter(pl.col("inclusion_probability") != 1.0).height == 0


@pytest.mark.parametrize("reason,population,rate", [
    ("borderline_judge", N // 10, 0.25), ("long_conversation", N // 25, 0.25), ("rare_intent", N // 100, 0.25),
])
def test_strata_are_over_sampled(sample, reason, population, rate):
    picked = sample.filter(_has(reason)).height
    assert abs(picked / population - rate) < 0.05, (reason, picked)
    assert picked / population > 5 * 0.02, "a stratum is sampled well above the random rate"


def test_each_trace_once_with_all_reasons_and_its_probability(sample):
    assert "trace_id" not in sample.columns, "the sample holds keyed references, never the raw id"
    assert sample["trace_ref"].n_unique() == sample.height
    multi = sample.filter(pl.col("reasons").list.len() > 1)
    assert multi.height > 0
    # trace 'tr-30' is borderline (i % 10 == 0) only: p = 1 - 0.98 * 0.75
    row = sample.filter(pl.col("trace_ref").is_in([REF("tr-%d" % i) for i in range(0, 2000, 10) if i % 25 != 3 and i % 100 != 7]))
    assert row.height > 0
    assert row["inclusion_probability"].round(6).unique().to_list() == [round(1 - 0.98 * 0.75, 6)]
    assert (sample["weight"] * sample["inclusion_probability"]).round(9).unique().to_list() == [1.0]


def test_the_week_window_is_respected(sample):
    assert sample["timestamp"].max() < WEEK + dt.timedelta(days=7)
    assert sample["week_start"].unique().to_list() == [WEEK]


def test_deterministic_and_salt_sensitive(week_db, sample):
    with connect(week_db) as conn:
        again = sampling.sample_week(conn, WEEK, trace_ref=REF)
        salted = sampling.sample_week(conn, WEEK, SamplingSettings(salt="other"), trace_ref=REF)
    assert again.equals(sample)
    assert set(salted.filter(_has("random"))["trace_ref"]) != set(sample.filter(_has("random"))["trace_ref"])


def test_zero_rates_turn_modes_off(week_db):
    off = SamplingSettings(random_rate=0, borderline_rate=0, rare_intent_rate=0, long_conversation_rate=0)
    with connect(week_db) as conn:
        only_anomalies = sampling.sample_week(conn, WEEK, off, trace_ref=REF)
    assert only_anomalies["modes"].list.join(",").unique().to_list() == ["anomaly"]


def test_drift_focus_stratum_takes_last_months_high_distance_traces(tmp_path):
    ref = lambda trace_id: "ref-" + trace_id  # noqa: E731 - stands in for the keyed hash
    with connect(tmp_path / "d.duckdb") as conn:
        ensure_raw_tables(conn)
        fill_week(conn, n=1000, week=dt.datetime(2026, 3, 23))  # last week of March
        fill_week(conn, n=1000, week=dt.datetime(2026, 4, 6))  # first full week of April
        conn.execute("UPDATE raw.traces SET trace_id = trace_id || '-' || strftime(timestamp, '%m')")
        conn.execute("UPDATE raw.traces SET sample_key = md5_number(trace_id)")
        conn.execute("CREATE SCHEMA drift")
        conn.execute("CREATE TABLE drift.high_distance_traces (month DATE, trace_ref VARCHAR)")
        conn.execute("INSERT INTO drift.high_distance_traces VALUES ('2026-03-01', 'ref-tr-5-03'), ('2026-03-01', 'ref-tr-6-03')")
        off = SamplingSettings(random_rate=0, borderline_rate=0, rare_intent_rate=0, long_conversation_rate=0, anomaly_rate=0)
        # March ends on Wednesday 1 April: the week of Monday 6 April is the first to start after it.
        straddling_week = sampling.sample_week(conn, dt.datetime(2026, 3, 30), off, trace_ref=ref)
        april_first_week = sampling.sample_week(conn, dt.datetime(2026, 4, 6), off, trace_ref=ref)
        april_second_week = sampling.sample_week(conn, dt.datetime(2026, 4, 13), off, trace_ref=ref)
    assert sorted(april_first_week["trace_ref"]) == ["ref-tr-5-03", "ref-tr-6-03"]
    assert april_first_week["reasons"].to_list() == [["drift_focus"], ["drift_focus"]]
    assert straddling_week.height == 0 and april_second_week.height == 0, "only the first week after the month"


def test_detection_probability_matches_the_essay():
    # "if a failure mode shows up in 0.5% of tickets, a 1% sample misses it half the time": that is a
    # sample of ~140 traces, i.e. 1% of ~14k weekly traces.
    assert sampling.detection_probability(13_800, 0.01, 0.005) == pytest.approx(0.5, abs=0.01)
    assert sampling.detection_probability(0, 0.02, 0.005) == 0.0


@pytest.mark.parametrize("day,monday", [("2026-03-02", "2026-03-02"), ("2026-03-08", "2026-03-02"), ("2026-03-09", "2026-03-09")])
def test_as_week_start(day, monday):
    assert sampling.as_week_start(day) == dt.datetime.fromisoformat(monday)


def test_materialization_is_idempotent(data_dir):
    warehouse = Warehouse(data_dir=str(data_dir))
    with warehouse.connect() as conn:
        ensure_raw_tables(conn)
        fill_week(conn, n=5000)
    resources = {"warehouse": warehouse}
    first = dg.materialize([sampled_traces], partition_key="2026-03-02", resources=resources)
    second = dg.materialize([sampled_traces], partition_key="2026-03-02", resources=resources)
    assert first.success and second.success
    with warehouse.connect() as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT trace_ref) FROM sample.sampled_traces").fetchone()
        ids = conn.execute("SELECT count(*), count(DISTINCT trace_id) FROM raw.sample_ids").fetchone()
        expected = sampling.sample_week(conn, WEEK, trace_ref=warehouse.trace_ref()).height
    assert rows == (expected, expected), "a rerun rewrites the partition instead of appending"
    assert ids == (expected, expected), "the sample's raw ids are rewritten with it"
    meta = first.asset_materializations_for_node("sample__sampled_traces")[0].metadata
    assert meta["dagster/row_count"].value == expected
    assert 0 < meta["p_random_sees_0.5pct_failure"].value < 1


def test_write_sample_matches_sample_week_and_replaces_only_its_week(week_db, sample):
    with connect(week_db) as conn:
        assert sampling.write_sample(conn, WEEK, trace_ref=REF).equals(sample)
        conn.execute("INSERT INTO sample.sampled_traces (week_start, trace_ref) VALUES ('2026-03-09', 'other-week')")
        conn.execute("INSERT INTO raw.sample_ids VALUES ('2026-03-09', 'other-week', 'other-id')")
        sampling.write_sample(conn, WEEK, trace_ref=REF)
        assert sampling.read_sample(conn, WEEK).select(sample.columns).equals(sample)
        assert conn.execute("SELECT count(*) FROM sample.sampled_traces WHERE week_start = '2026-03-09'").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM raw.sample_ids WHERE week_start = '2026-03-09'").fetchone()[0] == 1
        # raw.sample_ids holds the raw id behind each of the week's references, once.
        ids = conn.execute("SELECT trace_ref, trace_id FROM raw.sample_ids WHERE week_start = ?", [WEEK]).fetchall()
        assert sorted(ids) == sorted((REF(i), i) for i in (r.removeprefix("ref-") for r in sample["trace_ref"]))


def test_each_slot_read_from_64_bit_halves_is_the_128_bit_slice():
    """The draw reads its slices from two 64-bit halves for speed; each must equal the slice of the
    128-bit hash it stands for (the straddling slot included), or an upgrade would change every
    sample."""
    import duckdb

    slots = ", ".join(
        f"{sampling._slot(mode)} = ((h >> {sampling.DRAW_BITS * i}) & {2**sampling.DRAW_BITS - 1})"
        for i, mode in enumerate(sampling.DRAW_SLOTS)
    )
    conn = duckdb.connect()
    rows = conn.execute(
        f"""SELECT bool_and(ok) FROM (
              SELECT unnest([{slots}]) AS ok
              FROM (SELECT *, (h & {2**64 - 1})::UBIGINT AS lo, (h >> 64)::UBIGINT AS hi
                    FROM (SELECT md5_number('k' || i) AS h FROM range(20000) t(i))))"""
    ).fetchone()
    assert rows == (True,)


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.05, 0.1, 0.25, 1 / 3, 0.5, 0.999999, 1.0])
def test_integer_draw_thresholds_equal_the_floating_point_draw(rate):
    import numpy as np

    sql = sampling._draw("random", rate)
    threshold = 0 if sql == "false" else 2**sampling.DRAW_BITS if sql == "true" else int(sql.rsplit("<", 1)[1])
    slices = np.arange(2**sampling.DRAW_BITS)
    assert np.array_equal(slices < threshold, slices / 2**sampling.DRAW_BITS < rate)


def test_a_sample_written_with_raw_ids_moves_them_into_raw(week_db, tmp_path):
    """A warehouse from before raw.sample_ids: its sample's trace_id column becomes keyed references,
    the raw ids go to raw.sample_ids, and the next draw keys the one-week rule on the references."""
    with connect(week_db) as conn:
        old = sampling.sample_week(conn, WEEK, trace_ref=REF).with_columns(
            pl.col("trace_ref").str.strip_prefix("ref-").alias("trace_id")).drop("trace_ref")
    with connect(tmp_path / "old.duckdb") as conn:
        ensure_raw_tables(conn)
        conn.execute("CREATE SCHEMA sample")
        conn.execute(sampling.SAMPLE_TABLE_DDL.replace("trace_ref VARCHAR", "trace_id VARCHAR"))
        conn.register("old", old)
        conn.execute("INSERT INTO sample.sampled_traces BY NAME SELECT * FROM old")
        assert sampling.migrate_raw_ids(conn, REF) == old.height
        assert sampling.migrate_raw_ids(conn, REF) == 0, "once"
        columns = [r[0] for r in conn.execute("DESCRIBE sample.sampled_traces").fetchall()]
        assert columns == list(sampling.SAMPLE_COLUMNS), "the keyed reference where the raw id was"
        assert sorted(conn.execute("SELECT trace_ref FROM sample.sampled_traces").fetchall()) == sorted(
            (REF(i),) for i in old["trace_id"])
        moved = conn.execute("SELECT trace_ref, trace_id FROM raw.sample_ids").fetchall()
        assert sorted(moved) == sorted((REF(i), i) for i in old["trace_id"])
        assert sorted(sampling.held_elsewhere(conn, WEEK + dt.timedelta(days=7), WEEK)) == sorted(REF(i) for i in old["trace_id"])
