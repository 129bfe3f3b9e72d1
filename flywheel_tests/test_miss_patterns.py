"""Reported misses propose patterns: the shape of an identifier a reviewer found in a scrubbed trace
becomes, once an admin approves it, a pattern of the next scrub's regex layer (the real scrubber)."""

from __future__ import annotations

from click.testing import CliRunner

from flywheel.core.common.db import connect
from flywheel.core.scrub import patterns, residue
from flywheel.core.scrub.keep_terms import SCRUBBER_VERSION
from flywheel.paths import Paths

LEAK = "Your policy PLX-2231-88 renews on 2026-03-02 at 10:30 for 3 seats; account [ACCOUNT_ID_1] is fine."


def test_an_identifier_becomes_its_shape_and_nothing_else_is_taken():
    assert patterns.shape("PLX-2231-88") == r"(?<![\w-])[A-Z]{3}-\d{4}-\d{2}(?![\w-])"
    assert patterns.shape("ab12345C") == r"(?<![\w-])[a-z]{2}\d{5}[A-Z](?![\w-])"
    # dates, times, counts and placeholders are no identifiers
    assert patterns.candidates_in(LEAK) == ["PLX-2231-88"]
    assert patterns.candidates_in("order 123456 and 2024") == ["123456"]


def _warehouse(paths: Paths) -> None:
    with connect(paths.warehouse) as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces (trace_ref VARCHAR, scrubber_version VARCHAR,
                        messages STRUCT(role VARCHAR, content VARCHAR)[])""")
        for ref, text in (("t1", LEAK), ("t2", "Policy QRS-9918-04 was cancelled."), ("t3", "Ask Wilhelmina about it.")):
            conn.execute("INSERT INTO scrub.anonymized_traces VALUES (?, '5', ?)",
                         [ref, [{"role": "user", "content": text}]])
        conn.execute("""CREATE TABLE scrub.scrub_report AS SELECT TIMESTAMP '2026-03-02' AS week_start, trace_ref,
                        '5' AS scrubber_version, 1 AS total_spans,
                        [{'entity_type': 'ACCOUNT_ID', 'layer': 'regex', 'n': 1}] AS entity_counts
                        FROM scrub.anonymized_traces""")
        residue.record_miss(conn, "t1", "POLICY_ID", note="the policy number", reported_by="ana")
        residue.record_miss(conn, "t2", "POLICY_ID", reported_by="bo")
        residue.record_miss(conn, "t3", "PERSON", reported_by="bo")
        residue.record_miss(conn, "t3", "ORDER_ID", reported_by="bo")  # nothing id-like is left in t3


def test_misses_propose_a_pattern_an_admin_approves_into_the_next_scrub(data_dir):
    from flywheel.cli import main
    from flywheel.core.scrub import Scrubber
    from flywheel.settings import ScrubSettings

    paths = Paths(data_dir)
    _warehouse(paths)
    with connect(paths.warehouse, read_only=True) as conn:
        found = patterns.propose(conn)
    [proposal] = found.patterns
    assert proposal.entity_type == "POLICY_ID" and proposal.misses == 2 and proposal.traces == {"t1", "t2"}
    assert found.names == {"PERSON": 1} and found.nothing_left == 1

    runner = CliRunner()
    shown = runner.invoke(main, ["residue"])
    assert shown.exit_code == 0, shown.output
    assert proposal.regex in shown.output and "2 miss(es) on 2 trace(s)" in shown.output
    assert "PLX-2231-88" not in shown.output and "Wilhelmina" not in shown.output  # shapes, never values
    assert "customer vocabulary" in shown.output and "1 identifier miss(es) leave nothing" in shown.output
    bad = runner.invoke(main, ["residue", "approve-pattern", "--entity-type", "POLICY_ID", "([A-Z"])
    assert bad.exit_code == 1 and "does not compile" in bad.output
    approved = runner.invoke(main, ["residue", "approve-pattern", "--entity-type", "policy_id", proposal.regex])
    assert approved.exit_code == 0 and "+patterns." in approved.output, approved.output
    assert patterns.load(paths.pii_patterns) == [("POLICY_ID", proposal.regex)]
    with connect(paths.warehouse, read_only=True) as conn:
        assert patterns.propose(conn, patterns.load(paths.pii_patterns)).patterns == []  # approved: proposed no more

    scrubber = Scrubber(ScrubSettings(extra_patterns=patterns.load(paths.pii_patterns)))
    [scrubbed] = scrubber.scrub_texts(["Please renew policy ZZT-1044-72 before Friday."])
    assert "ZZT-1044-72" not in scrubbed.text and "[POLICY_ID_1]" in scrubbed.text
    assert scrubber.version.startswith(f"{SCRUBBER_VERSION}+patterns.")


def test_a_broken_pattern_file_is_named_with_its_entry(tmp_path):
    path = tmp_path / "pii_patterns.yaml"
    path.write_text("- entity_type: POLICY_ID\n  regex: '[A-Z'\n")
    try:
        patterns.load(path)
    except patterns.PatternError as exc:
        assert "entry 1" in str(exc) and str(path) in str(exc)
    else:
        raise AssertionError("a regex that does not compile was accepted")
