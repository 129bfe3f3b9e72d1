"""The shape routing fields must have to leave `raw` (flywheel.core.privacy.routing)."""

import polars as pl
import pytest

from flywheel.core.privacy import routing


@pytest.mark.parametrize(("field", "value"), [
    ("intent", "billing_dispute"), ("intent", "ticket-triage"), ("intent", "how_to"), ("intent", "v2:refund"),
    ("cohort", "smb"), ("cohort", "enterprise"), ("cohort", "EU-west.tier2"),
    ("model_version", "relay-assist-2026.03"), ("model_version", "gpt-4o-2024-08-06"),
    ("model_version", "claude-3-5-sonnet-20241022"), ("model_version", "llama3.1:8b"),
])
def test_labels_a_system_chose_pass_unchanged(field, value):
    assert routing.shape(field, value) == value


@pytest.mark.parametrize(("field", "value"), [
    ("intent", "jane.doe@example.com"),           # an email
    ("intent", "cancel for bob.builder@example.org"),
    ("intent", "refund please"),                  # free text: a space
    ("intent", "call_4155550199"),                # a phone number glued to a label
    ("intent", "=HYPERLINK(\"http://evil.example\")"),  # spreadsheet formulas start with = + - @
    ("intent", "@SUM(1+1)"),
    ("intent", "-2+3"),
    ("intent", "x" * 65),                         # too long to be a label
    ("intent", "12345"),                          # no letter: an id, an account or a postcode
    ("intent", ""),
    ("cohort", "vip carol.white@example.net"),
    ("cohort", "acct-99887766554433"),
    ("cohort", "+44-7911-123456"),
    ("model_version", "gpt-x card 4929381726354411"),
    ("model_version", "build-4929-3817-2635-4411"),  # a card number in groups: 16 digits
    ("model_version", "m-123456789"),             # a run of 9 digits is no build date
    ("model_version", "[REDACTED_MODEL_VERSION]"),
])
def test_anything_else_becomes_the_fields_placeholder(field, value):
    assert routing.shape(field, value) == f"[REDACTED_{field.upper()}]"


def test_shaping_twice_changes_nothing_and_none_stays_none():
    for field in routing.ROUTING_FIELDS:
        once = routing.shape(field, "a b@c.de")
        assert routing.shape(field, once) == once
        assert routing.shape(field, None) is None


def test_an_allow_list_lets_only_its_values_out():
    assert routing.shape("cohort", "smb", {"smb", "enterprise"}) == "smb"
    assert routing.shape("cohort", "acme-bakery", {"smb", "enterprise"}) == "[REDACTED_COHORT]"


def test_a_frame_is_shaped_per_column_and_other_columns_are_left_alone():
    frame = pl.DataFrame({
        "trace_id": ["t1", "t2", "t3"], "intent": ["billing", "mail me at a@b.co", None],
        "cohort": ["smb", "smb", "vip 555 0199 123"], "model_version": ["m-1", "m-1", "m-1"],
    })
    shaped = routing.shape_frame(frame)
    assert shaped["intent"].to_list() == ["billing", "[REDACTED_INTENT]", None]
    assert shaped["cohort"].to_list() == ["smb", "smb", "[REDACTED_COHORT]"]
    assert shaped["trace_id"].equals(frame["trace_id"]) and shaped["model_version"].equals(frame["model_version"])
    assert routing.shape_frame(shaped).equals(shaped)
    assert routing.shape_record({"intent": "a b", "x": 1}) == {"intent": "[REDACTED_INTENT]", "x": 1}
