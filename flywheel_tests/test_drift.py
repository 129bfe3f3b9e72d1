"""Station 5: the drift method, its calibration, the monthly asset, and the drift-focus stratum."""

import csv
import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flywheel.core.drift import station as drift_station
from flywheel.core.evalset import versions as evalset
from flywheel.core.sampling import sampler as sampling
from flywheel.core.drift.score import drift, nearest
from flywheel.resources.embedder import HashingEmbedder

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "support_queries"


def unit(rng, n, dim=32, centre=None, spread=0.3):
    centre = np.zeros(dim) if centre is None else centre
    v = centre + spread * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_nearest_is_exact():
    rng = np.random.default_rng(0)
    q, c = unit(rng, 300), unit(rng, 500)
    best, where = nearest(q, c, block=64)
    np.testing.assert_allclose(best, (q @ c.T).max(axis=1), rtol=1e-5)
    assert (where == (q @ c.T).argmax(axis=1)).all()


def test_a_month_is_not_measured_against_rows_folded_in_from_its_own_traffic():
    """Last month's most distant traces become rows (drift focus, then fold-in); rescored against
    them, last month looks closer than any fresh month could, and the same traffic reads as drift."""
    rng = np.random.default_rng(3)
    centre = rng.standard_normal(32)
    rows, base, cur = unit(rng, 60, centre=centre), unit(rng, 100, centre=centre), unit(rng, 100, centre=centre)
    tail = np.argsort(-(1 - nearest(base, rows)[0]))[:10]  # last month's ten most distant traces
    grown = np.concatenate([rows, base[tail]])  # ...folded in as rows 60-69
    from_last_month = np.arange(len(grown)) >= 60
    naive, _ = drift(grown, cur, base)
    fair, _ = drift(grown, cur, base, baseline_rows=~from_last_month)
    assert naive.alert and naive.p_value < fair.p_value, "the baseline's own rows made the same traffic look like drift"
    assert not fair.alert


