"""What the review app does, for the pages and the JSON API alike: serve the next trace, take a
label, skip, comment, find siblings. Reads come from the in-memory snapshot of the warehouse and the
side store; labels go to the side store's outbox and a background lander appends them to label.labels
(flywheel.core.labeling.review_store explains why)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from flywheel.core.common import clock
from flywheel.core.common.db import WarehouseBusy, open_connection
from flywheel.core.common.lake import Lake
from flywheel.core.labeling import review_store, spreadsheet
from flywheel.core.labeling.labels import Label
from flywheel.core.scrub import keep_terms
from flywheel.paths import Paths
from flywheel.settings import ReviewSettings
from flywheel.web.snapshot import Live

# The label contract of `flywheel labels import`, less the reviewer: the signed-in one signs every label.
# The suggestion on screen when the label was given rides along (optional), so the label records it.
SUGGESTION_FIELDS = ("suggested_bucket", "suggested_code", "suggestion_confidence")
LABEL_FIELDS = ("trace_ref", *(c for c in spreadsheet.LABEL_COLUMNS if c != "reviewer"), *SUGGESTION_FIELDS)
STATUSES = ("unreviewed", "reserved", "in review", "disagreement", "reviewed")
LAND_WAIT_S = 2.0  # how long a POST waits for its label to reach label.labels before answering anyway


class Conflict(Exception):
    """The trace is reserved by someone else."""


@dataclass
class Submitted:
    state: str  # final | waiting | agreed | disagreement
    label: Label
    landed: bool

    def to_json(self) -> dict:
        label = asdict(self.label)
        label["reviewed_at"] = self.label.reviewed_at.isoformat()
        return {"state": self.state, "landed": self.landed, "label": label}


class Lander:
    """Moves the outbox into label.labels whenever the warehouse lets it, in a thread of its own."""

    def __init__(self, review: Review):
        self.review = review
        self.wake = threading.Event()
        self.landed = threading.Condition()
        self._stop = threading.Event()
        self.busy_since: dt.datetime | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="lander", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()

    def kick(self) -> None:
        self.wake.set()

    def land_once(self) -> bool:
        """One pass; False when the warehouse was busy (and the labels wait for the next)."""
        with self.review.store() as store:
            if not review_store.pending_count(store):
                return True
            try:
                with self.review.warehouse_lock:
                    conn = open_connection(self.review.paths.warehouse, timeout_s=0.5)
                    try:
                        before = self.review.live.stamp_now()  # no other process writes while we hold it
                        landing = review_store.land(store, conn)
                    finally:
                        conn.close()
                    # A new taxonomy code is worth a reload (the taxonomy page shows it); labels alone are not.
                    # On a DuckLake other processes commit while we write: the next read reloads.
                    after = (None if landing.new_codes or isinstance(self.review.paths.warehouse, Lake)
                             else self.review.live.stamp_now())
                    self.review.live.absorb(landing.rows, before, after)
            except WarehouseBusy:
                self.busy_since = self.busy_since or clock.now()
                return False
        self.busy_since = None
        with self.landed:
            self.landed.notify_all()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake.wait(timeout=1.0)
            self.wake.clear()
            if self._stop.is_set():
                return
            try:
                if not self.land_once():
                    self._stop.wait(0.5)
            except Exception:  # noqa: BLE001 - keep landing; the outbox keeps what failed
                self._stop.wait(2.0)

    def wait_landed(self, label_id: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.landed:
            while True:
                with self.review.store() as store:
                    row = store.execute("SELECT landed_at FROM outbox WHERE label_id = ?", [label_id]).fetchone()
                if row is None or row[0] is not None:
                    return row is not None
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.kick()
                self.landed.wait(min(left, 0.25))


class Review:
    def __init__(self, paths: Paths, settings: ReviewSettings, *, embedder_factory: Callable[[], object] | None = None,
                 snapshot_every_s: float = 2.0):
        from flywheel.core.evalset.regression import DEFAULT_THRESHOLD

        self.paths = paths
        self.settings = settings
        self.store_path = review_store.path_for(paths.data_dir)
        self.warehouse_lock = threading.Lock()  # one DuckDB connection at a time in this process
        self.live = Live(paths.warehouse, every_s=snapshot_every_s, gate_threshold=DEFAULT_THRESHOLD)
        self.lander = Lander(self)
        self.embedder_factory = embedder_factory
        self._embedder = None
        self._embedder_lock = threading.Lock()
        with self.store():
            pass  # create the side store now, so a bad data directory fails at start-up

    # -- plumbing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def store(self) -> Iterator:
        with review_store.opened(self.store_path) as store:
            yield store

    def start(self) -> None:
        self.seed_taxonomy()
        self.refresh(force=True)
        threading.Thread(target=self._refresh_loop, name="snapshot", daemon=True).start()
        self.lander.start()
        self.lander.kick()  # labels left in the outbox by a previous run land first
        # Load the embedding model now, in the background: the first new failure mode's siblings must not
        # wait seconds for it.
        threading.Thread(target=self._warm_embedder, name="embedder", daemon=True).start()

    def _warm_embedder(self) -> None:
        try:
            self.embedder()
        except Exception:  # noqa: BLE001 - the siblings page says so when it needs the model
            return
        # torch and sentence-transformers triple the objects the collector walks; none of them is ever
        # freed, so move them out of its way (a full collection went from ~200 ms to ~1 ms here).
        import gc

        gc.collect()
        gc.freeze()

    def seed_taxonomy(self) -> None:
        """Codes from <data>/reference/taxonomy.yaml (or the repository's), as `flywheel review` seeds them,
        so the first reviewer finds a taxonomy to pick from. A busy warehouse leaves it to the weekly loop."""
        from flywheel.core.labeling import taxonomy

        if not self.paths.warehouse.exists() or not self.paths.taxonomy_seed.exists():
            return
        entries = taxonomy.load_seed(self.paths.taxonomy_seed)
        try:
            with self.warehouse_lock:
                conn = open_connection(self.paths.warehouse, timeout_s=5.0)
                try:
                    taxonomy.seed(conn, entries)
                finally:
                    conn.close()
        except WarehouseBusy:
            pass

    def stop(self) -> None:
        self.live.stop()
        self.lander.stop()

    def refresh(self, force: bool = False) -> bool:
        with self.warehouse_lock:
            return self.live.refresh(force=force)

    def _refresh_loop(self) -> None:
        while not self.live._stop.wait(self.live.every_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the old snapshot keeps serving
                pass

    def embedder(self):
        with self._embedder_lock:
            if self._embedder is None:
                if self.embedder_factory is None:
                    from flywheel.resources.embedder import load_embedder

                    self.embedder_factory = load_embedder
                self._embedder = self.embedder_factory()
            return self._embedder

    # -- the queue ------------------------------------------------------------------------------

    def final_refs(self, store) -> set[str]:
        return set(self.live.get().current) | review_store.queued_refs(store)

    def statuses(self, week: dt.date | None = None) -> dict[str, str]:
        """trace_ref -> status, for the week's traces (all weeks when None)."""
        snap = self.live.get()
        refs = snap.order.get(week, []) if week else list(snap.items)
        with self.store() as store:
            final = self.final_refs(store)
            held = review_store.reservations(store)
            counts = review_store.verdict_counts(store)
            disputed = {d["trace_ref"] for d in review_store.disagreements(store)}
        out = {}
        for ref in refs:
            if ref in final:
                out[ref] = "reviewed"
            elif ref in disputed:
                out[ref] = "disagreement"
            elif ref in held:
                out[ref] = "reserved"
            elif counts.get(ref):
                out[ref] = "in review"
            else:
                out[ref] = "unreviewed"
        return out

    def next_for(self, reviewer: str, week: dt.date | None) -> tuple[dict, review_store.Reservation] | None:
        snap = self.live.get()
        weeks = [week] if week else snap.weeks
        with self.store() as store:
            final = self.final_refs(store)
            for w in weeks:
                got = review_store.reserve_next(store, reviewer, snap.order.get(w, []), final=final,
                                                minutes=self.settings.reservation_minutes,
                                                reviewers_per_trace=self.settings.reviewers_per_trace)
                if got:
                    return snap.items[got.trace_ref], got
        return None

    def open(self, reviewer: str, trace_ref: str) -> review_store.Reservation | None:
        """Reserve a trace its reviewer opened directly; None when another reviewer holds it."""
        with self.store() as store:
            return review_store.reserve(store, trace_ref, reviewer, minutes=self.settings.reservation_minutes)

    def skip(self, reviewer: str, trace_ref: str) -> None:
        with self.store() as store:
            review_store.skip(store, trace_ref, reviewer)

    # -- labels ---------------------------------------------------------------------------------

    def parse(self, payload: dict, reviewer: str, source: str) -> tuple[spreadsheet.ParsedRow | None, list[dict]]:
        """The label contract of `flywheel labels import`, as JSON, through the spreadsheet's own parser:
        one set of rules for every path. Problems come back as {field, message}."""
        unknown = sorted(set(payload) - set(LABEL_FIELDS) - {"reviewer"})
        problems = [{"field": f, "message": "not a field of the label contract (" + ", ".join(LABEL_FIELDS) + ")"}
                    for f in unknown]
        if "reviewer" in payload and payload["reviewer"] not in (None, "", reviewer):
            problems.append({"field": "reviewer", "message": "labels carry the signed-in reviewer's name; leave it out"})
        record = {}
        for key in LABEL_FIELDS:
            value = payload.get(key)
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif value is not None and not isinstance(value, str):
                if isinstance(value, (int, float)):
                    value = str(value)
                else:
                    problems.append({"field": key, "message": "must be a string"})
                    value = None
            record[key] = value or ""
        if not record["bucket"].strip():
            problems.append({"field": "bucket", "message": "missing: known_failure, new_failure or not_a_bug"})
            return None, problems
        snap = self.live.get()
        ref = record["trace_ref"].strip()
        if ref and ref not in snap.items:
            self.refresh()  # scrubbed after the last snapshot?
            snap = self.live.get()
        with self.store() as store:
            known = snap.codes() | set(review_store.opened_codes(store))
        row, found = spreadsheet.parse_record(record, 0, known, {}, set(snap.items), reviewer)
        problems += [{"field": p["column"], "message": p["message"]} for p in found]
        if row is not None and row.label.not_personal:
            missing = keep_terms.missing_in(snap.items[row.label.trace_ref]["messages"],
                                            keep_terms.parse(row.label.not_personal)[0])
            if missing:
                problems.append({"field": "not_personal", "message": f"{', '.join(missing)} not in this trace's "
                                 "scrubbed text: copy the placeholders as the trace shows them"})
        if row is not None:
            row.label.source = source
        return (row if not problems else None), problems

    def submit(self, reviewer: str, row: spreadsheet.ParsedRow, *, kind: str = "review",
               wait_s: float = LAND_WAIT_S) -> Submitted:
        """Store a parsed label for `reviewer`; Conflict when someone else holds the trace."""
        label = row.label
        with self.store() as store:
            held = review_store.reservation(store, label.trace_ref)
            if held and held.reviewer != reviewer:
                raise Conflict(f"trace {label.trace_ref} is reserved by {held.reviewer} until "
                               f"{held.reserved_until:%H:%M:%S} UTC")
            relabel = label.trace_ref in self.final_refs(store)
            try:
                outcome = review_store.submit(
                    store, label, row.new_entry, reviewers_per_trace=self.settings.reviewers_per_trace,
                    kind="relabel" if relabel and kind == "review" else kind)
            except review_store.AwaitingAdjudication as exc:
                raise Conflict(str(exc)) from None
        landed = False
        if outcome.state in ("final", "agreed"):
            self.lander.kick()
            landed = self.lander.wait_landed(outcome.label.label_id, wait_s) if wait_s else False
        return Submitted(outcome.state, outcome.label, landed)

    def adjudicate(self, admin: str, payload: dict) -> tuple[Submitted | None, list[dict]]:
        row, problems = self.parse(payload, admin, "adjudication")
        if row is None:
            return None, problems
        return self.submit(admin, row, kind="adjudication"), []

    def siblings(self, trace_ref: str, reviewer: str) -> list[dict] | None:
        """The new failure's nearest unlabelled traces of the window, none reserved by someone else;
        None when the warehouse is busy (try again)."""
        from flywheel.core.labeling.siblings import find_siblings

        embedder = self.embedder()  # before taking the warehouse: loading the model takes seconds
        try:
            with self.warehouse_lock:
                conn = open_connection(self.paths.warehouse, timeout_s=2.0)
                try:
                    found = find_siblings(conn, embedder, trace_ref, k=self.settings.siblings * 3)
                finally:
                    conn.close()
        except WarehouseBusy:
            return None
        with self.store() as store:
            final = self.final_refs(store)
            held = review_store.reservations(store)
        open_ = [s for s in found if s["trace_ref"] not in final and held.get(s["trace_ref"], None) in (None,)]
        return open_[: self.settings.siblings]

    # -- stored clusters (label.clusters, from the snapshot) -------------------------------------

    def cluster(self, key: str | None) -> dict | None:
        """The stored cluster a key `<scope>/<id>` names (e.g. `week:2026-03-02/3`); None when none is."""
        scope, _, ident = (key or "").rpartition("/")
        return next((c for c in self.live.get().clusters if c["scope"] == scope and str(c["cluster_id"]) == ident),
                    None)

    def open_members(self, cluster: dict, reviewer: str, *, besides: str | None = None) -> list[str]:
        """The cluster's traces nobody has labelled yet, nearest its centre first, less those another
        reviewer holds (a label from this one would be refused)."""
        snap = self.live.get()
        with self.store() as store:
            final = self.final_refs(store)
            held = review_store.reservations(store)
        return [ref for ref in cluster["trace_refs"] if ref in snap.items and ref not in final and ref != besides
                and (ref not in held or held[ref].reviewer == reviewer)]

    def cluster_siblings(self, cluster: dict, trace_ref: str, reviewer: str) -> list[dict]:
        """A new failure mode opened on a cluster's trace: the cluster's other open members are its
        siblings, in cluster order. The clustering already grouped them, so no model is loaded."""
        snap = self.live.get()
        return [{"trace_ref": ref, "messages": snap.items[ref]["messages"], "similarity": None}
                for ref in self.open_members(cluster, reviewer, besides=trace_ref)]

    def comment(self, reviewer: str, trace_ref: str, body: str) -> None:
        with self.store() as store:
            review_store.add_comment(store, trace_ref, reviewer, body)

