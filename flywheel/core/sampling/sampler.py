"""Station 1: pick this week's slice of production.

Three modes, each an independent deterministic draw (its own slice of the trace id's md5 mixed with the
salt), so a rerun picks the same traces:

* random: a uniform share of traffic (essay: 1-5%);
* stratified: over-sample where the model is suspected weakest: borderline judge scores,
  low-frequency intents, long conversations, and the drift-focus stratum (last month's traces that
  sat furthest from the eval set);
* anomaly: every trace that tripped a guardrail, was retried, or was handed to a human.

A trace picked by several modes appears once with all its reasons. Its inclusion probability is the
chance that any mode it was eligible for picks it, 1 - prod(1 - rate), so pass rates measured on the
sample can be re-weighted to production (weight = 1 / probability).

A trace is sampled in one week only. The drift-focus stratum reaches back into last month, whose weeks
have drawn their own samples already: a focus trace one of them holds stays there (the review queue
adds drift_focus to its reasons) rather than being scrubbed and queued a second time. The rule is
"leave out what another week's sample holds", so it also holds when a backfill runs the weeks out of
order, and it never looks at the week's own partition, so a rerun rewrites the same draw.

What the sample holds: keyed trace references (trace_ref, the same HMAC the scrubber gives the
scrubbed trace, and what erasure and the one-week rule key on), the routing fields reduced to a known
shape (flywheel.core.privacy.routing: an intent holding an email becomes [REDACTED_INTENT]), flags,
scores and reasons; never a raw id, text, customer ids or metadata. The raw trace id the scrubber needs
to fetch the text stays inside the `raw` schema: raw.sample_ids (week_start, trace_ref, trace_id),
written with the sample in one transaction and replaced with the week's partition on a rerun; the
scrub station joins through it, erasure and retention delete from it with the raw traces.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import duckdb
import polars as pl

from flywheel.core.common.db import table_exists, transaction
from flywheel.core.privacy import routing
from flywheel.settings import SamplingSettings

WEEK = dt.timedelta(days=7)

# (reason, mode); the order is the order reasons are listed in.
STRATA = (
    ("borderline_judge", "stratified"),
    ("rare_intent", "stratified"),
    ("long_conversation", "stratified"),
    ("drift_focus", "stratified"),
)
ANOMALIES = ("guardrail_tripped", "retried", "handed_off")

SAMPLE_COLUMNS = (
    "week_start", "trace_ref", "timestamp", "cohort", "intent", "judge_score", "turns", "guardrail_tripped",
    "retried", "handed_off", "csat", "model_version", "reasons", "modes", "inclusion_probability", "weight",
)


def drift_focus_month(week_start: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The drift month whose high-distance traces feed this week: the first weekly sample that
    starts on or after a month's end takes that month's focus traces."""
    month_end = week_start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if week_start - WEEK >= month_end:
        return None
    month_start = (month_end - dt.timedelta(days=1)).replace(day=1)
    return month_start, month_end


def drift_focus_ids(
    conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, trace_ref: Callable[[str], str] | None,
) -> list[str]:
    """Raw trace ids of the drift-focus stratum for this week (in memory only: the sample stores refs).

    drift.high_distance_traces holds keyed references (month, trace_ref), never raw ids, so the ids
    are found by hashing last month's raw ids with the same key.
    """
    window = drift_focus_month(week_start)
    if window is None or trace_ref is None or not table_exists(conn, "drift", "high_distance_traces"):
        return []
    month_start, month_end = window
    refs = {
        r[0]
        for r in conn.execute(
            "SELECT trace_ref FROM drift.high_distance_traces WHERE CAST(month AS DATE) = ?", [month_start.date()]
        ).fetchall()
    }
    if not refs:
        return []
    ids = conn.execute(
        "SELECT trace_id FROM raw.traces WHERE timestamp >= ? AND timestamp < ?", [month_start, month_end]
    ).fetchall()
    return [i for (i,) in ids if trace_ref(i) in refs]


