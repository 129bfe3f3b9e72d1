"""Station 2 pieces that need no model: merging, placeholders, vocabulary, keyed hashes, residue, leaks."""

import os
import stat

import pytest

from flywheel.core.common import keys
from flywheel.core.common.db import connect
from flywheel.core.scrub import leaks
from flywheel.core.scrub.residue import record_miss, summary
from flywheel.core.scrub.scrubber import Placeholders, Span, merge_spans, replace
from flywheel.core.scrub.vocabulary import CUSTOMER, CUSTOMER_ORG, CustomerVocabulary, VocabularyError


def test_overlapping_findings_merge_into_one_span_of_the_most_specific_type():
    spans = [
        Span(0, 12, "PERSON", "ner"),          # "Sarah Connor"
        Span(6, 30, "EMAIL_ADDRESS", "regex"),  # overlaps the name
        Span(40, 45, "LOCATION", "ner"),
        Span(45, 50, "PERSON", "ner"),          # adjacent, not overlapping: stays apart
    ]
    assert merge_spans(spans) == [
        Span(0, 30, "EMAIL_ADDRESS", "regex"), Span(40, 45, "LOCATION", "ner"), Span(45, 50, "PERSON", "ner"),
    ]


def test_lookup_wins_over_ner_when_they_overlap():
    assert merge_spans([Span(5, 16, "ORGANIZATION", "ner"), Span(5, 9, CUSTOMER_ORG, "lookup")]) == [
        Span(5, 16, CUSTOMER_ORG, "lookup")
    ]


def test_placeholders_are_numbered_consistently_across_turns():
    numbering = Placeholders()
    first = replace("Priya Patel and Tom Berg", [Span(0, 11, "PERSON", "ner"), Span(16, 24, "PERSON", "ner")], numbering)
    second = replace("Tom Berg said Priya agreed", [Span(0, 8, "PERSON", "ner"), Span(14, 19, "PERSON", "ner")], numbering)
    assert first.text == "[PERSON_1] and [PERSON_2]"
    assert second.text == "[PERSON_2] said [PERSON_1] agreed", "a first name joins the full name it belongs to"
    assert first.placeholders == ["[PERSON_1]", "[PERSON_2]"]


def test_name_runs_alias_like_persons_but_stay_their_own_type():
    numbering = Placeholders()
    a = replace("Crystal Minh", [Span(0, 12, "PROPER_NOUN", "ner")], numbering)
    b = replace("thanks Crystal", [Span(7, 14, "PROPER_NOUN", "ner")], numbering)
    assert (a.text, b.text) == ("[NAME_1]", "thanks [NAME_1]")


def test_a_lone_first_name_taken_for_a_place_is_the_person_already_named():
    numbering = Placeholders()
    a = replace("I'm Marta Kowalski", [Span(4, 18, "PERSON", "ner")], numbering)
    b = replace("Thanks Marta, and Lisbon?", [Span(7, 12, "LOCATION", "ner"), Span(18, 24, "LOCATION", "ner")], numbering)
    assert (a.text, b.text) == ("I'm [PERSON_1]", "Thanks [PERSON_1], and [LOCATION_1]?")


def test_a_courtesy_before_a_name_is_no_part_of_it():
    from flywheel.core.scrub import rules

    for text, name in [("Sorry Marta", "Marta"), ("Thanks, Lukas", "Lukas"), ("hi hello Ana Ruiz", "Ana Ruiz"),
                       ("Okayama Ito", "Okayama Ito"), ("Sorry", "Sorry")]:
        assert text[rules.without_courtesy(text, 0, len(text)):] == name


def test_who_introduces_themself_is_a_person():
    from flywheel.core.scrub import rules

    found = {text: [text[a:b] for a, b, _ in rules.self_introductions(text)] for text in [
        "Sorry, I forgot my password, I'm Lukas Meyer", "I am Anna, the admin", "I\u2019m Lukas.",
        "I'm locked out", "I'm Sorry", "I'm not sure", "I am Settings"]}
    assert found == {"Sorry, I forgot my password, I'm Lukas Meyer": ["Lukas Meyer"], "I am Anna, the admin": ["Anna"],
                     "I\u2019m Lukas.": ["Lukas"], "I'm locked out": [], "I'm Sorry": [], "I'm not sure": [],
                     "I am Settings": []}


