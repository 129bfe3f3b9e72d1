"""A tiny end-to-end loop through Dagster's `materialize`: two weeks of demo traffic, every station,
on a tmp_path warehouse with the fake scrubber and embedder (the real ones: test_scrubber.py,
test_drift.py and the demo test in test_cli.py)."""

import datetime as dt

import dagster as dg
import pytest

from flywheel.core.common import keys
from flywheel.core.evalset import regression
from flywheel.core.common.db import connect
from flywheel.defs.drift import monthly_drift
from flywheel.defs.evalset import fold_in
from flywheel.defs.intake import raw_traces
from flywheel.defs.labeling import failure_taxonomy, label_suggestions, review_queue, week_clusters
from flywheel.defs.regression import pass_rates
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week
from flywheel.demo import model
from flywheel.demo.reviewer import load_truth, review_weeks
from flywheel.resources.embedder import HashingEmbedder
from flywheel_tests.conftest import demo_in_data_dir, fake_resources

WEEKS = ["2026-03-02", "2026-03-09"]
WEEKLY = [raw_traces, sampled_traces, scrub_week, review_queue, label_suggestions, week_clusters, fold_in]


@pytest.fixture
def loop(data_dir, tmp_path):
    paths, demo = demo_in_data_dir(data_dir, tmp_path, weeks=2, traces_per_day=15, seed=7)
    resources = fake_resources(paths)
    return paths, demo, resources


def _checks(result) -> dict[str, bool]:
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def test_two_weeks_through_every_station(loop):
    paths, demo, resources = loop
    assert dg.materialize([failure_taxonomy], resources=resources).success
    truth = load_truth(demo.answers_file, keys.load_key(paths.data_dir))
    versions = []
    for week in WEEKS:
        result = dg.materialize(WEEKLY, partition_key=week, resources=resources, raise_on_error=False)
        assert result.is_node_success("sample__sampled_traces") and result.is_node_success("scrub_week")
        assert result.is_node_success("label__suggestions") and result.is_node_success("label__clusters")
        assert _checks(result)["no_pii_canary_leak"], "no customer vocabulary entry survives the fake scrubber"
        with connect(paths.warehouse) as conn:
            labelled = review_weeks(conn, truth, week=dt.datetime.fromisoformat(week), embedder=HashingEmbedder())
        assert labelled["known_failure"] + labelled.get("new_failure", 0) > 0
        folded = dg.materialize([fold_in, label_suggestions], resources=resources)  # what labels_sensor starts
        new_version = folded.asset_materializations_for_node("fold_in")[0].metadata["new_version"].value
        versions.append(new_version)
        with connect(paths.warehouse) as conn:
            regression.run_regression(conn, model.LATEST.reply, model_version=model.LATEST.version,
                                      rubric_judge=model.rubric_judge)
    assert versions == [2, 3], "each week's labels become exactly one new version"

    rates = dg.materialize([pass_rates], resources=resources, raise_on_error=False)
    meta = rates.asset_materializations_for_node("regression__pass_rates")[0].metadata
    table = [r.data for r in meta["pass_rate_per_version"].records]
    assert table[0]["version"] == 3 and table[0]["adv pass rate"], "newest version first, with its adversarial slice"
    drift = dg.materialize([monthly_drift], partition_key="2026-03-01", resources=resources)
    assert drift.success

    with connect(paths.warehouse, read_only=True) as conn:
        ingested = conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0]
        sampled_weeks = conn.execute("SELECT count(DISTINCT week_start) FROM sample.sampled_traces").fetchone()[0]
        texts = " ".join(str(m) for (m,) in conn.execute("SELECT messages FROM scrub.anonymized_traces").fetchall())
        rows = conn.execute("SELECT count(*), count(source_trace_ref) FROM eval.eval_rows").fetchone()
        scored = conn.execute("SELECT month, eval_version FROM drift.scores").fetchall()
        queued, suggested_for, trained_on = conn.execute(
            """SELECT (SELECT count(DISTINCT trace_ref) FROM label.review_queue q WHERE NOT EXISTS
                         (SELECT 1 FROM label.labels l WHERE l.trace_ref = q.trace_ref)),
                      count(*), max(trained_on) FROM label.suggestions""").fetchone()
        labelled_total = conn.execute("SELECT count(*) FROM label.current_labels").fetchone()[0]
    assert ingested == 2 * 7 * 15 and sampled_weeks == 2
    emails = {p["value"] for t in truth.values() for p in t["pii"] if p["type"] == "EMAIL_ADDRESS"}
    assert emails and not any(e in texts for e in emails), "no customer email survives the (fake) scrub"
    assert rows[0] == 50 + rows[1] > 50, "starter rows plus folded-in rows, each with its keyed source ref"
    assert scored == [(dt.date(2026, 3, 1), 3)]
    assert suggested_for == queued > 0 and trained_on == labelled_total, \
        "after the last fold-in, every trace still queued has a suggestion from every label in force"
    assert sorted(p.name for p in paths.exports.glob("*.jsonl")) == ["eval_set_v1.jsonl", "eval_set_v2.jsonl",
                                                                      "eval_set_v3.jsonl"]

    # A rerun of a week is idempotent: the same sample, no new version.
    again = dg.materialize(WEEKLY, partition_key=WEEKS[0], resources=resources, raise_on_error=False)
    assert again.asset_materializations_for_node("fold_in")[0].metadata["new_version"].value == 0
    with connect(paths.warehouse, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == ingested
        assert conn.execute("SELECT max(version) FROM eval.versions").fetchone()[0] == 3
