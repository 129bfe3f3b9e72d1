"""Issue 18, item 2: nothing raw outside `raw`, by every door a person can read.

A short demo week plus hostile records (PII in every field of the trace contract, in nested and
unknown metadata, and in malformed lines) go through the weekly loop as Dagster runs recorded in the
data directory's instance. Then every planted value is looked for, plain, lower-cased and (for
numbers) as bare digits, in:

* every table of the warehouse outside the `raw` schema, every column (the sample holds keyed trace
  references; the raw ids behind them live in raw.sample_ids);
* every file in the data directory that is not raw input or the warehouse itself: eval set exports,
  the labels export CSV, and everything under DAGSTER_HOME (run, index and schedule SQLite databases,
  their WAL files, compute logs), read as bytes.

The planted values the conversation text carries are ones the fake scrubber catches (emails, long digit
runs), so the test runs in seconds; the routing fields and ids get values no scrubber ever sees.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common.db import connect
from flywheel.definitions import build_definitions
from flywheel.defs.runner import run_job
from flywheel.resources.embedder import FakeEmbedderResource
from flywheel.resources.scrubber import FakeScrubberResource
from flywheel_tests.conftest import demo_in_data_dir

WEEK = "2026-03-02"

# Every value below must appear nowhere a person can read outside `raw`.
TRACE_ID = "jane.doe@example.com#session-1"
CUSTOMER_ID = "ivan.customer@example.com"
COHORT = "vip carol.white@example.net"
INTENT = "cancel for bob.builder@example.org"
MODEL_VERSION = "gpt-x card 4929381726354411"
NESTED_EMAIL = "dave.nested@example.com"
NESTED_PHONE = "+1 415 555 0199"
UNKNOWN_EMAIL = "erin.unknown@example.com"
UNKNOWN_ACCOUNT = "99887766554433"
MESSAGE_EMAIL = "frank.msg@example.com"
BAD_TIMESTAMP = "Grace Hopper grace.hopper@example.com"
BAD_ROLE = "+1 (212) 555-0147"
BAD_JUDGE_SCORE = "4539 1488 0343 6467"
BAD_TRACE_ID = "heidi.malformed@example.com"
SHORT_TRACE_ID = "oscar.short@example.com"
CSV_TRACE_ID = "zed.csv@example.com"
CSV_TEXT_EMAIL = "kim.csv@example.com"
BAD_UTF8_EMAIL = "lee.utf8@example.com"

PLANTED = [TRACE_ID, CUSTOMER_ID, COHORT, INTENT, MODEL_VERSION, NESTED_EMAIL, NESTED_PHONE, UNKNOWN_EMAIL,
           UNKNOWN_ACCOUNT, MESSAGE_EMAIL, BAD_TIMESTAMP, BAD_ROLE, BAD_JUDGE_SCORE, BAD_TRACE_ID, SHORT_TRACE_ID,
           CSV_TRACE_ID, CSV_TEXT_EMAIL, BAD_UTF8_EMAIL]
# Parts of a planted value that are identifying on their own.
PLANTED += ["jane.doe", "carol.white", "bob.builder", "grace.hopper", "Grace Hopper", "4929381726354411"]


def needles(values: list[str]) -> set[str]:
    """Each value plain and lower-cased, and the digits of any value holding a long digit run."""
    out: set[str] = set()
    for v in values:
        out |= {v, v.lower()}
        digits = re.sub(r"\D", "", v)
        if len(digits) >= 7:
            out.add(digits)
    return out


def hostile_lines() -> list[str]:
    messages = [{"role": "user", "content": f"Please write to me at {MESSAGE_EMAIL} about my order"},
                {"role": "assistant", "content": "Sure, let me look into it."}]
    good = {
        "trace_id": TRACE_ID, "timestamp": "2026-03-03T09:00:00Z", "messages": messages,
        "customer_id": CUSTOMER_ID, "cohort": COHORT, "intent": INTENT, "model_version": MODEL_VERSION,
        "judge_score": 0.5, "turns": 2, "guardrail_tripped": True, "retried": True, "handed_off": True,
        "metadata": {"user": {"email": NESTED_EMAIL, "phone": NESTED_PHONE}, "tags": [NESTED_EMAIL]},
        "customer_email": UNKNOWN_EMAIL, "account_number": UNKNOWN_ACCOUNT,
    }
    # Routing fields alone, on a trace whose id is short (so an id is not what gives it away).
    second = {**good, "trace_id": SHORT_TRACE_ID, "timestamp": "2026-03-04T11:00:00Z", "customer_id": CUSTOMER_ID}
    bad_timestamp = {**good, "trace_id": BAD_TRACE_ID, "timestamp": BAD_TIMESTAMP}
    bad_role = {**good, "trace_id": BAD_TRACE_ID + "-2",
                "messages": [{"role": BAD_ROLE, "content": "hello"}]}
    bad_score = {**good, "trace_id": BAD_TRACE_ID + "-3", "judge_score": BAD_JUDGE_SCORE}
    return [json.dumps(r) for r in (good, second, bad_timestamp, bad_role, bad_score)] + [
        f'{{"trace_id": "{BAD_TRACE_ID}-4", "customer_id": "{CUSTOMER_ID}", not json',  # a torn line
    ]


def hostile_csv() -> str:
    """A CSV export with a bad timestamp and a messages cell that is not JSON, each holding PII."""
    messages = '"[{""role"": ""user"", ""content"": ""hi""}]"'
    return ("trace_id,timestamp,messages,judge_score,intent\n"
            f"{CSV_TRACE_ID},{BAD_TIMESTAMP},{messages},{BAD_JUDGE_SCORE},billing\n"
            f"{CSV_TRACE_ID}-2,2026-03-03T10:00:00Z,\"not json, write to {CSV_TEXT_EMAIL}\",0.5,billing\n")


def bad_utf8_line() -> bytes:
    """A line that is not UTF-8, with an email beside the broken byte."""
    return (b'{"trace_id": "t-utf8", "timestamp": "2026-03-03T10:00:00Z", "messages": [{"role": "user", '
            b'"content": "\xff ' + BAD_UTF8_EMAIL.encode() + b'"}]}\n')


def file_hits(root: Path, skip: set[Path], found: set[str]) -> list[str]:
    """'<file>: <value>' for every planted value in the bytes of a file under root."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path in skip or any(s in path.parents for s in skip):
            continue
        data = path.read_bytes()
        lowered = data.lower()
        for needle in sorted(found):
            n = needle.encode("utf-8")
            if n in data or n.lower() in lowered:
                hits.append(f"{path.relative_to(root)}: {needle!r}")
    return hits


