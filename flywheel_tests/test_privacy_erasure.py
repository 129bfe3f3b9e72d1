"""`flywheel forget` end to end: a small warehouse built by the real stations (Dagster assets with the
fake scrubber and embedder), one customer planted in every table, then erased.

The planted customer has an anomalous trace (always sampled, scrubbed, queued, labelled, folded into
two versions, exported, scored by drift), a quiet trace (raw and drift only) and two quarantined
lines (one parsable, one cut short). Their code word survives the fake scrubber on purpose, so it
reaches every table a person reads; after the erasure it must be in none of them, nor in the bytes of
the database file or the exports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from flywheel.resources.io_manager import WarehousePolarsIOManager

from flywheel.cli.common import main
from flywheel.core.common import keys
from flywheel.core.common.db import connect
from flywheel.core.evalset import regression
from flywheel.core.evalset import versions as evalset
from flywheel.core.intake.ingest import ingest_paths
from flywheel.core.labeling import labels
from flywheel.core.privacy import erasure
from flywheel.defs.drift import monthly_drift
from flywheel.defs.evalset import fold_in
from flywheel.defs.intake import raw_traces
from flywheel.defs.labeling import failure_taxonomy, label_suggestions, review_queue, week_clusters
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week
from flywheel.resources.embedder import FakeEmbedderResource
from flywheel.resources.scrubber import FakeScrubberResource, RegexOnlyScrubber
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import Paths

CUSTOMER = "cust-planted-7781"
CODE_WORD = "zebraquokka"  # no digits, not in any vocabulary: the fake scrubber keeps it
EMAIL = "planted.person@example.org"  # the fake scrubber removes it: raw tables only
WEEK = "2026-03-02"
PLANTED = [CUSTOMER.encode(), CODE_WORD.encode(), EMAIL.encode()]


def _trace(tid: str, day: int, customer: str, text: str, **extra) -> dict:
    return {"trace_id": tid, "timestamp": f"2026-03-0{day}T10:{len(tid) % 60:02d}:00Z", "customer_id": customer,
            "cohort": "smb", "intent": "billing", "judge_score": 0.9,
            "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "Let me help with that."}],
            **extra}


def _inbox_lines() -> list[str]:
    others = [_trace(f"t-{i:03d}", 2 + i % 6, f"cus-{i % 5}", f"Question {i} about invoices and plan {i % 3}",
                     guardrail_tripped=i % 4 == 0) for i in range(30)]
    planted = [
        _trace("t-planted-1", 3, CUSTOMER, f"I am {EMAIL}, code word {CODE_WORD}: cancel my plan now",
               guardrail_tripped=True),
        _trace("t-planted-2", 4, CUSTOMER, f"Second chat, still {CODE_WORD}, about seats"),
    ]
    bad = [
        json.dumps({**_trace("t-planted-3", 5, CUSTOMER, f"{CODE_WORD} again"), "timestamp": "not a time"}),
        '{"trace_id": "t-planted-4", "customer_id": "' + CUSTOMER + '", "messages": [{"role": "user", "content": "'
        + CODE_WORD + " cut short",
    ]
    return [json.dumps(t) for t in others + planted] + bad


def _build(data_dir: Path) -> None:
    paths = Paths(str(data_dir))
    paths.inbox_traces.mkdir(parents=True)
    (paths.inbox_traces / "week.jsonl").write_text("\n".join(_inbox_lines()) + "\n")
    starter = data_dir / "starter.csv"
    starter.write_text("input,expected\nHow do refunds work?,Within 30 days\nCan I add a seat?,Yes from Settings\n")
    with connect(paths.warehouse) as conn:
        evalset.import_starter(conn, starter)
    resources = {
        "warehouse": Warehouse(data_dir=str(data_dir)),
        "io_manager": WarehousePolarsIOManager(data_dir=str(paths.data_dir)),
        "scrubber": FakeScrubberResource(),
        "embedder": FakeEmbedderResource(),
    }
    assert dg.materialize([failure_taxonomy], resources=resources).success
    week = dg.materialize([raw_traces, sampled_traces, scrub_week, review_queue], partition_key=WEEK, resources=resources)
    assert week.success
    key = keys.load_key(data_dir)
    planted_ref = keys.keyed_hash(key, "t-planted-1")
    with connect(paths.warehouse) as conn:
        other_refs = [r[0] for r in conn.execute(
            "SELECT trace_ref FROM scrub.anonymized_traces WHERE trace_ref <> ? ORDER BY trace_ref LIMIT 2",
            [planted_ref]).fetchall()]
        for ref, word in ((planted_ref, CODE_WORD), (other_refs[0], "someone")):
            labels.record(conn, labels.Label(
                ref, "known_failure", "tester", taxonomy_code="wrong_account_action",
                expected_behaviour=f"Ask the owner ({word}) to confirm first", criterion_type="contains",
                criterion_value="confirm", pii_note=f"checked {word}"))
    assert dg.materialize([fold_in], resources=resources).success  # v2: both rows
    with connect(paths.warehouse) as conn:
        labels.record(conn, labels.Label(other_refs[1], "known_failure", "tester", taxonomy_code="missed_escalation",
                                         expected_behaviour="Hand off", criterion_type="refusal"))
    assert dg.materialize([fold_in], resources=resources).success  # v3: one more row
    # Suggestions name the labelled traces they resemble (the planted one among them); clusters hold refs.
    assert dg.materialize([label_suggestions], resources=resources).success
    assert dg.materialize([week_clusters], partition_key=WEEK, resources=resources).success
    with connect(paths.warehouse) as conn:
        for version in (1, 2, 3):
            regression.run_regression(conn, lambda messages: "please confirm", version=version, model_version="m1")
    assert dg.materialize([monthly_drift], partition_key="2026-03-01", resources=resources).success


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One warehouse for the module (building it is the slow part); each test works on a copy."""
    root = tmp_path_factory.mktemp("erasure") / "data"
    root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLYWHEEL_DATA", str(root))
        mp.setenv("DAGSTER_HOME", str(root / "dagster"))
        mp.delenv("FLYWHEEL_SECRET", raising=False)
        _build(root)
    return root


