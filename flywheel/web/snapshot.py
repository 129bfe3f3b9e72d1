"""What the review app reads from the warehouse, held in memory.

The app never makes a person wait on the warehouse: DuckDB refuses a reader while another process
writes (the weekly loop scrubbing a week holds the file for as long as it takes). So the pages and the
API read this snapshot (label suggestions and stored clusters included), and a background thread
reloads it when the warehouse file has changed, with a read-only connection tried briefly; when a run
holds the file the old snapshot keeps serving and the pages say how old it is. Labels the app itself
writes are added to it the moment they are stored.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.common.db import WarehouseBusy, open_connection, table_exists
from flywheel.core.common.lake import CATALOG, Lake

# Review order, as flywheel.core.labeling.queue orders the queue: anomalies, strata, random picks;
# adversarial candidates first within each; the most doubtful judge scores first.
ITEMS_SQL = """
WITH focus AS ({focus}),
first_week AS (
  SELECT trace_ref, min(week_start) AS week_start FROM scrub.anonymized_traces GROUP BY trace_ref
), candidates AS ({candidates})
SELECT a.week_start, a.trace_ref,
       CASE WHEN list_contains(a.modes, 'anomaly') THEN 0
            WHEN list_contains(a.modes, 'stratified') OR f.in_focus THEN 1 ELSE 2 END AS priority,
       CASE WHEN f.in_focus AND NOT list_contains(a.reasons, 'drift_focus')
            THEN list_append(a.reasons, 'drift_focus') ELSE a.reasons END AS reasons,
       a.judge_score, a.weight, a.intent, a.cohort, a.turns, a.timestamp, a.messages,
       coalesce(c.adversarial_candidate, false) AS adversarial_candidate
FROM scrub.anonymized_traces a
JOIN first_week w ON w.trace_ref = a.trace_ref AND w.week_start = a.week_start
LEFT JOIN focus f ON f.trace_ref = a.trace_ref
LEFT JOIN candidates c ON c.trace_ref = a.trace_ref
ORDER BY a.week_start, priority, adversarial_candidate DESC, abs(coalesce(a.judge_score, 0.5) - 0.5), a.timestamp,
         a.trace_ref
