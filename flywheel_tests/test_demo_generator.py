import csv
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from flywheel.core.intake.ingest import ingest_paths
from flywheel.demo.generator import ENTERPRISE_ONBOARD_WEEK, luhn_card, write_demo


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = write_demo(out, weeks=14, traces_per_day=30, seed=11)
    return out, summary


def _load(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_deterministic_for_a_seed(tmp_path):
    write_demo(tmp_path / "a", weeks=1, traces_per_day=20, seed=3)
    write_demo(tmp_path / "b", weeks=1, traces_per_day=20, seed=3)
    write_demo(tmp_path / "c", weeks=1, traces_per_day=20, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_every_trace_meets_the_contract(demo, conn):
    out, summary = demo
    report = ingest_paths(conn, [out / "traces"])
    assert report.quarantined == 0 and report.ingested == summary.traces == 14 * 7 * 30


def test_truth_is_kept_apart_from_traces(demo):
    out, summary = demo
    traces = [t for f in summary.trace_files for t in _load(f)]
    truth = _load(summary.answers_file)
    assert [t["trace_id"] for t in traces] == [a["trace_id"] for a in truth]
    for t in traces:
        assert not {"failure", "failure_code", "adversarial", "pii"} & set(t)
        assert not {"failure", "failure_code", "adversarial", "pii"} & set(t.get("metadata", {}))


def test_customer_data_is_inside_the_text_and_listed_in_the_truth(demo):
    out, summary = demo
    traces = {t["trace_id"]: t for f in summary.trace_files for t in _load(f)}
    kinds = set()
    for a in _load(summary.answers_file):
        text = "\n".join(m["content"] for m in traces[a["trace_id"]]["messages"])
        for pii in a["pii"]:
            assert pii["value"] in text
            kinds.add(pii["type"])
    assert {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "ACCOUNT_ID", "TICKET_ID", "CREDIT_CARD",
            "ORGANIZATION", "STREET_ADDRESS", "PO_NUMBER"} <= kinds


def test_the_essays_story_is_in_the_traffic(demo):
    out, summary = demo
    start = dt.date(2026, 3, 2)
    traces = [t for f in summary.trace_files for t in _load(f)]
    truth = {a["trace_id"]: a for a in _load(summary.answers_file)}
    week = lambda t: (dt.date.fromisoformat(t["timestamp"][:10]) - start).days // 7  # noqa: E731
    enterprise = [t for t in traces if t["cohort"] == "enterprise"]
    assert enterprise and min(week(t) for t in enterprise) == ENTERPRISE_ONBOARD_WEEK
    jargon = ("SSO", "SAML", "SLA", "procurement", "PO", "MSA", "DPA", "TAM", "CSM", "SCIM", "IdP", "SIEM", "contract", "Sev-", "P1")
    assert sum(any(j in t["messages"][0]["content"] for j in jargon) for t in enterprise) > len(enterprise) / 2
    intents = {t["intent"] for t in traces}
    assert {"ticket_triage", "refund_policy", "troubleshooting", "billing", "account_change",
            "escalation_handoff", "refund_dispute", "data_export"} <= intents
    assert max(t["turns"] for t in traces) >= 8 and min(t["turns"] for t in traces) == 1
    assert any(t["guardrail_tripped"] for t in traces) and any(t["retried"] for t in traces)
    assert any(t["handed_off"] for t in traces)
    adversarial = [t for t in traces if truth[t["trace_id"]]["adversarial"]]
    assert any("ignore" in t["messages"][0]["content"].lower() for t in adversarial)
    # The judge misses enterprise failures: their scores look like passes.
    ent_fail = [t["judge_score"] for t in enterprise if truth[t["trace_id"]]["failure"]]
    smb_fail = [t["judge_score"] for t in traces if t["cohort"] == "smb" and truth[t["trace_id"]]["failure"]]
    assert ent_fail and sum(ent_fail) / len(ent_fail) > 0.74 > sum(smb_fail) / len(smb_fail)


def test_vocabulary_and_starter_eval_set(demo):
    out, summary = demo
    vocab = list(csv.DictReader(open(summary.vocabulary_file)))
    assert {"customer_id", "contact_name", "company"} <= set(vocab[0])
    rows = list(csv.DictReader(open(summary.eval_set_file)))
    assert 45 <= len(rows) <= 55
    assert all(r["added_at"].startswith("2026-03") for r in rows)
    share = sum(r["adversarial"] == "true" for r in rows) / len(rows)
    assert 0.05 <= share <= 0.10
    names = {v["contact_name"] for v in vocab} | {v["company"] for v in vocab}
    assert not any(n in r["input"] for r in rows for n in names), "the team's spreadsheet holds no customer data"


def test_generated_cards_pass_luhn():
    import random

    rng = random.Random(1)
    for _ in range(50):
        digits = [int(c) for c in luhn_card(rng) if c.isdigit()]
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
        assert len(digits) == 16 and total % 10 == 0


def test_start_must_be_a_monday(tmp_path):
    with pytest.raises(ValueError, match="Monday"):
        write_demo(tmp_path, weeks=1, traces_per_day=1, start=dt.date(2026, 3, 3))