# Each trace's md5 (raw.traces.sample_key, computed once at intake) XOR the salt's md5 gives 128 bits;
# each mode reads its own 18-bit slice as a uniform draw (resolution 1/262,144, far below any rate
# worth setting). XOR with a constant is a bijection on every slice, so each salt draws a different,
# equally uniform sample; md5 is stable across DuckDB versions, so a rerun draws the same one.
DRAW_BITS = 18
DRAW_SLOTS = ("random", "borderline_judge", "rare_intent", "long_conversation", "drift_focus", "anomaly", "incident")
_MASK = 2**DRAW_BITS - 1


def _slot(mode: str) -> str:
    """The mode's 18-bit slice as an integer, read from the two 64-bit halves of the hash (`lo`,
    `hi`): 128-bit arithmetic costs three times as much in DuckDB."""
    first = DRAW_BITS * DRAW_SLOTS.index(mode)
    if first + DRAW_BITS <= 64:
        return f"((lo >> {first}) & {_MASK})"
    if first >= 64:
        return f"((hi >> {first - 64}) & {_MASK})"
    low_bits = 64 - first  # the slice straddles the halves; mask before shifting, so nothing overflows
    return f"((lo >> {first}) | ((hi & {2 ** (DRAW_BITS - low_bits) - 1}) << {low_bits}))"


def _draw(mode: str, rate: float) -> str:
    """slice / 2^18 < rate, compared as integers: dividing by a power of two is exact, so this is the
    same draw as the floating-point comparison."""
    threshold = math.ceil(rate * 2**DRAW_BITS)
    if threshold <= 0:
        return "false"
    if threshold > _MASK:
        return "true"
    return f"{_slot(mode)} < {threshold}"


def _pick(mode: str, rate: float, eligible: str) -> str:
    # The draw first: it is a shift and a compare, and passes only its rate's share of the week, so
    # the eligibility test runs on few rows. At rate 1 (anomalies) there is no draw to make.
    draw = _draw(mode, rate)
    if draw == "true":
        return f"({eligible})"
    return f"{draw} AND ({eligible})"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# A pick's reasons, in their listed order: random, the strata, the anomalies that fired, then the
# incident. The query returns them as bits and Polars turns the bits into lists (a join on a small
# lookup table): on a 35k-trace pick that is 5 ms less than DuckDB building two lists per row.
REASON_BITS = ("random", *(name for name, _ in STRATA), *ANOMALIES)
MODE_BITS = ("random", "stratified", "anomaly")


def _bits(conditions: Sequence[str]) -> str:
    return " | ".join(f"(({c})::UINTEGER << {i})" for i, c in enumerate(conditions))


def _lookup(column: str, names: Sequence[str]) -> pl.DataFrame:
    """Every bit pattern of `names` and the list of names it stands for."""
    patterns = range(2 ** len(names))
    return pl.DataFrame(
        {f"{column}_bits": list(patterns), column: [[n for i, n in enumerate(names) if bits >> i & 1] for bits in patterns]},
        schema={f"{column}_bits": pl.UInt32, column: pl.List(pl.String)},
    )


_REASON_LOOKUP = _lookup("reasons", REASON_BITS)
_MODE_LOOKUP = _lookup("modes", MODE_BITS)


