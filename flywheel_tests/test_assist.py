"""Label suggestions and clusters of the unexplained (scikit-learn): on small fakes, and on the real model."""

import csv
import datetime as dt
import json

import numpy as np
import pytest
from click.testing import CliRunner

from flywheel.core.common.db import connect
from flywheel.core.labeling import labels, spreadsheet, suggestions, taxonomy, unexplained
from flywheel.core.labeling.clusters import find_clusters
from flywheel.core.labeling.suggest import Suggester
from flywheel.resources.embedder import HashingEmbedder

SLA = ["Per our enterprise SLA a P1 needs a response within one hour, escalate ticket {n} now",
       "Our contract says priority one incidents get a reply in one hour, escalate {n}",
       "Sev 1 outage for us, the SLA promises an answer within the hour, escalate case {n}"]
SLA_REPLY = "Thanks for reaching out! Our standard response time is 2-3 business days."
REFUND = ["Can I get a refund for the annual plan I bought last week, order {n}?",
          "I would like my money back for the yearly subscription, order {n}",
          "Please refund the annual plan, I bought it by mistake, order {n}"]
REFUND_REPLY = "I have started the refund for your annual plan; it reaches your card in 5 days."
EXPECTED = "Escalate to the enterprise on-call within the SLA"


def _conversation(template: str, reply: str, n: int) -> list[dict]:
    return [{"role": "user", "content": template.format(n=f"[TICKET_ID_{n}]")}, {"role": "assistant", "content": reply}]


@pytest.fixture
def wh(tmp_path):
    """Scrubbed traces of two kinds: SLA misses (failures) and refunds done right (not a bug); four of
    each labelled, two of each waiting in the queue."""
    yield from _warehouse(tmp_path / "a.duckdb")


