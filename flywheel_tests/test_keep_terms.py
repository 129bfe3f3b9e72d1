"""Reviewers close the scrubber's loop: a placeholder marked "not personal data" becomes a keep-term
proposal; an admin sees the word only when many customers' traces hold it, approves it, and the next
scrub (a new scrubber version) leaves it in the text. The real scrubber throughout."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ingest_paths
from flywheel.core.labeling import labels, taxonomy
from flywheel.core.scrub import keep_terms
from flywheel.core.scrub.scrubber import SCRUBBER_VERSION
from flywheel.paths import REPO_REFERENCE, Paths
from flywheel_tests.conftest import write_jsonl

WEEK = dt.datetime(2026, 3, 2)
# Seven customers write about the product; one of them also gives her name.
PRODUCT_TEXTS = ["Hi, Quantum Ledger crashes when I open the invoices tab.",
                 "Please help, the Quantum Ledger export never finishes.",
                 "Quantum Ledger logs me out every ten minutes."]


def _warehouse(paths: Paths, scrubber, tmp_path) -> dict[str, str]:
    """raw.traces of eight customers, and the week's sample scrubbed as station 2 does; returns
    trace_ref -> scrubbed text of the first message."""
    from flywheel.core.scrub import station

    records = [{"trace_id": f"t{i}", "timestamp": f"2026-03-0{2 + i % 5}T10:00:00Z", "customer_id": f"cust-{i}",
                "messages": [{"role": "user", "content": PRODUCT_TEXTS[i % 3]},
                             {"role": "assistant", "content": "Sorry about that, I have opened a ticket."}]}
               for i in range(7)]
    records.append({"trace_id": "t_name", "timestamp": "2026-03-03T11:00:00Z", "customer_id": "cust-9",
                    "messages": [{"role": "user", "content": "My name is Priya Raman and Quantum Ledger fails."},
                                 {"role": "assistant", "content": "Thanks Priya, looking into it."}]})
    import polars as pl

    with connect(paths.warehouse) as conn:
        ingest_paths(conn, [write_jsonl(tmp_path / "traces.jsonl", records)])
        refs = {r["trace_id"]: f"ref_{r['trace_id']}" for r in records}
        conn.execute("CREATE TABLE raw.sample_ids (week_start TIMESTAMP, trace_ref VARCHAR, trace_id VARCHAR)")
        conn.executemany("INSERT INTO raw.sample_ids VALUES (?, ?, ?)", [(WEEK, ref, tid) for tid, ref in refs.items()])
        sample = pl.DataFrame({"trace_ref": list(refs.values())})
        for col in station.CARRIED:
            sample = sample.with_columns(pl.lit(None).alias(col))
        anonymized, report = station.scrub_sample(sample, station.raw_conversations(conn, list(refs.values())),
                                                  scrubber, lambda kind, value: f"{kind}:{value}", WEEK)
        conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
        conn.execute("CREATE TABLE scrub.anonymized_traces AS SELECT * FROM anonymized")
        conn.execute("CREATE TABLE scrub.scrub_report AS SELECT * FROM report")
        taxonomy.seed(conn, taxonomy.load_seed(REPO_REFERENCE / "taxonomy.yaml"))
        return {ref: msgs[0]["content"] for ref, msgs in conn.execute(
            "SELECT trace_ref, messages FROM scrub.anonymized_traces").fetchall()}


def _placeholder(text: str) -> str:
    return next(t for t in text.split() if t.startswith("[ORG")).strip(".,")


@pytest.fixture
def setup(data_dir, real_scrubber, tmp_path):
    paths = Paths(data_dir)
    return paths, _warehouse(paths, real_scrubber, tmp_path)


def test_a_marked_placeholder_becomes_a_keep_term_once_approved(setup, real_scrubber, tmp_path):
    paths, scrubbed = setup
    assert "Quantum Ledger" not in scrubbed["ref_t0"], "the NER layer should hide the product name to begin with"
    with connect(paths.warehouse) as conn:
        for ref in ("ref_t0", "ref_t1"):
            label = labels.Label(ref, "not_a_bug", "ana", not_personal=_placeholder(scrubbed[ref]))
            assert labels.record(conn, label)
        # Her name, marked by mistake: it resolves, but one customer's traces hold it, so it is never shown.
        person = next(t for t in scrubbed["ref_t_name"].split() if t.startswith("[PERSON"))
        labels.record(conn, labels.Label("ref_t_name", "not_a_bug", "bo", not_personal=person))
        with pytest.raises(labels.LabelError, match="not_personal"):
            labels.record(conn, labels.Label("ref_t2", "not_a_bug", "bo", not_personal="[ORG_7]"))
        with pytest.raises(labels.LabelError, match="not a placeholder"):
            labels.record(conn, labels.Label("ref_t2", "not_a_bug", "bo", not_personal="Quantum"))

        resolution = keep_terms.resolve(conn, real_scrubber, min_customers=5)
    ready = resolution.ready()
    assert [c.term for c in ready] == ["quantum ledger"]
    assert ready[0].customers == 8 and ready[0].proposals == 2 and ready[0].reviewers == {"ana"}
    held = [c for c in resolution.candidates if c.status == "held_back"]
    assert len(held) == 1 and held[0].term is None and held[0].customers == 1
    assert all("priya" not in repr(c).lower() for c in resolution.candidates)

    with connect(paths.warehouse) as conn:
        version = keep_terms.decide(conn, paths.keep_terms, ready[0], "approved", "admin", SCRUBBER_VERSION)
        assert version.startswith(f"{SCRUBBER_VERSION}+keep.")
        assert keep_terms.history(conn)[0]["term"] == "quantum ledger"
        # Settled: the next resolution does not read those proposals again.
        assert keep_terms.resolve(conn, real_scrubber).ready() == []
    assert "quantum ledger" in paths.keep_terms.read_text()

    from flywheel.core.scrub import Scrubber
    from flywheel.settings import ScrubSettings

    kept = Scrubber(ScrubSettings(keep_terms=["quantum ledger"]), real_scrubber.vocabulary)
    assert kept.version == version != real_scrubber.version
    again = kept.scrub_texts([PRODUCT_TEXTS[0], "My name is Priya Raman and Quantum Ledger fails."])
    assert "Quantum Ledger" in again[0].text
    assert "Priya" not in again[1].text and "Quantum Ledger" in again[1].text


def test_keep_terms_cli_shows_ready_words_only_and_approves(setup, data_dir, monkeypatch):
    from flywheel.cli import main

    paths, scrubbed = setup
    with connect(paths.warehouse) as conn:
        labels.record(conn, labels.Label("ref_t3", "not_a_bug", "ana", not_personal=_placeholder(scrubbed["ref_t3"])))
        person = next(t for t in scrubbed["ref_t_name"].split() if t.startswith("[PERSON"))
        labels.record(conn, labels.Label("ref_t_name", "not_a_bug", "bo", not_personal=person))
    runner = CliRunner()
    shown = runner.invoke(main, ["keep-terms"])
    assert shown.exit_code == 0, shown.output
    assert "quantum ledger" in shown.output and "Held back: 1 word" in shown.output
    assert "priya" not in shown.output.lower()
    refused = runner.invoke(main, ["keep-terms", "approve", "priya raman"])
    assert refused.exit_code == 1 and "not a word ready for approval" in refused.output
    assert "priya" not in paths.keep_terms.read_text().lower() if paths.keep_terms.exists() else True
    approved = runner.invoke(main, ["keep-terms", "approve", "Quantum Ledger", "--by", "admin"])
    assert approved.exit_code == 0, approved.output
    assert "+keep." in approved.output and "quantum ledger" in paths.keep_terms.read_text()
    after = runner.invoke(main, ["keep-terms"])
    assert "revision 1: approved 'quantum ledger' by admin" in after.output


def test_the_spreadsheet_carries_not_personal_and_names_a_wrong_placeholder(setup, tmp_path):
    from flywheel.core.labeling import spreadsheet

    paths, scrubbed = setup
    csv_path = tmp_path / "labels.csv"
    header = ["trace_ref", *spreadsheet.LABEL_COLUMNS]
    rows = [dict.fromkeys(header, "") | {"trace_ref": "ref_t4", "bucket": "not_a_bug", "reviewer": "cy",
                                           "not_personal": _placeholder(scrubbed["ref_t4"])},
            dict.fromkeys(header, "") | {"trace_ref": "ref_t5", "bucket": "not_a_bug", "reviewer": "cy",
                                           "not_personal": "[ORG_9]"}]
    import csv

    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    with connect(paths.warehouse) as conn:
        report = spreadsheet.import_labels(conn, csv_path)
        assert [(e["column"], "[ORG_9]" in e["message"]) for e in report.errors] == [("not_personal", True)]
        fixed = rows[:1]
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(fixed)
        report = spreadsheet.import_labels(conn, csv_path)
        assert report.imported == 1, report.errors
        assert conn.execute("SELECT trace_ref, reviewer FROM scrub.keep_proposals").fetchall() == [("ref_t4", "cy")]


def test_the_scrub_station_proposes_words_it_hid_for_many_customers(data_dir, real_scrubber, tmp_path):
    """A week's scrub counts the customers each hidden organisation or proper noun belongs to; a word
    hidden for 5 or more is stored as a candidate, the others never leave memory."""
    from flywheel.core.scrub import station

    paths = Paths(data_dir)
    _warehouse(paths, real_scrubber, tmp_path)
    with connect(paths.warehouse) as conn:
        conversations = station.raw_conversations(conn, [f"ref_t{i}" for i in range(7)] + ["ref_t_name"])
    miner = keep_terms.Miner()
    for messages, customer in conversations.values():
        texts = [m["content"] for m in messages]
        [scrubbed] = list(real_scrubber.scrub_conversations([texts]))
        miner.observe(f"customer:{customer}", texts, scrubbed)
    rows = miner.rows(WEEK)
    assert [(term, n) for _, term, n, _ in rows] == [("quantum ledger", 8)]
    # Her first name, alone in the assistant's reply, is a proper noun: counted, for one customer, so
    # never stored (a word is stored only when 5 customers' traces hide it).
    assert all(len(refs) == 1 for term, refs in miner.customers.items() if "priya" in term)
    assert all("priya" not in term for _, term, _, _ in rows)
    with connect(paths.warehouse) as conn:
        keep_terms.store_mined(conn, WEEK, rows)
        keep_terms.store_mined(conn, WEEK, rows)  # a rerun of the week replaces its rows
        assert conn.execute("SELECT count(*) FROM scrub.keep_candidates").fetchone()[0] == 1
        resolution = keep_terms.resolve(conn, None)
    [ready] = resolution.ready()
    assert ready.term == "quantum ledger" and ready.mined_weeks == 1 and ready.proposals == 0 and ready.customers == 8


def test_double_review_keeps_both_reviewers_placeholders():
    from flywheel.core.labeling import review_store

    first = labels.Label("t1", "not_a_bug", "ana", not_personal="[ORG_1] [NAME_2]")
    second = labels.Label("t1", "not_a_bug", "bo", not_personal="[NAME_2] [NAME_3]")
    agreed = review_store._combined((first, None), (second, None))
    assert agreed.not_personal == "[ORG_1] [NAME_2] [NAME_3]" and agreed.reviewer == "ana+bo"
    assert review_store._combined((first, None), (labels.Label("t1", "not_a_bug", "bo"), None)).not_personal == \
        "[ORG_1] [NAME_2]"


def test_status_says_what_waits_for_an_admin(setup):
    paths, scrubbed = setup
    with connect(paths.warehouse) as conn:
        assert keep_terms.waiting(conn) == {"mined": 0, "marked": 0}
        labels.record(conn, labels.Label("ref_t6", "not_a_bug", "ana", not_personal=_placeholder(scrubbed["ref_t6"])))
        keep_terms.store_mined(conn, WEEK, [(WEEK, "quantum ledger", 8, 8), (WEEK, "settings", 6, 6)])
        assert keep_terms.waiting(conn) == {"mined": 2, "marked": 1}
    from flywheel.cli.summary import scrub_summary

    assert "Keep terms waiting for an admin: 2 word(s)" in scrub_summary(paths, None)