def sampling_sql(s: SamplingSettings, *, with_focus: bool = True, with_incidents: bool = True) -> str:
    """The week's draw as one query, over $week_start, $week_end and $rare_intents (the week's
    low-frequency intents). Reasons and modes come out as bit patterns (reasons_bits, modes_bits) plus
    incident_reason; with_lists() turns them into lists. Without drift-focus ids or incidents, their
    branches are left out: the incident match alone costs twice the rest of the draw."""
    eligible = {
        "borderline_judge": f"coalesce(judge_score BETWEEN {s.borderline_low} AND {s.borderline_high}, false)",
        "rare_intent": "coalesce(list_contains($rare_intents, intent), false)",
        "long_conversation": f"coalesce(turns >= {s.long_conversation_turns}, false)",
        "drift_focus": "in_focus",
        "anomaly": " OR ".join(f"coalesce({a}, false)" for a in ANOMALIES),
        "incident": "incident_id IS NOT NULL",
    }
    rates = {
        "borderline_judge": s.borderline_rate, "rare_intent": s.rare_intent_rate,
        "long_conversation": s.long_conversation_rate, "drift_focus": s.drift_focus_rate,
        "anomaly": s.anomaly_rate, "incident": s.incident_rate,
    }
    picks = [f"{_draw('random', s.random_rate)} AS pick_random"]
    picks += [f"{_pick(m, rates[m], eligible[m])} AS pick_{m}" for m in rates]
    # P(picked) = 1 - P(no mode the trace was eligible for picks it).
    miss = [f"(1 - {s.random_rate})"] + [f"CASE WHEN {eligible[m]} THEN 1 - {rates[m]} ELSE 1 END" for m in rates]
    strata = [name for name, _ in STRATA]
    reasons_bits = _bits(["pick_random", *(f"pick_{m}" for m in strata),
                          *(f"pick_anomaly AND coalesce({a}, false)" for a in ANOMALIES)])
    modes_bits = _bits(["pick_random", " OR ".join(f"pick_{m}" for m in [*strata, "incident"]), "pick_anomaly"])
    any_pick = " OR ".join(["pick_random"] + [f"pick_{m}" for m in rates])
    columns = ("trace_id, timestamp, cohort, intent, judge_score, turns, guardrail_tripped, retried, handed_off, "
               "csat, model_version, sample_key")
    # Two plain scans rather than one with an OR, so the timestamp filter can skip row groups.
    focus = (f"""
  UNION ALL
  SELECT {columns}, true AS in_focus FROM raw.traces WHERE trace_id IN (SELECT id FROM focus)""" if with_focus else "")
    incident = ("""(SELECT min(i.incident_id) FROM incidents i
      WHERE week.timestamp >= i.start_at AND week.timestamp < i.end_at
        AND (i.cohort IS NULL OR i.cohort = week.cohort) AND (i.intent IS NULL OR i.intent = week.intent))"""
                if with_incidents else "NULL::VARCHAR")
    return f"""
WITH week AS (
  SELECT {columns}, false AS in_focus FROM raw.traces
  WHERE timestamp >= $week_start AND timestamp < $week_end{focus}
), hashed AS (
  SELECT *, xor(sample_key::UHUGEINT, md5_number({_sql_str(s.salt)})) AS h, {incident} AS incident_id
  FROM week
), halves AS (
  SELECT *, (h & {2**64 - 1})::UBIGINT AS lo, (h >> 64)::UBIGINT AS hi FROM hashed
), drawn AS (
  SELECT *, {', '.join(picks)}
  FROM halves
), picked AS (
  -- The probability and the reasons are worked out for the picked rows only.
  SELECT *, (1.0 - ({' * '.join(miss)}))::DOUBLE AS inclusion_probability
  FROM drawn
  WHERE {any_pick}
)
SELECT $week_start::TIMESTAMP AS week_start, {columns.removesuffix(", sample_key")},
  ({reasons_bits}) AS reasons_bits,
  CASE WHEN pick_incident THEN 'incident:' || incident_id END AS incident_reason,
  ({modes_bits}) AS modes_bits,
  inclusion_probability, 1 / inclusion_probability AS weight
FROM picked
"""


def with_lists(draw: pl.DataFrame) -> pl.DataFrame:
    """The query's bit patterns as the sample's reasons and modes lists, in SAMPLE_COLUMNS order."""
    out = (
        draw.join(_REASON_LOOKUP, on="reasons_bits", how="left", maintain_order="left")
        .join(_MODE_LOOKUP, on="modes_bits", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("incident_reason").is_not_null())
            .then(pl.col("reasons").list.concat(pl.col("incident_reason")))
            .otherwise(pl.col("reasons"))
            .alias("reasons")
        )
    )
    return out.select(SAMPLE_COLUMNS)