def _warehouse(path):
    with connect(path) as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces (trace_ref VARCHAR, week_start TIMESTAMP, timestamp TIMESTAMP,
                          reasons VARCHAR[], modes VARCHAR[], judge_score DOUBLE, intent VARCHAR, cohort VARCHAR,
                          turns BIGINT, messages STRUCT(role VARCHAR, content VARCHAR)[], scrubber_version VARCHAR)""")
        week = dt.datetime(2026, 3, 2)
        for kind, templates, reply in (("sla", SLA, SLA_REPLY), ("refund", REFUND, REFUND_REPLY)):
            for i in range(6):
                conn.execute("INSERT INTO scrub.anonymized_traces VALUES (?, ?, ?, ['random'], ['random'], 0.5, 'x', "
                             "'smb', 2, ?, '3')", [f"{kind}{i}", week, week + dt.timedelta(hours=i),
                                                   _conversation(templates[i % 3], reply, i)])
        labels.ensure_tables(conn)
        taxonomy.seed(conn, [taxonomy.TaxonomyEntry("sla_missed", "SLA missed", "It misses the SLA. You can tell.")])
        for i in range(4):
            labels.record(conn, labels.Label(f"sla{i}", "known_failure", "ana", "sla_missed", EXPECTED, "contains",
                                             "escalat"))
            labels.record(conn, labels.Label(f"refund{i}", "not_a_bug", "ana"))
        yield conn


def _check_suggestions(conn, embedder):
    suggestions.write_suggestions(conn, embedder, min_confidence=0.5)
    found = suggestions.suggestions_for(conn)
    assert set(found) == {"sla4", "sla5", "refund4", "refund5"}, "one row per queued (unlabelled) trace"
    for ref in ("sla4", "sla5"):
        s = found[ref]
        assert (s["suggested_bucket"], s["suggested_code"]) == ("known_failure", "sla_missed"), s
        assert s["suggested_expected_behaviour"] == EXPECTED and s["suggested_criterion_type"] == "contains"
        assert s["similar_refs"][0].startswith("sla") and len(s["similar_refs"]) == 3
    for ref in ("refund4", "refund5"):
        assert found[ref]["suggested_bucket"] == "not_a_bug" and found[ref]["suggested_code"] is None, found[ref]
    assert all(s["trained_on"] == 8 for s in found.values())
    return found


def test_suggestions_follow_the_labels_on_the_fake_embedder(wh):
    _check_suggestions(wh, HashingEmbedder())


def test_suggestions_follow_the_labels_on_the_real_model(wh, real_embedder):
    found = _check_suggestions(wh, real_embedder)
    assert min(s["suggestion_confidence"] for s in found.values()) > 0.5


def test_it_abstains_below_the_threshold_and_retrains_when_labels_change(wh):
    suggestions.write_suggestions(wh, HashingEmbedder(), min_confidence=0.999)
    found = suggestions.suggestions_for(wh)
    assert all(s["suggested_bucket"] is None for s in found.values()), "nothing is that sure"
    assert all(0 < s["suggestion_confidence"] < 0.999 and s["similar_refs"] for s in found.values())
    labels.record(wh, labels.Label("sla4", "known_failure", "ana", "sla_missed", EXPECTED, "contains", "escalat"))
    suggestions.write_suggestions(wh, HashingEmbedder(), min_confidence=0.5)
    found = suggestions.suggestions_for(wh)
    assert "sla4" not in found and {s["trained_on"] for s in found.values()} == {9}


def test_no_suggestion_until_both_kinds_have_a_few_labels():
    x = np.eye(6, dtype=np.float32)
    only_bugs = Suggester(x, ["not_a_bug"] * 6, [None] * 6, min_confidence=0.1)
    assert all(s.abstained for s in only_bugs.suggest(x)), "with one kind of verdict there is nothing to tell apart"
    rare = Suggester(np.vstack([x, x]), ["not_a_bug"] * 10 + ["known_failure"] * 2, [None] * 10 + ["c"] * 2,
                     min_confidence=0.1)
    assert all(s.abstained for s in rare.suggest(x)), "two failures are too few to suggest one"


def test_a_label_records_the_suggestion_it_was_given_with(wh):
    labels.record(wh, labels.Label("sla4", "known_failure", "bo", "sla_missed", EXPECTED, "contains", "escalat",
                                   suggested_bucket="known_failure", suggested_code="sla_missed",
                                   suggestion_confidence=0.93))
    labels.record(wh, labels.Label("refund4", "known_failure", "bo", "sla_missed", EXPECTED, "contains", "x",
                                   suggested_bucket="not_a_bug", suggestion_confidence=0.7))
    assert suggestions.acceptance(wh) == {"suggested": 2, "accepted": 1}
    row = labels.current_label(wh, "sla4")
    assert (row["suggested_bucket"], row["suggested_code"], row["suggestion_confidence"]) == \
        ("known_failure", "sla_missed", 0.93)


def test_an_old_label_table_gains_the_suggestion_columns(tmp_path):
    with connect(tmp_path / "old.duckdb") as conn:
        conn.execute("CREATE SCHEMA label")
        conn.execute("""CREATE TABLE label.labels (label_id VARCHAR PRIMARY KEY, trace_ref VARCHAR NOT NULL,
            bucket VARCHAR NOT NULL, taxonomy_code VARCHAR, expected_behaviour VARCHAR, criterion_type VARCHAR,
            criterion_value VARCHAR, adversarial BOOLEAN NOT NULL, pii_ok BOOLEAN NOT NULL, pii_issue_class VARCHAR,
            pii_note VARCHAR, reviewer VARCHAR NOT NULL, reviewed_at TIMESTAMP NOT NULL, source VARCHAR NOT NULL)""")
        conn.execute("INSERT INTO label.labels VALUES ('l1', 't', 'not_a_bug', NULL, NULL, NULL, NULL, false, true, "
                     "NULL, NULL, 'ana', TIMESTAMP '2026-03-01', 'review')")
        labels.ensure_tables(conn)
        assert conn.execute("SELECT suggested_bucket, suggestion_confidence FROM label.current_labels").fetchall() == \
            [(None, None)]


def test_the_spreadsheet_carries_suggestions_and_accept_takes_one(wh, tmp_path):
    from flywheel.core.labeling.queue import review_queue

    suggestions.write_suggestions(wh, HashingEmbedder(), min_confidence=0.5)
    path = tmp_path / "queue.csv"
    spreadsheet.export_queue(review_queue(wh), path, suggestions.suggestions_for(wh))
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {c for c in spreadsheet.SUGGESTION_COLUMNS} <= set(rows[0])
    assert all(r["bucket"] == "" for r in rows), "a suggestion is never filled in as the label"
    by_ref = {r["trace_ref"]: r for r in rows}
    assert by_ref["sla4"]["suggested_code"] == "sla_missed" and by_ref["sla4"]["suggested_pass_criterion"] == \
        "contains:escalat"
    by_ref["sla4"].update(bucket="accept", reviewer="cy")
    by_ref["refund4"].update(bucket="known_failure", taxonomy_code="sla_missed", expected_behaviour="x",
                             criterion_type="contains", criterion_value="y", reviewer="cy")
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = spreadsheet.import_labels(wh, path)
    assert report.errors == [] and report.imported == 2, report.to_json()
    accepted, overwritten = labels.current_label(wh, "sla4"), labels.current_label(wh, "refund4")
    assert (accepted["bucket"], accepted["taxonomy_code"], accepted["expected_behaviour"], accepted["criterion_value"]) \
        == ("known_failure", "sla_missed", EXPECTED, "escalat")
    assert overwritten["suggested_bucket"] == "not_a_bug" and overwritten["bucket"] == "known_failure"
    assert suggestions.acceptance(wh) == {"suggested": 2, "accepted": 1}


def test_accept_without_a_suggestion_is_an_error_naming_the_row(wh, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("trace_ref,bucket,reviewer\nsla4,accept,cy\n")
    report = spreadsheet.import_labels(wh, path)
    assert report.imported == 0 and report.errors[0]["row"] == 2 and report.errors[0]["column"] == "bucket"


# --- clusters -------------------------------------------------------------------------------------------


def _blobs(rng, centres: int, per: int, spread: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    base = rng.normal(size=(centres, 32))
    x = np.repeat(base, per, axis=0) + rng.normal(scale=spread, size=(centres * per, 32))
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(centres), per)


def test_clusters_are_found_without_being_told_how_many_and_outliers_are_noise():
    rng = np.random.default_rng(0)
    x, truth = _blobs(rng, 4, 6)
    outliers = rng.normal(size=(3, 32))
    x = np.vstack([x, outliers / np.linalg.norm(outliers, axis=1, keepdims=True)])
    words = ["sso login saml", "refund invoice charge", "export csv download", "password reset email"]
    texts = [f"{words[t]} please help {i}" for i, t in enumerate(truth)] + ["zebra", "quantum", "violin"]
    covered = [t == 1 for t in truth] + [False] * 3
    found = find_clusters(x, texts, covered=covered)
    assert len(found.clusters) == 4 and sorted(found.noise) == [24, 25, 26]
    for c in found.clusters:
        kinds = {int(truth[i]) for i in c.members}
        assert len(kinds) == 1 and c.size == 6, "each cluster is one kind, whole"
        assert set(words[kinds.pop()].split()) & set(c.terms), c.terms
        assert c.covered_share in (0.0, 1.0)
        centre = x[c.members].mean(axis=0)
        assert np.argmax(x[c.members] @ centre) == 0, "nearest the centre first"
    assert sorted(c.covered_share for c in found.clusters) == [0.0, 0.0, 0.0, 1.0]


def test_a_term_of_one_or_two_traces_never_describes_a_cluster():
    rng = np.random.default_rng(1)
    x, _ = _blobs(rng, 1, 5)
    texts = ["sso login fails for Zelda", "sso login fails", "sso login broken [PERSON_1]", "sso login", "sso login"]
    [cluster] = find_clusters(x, texts).clusters
    assert "zelda" not in " ".join(cluster.terms) and "person" not in " ".join(cluster.terms)


def test_clusters_of_a_week_are_stored_and_reopened_by_id(wh):
    traces = unexplained.week_traces(wh, dt.datetime(2026, 3, 2))
    assert sorted(traces.ids) == ["refund4", "refund5", "sla4", "sla5"]
    result = unexplained.cluster(wh, HashingEmbedder(), traces, coverage_distance=0.5, min_size=2, distance=0.8)
    assert result.clusters, "the fake embedder groups some of the four at this distance"
    unexplained.store(wh, "week:2026-03-02", result, traces.ids)
    unexplained.store(wh, "week:2026-03-02", result, traces.ids)  # a rerun replaces, never appends
    stored = unexplained.stored(wh, "week:2026-03-02")
    assert [c["cluster_id"] for c in stored] == [c.cluster_id for c in result.clusters]
    first = stored[0]
    assert unexplained.members(wh, "week:2026-03-02", first["cluster_id"]) == list(first["trace_refs"])
    assert unexplained.members(wh, "week:2026-03-02", 99) is None


def test_flywheel_clusters_input_groups_real_queries_by_intent(tmp_path, monkeypatch, real_embedder):
    from flywheel.cli.common import main

    queries = {
        "card": ["My card has not arrived yet", "When will my new card arrive?", "Still waiting for my card to come",
                 "How long does card delivery take?", "my card never arrived in the mail"],
        "pin": ["How do I change my PIN?", "I want to reset my card PIN", "Where can I change my pin number",
                "I forgot my PIN, how do I set a new one?", "change PIN code please"],
        "refund": ["I want a refund for this purchase", "How do I get my money back for an order?",
                   "Refund my payment please", "The merchant owes me a refund, where is it?",
                   "request a refund for a purchase"],
    }
    path = tmp_path / "queries.jsonl"
    with open(path, "w") as fh:
        for intent, texts in queries.items():
            for i, text in enumerate(texts):
                fh.write(json.dumps({"trace_id": f"{intent}-{i}", "messages": [{"role": "user", "content": text}]}) + "\n")
        fh.write(json.dumps({"id": "lone", "text": "What is the capital of Mongolia?"}) + "\n")
        fh.write("{not json\n")
    monkeypatch.chdir(tmp_path)  # no warehouse here: coverage is unknown, nothing is stored
    result = CliRunner().invoke(main, ["clusters", "--input", str(path), "--json", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    clusters = [r for r in rows if r["cluster_id"] != -1]
    assert sorted(len(r["trace_ids"]) for r in clusters) == [5, 5, 5], rows
    for r in clusters:
        assert len({t.split("-")[0] for t in r["trace_ids"]}) == 1 and r["covered_share"] is None
        assert set(r) >= {"cluster_id", "size", "trace_ids", "terms", "covered_share"}
    assert rows[-1]["cluster_id"] == -1 and rows[-1]["trace_ids"] == ["lone"]
    assert "line 17" in result.stderr and not (tmp_path / "d" / "flywheel.duckdb").exists()


def test_acceptance_reads_a_read_only_warehouse(wh, tmp_path):
    labels.record(wh, labels.Label("sla4", "not_a_bug", "bo", suggested_bucket="not_a_bug", suggestion_confidence=0.8))
    path = wh.execute("SELECT path FROM duckdb_databases() WHERE NOT internal").fetchone()[0]
    wh.close()  # one process opens a file either read-write or read-only
    with connect(path, read_only=True) as ro:
        assert suggestions.acceptance(ro) == {"suggested": 1, "accepted": 1}


def test_flywheel_clusters_of_a_week_and_a_month_are_stored_for_review(data_dir, real_embedder):
    from flywheel.cli.common import main

    for _ in _warehouse(data_dir / "flywheel.duckdb"):
        pass  # built and closed: the command opens it itself
    for option, scope in ((["--week", "2026-03-04"], "week:2026-03-02"), (["--month", "2026-03"], "month:2026-03")):
        result = CliRunner().invoke(main, ["clusters", *option, "--min-size", "2", "--distance", "0.55", "--json"])
        assert result.exit_code == 0, result.output
        rows = [r for r in json.loads(result.stdout) if r["cluster_id"] != -1]
        assert sorted(sorted(r["trace_ids"]) for r in rows) == [["refund4", "refund5"], ["sla4", "sla5"]], rows
        assert all(r["covered_share"] == 0.0 for r in rows), "no eval set, no label on these: nothing covers them"
        with connect(data_dir / "flywheel.duckdb") as conn:
            stored = unexplained.stored(conn, scope)
        assert sorted(sorted(c["trace_refs"]) for c in stored) == [["refund4", "refund5"], ["sla4", "sla5"]]
    text = CliRunner().invoke(main, ["clusters", "--week", "2026-03-04", "--min-size", "2", "--distance", "0.55"])
    assert "flywheel review --week 2026-03-02 --cluster N" in text.stdout
    empty = CliRunner().invoke(main, ["clusters", "--week", "2026-04-06"])
    assert empty.exit_code == 1 and "nothing unexplained in the week of 2026-04-06" in empty.output
    both = CliRunner().invoke(main, ["clusters", "--week", "2026-03-04", "--month", "2026-03"])
    assert both.exit_code == 2 and "give one of --week DAY, --month YYYY-MM or --input FILE" in both.output
