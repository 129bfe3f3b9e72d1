"""label.suggestions: a suggestion for every trace in the review queue, from the labels in force.

Retrained whenever it runs (the weekly loop, and each fold-in the labels sensor starts when labels
change); the embeddings come from the warehouse cache, so a rerun embeds only traces it has not seen.
The terminal review, the spreadsheet export and the review app read this table: none of them loads a
model. A suggested failure carries the expected behaviour and pass criterion of the most similar
labelled trace with that code, so accepting it is one keypress; the reviewer can still edit both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb
import numpy as np
import polars as pl

from flywheel.core.common import clock
from flywheel.core.common.db import table_exists, transaction
from flywheel.core.drift.embeddings import Embedder, embed, user_text
from flywheel.core.labeling.labels import ensure_tables as ensure_label_tables
from flywheel.core.labeling.labels import label_columns
from flywheel.core.labeling.queue import review_queue
from flywheel.core.labeling.suggest import Suggester, features, fingerprint

# From benchmarks/assist.py's sweep on the demo (trained on early weeks, tested on later ones): at 0.5
# the suggestions shown were right 96% of the time with 8 labels a week (92% with the whole queue
# labelled) and saved 41% of keypresses; at 0.6, 99% / 92% right but only 31% saved; below 0.5 the best
# guesses for failures were right 31% of the time. The demo's templated replies make it an upper bound.
DEFAULT_MIN_CONFIDENCE = 0.5

COLUMNS = {
    "trace_ref": "VARCHAR", "suggested_bucket": "VARCHAR", "suggested_code": "VARCHAR",
    "suggestion_confidence": "DOUBLE", "suggested_expected_behaviour": "VARCHAR",
    "suggested_criterion_type": "VARCHAR", "suggested_criterion_value": "VARCHAR",
    "similar_refs": "VARCHAR[]", "similar_scores": "DOUBLE[]", "trained_on": "INTEGER", "model": "VARCHAR",
    "created_at": "TIMESTAMP",
}


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS label")
    conn.execute(f"CREATE TABLE IF NOT EXISTS label.suggestions ({', '.join(f'{k} {v}' for k, v in COLUMNS.items())})")


def conversation_features(conn: duckdb.DuckDBPyConnection, embedder: Embedder, conversations: list[list[dict]],
                          stats=None) -> np.ndarray:
    """The suggester's features of each conversation, embeddings from the cache where possible."""
    texts = [user_text(m, ("user",)) for m in conversations] + [user_text(m, ("assistant",)) for m in conversations]
    vectors = embed(conn, embedder, texts, stats)  # one cache lookup for both halves
    return features(vectors[: len(conversations)], vectors[len(conversations):])