INCIDENT_SCHEMA = {"incident_id": pl.String, "start_at": pl.Datetime("us"), "end_at": pl.Datetime("us"),
                   "cohort": pl.String, "intent": pl.String}


def held_elsewhere(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, since: dt.datetime) -> set[str]:
    """Trace references of traces from `since` to the end of this week that another week's sample
    already holds.

    Only a drift-focus pick crosses weeks, so the window is this week, plus last month when the week
    takes its focus; the sample's own timestamp column lets DuckDB skip every other row group."""
    if not table_exists(conn, "sample", "sampled_traces"):
        return set()
    rows = conn.execute(
        "SELECT trace_ref FROM sample.sampled_traces WHERE week_start <> ? AND timestamp >= ? AND timestamp < ?",
        [week_start, since, week_start + WEEK],
    ).fetchall()
    return {r[0] for r in rows}


@dataclass(frozen=True)
class WeekDraw:
    """A week's sample and what the draw had to leave out."""

    sample: pl.DataFrame
    focus: list[str]  # raw ids of the drift-focus traces this week takes from last month (empty most weeks)
    left_out: list[str]  # raw ids picked by this week's draw, but already in another week's sample: not taken again
    ids: pl.DataFrame | None = None  # (week_start, trace_ref, trace_id) of the sample: raw.sample_ids' rows

    def focus_left_out(self) -> int:
        """Drift-focus traces their own week had sampled already (reviewed there, not here)."""
        return len(set(self.left_out) & set(self.focus))


def draw_week(
    conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, settings: SamplingSettings | None = None,
    *, trace_ref: Callable[[str], str], incidents: Sequence = (),
) -> WeekDraw:
    """The week's draw, minus the traces another week's sample already holds. `trace_ref` is the
    keyed hash the sample stores instead of the raw id (Warehouse.trace_ref())."""
    settings = settings or SamplingSettings()
    focus = drift_focus_ids(conn, week_start, trace_ref)
    draw = _draw_week(conn, week_start, settings, focus, incidents)
    draw = draw.with_columns(pl.Series("trace_ref", [trace_ref(i) for i in draw["trace_id"]], dtype=pl.String))
    window = drift_focus_month(week_start) if focus else None
    held = held_elsewhere(conn, week_start, window[0] if window else week_start)
    taken = ~pl.col("trace_ref").is_in(sorted(held))
    kept = draw.filter(taken).sort("timestamp", "trace_ref", maintain_order=True)  # read_sample's order
    return WeekDraw(with_lists(kept), focus, draw.filter(~taken)["trace_id"].to_list(),
                    kept.select("week_start", "trace_ref", "trace_id"))


def sample_week(
    conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, settings: SamplingSettings | None = None,
    *, trace_ref: Callable[[str], str], incidents: Sequence = (),
) -> pl.DataFrame:
    """The sampled traces of the week starting at week_start (a Monday, 00:00 UTC), as a DataFrame."""
    return draw_week(conn, week_start, settings, trace_ref=trace_ref, incidents=incidents).sample


def _draw_week(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, settings: SamplingSettings,
               focus: list[str], incidents: Sequence) -> pl.DataFrame:
    """The week's draw (reasons and modes still as bits), whatever other weeks hold."""
    registered = []
    if focus:
        conn.register("focus", pl.DataFrame({"id": focus}, schema={"id": pl.String}))
        registered.append("focus")
    if incidents:
        conn.register("incidents", pl.DataFrame(
            [{"incident_id": i.incident_id, "start_at": i.start, "end_at": i.end, "cohort": i.cohort, "intent": i.intent}
             for i in incidents], schema=INCIDENT_SCHEMA))
        registered.append("incidents")
    try:
        sql = sampling_sql(settings, with_focus=bool(focus), with_incidents=bool(incidents))
        params = {"week_start": week_start, "week_end": week_start + WEEK,
                  "rare_intents": rare_intents(conn, week_start, settings.rare_intent_max_share)}
        # Sorting in the query is also what lets DuckDB run the draw on every core before handing
        # rows over (an unsorted result streams through one thread).
        draw = conn.execute(f"{sql} ORDER BY timestamp, trace_id", params).pl()
    finally:
        for name in registered:
            conn.unregister(name)
    return draw