@pytest.fixture
def copy(built, data_dir) -> Paths:
    shutil.rmtree(data_dir)
    shutil.copytree(built, data_dir)
    return Paths(str(data_dir))


def _bytes(paths: Paths) -> bytes:
    wal = Path(f"{paths.warehouse}.wal")
    return paths.warehouse.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _exports(paths: Paths) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(paths.exports.glob("*.jsonl")))


def _forget(paths: Paths, **options) -> erasure.Erasure:
    return erasure.forget(paths.warehouse, paths.exports, keys.load_key(paths.data_dir), CUSTOMER,
                          operator=options.pop("operator", "officer"), scrubber=RegexOnlyScrubber(),
                          inbox=paths.inbox_traces, **options)


def _snapshot(paths: Paths) -> dict:
    with connect(paths.warehouse) as conn:  # read-write: pass_rates() creates its table if missing
        counts = {f"{s}.{t}": conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0] for s, t in conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1, 2").fetchall()}
        return {"counts": counts, "pass_rates": regression.pass_rates(conn),
                "versions": {v["version"]: v["cause"] for v in evalset.versions(conn)}}


def test_the_planted_customer_is_everywhere_before(copy):
    data = _bytes(copy)
    assert all(value in data for value in PLANTED), "the byte check below must be able to fail"
    assert CODE_WORD.encode() in _exports(copy)
    with connect(copy.warehouse, read_only=True) as conn:
        ref = keys.keyed_hash(keys.load_key(copy.data_dir), CUSTOMER, kind="customer")
        assert len(regression.lookup_customer(conn, ref)) == 1


def test_dry_run_lists_every_table_and_changes_nothing(copy):
    before, data = _snapshot(copy), _bytes(copy)
    report = _forget(copy, dry_run=True)
    assert _bytes(copy) == data
    assert report.dry_run and report.changed and report.erasure_id is None
    for table in ("raw.traces", "raw.quarantine", "raw.sample_ids", "sample.sampled_traces", "scrub.anonymized_traces",
                  "scrub.scrub_report", "label.review_queue", "label.labels", "label.suggestions",
                  "drift.high_distance_traces", "embed.cache", "eval.eval_rows"):
        assert report.tables[table] > 0, table
    assert report.tables["raw.traces"] == 2 and report.tables["raw.quarantine"] == 2
    assert report.tables["eval.eval_rows"] == 1 and report.versions_with_erased_rows == [2, 3]
    assert _snapshot(copy) == before