def training_labels(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The labels in force with the scrubbed conversation each was given on, oldest first."""
    ensure_label_tables(conn)
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return pl.DataFrame()
    return conn.execute(
        """SELECT l.label_id, l.trace_ref, l.bucket, l.taxonomy_code, l.expected_behaviour, l.criterion_type,
                  l.criterion_value, a.messages
           FROM label.current_labels l
           JOIN (SELECT trace_ref, any_value(messages) AS messages FROM scrub.anonymized_traces GROUP BY 1) a
             USING (trace_ref)
           ORDER BY l.reviewed_at, l.label_id"""
    ).pl()


def train(conn: duckdb.DuckDBPyConnection, embedder: Embedder, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
          stats=None, also: list[list[dict]] | None = None) -> tuple[Suggester | None, pl.DataFrame, np.ndarray]:
    """A suggester over the labels in force (None without labels), those labels, and the features of
    the conversations in `also` (embedded in the same cache lookup)."""
    labelled = training_labels(conn)
    also = also or []
    # The queue is embedded even before the first label: the fold-in that follows the first labels then
    # finds every text it trains on in the cache, and never loads the model.
    x = conversation_features(conn, embedder, labelled["messages"].to_list() + also, stats) \
        if labelled.height or also else np.zeros((0, 2 * embedder.dim), dtype=np.float32)
    if labelled.is_empty():
        return None, labelled, x
    n = labelled.height
    return Suggester(x[:n], labelled["bucket"].to_list(), labelled["taxonomy_code"].to_list(),
                     min_confidence=min_confidence), labelled, x[n:]


def _template(labelled: pl.DataFrame, code: str, similar: list[tuple[int, float]]) -> dict:
    """Expected behaviour and criterion of the most similar labelled trace of this code (else the latest)."""
    rows = labelled["taxonomy_code"].to_list()
    pick = next((i for i, _ in similar if rows[i] == code), None)
    if pick is None:
        pick = max(i for i, c in enumerate(rows) if c == code)
    row = labelled.row(pick, named=True)
    return {k: row[k] for k in ("expected_behaviour", "criterion_type", "criterion_value")}


def write_suggestions(conn: duckdb.DuckDBPyConnection, embedder: Embedder, *,
                      min_confidence: float = DEFAULT_MIN_CONFIDENCE, progress: Callable[[str], None] | None = None,
                      stats=None) -> pl.DataFrame:
    """Retrain on the labels in force and replace label.suggestions with one row per queued trace."""
    ensure_table(conn)
    queued = review_queue(conn).unique("trace_ref", keep="first", maintain_order=True)
    suggester, labelled, queued_features = train(conn, embedder, min_confidence=min_confidence, stats=stats,
                                                 also=queued["messages"].to_list())
    rows: list[dict] = []
    now = clock.now()
    if suggester is not None and queued.height:
        if progress:
            progress(f"suggesting labels for {queued.height} queued traces from {suggester.trained_on} labels")
        found = suggester.suggest(queued_features)
        model = fingerprint(labelled["label_id"].to_list())
        refs = labelled["trace_ref"].to_list()
        for ref, s in zip(queued["trace_ref"].to_list(), found):
            template = _template(labelled, s.code, s.similar) if s.code else {}
            rows.append({
                "trace_ref": ref, "suggested_bucket": s.bucket, "suggested_code": s.code,
                "suggestion_confidence": round(s.confidence, 4),
                "suggested_expected_behaviour": template.get("expected_behaviour"),
                "suggested_criterion_type": template.get("criterion_type"),
                "suggested_criterion_value": template.get("criterion_value"),
                "similar_refs": [refs[i] for i, _ in s.similar], "similar_scores": [round(v, 4) for _, v in s.similar],
                "trained_on": suggester.trained_on, "model": model, "created_at": now,
            })
    frame = pl.DataFrame(rows, schema={k: _POLARS[v] for k, v in COLUMNS.items()})
    conn.register("fresh_suggestions", frame)
    try:
        with transaction(conn):
            conn.execute("DELETE FROM label.suggestions")
            conn.execute(f"INSERT INTO label.suggestions SELECT {', '.join(COLUMNS)} FROM fresh_suggestions")
    finally:
        conn.unregister("fresh_suggestions")
    return frame


_POLARS = {"VARCHAR": pl.String, "DOUBLE": pl.Float64, "INTEGER": pl.Int32, "TIMESTAMP": pl.Datetime("us"),
           "VARCHAR[]": pl.List(pl.String), "DOUBLE[]": pl.List(pl.Float64)}


def suggestions_for(conn: duckdb.DuckDBPyConnection, trace_refs: list[str] | None = None) -> dict[str, dict]:
    """The stored suggestion of each trace (all, or these), by trace_ref; {} before the first run."""
    if not table_exists(conn, "label", "suggestions"):
        return {}
    where = "WHERE list_contains(?, trace_ref)" if trace_refs is not None else ""
    cur = conn.execute(f"SELECT * FROM label.suggestions {where}", [trace_refs] if trace_refs is not None else [])
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row)) for row in cur.fetchall()}


def describe(s: dict | None) -> str:
    """One line for a reviewer: what is suggested and how sure, or that nothing is."""
    if not s:
        return ""
    if not s["suggested_bucket"]:
        return f"no suggestion (best guess only {s['suggestion_confidence']:.0%} sure)"
    what = "not a bug" if s["suggested_bucket"] == "not_a_bug" else f"known failure {s['suggested_code']}"
    return f"suggested: {what} ({s['suggestion_confidence']:.0%}, from {s['trained_on']} labels)"


def acceptance(conn: duckdb.DuckDBPyConnection, since: dt.datetime | None = None) -> dict:
    """Of the labels given with a suggestion on screen: how many, and how many took it as it was.
    Reads only (a read-only connection works): a warehouse without the columns yet has none."""
    if "suggested_bucket" not in label_columns(conn):
        return {"suggested": 0, "accepted": 0}
    where = "AND reviewed_at >= ?" if since else ""
    shown, accepted = conn.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE suggested_bucket = bucket
                   AND coalesce(suggested_code, '') = coalesce(taxonomy_code, ''))
            FROM label.current_labels WHERE suggested_bucket IS NOT NULL {where}""",
        [since] if since else [],
    ).fetchone()
    return {"suggested": shown, "accepted": accepted}