SAMPLE_TABLE_DDL = """CREATE TABLE IF NOT EXISTS sample.sampled_traces (
  week_start TIMESTAMP, trace_ref VARCHAR, timestamp TIMESTAMP, cohort VARCHAR, intent VARCHAR, judge_score DOUBLE,
  turns BIGINT, guardrail_tripped BOOLEAN, retried BOOLEAN, handed_off BOOLEAN, csat DOUBLE, model_version VARCHAR,
  reasons VARCHAR[], modes VARCHAR[], inclusion_probability DOUBLE, weight DOUBLE)"""
# The sample's raw ids, inside the raw schema: the scrub station's way back to the text in raw.traces.
SAMPLE_IDS_DDL = "CREATE TABLE IF NOT EXISTS raw.sample_ids (week_start TIMESTAMP, trace_ref VARCHAR, trace_id VARCHAR)"


def write_sample(
    conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, settings: SamplingSettings | None = None,
    *, trace_ref: Callable[[str], str], incidents: Sequence = (),
) -> pl.DataFrame:
    """Replace the week's partition of sample.sampled_traces with a fresh draw, in one transaction
    (delete-then-insert: a rerun rewrites, never appends), and its rows of raw.sample_ids with it.
    Returns the draw as written."""
    return write_draw(conn, week_start, settings, trace_ref=trace_ref, incidents=incidents).sample


def write_draw(
    conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, settings: SamplingSettings | None = None,
    *, trace_ref: Callable[[str], str], incidents: Sequence = (),
) -> WeekDraw:
    """write_sample, returning the whole draw (what was left out too), for the asset's metadata."""
    migrate_raw_ids(conn, trace_ref)
    drawn = draw_week(conn, week_start, settings, trace_ref=trace_ref, incidents=incidents)
    # The routing fields leave raw here, in a known shape (flywheel.core.privacy.routing): the draw
    # itself used the raw values (rare intents, incident windows), nothing after it needs them.
    sample = routing.shape_frame(drawn.sample)
    drawn = replace(drawn, sample=sample)
    conn.execute("CREATE SCHEMA IF NOT EXISTS sample")
    conn.execute(SAMPLE_TABLE_DDL)
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(SAMPLE_IDS_DDL)
    # Registered before the transaction begins: a view dropped inside one lives on until it ends.
    conn.register("drawn_sample", sample)
    conn.register("drawn_ids", drawn.ids)
    try:
        with transaction(conn):
            conn.execute("DELETE FROM sample.sampled_traces WHERE week_start = ?", [week_start])
            conn.execute("DELETE FROM raw.sample_ids WHERE week_start = ?", [week_start])
            conn.execute("INSERT INTO sample.sampled_traces BY NAME SELECT * FROM drawn_sample")
            conn.execute("INSERT INTO raw.sample_ids BY NAME SELECT * FROM drawn_ids")
    finally:
        conn.unregister("drawn_sample")
        conn.unregister("drawn_ids")
    return drawn