def test_known_customers_are_not_numbered_and_their_first_name_follows():
    numbering = Placeholders()
    a = replace("Sarah Connor from Acme", [Span(0, 12, CUSTOMER, "lookup"), Span(18, 22, CUSTOMER_ORG, "lookup")], numbering)
    b = replace("Sarah here again", [Span(0, 5, "PERSON", "ner")], numbering)
    assert a.text == "[CUSTOMER] from [CUSTOMER_ORG]"
    assert b.text == "[CUSTOMER] here again"


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("customer_id,contact_name,company\nc1,Sarah Connor,Acme Bakery Ltd\nc2,Al,Globex Corporation\n")
    return CustomerVocabulary.from_csv(path)


@pytest.mark.parametrize("text,expected", [
    ("sarah connor called", [("sarah connor", CUSTOMER)]),
    ("SARAH CONNOR called", [("SARAH CONNOR", CUSTOMER)]),
    ("Sarah Connor's invoice", [("Sarah Connor", CUSTOMER)]),
    ("Acme Bakery's order", [("Acme Bakery", CUSTOMER_ORG)]),
    ("Acme Bakery Ltd. wrote", [("Acme Bakery Ltd", CUSTOMER_ORG)]),
    ("the Globex team", [("Globex", CUSTOMER_ORG)]),
    ("Sarah  Connor with two spaces", [("Sarah  Connor", CUSTOMER)]),
    ("Globexia and Sarah Connorville", []),
    ("Al is too short to match; Alice is not Al", []),
])
def test_vocabulary_matching(vocab, text, expected):
    assert [(text[s:e], kind) for s, e, kind in vocab.find(text)] == expected


def test_vocabulary_without_name_columns_is_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,plan\n1,pro\n")
    with pytest.raises(VocabularyError, match="bad.csv:1: no name column"):
        CustomerVocabulary.from_csv(path)


def test_keyed_hashes_are_stable_for_a_key_and_differ_across_keys_and_kinds():
    a, b = b"key-a", b"key-b"
    assert keys.keyed_hash(a, "t1") == keys.keyed_hash(a, "t1")
    assert keys.keyed_hash(a, "t1") != keys.keyed_hash(b, "t1")
    assert keys.keyed_hash(a, "x", kind="trace") != keys.keyed_hash(a, "x", kind="customer")
    assert "t1" not in keys.keyed_hash(a, "t1")


def test_key_is_generated_once_with_owner_only_permissions(tmp_path, monkeypatch):
    monkeypatch.delenv(keys.SECRET_ENV, raising=False)
    first = keys.load_key(tmp_path)
    assert keys.load_key(tmp_path) == first and len(first) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / keys.KEY_FILE).st_mode)
    assert mode == 0o600
    monkeypatch.setenv(keys.SECRET_ENV, "from-env")
    assert keys.load_key(tmp_path) == b"from-env"


def test_leaks_are_found_on_word_boundaries_only(conn):
    texts = [("t1", "call [PERSON_1] at 415-555-0134"), ("t2", "the Acmeville branch"), ("t3", "ACME BAKERY again")]
    found = leaks.find_leaks(conn, texts, ["415-555-0134", "Acme Bakery", "Acme", "ab"])
    assert sorted((f["where"], f["value"]) for f in found) == [("t1", "415-555-0134"), ("t3", "Acme"), ("t3", "Acme Bakery")]
    assert leaks.redact_values("ACME BAKERY again", ["Acme Bakery", "Acme"]) == "[LEAK_REDACTED] again"


def test_residue_summary_gives_a_miss_rate_per_class(tmp_path):
    with connect(tmp_path / "r.duckdb") as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.scrub_report AS SELECT * FROM (VALUES
            ('t_1', [{'entity_type': 'PERSON', 'layer': 'ner', 'n': 2}]),
            ('t_2', [{'entity_type': 'PERSON', 'layer': 'ner', 'n': 1}, {'entity_type': 'EMAIL_ADDRESS', 'layer': 'regex', 'n': 1}]),
            ('t_3', []), ('t_4', [])) AS v(trace_ref, entity_counts)""")
        conn.execute("CREATE TABLE scrub.anonymized_traces AS SELECT 't_1' AS trace_ref, '1' AS scrubber_version")
        assert record_miss(conn, "t_1", "person", note="nickname in a signature", reported_by="ana") == "1"
        with pytest.raises(KeyError):
            record_miss(conn, "t_unknown", "PERSON")
        rows = {r["entity_type"]: r for r in summary(conn)}
    assert rows["PERSON"] == {"entity_type": "PERSON", "traces_scrubbed": 4, "traces_with_findings": 2, "findings": 3,
                              "misses_reported": 1, "miss_rate": 0.25}
    assert rows["EMAIL_ADDRESS"]["misses_reported"] == 0
