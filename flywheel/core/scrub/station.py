"""Station 2 for one week: scrub the sampled traces, report what was found, hash the ids.

Nothing that leaves here holds raw text or a raw id: messages are scrubbed, trace and customer ids
are keyed hashes (flywheel.core.common.keys), the routing fields (intent, cohort, model_version) are
shaped again (flywheel.core.privacy.routing; the sampler already did, but a sample written before that
rule may hold raw values), and the raw trace's free-form metadata is not carried over.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import duckdb
import polars as pl

from flywheel.core.privacy import routing

if TYPE_CHECKING:  # the scrubber module imports Presidio (7 s): every Dagster run imports this one
    from flywheel.core.scrub.scrubber import ScrubbedText

MESSAGE_TYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
COUNT_TYPE = pl.List(pl.Struct({"entity_type": pl.String, "layer": pl.String, "n": pl.Int64}))
CARRIED = ("timestamp", "cohort", "intent", "judge_score", "turns", "guardrail_tripped", "retried", "handed_off",
           "csat", "model_version", "reasons", "modes", "inclusion_probability", "weight")


class ConversationScrubber(Protocol):
    version: str

    def scrub_conversations(self, conversations: Iterable[Sequence[str]]) -> Iterator[list[ScrubbedText]]: ...


def raw_conversations(conn: duckdb.DuckDBPyConnection, trace_refs: list[str]) -> dict[str, tuple[list[dict], str | None]]:
    """trace_ref -> (messages, customer_id) from raw.traces, found through raw.sample_ids (the sample
    holds keyed references only; their raw ids stay inside the raw schema)."""
    if not trace_refs:
        return {}
    refs = pl.DataFrame({"trace_ref": trace_refs}, schema={"trace_ref": pl.String})
    conn.register("wanted", refs)
    try:
        rows = conn.execute(
            """SELECT DISTINCT w.trace_ref, t.messages, t.customer_id FROM wanted w
               JOIN raw.sample_ids s USING (trace_ref) JOIN raw.traces t ON t.trace_id = s.trace_id"""
        ).fetchall()
    finally:
        conn.unregister("wanted")
    return {ref: (msgs, cid) for ref, msgs, cid in rows}


def scrub_sample(
    sample: pl.DataFrame, conversations: dict[str, tuple[list[dict], str | None]], scrubber: ConversationScrubber,
    ref: Callable[[str, str], str], week_start: dt.datetime, progress: Callable[[int], None] | None = None,
    observe: Callable[[str | None, list[str], list[ScrubbedText]], None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(anonymized traces, scrub report) for one week's sample, whose rows carry their trace_ref;
    `conversations` is raw_conversations() of those refs. `ref(kind, value)` makes keyed hashes (the
    customer reference). `observe(customer_ref, original texts, scrubbed texts)` sees each trace as it is
    scrubbed (keep_terms.Miner counts there which words are hidden for many customers)."""
    ids = sample["trace_ref"].to_list()
    missing = [i for i in ids if i not in conversations]
    if missing:
        # No id in the message: it ends up in Dagster's event log, which is not raw.
        raise KeyError(f"{len(missing)} sampled traces are not in raw.traces")
    texts = ([m["content"] for m in conversations[i][0]] for i in ids)
    anonymized, report = [], []
    for row, scrubbed in zip(sample.iter_rows(named=True), scrubber.scrub_conversations(texts)):
        trace_ref = row["trace_ref"]  # keyed already: the sampler stores the reference, never the raw id
        messages, customer_id = conversations[trace_ref]
        customer_ref = ref("customer", customer_id) if customer_id else None
        originals = [m["content"] for m in messages]
        if customer_id and any(str(customer_id) in t for t in originals):
            # "my customer id is cust-1002": the raw id leaves raw only as customer_ref. (The scrubber's
            # module imports Presidio: only when the id is in the text.)
            from flywheel.core.scrub.scrubber import hide_own_values

            scrubbed = hide_own_values(originals, scrubbed, [str(customer_id)])
        if observe:
            observe(customer_ref, originals, scrubbed)
        anonymized.append({
            "week_start": week_start, "trace_ref": trace_ref,
            "customer_ref": customer_ref,
            **{k: routing.shape(k, row[k]) if k in routing.ROUTING_FIELDS else row[k] for k in CARRIED},
            "messages": [{"role": m["role"], "content": s.text} for m, s in zip(messages, scrubbed)],
            "scrubber_version": scrubber.version,
        })
        counts = Counter((span.entity_type, span.layer) for s in scrubbed for span in s.spans)
        report.append({
            "week_start": week_start, "trace_ref": trace_ref, "scrubber_version": scrubber.version,
            "total_spans": sum(counts.values()),
            "entity_counts": [{"entity_type": t, "layer": layer, "n": n} for (t, layer), n in sorted(counts.items())],
        })
        if progress:
            progress(1)
    # The sample's own types, never inferred from the rows: a week whose traces all lack an intent would
    # give a column of nulls, stored as INTEGER, which the next week's "billing" cannot be inserted into.
    anonymized_df = pl.DataFrame(anonymized, schema=_anonymized_schema(sample))
    report_df = pl.DataFrame(report, schema_overrides={"entity_counts": COUNT_TYPE}, infer_schema_length=None)
    if sample.is_empty():
        report_df = pl.DataFrame(schema={"week_start": pl.Datetime("us"), "trace_ref": pl.String,
                                         "scrubber_version": pl.String, "total_spans": pl.Int64,
                                         "entity_counts": COUNT_TYPE})
    return anonymized_df, report_df


def _anonymized_schema(sample: pl.DataFrame) -> dict:
    schema = {"week_start": pl.Datetime("us"), "trace_ref": pl.String, "customer_ref": pl.String}
    schema.update({k: sample.schema[k] for k in CARRIED})
    schema.update({"messages": MESSAGE_TYPE, "scrubber_version": pl.String})
    return schema


def report_totals(report: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{entity_type: {layer: n}} over a scrub report, for metadata and summaries."""
    out: dict[str, dict[str, int]] = {}
    for counts in report["entity_counts"].to_list() if not report.is_empty() else []:
        for c in counts:
            out.setdefault(c["entity_type"], {}).setdefault(c["layer"], 0)
            out[c["entity_type"]][c["layer"]] += c["n"]
    return out