def test_identical_sets_score_zero():
    rng = np.random.default_rng(1)
    rows = unit(rng, 100)
    result, distances = drift(rows, rows, rows)
    assert result.score == pytest.approx(0.0, abs=1e-5) and not result.alert
    assert result.reverse_coverage == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_a_month_like_the_last_does_not_alert_and_a_shifted_one_does(seed):
    rng = np.random.default_rng(seed)
    topics = [unit(rng, 1, spread=1.0)[0] * 3 for _ in range(6)]
    month = lambda ts, n: np.concatenate([unit(rng, n // len(ts), centre=t) for t in ts])  # noqa: E731
    eval_rows = month(topics[:4], 200)
    baseline, same = month(topics[:4], 100), month(topics[:4], 100)
    shifted = np.concatenate([month(topics[:4], 68), month(topics[4:], 32)])  # a third from new topics
    assert not drift(eval_rows, same, baseline, seed=seed)[0].alert
    moved = drift(eval_rows, shifted, baseline, seed=seed)[0]
    assert moved.alert and moved.p_value < 0.01 and moved.tail_share > 0.2


def _banking77():
    if not (BANKING77 / "train.csv").exists():
        pytest.skip(f"BANKING77 not found at {BANKING77} (shared benchmark data lives beside the repo)")
    train = list(csv.DictReader(open(BANKING77 / "train.csv")))
    test = list(csv.DictReader(open(BANKING77 / "test.csv")))
    return train, test


def test_banking77_new_intents_alert_and_scores_order_by_new_traffic(real_embedder):
    train, test = _banking77()
    cats = sorted({r["category"] for r in train})
    random.Random(0).shuffle(cats)
    known, new = set(cats[:40]), set(cats[40:])
    rows = [r["text"] for r in train if r["category"] in known]
    random.Random(1).shuffle(rows)
    eval_vectors = real_embedder.encode(rows[:300])
    known_pool = [t["text"] for t in test if t["category"] in known]
    new_pool = [t["text"] for t in test + train if t["category"] in new]

    def month(share, seed):
        r = random.Random(seed)
        return real_embedder.encode([r.choice(new_pool) if r.random() < share else r.choice(known_pool) for _ in range(100)])

    baseline = month(0.0, 1)
    for seed in (2, 3, 4):
        assert not drift(eval_vectors, month(0.0, seed), baseline, seed=seed)[0].alert
    scores = [drift(eval_vectors, month(share, 7), baseline, seed=7)[0] for share in (0.0, 0.33, 0.6)]
    assert scores[1].alert and scores[2].alert
    assert scores[0].score < scores[1].score < scores[2].score


class Unscrubbed:
    """Stands in for the scrubber: returns texts unchanged (the monthly asset's scrub is tested via
    its real counterpart elsewhere)."""

    version = "none"

    def scrub_conversations(self, conversations):
        from flywheel.core.scrub.scrubber import ScrubbedText

        for conv in conversations:
            yield [ScrubbedText(t) for t in conv]


def test_month_scores_store_and_feed_the_next_weekly_sample(tmp_path):
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ingest_paths
    from flywheel.demo.generator import write_demo

    demo = write_demo(tmp_path / "demo", weeks=6, traces_per_day=12, seed=5)
    ref = lambda trace_id: "ref-" + trace_id  # noqa: E731 - the keyed hash, minus the key
    with connect(tmp_path / "w.duckdb") as conn:
        ingest_paths(conn, [tmp_path / "demo" / "traces"])
        evalset.import_starter(conn, demo.eval_set_file)
        outcome = drift_station.score_month(conn, dt.date(2026, 3, 1), Unscrubbed(), HashingEmbedder(), ref)
        result, ranked = outcome
        assert result.n_current == 100 and result.p_value is None, "March has no earlier month to compare with"
        drift_station.store(conn, dt.date(2026, 3, 1), result, ranked, keep=10)
        drift_station.store(conn, dt.date(2026, 3, 1), result, ranked, keep=10)  # a rerun rewrites
        assert conn.execute("SELECT count(*) FROM drift.high_distance_traces").fetchone()[0] == 10
        far = {r[0] for r in conn.execute("SELECT trace_ref FROM drift.high_distance_traces").fetchall()}
        april_week = sampling.sample_week(conn, dt.datetime(2026, 4, 6), trace_ref=ref)
        focus = april_week.filter(april_week["reasons"].list.contains("drift_focus"))
        assert set(focus["trace_ref"]) == far
        april = drift_station.score_month(conn, dt.date(2026, 4, 1), Unscrubbed(), HashingEmbedder(), ref)[0]
        assert april.p_value is not None and 0 < april.p_value <= 1


def test_drift_score_cli_json(real_embedder, tmp_path):
    from flywheel.cli import main

    eval_file = tmp_path / "eval.csv"
    eval_file.write_text("input\nHow do I get a refund?\nWhere is my card?\nHow do I reset my password?\n")
    traces = lambda texts: "\n".join(json.dumps({"trace_id": str(i), "messages": [{"role": "user", "content": t}]})  # noqa: E731
                                     for i, t in enumerate(texts))
    (tmp_path / "cur.jsonl").write_text(traces(["I want my money back", "card has not arrived", "SSO login is broken"]))
    (tmp_path / "base.jsonl").write_text(traces(["refund please", "my card is lost", "forgot my password"]))
    result = CliRunner().invoke(main, ["drift", "score", "--eval", str(eval_file), "--current", str(tmp_path / "cur.jsonl"),
                                       "--baseline", str(tmp_path / "base.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"score", "ci_low", "ci_high", "tail_share", "p_value", "alert", "reverse_coverage", "n_current", "n_eval",
                        "skipped_lines"}
    assert (out["n_current"], out["n_eval"]) == (3, 3) and 0 <= out["score"] <= 2
    alone = CliRunner().invoke(main, ["drift", "score", "--eval", str(eval_file), "--current", str(tmp_path / "cur.jsonl"), "--json"])
    assert json.loads(alone.stdout)["p_value"] is None and json.loads(alone.stdout)["alert"] is False


def test_monthly_drift_asset_materializes_on_fakes(data_dir):
    import dagster as dg

    from flywheel.core.intake.ingest import ingest_paths
    from flywheel.defs.drift import monthly_drift
    from flywheel.demo.generator import write_demo
    from flywheel.resources.embedder import FakeEmbedderResource
    from flywheel.resources.scrubber import FakeScrubberResource
    from flywheel.resources.warehouse import Warehouse

    demo = write_demo(data_dir / "demo", weeks=6, traces_per_day=10, seed=2)
    warehouse = Warehouse(data_dir=str(data_dir))
    with warehouse.connect() as conn:
        ingest_paths(conn, [data_dir / "demo" / "traces"])
        evalset.import_starter(conn, demo.eval_set_file)
    resources = {"warehouse": warehouse, "scrubber": FakeScrubberResource(), "embedder": FakeEmbedderResource()}
    first = dg.materialize([monthly_drift], partition_key="2026-04-01", resources=resources)
    again = dg.materialize([monthly_drift], partition_key="2026-04-01", resources=resources)
    meta = again.asset_materializations_for_node("monthly_drift")[0].metadata
    assert first.success and meta["embedding_cache_misses"].value == 0, "an unchanged month embeds nothing twice"
    with warehouse.connect() as conn:
        assert conn.execute("SELECT count(*) FROM drift.scores").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM drift.high_distance_traces").fetchone()[0] == 50


def test_a_month_rescored_at_the_same_pinned_moment_uses_the_eval_set_of_that_moment(tmp_path, monkeypatch):
    """A rerun (make demo again, a backfill) must not score against versions made after its moment, or
    the focus traces, and so next week's sample and labels, would change on every rerun."""
    from flywheel.core.common import clock
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ingest_paths
    from flywheel.demo.generator import write_demo

    demo = write_demo(tmp_path / "demo", weeks=5, traces_per_day=12, seed=5)
    ref = lambda trace_id: "ref-" + trace_id  # noqa: E731 - the keyed hash, minus the key
    march = dt.date(2026, 3, 1)
    with connect(tmp_path / "w.duckdb") as conn:
        ingest_paths(conn, [tmp_path / "demo" / "traces"])
        with clock.pinned_at(dt.datetime(2026, 3, 2, 6)):
            evalset.import_starter(conn, demo.eval_set_file)
        with clock.pinned_at(dt.datetime(2026, 4, 2, 6)):
            first = drift_station.score_month(conn, march, Unscrubbed(), HashingEmbedder(), ref)
            drift_station.store(conn, march, *first, keep=10)
        with clock.pinned_at(dt.datetime(2026, 6, 1)):  # a later version, made after the month was scored
            conn.execute("INSERT INTO eval.versions SELECT version + 1, ? AS created_at, * EXCLUDE (version, created_at) "
                         "FROM eval.versions", [clock.now()])
            conn.execute("UPDATE eval.row_spans SET version_to = 2 WHERE row_id IN "
                         "(SELECT row_id FROM eval.eval_rows ORDER BY row_id LIMIT 20)")  # v2 retired 20 rows
        assert evalset.latest_version(conn) == 2 and evalset.rows_at(conn, 2).height == first[0].n_eval - 20
        with clock.pinned_at(dt.datetime(2026, 4, 2, 6)):  # the rerun, pinned to the same moment
            again = drift_station.score_month(conn, march, Unscrubbed(), HashingEmbedder(), ref)
            drift_station.store(conn, march, *again, keep=10)
        assert again[0].n_eval == first[0].n_eval and again[0].score == first[0].score
        assert again[1]["trace_ref"].to_list() == first[1]["trace_ref"].to_list()
        assert conn.execute("SELECT eval_version FROM drift.scores").fetchall() == [(1,)]
