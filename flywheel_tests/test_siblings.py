"""Embedding cache and sibling retrieval: the cache on the fake embedder, retrieval on the real model."""

import datetime as dt

import numpy as np
import pytest

from flywheel.core.common.db import connect
from flywheel.core.drift.embeddings import CacheStats, embed
from flywheel.core.labeling import labels, taxonomy
from flywheel.core.labeling.siblings import find_siblings
from flywheel.resources.embedder import HashingEmbedder

TRACES = {
    "t_new": "Per our enterprise SLA a P1 needs a response within one hour, please escalate ticket [TICKET_ID_1] now.",
    "t_para": "Our contract guarantees a one-hour reply on priority-one incidents; route ticket [TICKET_ID_1] to our escalation contact.",
    "t_para2": "This is a Sev-1 for us and the SLA promises a response in 60 minutes, who is on call?",
    "t_refund": "Can I get a refund for the annual plan I bought last week?",
    "t_export": "How do I export all my tickets to CSV?",
    "t_card": "Please update the card on file for my account.",
    "t_old": "Per our enterprise SLA a P1 needs a response within one hour, please escalate.",  # 60 days earlier
}


@pytest.fixture
def wh(tmp_path):
    with connect(tmp_path / "s.duckdb") as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("CREATE TABLE scrub.anonymized_traces (trace_ref VARCHAR, timestamp TIMESTAMP, "
                     "messages STRUCT(role VARCHAR, content VARCHAR)[], week_start TIMESTAMP, scrubber_version VARCHAR)")
        for i, (ref, text) in enumerate(TRACES.items()):
            when = dt.datetime(2026, 3, 20) - dt.timedelta(days=60 if ref == "t_old" else i)
            conn.execute("INSERT INTO scrub.anonymized_traces VALUES (?, ?, ?, ?, '3')",
                         [ref, when, [{"role": "user", "content": text}, {"role": "assistant", "content": "Thanks!"}], when])
        labels.ensure_tables(conn)
        yield conn


def test_cache_embeds_an_unchanged_text_once(wh):
    embedder = HashingEmbedder()
    first, second = CacheStats(), CacheStats()
    a = embed(wh, embedder, ["alpha beta", "gamma", "alpha beta"], first)
    b = embed(wh, embedder, ["gamma", "alpha beta", "delta"], second)
    assert (first.hits, first.misses) == (0, 2)
    assert (second.hits, second.misses) == (2, 1)
    np.testing.assert_allclose(a[0], b[1], rtol=1e-6)
    assert wh.execute("SELECT count(*) FROM embed.cache").fetchone()[0] == 3


def test_siblings_are_near_paraphrases_first_on_the_real_model(wh, real_embedder):
    found = find_siblings(wh, real_embedder, "t_new", k=5)
    refs = [f["trace_ref"] for f in found]
    assert set(refs[:2]) == {"t_para", "t_para2"}, found
    assert "t_old" not in refs, "only the last 30 days"
    assert found[0]["similarity"] > found[-1]["similarity"]
    assert 3 <= len(found) <= 5


def test_labelled_traces_are_not_offered_again(wh):
    taxonomy.seed(wh, [taxonomy.TaxonomyEntry("sla_missed", "SLA missed", "It misses the SLA. You can tell.")])
    labels.record(wh, labels.Label("t_para", "not_a_bug", "ana"))
    refs = [f["trace_ref"] for f in find_siblings(wh, HashingEmbedder(), "t_new", k=5)]
    assert "t_para" not in refs and "t_new" not in refs


def test_the_resource_loads_the_model_only_for_a_text_the_cache_has_not_seen(wh):
    from flywheel.resources.embedder import EmbedderResource
    from flywheel.settings import EmbeddingSettings

    lazy = EmbedderResource(model_package="no_such_model_package", model_name="cached-only", dim=64).get()

    class SameKey(HashingEmbedder):  # fills the cache under the lazy embedder's model name
        model_name = "cached-only"

    embed(wh, SameKey(), ["alpha beta", "gamma"])
    vectors = embed(wh, lazy, ["gamma", "alpha beta"])  # every text cached: no model is loaded
    assert vectors.shape == (2, 64)
    with pytest.raises(RuntimeError, match="no_such_model_package"):
        embed(wh, lazy, ["a text nobody embedded"])
    assert EmbeddingSettings().dim == 384