"""


@dataclass
class Snapshot:
    """The warehouse as of `loaded_at`. Items are the scrubbed traces (each in its first week), in
    review order; `labels` is every label, oldest first."""

    loaded_at: dt.datetime | None = None
    items: dict[str, dict] = field(default_factory=dict)
    order: dict[dt.date, list[str]] = field(default_factory=dict)  # week -> trace refs in review order
    labels: list[dict] = field(default_factory=list)
    taxonomy: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    version_rows: dict[int, list[dict]] = field(default_factory=dict)  # latest two versions' rows
    pass_rates: list[dict] = field(default_factory=list)
    residue: list[dict] = field(default_factory=list)
    suggestions: dict[str, dict] = field(default_factory=dict)  # trace_ref -> its label.suggestions row
    clusters: list[dict] = field(default_factory=list)  # label.clusters, every scope

    # Derived, rebuilt by index().
    current: dict[str, dict] = field(default_factory=dict)
    history: dict[str, list[dict]] = field(default_factory=dict)

    def index(self) -> Snapshot:
        self.current, self.history = {}, {}
        for row in self.labels:
            self.history.setdefault(row["trace_ref"], []).append(row)
            self.current[row["trace_ref"]] = row
        return self

    def add_label(self, row: dict) -> None:
        self.labels.append(row)
        self.history.setdefault(row["trace_ref"], []).append(row)
        self.current[row["trace_ref"]] = row

    @property
    def weeks(self) -> list[dt.date]:
        return sorted(self.order)

    def codes(self) -> set[str]:
        return {t["code"] for t in self.taxonomy}


def load(warehouse: Path, *, timeout_s: float = 0.5, gate_threshold: float = 0.9) -> Snapshot:
    """Read the snapshot; WarehouseBusy when a writer held the file for longer than timeout_s."""
    from flywheel.core.evalset import pass_rate_view, regression
    from flywheel.core.evalset import versions as evalset
    from flywheel.core.labeling import suggestions, unexplained
    from flywheel.core.scrub import residue

    snap = Snapshot(loaded_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    conn = open_connection(warehouse, read_only=True, timeout_s=timeout_s)
    try:
        if table_exists(conn, "scrub", "anonymized_traces"):
            focus = ("SELECT DISTINCT trace_ref, true AS in_focus FROM drift.high_distance_traces"
                     if table_exists(conn, "drift", "high_distance_traces") else
                     "SELECT NULL::VARCHAR AS trace_ref, true AS in_focus WHERE false")
            candidates = ("SELECT trace_ref, bool_or(adversarial_candidate) AS adversarial_candidate "
                          "FROM label.review_queue GROUP BY trace_ref"
                          if table_exists(conn, "label", "review_queue") else
                          "SELECT NULL::VARCHAR AS trace_ref, false AS adversarial_candidate WHERE false")
            cur = conn.execute(ITEMS_SQL.format(focus=focus, candidates=candidates))
            names = [d[0] for d in cur.description]
            for values in cur.fetchall():
                item = dict(zip(names, values))
                week = item["week_start"].date() if isinstance(item["week_start"], dt.datetime) else item["week_start"]
                item["week"] = week
                snap.items[item["trace_ref"]] = item
                snap.order.setdefault(week, []).append(item["trace_ref"])
        if table_exists(conn, "label", "labels"):
            cur = conn.execute("SELECT * FROM label.labels ORDER BY reviewed_at, label_id")
            names = [d[0] for d in cur.description]
            snap.labels = [dict(zip(names, r)) for r in cur.fetchall()]
        if table_exists(conn, "label", "taxonomy"):
            cur = conn.execute("SELECT code, name, definition, created_at, created_from FROM label.taxonomy "
                               "ORDER BY created_at, code")
            snap.taxonomy = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
        if table_exists(conn, "eval", "versions"):
            cur = conn.execute("SELECT * FROM eval.versions ORDER BY version")
            snap.versions = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
            for v in [v["version"] for v in snap.versions][-2:]:
                cur = conn.execute(f"{evalset.ROWS_AT_SQL} ORDER BY added_at, row_id", {"version": v})
                snap.version_rows[v] = [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
            if table_exists(conn, "regression", "results"):
                snap.pass_rates = pass_rate_view.per_version(regression.pass_rates(conn), gate_threshold)
        if table_exists(conn, "scrub", "scrub_report"):
            snap.residue = residue.summary(conn)
        snap.suggestions = suggestions.suggestions_for(conn)  # {} and [] before the first run makes them
        snap.clusters = unexplained.stored(conn)
    finally:
        conn.close()
    return snap.index()


def _stamp(warehouse: Path | Lake) -> tuple:
    """Changes whenever the warehouse does: DuckDB writes the file or its write-ahead log; every
    commit to a DuckLake makes a new snapshot."""
    if isinstance(warehouse, Lake):
        conn = open_connection(warehouse, read_only=True)
        try:
            return (conn.execute(f"FROM ducklake_current_snapshot('{CATALOG}')").fetchone()[0],)
        finally:
            conn.close()
    out = []
    for path in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


class Live:
    """The current snapshot, reloaded in the background when the warehouse changes."""

    MAX_AGE_S = 30.0

    def __init__(self, warehouse: Path, *, every_s: float = 2.0, gate_threshold: float = 0.9):
        self.warehouse = warehouse
        self.every_s = every_s
        self.gate_threshold = gate_threshold
        self.lock = threading.RLock()
        self.snapshot = Snapshot()
        self.stamp: tuple | None = None
        self.busy_since: dt.datetime | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self.loaded_stamp: tuple | None = None
        self.loaded_at: float | None = None

    def refresh(self, *, force: bool = False) -> bool:
        """Reload when someone else changed the file (or when forced); False when a writer held it.
        The app's own writes (labels landing) do not count: absorb() added them already. Whatever the
        stamps say, a snapshot older than MAX_AGE_S is reloaded when the file differs from what was read."""
        stamp = _stamp(self.warehouse)
        stale = (self.loaded_at is not None and time.monotonic() - self.loaded_at > self.MAX_AGE_S
                 and stamp != self.loaded_stamp)
        if not force and stamp == self.stamp and not stale:
            return True
        if stamp[0] is None:
            return True  # no warehouse yet: an empty snapshot is the truth
        try:
            fresh = load(self.warehouse, gate_threshold=self.gate_threshold)
        except WarehouseBusy:
            self.busy_since = self.busy_since or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            return False
        except Exception as exc:  # noqa: BLE001 - a half-written warehouse must not stop the app; say it
            self.last_error = type(exc).__name__  # the type only: a message may quote a value
            return False
        with self.lock:
            self.snapshot, self.stamp, self.busy_since, self.last_error = fresh, stamp, None, None
            self.loaded_stamp, self.loaded_at = stamp, time.monotonic()
        return True

    def stamp_now(self) -> tuple:
        return _stamp(self.warehouse)

    def absorb(self, rows: list[dict], before: tuple, after: tuple | None) -> None:
        """Labels this process just wrote to label.labels, while it held the file from `before` to
        `after`: added to the snapshot as they are. When the snapshot was current at `before`, it is
        current at `after` too, and no reload is needed for the app's own writes."""
        with self.lock:
            for row in rows:
                self.snapshot.add_label(row)
            if after is not None and self.stamp == before:
                self.stamp = after

    def stop(self) -> None:
        self._stop.set()

    def get(self) -> Snapshot:
        with self.lock:
            return self.snapshot