def migrate_raw_ids(conn: duckdb.DuckDBPyConnection, trace_ref: Callable[[str], str]) -> int:
    """A sample written before raw.sample_ids held raw trace ids in its own trace_id column: move them
    to raw.sample_ids and keep their keyed references, in one transaction. Returns the rows moved."""
    if not table_exists(conn, "sample", "sampled_traces"):
        return 0
    columns = {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'sample' AND table_name = 'sampled_traces'"
    ).fetchall()}
    if "trace_id" not in columns:
        return 0
    old = conn.execute("SELECT DISTINCT week_start, trace_id FROM sample.sampled_traces WHERE trace_id IS NOT NULL").pl()
    ids = old.with_columns(pl.Series("trace_ref", [trace_ref(i) for i in old["trace_id"]], dtype=pl.String))
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(SAMPLE_IDS_DDL)
    conn.register("old_sample_ids", ids)
    try:
        with transaction(conn):
            conn.execute("INSERT INTO raw.sample_ids BY NAME SELECT week_start, trace_ref, trace_id FROM old_sample_ids")
            # Rebuilt rather than altered: DuckDB will not update a table altered in the same transaction.
            drop = "trace_id, trace_ref" if "trace_ref" in columns else "trace_id"
            conn.execute(f"""CREATE TABLE sample.sampled_traces_keyed AS
                             SELECT s.week_start, o.trace_ref, s.* EXCLUDE (week_start, {drop})
                             FROM sample.sampled_traces s LEFT JOIN old_sample_ids o USING (week_start, trace_id)""")
            conn.execute("DROP TABLE sample.sampled_traces")
            conn.execute("ALTER TABLE sample.sampled_traces_keyed RENAME TO sampled_traces")
    finally:
        conn.unregister("old_sample_ids")
    return ids.height


def read_sample(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime) -> pl.DataFrame:
    return conn.execute(
        "SELECT * FROM sample.sampled_traces WHERE week_start = ? ORDER BY timestamp, trace_ref", [week_start]
    ).pl()


def rare_intents(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, max_share: float) -> list[str]:
    """Intents under max_share of the week's traffic: the low-frequency stratum."""
    counts = conn.execute(
        "SELECT intent, count(*) FROM raw.traces WHERE timestamp >= ? AND timestamp < ? GROUP BY intent",
        [week_start, week_start + WEEK],
    ).fetchall()
    traffic = sum(n for _, n in counts)  # traces without an intent count towards the week's traffic
    return sorted(intent for intent, n in counts if intent is not None and n < max_share * traffic)


def week_traffic(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime) -> int:
    return conn.execute(
        "SELECT count(*) FROM raw.traces WHERE timestamp >= ? AND timestamp < ?", [week_start, week_start + WEEK]
    ).fetchone()[0]


def detection_probability(traffic: int, random_rate: float, prevalence: float) -> float:
    """Chance the random slice holds at least one trace of a failure mode at this prevalence.

    The essay's warning in numbers: at 0.5% prevalence a random sample of about 140 traces misses the
    mode half the time."""
    if traffic <= 0:
        return 0.0
    return 1.0 - math.pow(1.0 - prevalence * random_rate, traffic)


def summarize(sample: pl.DataFrame, traffic: int, settings: SamplingSettings) -> dict:
    """Counts per mode and reason, for the asset's metadata and the CLI."""
    reasons = sample.select(pl.col("reasons").explode()).to_series().value_counts()
    modes = sample.select(pl.col("modes").explode()).to_series().value_counts()
    return {
        "traffic": traffic,
        "sampled": sample.height,
        "per_mode": {r[0]: r[1] for r in modes.iter_rows()},
        "per_reason": {r[0]: r[1] for r in reasons.iter_rows()},
        "p_random_sees_rare_failure": detection_probability(
            traffic, settings.random_rate, settings.rare_failure_prevalence
        ),
        "weighted_traffic_estimate": float(sample["weight"].sum()) if sample.height else 0.0,
    }


def week_starts(conn: duckdb.DuckDBPyConnection) -> list[dt.datetime]:
    """Mondays of every week raw.traces has traffic in."""
    rows = conn.execute(
        "SELECT DISTINCT date_trunc('week', timestamp)::TIMESTAMP AS w FROM raw.traces ORDER BY w"
    ).fetchall()
    return [r[0] for r in rows]


def as_week_start(value: str | dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    if isinstance(value, dt.datetime):
        value = value.date()
    monday = value - dt.timedelta(days=value.weekday())
    return dt.datetime.combine(monday, dt.time())