def test_forget_erases_along_lineage_and_from_the_file_bytes(copy):
    from flywheel.core.scrub import keep_terms

    planted = keys.keyed_hash(keys.load_key(copy.data_dir), "t-planted-1")
    with connect(copy.warehouse) as conn:  # a reviewer marked placeholders on their trace and on another
        other = conn.execute("SELECT trace_ref FROM scrub.anonymized_traces WHERE trace_ref <> ? LIMIT 1",
                             [planted]).fetchone()[0]
        keep_terms.propose(conn, "l1", planted, ["[PERSON_1]"], "tester")
        keep_terms.propose(conn, "l2", other, ["[ORG_1]"], "tester")
    before = _snapshot(copy)
    exported = {p.name: len(p.read_text().splitlines()) for p in copy.exports.glob("*.jsonl")}
    report = _forget(copy, reason="ticket PRIV-12")
    assert report.changed and report.lookup_rows_after == 0 and report.rebuilt is not None
    assert report.archived_in_version == 4 and report.exports_rewritten == [2, 3]

    # Not in the file, its write-ahead log, or any export; the lookup answers nothing.
    data = _bytes(copy)
    assert not [value for value in PLANTED if value in data]
    assert CODE_WORD.encode() not in _exports(copy) and EMAIL.encode() not in _exports(copy)
    result = CliRunner().invoke(main, ["lookup", "--customer-id", CUSTOMER, "--data-dir", str(copy.data_dir)])
    assert result.exit_code == 0 and "No eval row" in result.output

    after = _snapshot(copy)
    with connect(copy.warehouse) as conn:
        # Pass rates of past versions are what they were; each version says it lost a row.
        assert [r for r in after["pass_rates"] if r["eval_version"] <= 3] == before["pass_rates"]
        assert after["versions"][2].endswith("; 1 row erased") and after["versions"][3].endswith("; 1 row erased")
        assert after["versions"][1] == before["versions"][1]
        # The tombstone keeps the row's id, code and spans; the new version no longer holds it.
        [row] = conn.execute("SELECT row_id, input, expected_behaviour, taxonomy_code, version_retired FROM eval.eval_rows "
                             "WHERE expected_behaviour = '[erased]'").fetchall()
        assert row[1] == erasure.TOMBSTONE_INPUT and row[3] == "wrong_account_action" and row[4] == 4
        assert [r["row_id"] for r in evalset.rows_at(conn, 2).to_dicts()].count(row[0]) == 1
        assert row[0] not in evalset.rows_at(conn, 4)["row_id"].to_list()
        # Every version still exports, with as many rows as before.
        for version in (1, 2, 3):
            out = copy.data_dir / f"v{version}.jsonl"
            assert evalset.export(conn, out, version) == exported[f"eval_set_v{version}.jsonl"]
        assert (copy.exports / "eval_set_v4.jsonl").exists()
        # Labels keep their verdicts and history; only the free text is gone.
        assert conn.execute("SELECT count(*) FROM label.labels").fetchone()[0] == before["counts"]["label.labels"]
        assert conn.execute("SELECT count(*) FROM label.labels WHERE pii_note = '[erased]'").fetchone()[0] == 1
        # The audit row: counts per table and the keyed hash, never the id.
        [audit] = conn.execute("SELECT operator, reason, customer_ref, counts FROM privacy.erasures").fetchall()
        assert audit[0] == "officer" and audit[1] == "ticket PRIV-12"
        assert audit[2] == keys.keyed_hash(keys.load_key(copy.data_dir), CUSTOMER, kind="customer")
        assert json.loads(audit[3])["raw.traces"] == 2 and CUSTOMER not in audit[3]
        assert conn.execute("SELECT list(version ORDER BY version) FROM eval.export_rewrites").fetchone()[0] == [2, 3]
        # Keep-term proposals on their trace are gone, the others stay.
        assert conn.execute("SELECT trace_ref FROM scrub.keep_proposals").fetchall() == [(other,)]
        # No suggestion names their trace any more (the next run of label/suggestions writes the rest again).
        assert conn.execute("SELECT count(*) FROM label.suggestions WHERE trace_ref = ? OR list_contains(similar_refs, ?)",
                            [planted, planted]).fetchone()[0] == 0
    # Other customers are untouched.
    assert after["counts"]["raw.traces"] == before["counts"]["raw.traces"] - 2
    assert after["counts"]["eval.eval_rows"] == before["counts"]["eval.eval_rows"]