def table_texts(conn) -> list[tuple[str, str]]:
    """(schema.table, row as text) for every row of every table outside `raw`."""
    tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                          "WHERE table_schema <> 'raw' AND table_type = 'BASE TABLE'").fetchall()
    out = []
    for schema, table in tables:
        rows = conn.execute(f'SELECT CAST(t AS VARCHAR) FROM "{schema}"."{table}" AS t').fetchall()
        out += [(f"{schema}.{table}", r[0]) for r in rows]
    return out


def table_hits(conn, values: set[str]) -> list[str]:
    """'<schema.table>: <value>' for every planted value in a table outside `raw`."""
    hits = set()
    for where, text in table_texts(conn):
        lowered = text.lower()
        hits |= {f"{where}: {needle!r}" for needle in values if needle in text or needle.lower() in lowered}
    return sorted(hits)


@pytest.fixture
def hostile_week(data_dir, tmp_path):
    paths, _ = demo_in_data_dir(data_dir, tmp_path, weeks=1, traces_per_day=8, seed=7)
    (paths.inbox_traces / "hostile.jsonl").write_text("\n".join(hostile_lines()) + "\n", encoding="utf-8")
    (paths.inbox_traces / "hostile.csv").write_text(hostile_csv(), encoding="utf-8")
    (paths.inbox_traces / "hostile-bytes.jsonl").write_bytes(bad_utf8_line())
    scrubber = FakeScrubberResource(vocabulary_path=str(paths.customer_vocabulary))
    defs = build_definitions(str(data_dir), scrubber=scrubber, embedder=FakeEmbedderResource())
    # INFO, so the run's every log line reaches the event log (Dagster stores them all regardless).
    result = run_job(defs, "weekly_loop_job", paths, partition_key=WEEK, log_level="INFO",
                     raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    exports = data_dir / "exports"
    exports.mkdir(exist_ok=True)
    out = CliRunner().invoke(main, ["labels", "export", "--output", str(exports / "labels.csv")])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(main, ["evalset", "export", "--format", "csv", "--output", str(exports / "eval.csv")])
    assert out.exit_code == 0, out.output
    return paths


def test_the_hostile_records_went_through_the_loop(hostile_week):
    """The test below means something only if the hostile traces were sampled, scrubbed and queued,
    and the malformed lines quarantined."""
    with connect(hostile_week.warehouse) as conn:
        quarantined = {Path(f).name: n for f, n in conn.execute("SELECT file_name, quarantined FROM raw.ingested_files")
                       .fetchall() if Path(f).name.startswith("hostile")}
        hostile_sampled = conn.execute(
            "SELECT count(*) FROM scrub.anonymized_traces WHERE list_contains(reasons, 'guardrail_tripped') "
            "AND turns = 2 AND judge_score = 0.5").fetchone()[0]
        queued = conn.execute("SELECT count(*) FROM label.review_queue").fetchone()[0]
        shown = conn.execute("SELECT list(DISTINCT intent), list(DISTINCT cohort), list(DISTINCT model_version) "
                             "FROM scrub.anonymized_traces").fetchone()
    assert quarantined == {"hostile.jsonl": 4, "hostile.csv": 2, "hostile-bytes.jsonl": 1}, quarantined
    assert hostile_sampled >= 2 and queued >= 2
    intents, cohorts, models = (set(v) for v in shown)
    assert {"[REDACTED_INTENT]", "[REDACTED_COHORT]", "[REDACTED_MODEL_VERSION]"} <= intents | cohorts | models
    # The demo's routing fields are ordinary labels: they pass unchanged.
    assert {"smb", "enterprise"} & cohorts and "relay-assist-2026.03" in models and len(intents) >= 3
    assert (hostile_week.data_dir / "exports" / "labels.csv").read_text().count("\n") >= 3


def test_no_planted_value_outside_raw(hostile_week):
    values = needles(PLANTED)
    with connect(hostile_week.warehouse) as conn:
        hits = [f"table {h}" for h in table_hits(conn, values)]
    data_dir = hostile_week.data_dir
    # Raw input and the warehouse (whose `raw` schema may hold them; its other tables were read above).
    skip = {hostile_week.inbox_traces, hostile_week.warehouse, Path(f"{hostile_week.warehouse}.wal"),
            data_dir / "inbox"}
    dagster_files = {p.name for p in (data_dir / "dagster").rglob("*") if p.is_file()}
    assert "index.db" in dagster_files and any(n.endswith(".db") and n != "index.db" for n in dagster_files), \
        "the run's event log is where the search below looks"
    hits += [f"file {h}" for h in file_hits(data_dir, skip, values)]
    assert not hits, "planted values found outside raw:\n" + "\n".join(hits)