def test_a_second_run_changes_nothing_and_says_so(copy):
    _forget(copy)
    state = _snapshot(copy)
    data = _bytes(copy)
    result = CliRunner().invoke(main, ["forget", "--customer-id", CUSTOMER, "--data-dir", str(copy.data_dir)])
    assert result.exit_code == 0, result.output
    assert "Nothing left to erase" in result.output and "Nothing changed" in result.output
    assert _bytes(copy) == data and _snapshot(copy) == state
    again = _forget(copy, dry_run=True)
    assert not again.changed and len(again.previous) == 1


def test_an_interrupted_erasure_is_finished_by_the_next_run(copy, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(erasure, "rewrite_exports", crash)
    with pytest.raises(KeyboardInterrupt):
        _forget(copy)
    assert CODE_WORD.encode() in _exports(copy) and CODE_WORD.encode() in _bytes(copy)
    monkeypatch.undo()
    report = _forget(copy)
    assert not report.changed and report.exports_rewritten == [2, 3] and report.rebuilt is not None
    assert CODE_WORD.encode() not in _exports(copy) and CODE_WORD.encode() not in _bytes(copy)


def test_the_audit_row_refuses_a_reason_holding_the_id(copy):
    with pytest.raises(erasure.ErasureError, match="--reason contains the customer"):
        _forget(copy, reason=f"request from {CUSTOMER}")


def test_quarantine_records_are_matched_on_their_fields_and_mentions_are_reported(warehouse, data_dir):
    inbox = data_dir / "inbox" / "traces"
    inbox.mkdir(parents=True)
    lines = [
        json.dumps({"trace_id": "q1", "customer_id": 7781, "timestamp": "bad"}),  # a number, parsed
        '{"trace_id": "q2", "customer_id": "7781", "messages": [',  # cut short
        json.dumps({"trace_id": "q3", "timestamp": "bad", "messages": "given by id"}),  # by --trace-id
        "free text that mentions 7781 somewhere",  # no field to go by: reported, kept
        json.dumps({"trace_id": "q5", "customer_id": "77812", "timestamp": "bad"}),  # another customer
    ]
    (inbox / "bad.jsonl").write_text("\n".join(lines) + "\n")
    with connect(warehouse) as conn:
        assert ingest_paths(conn, [inbox]).quarantined == 5
        conn.execute("CREATE SCHEMA extra")  # a table erasure does not know: reported, never guessed at
        conn.execute("CREATE TABLE extra.notes AS SELECT 7781 AS customer_id")
    result = CliRunner().invoke(main, ["forget", "--customer-id", "7781", "--trace-id", "q3", "--json",
                                       "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["tables"]["raw.quarantine"] == 3
    assert any("bad.jsonl:4" in note and "mention" in note for note in report["not_erased"])
    assert any("bad.jsonl" in note and "input file" in note for note in report["not_erased"])
    assert any(note.startswith("extra.notes: 1 row(s)") for note in report["not_erased"])
    with connect(warehouse, read_only=True) as conn:
        assert [r[0] for r in conn.execute("SELECT line FROM raw.quarantine ORDER BY line").fetchall()] == [4, 5]
        assert conn.execute("SELECT trace_refs FROM privacy.erasures").fetchone()[0] == [
            keys.keyed_hash(keys.load_key(data_dir), "q3")]


def test_quarantined_records_of_other_sources_are_matched_on_their_user_fields(warehouse, data_dir):
    """A Langfuse record names its user in userId, an OTLP batch line in an enduser.id attribute of one
    of its spans: both are the customer's, as a contract record's customer_id is."""
    inbox = data_dir / "inbox" / "traces"
    inbox.mkdir(parents=True)
    (inbox / "langfuse.jsonl").write_text(
        json.dumps({"id": "lf-1", "timestamp": "not a time", "userId": "7781", "input": "q", "output": "a"}) + "\n"
        + json.dumps({"id": "lf-2", "timestamp": "not a time", "userId": "77812", "input": "q", "output": "a"}) + "\n")
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "startTimeUnixNano": "1772445600000000000", "attributes": [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
        {"key": "enduser.id", "value": {"stringValue": "7781"}},
        {"key": "gen_ai.input.messages", "value": {"stringValue": '[{"role": "user", "parts": [cut'}}]}
    (inbox / "otel.jsonl").write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    with connect(warehouse) as conn:
        assert ingest_paths(conn, [inbox], source_format="auto").quarantined == 3
    result = CliRunner().invoke(main, ["forget", "--customer-id", "7781", "--json", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tables"]["raw.quarantine"] == 2
    with connect(warehouse, read_only=True) as conn:
        assert conn.execute("SELECT source_file FROM raw.quarantine").fetchall() == [(str(inbox / "langfuse.jsonl"),)]


def test_forget_dry_run_on_the_command_line_lists_tables(warehouse, data_dir):
    result = CliRunner().invoke(main, ["forget", "--customer-id", "nobody", "--dry-run", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "nothing would change" in result.output


def test_the_runner_never_runs_or_judges_an_erased_row(copy):
    _forget(copy, reason="ticket PRIV-13")
    asked: list[str] = []

    def judge(row, rubric, reply):
        asked.append(row["row_id"])
        return False  # a judge failing the tombstone would reinstate it as a comeback

    with connect(copy.warehouse) as conn:
        [erased] = [r for (r,) in conn.execute("SELECT row_id FROM eval.eval_rows WHERE expected_behaviour = ?",
                                               [evalset.ERASED]).fetchall()]
        regression.run_regression(conn, lambda messages: "Please confirm first.", version=2, model_version="m",
                                  rubric_judge=judge)
        assert erased not in asked
        assert conn.execute("SELECT count(*) FROM regression.results WHERE row_id = ? AND model_version = 'm'",
                            [erased]).fetchone()[0] == 0


def test_forget_reaches_the_review_apps_side_store(copy):
    """A reviewer's comment and the free text of a web label on the customer's trace (the code word
    written there by a careless reviewer) go with the rest, from the SQLite file's bytes too."""
    from flywheel.core.labeling import review_store

    with connect(copy.warehouse, read_only=True) as conn:
        ref = conn.execute("SELECT trace_ref FROM scrub.anonymized_traces WHERE list_contains(reasons, 'guardrail_tripped') "
                           f"AND messages[1].content LIKE '%{CODE_WORD}%'").fetchone()[0]
        other = conn.execute(f"SELECT trace_ref FROM scrub.anonymized_traces WHERE messages[1].content NOT LIKE "
                             f"'%{CODE_WORD}%' LIMIT 1").fetchone()[0]
    side = review_store.path_for(copy.data_dir)
    with review_store.opened(side) as store:
        review_store.add_comment(store, ref, "ana", f"the customer said {CODE_WORD} twice")
        review_store.add_comment(store, other, "ana", "unrelated note stays")
        review_store.submit(store, labels.Label(ref, "not_a_bug", "ana", pii_ok=False, pii_issue_class="PERSON",
                                                pii_note=f"leaked {CODE_WORD}"))
        review_store.reserve(store, ref, "ben", minutes=10)
    dry = _forget(copy, dry_run=True, side_store=side)
    assert dry.tables["review.side_store"] == 4 and CODE_WORD.encode() in side.read_bytes()
    report = _forget(copy, side_store=side)
    assert report.tables["review.side_store"] == 4
    stored = side.read_bytes() + (Path(f"{side}-wal").read_bytes() if Path(f"{side}-wal").exists() else b"")
    assert CODE_WORD.encode() not in stored
    with review_store.opened(side) as store:
        assert review_store.comments(store, ref) == [] and review_store.reservation(store, ref) is None
        assert [c["body"] for c in review_store.comments(store, other)] == ["unrelated note stays"]
        assert [v["bucket"] for v in review_store.verdicts_of(store, ref)] == ["not_a_bug"]  # the verdict stays
