"""Thirty-odd mistakes a new user makes, each answered by one clean error line (exit 1 or 2): never a
traceback, never a line of Dagster's own logging, never a wrong answer accepted."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from flywheel.cli import main

TRACE = {"trace_id": "t-1", "timestamp": "2026-03-03T10:00:00Z",
         "messages": [{"role": "user", "content": "Where is my refund?"}, {"role": "assistant", "content": "Soon."}]}
DAGSTER_LOG = re.compile(r" - dagster - |DagsterInvalidConfigError|dagster\._core|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d+ ", re.M)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data directory with traces and eval set v1, and the files the mistakes are made with."""
    root = tmp_path_factory.mktemp("mistakes")
    files = {
        "traces": root / "traces.jsonl", "starter": root / "starter.csv", "empty": root / "empty.csv",
        "latin1": root / "latin1.csv", "jsonl": root / "labels.jsonl", "bot": root / "mybot.py",
        "list": root / "list.json",
    }
    files["traces"].write_text(json.dumps(TRACE) + "\n")
    files["starter"].write_text("input,expected\nWhat is the refund window?,30 days\nCan I pay by card?,yes\n")
    files["empty"].write_text("")
    files["latin1"].write_bytes("input,expected\ncaf\xe9,oui\n".encode("latin-1"))
    files["jsonl"].write_text(json.dumps(TRACE) + "\n")
    files["bot"].write_text("def echo(messages):\n    return messages[-1]['content']\n")
    files["list"].write_text("[1, 2, 3]\n")
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not traces\n")
    data = root / "data"
    env = {"FLYWHEEL_DATA": str(data), "DAGSTER_HOME": str(data / "dagster"), "FLYWHEEL_SECRET": "test-secret"}
    runner = CliRunner(env=env)
    assert runner.invoke(main, ["ingest", str(files["traces"])]).exit_code == 0
    assert runner.invoke(main, ["evalset", "import", str(files["starter"])]).exit_code == 0
    return root, files, env


MISTAKES = [
    # dates, weeks, months, partitions
    ("sample", "--week", "2026-13-01"),
    ("sample", "--week", "16/11/2026"),
    ("sample", "--week", "2031-01-06"),
    ("sample", "--week", "2019-01-07"),
    ("run", "--week", "2026-02-30"),
    ("run", "--week", "2031-01-06"),
    ("run", "--month", "2026-13"),
    ("run", "--month", "May"),
    ("run",),
    ("run", "--week", "2026-03-02", "--month", "2026-03"),
    ("labels", "export", "--week", "notaweek", "--output", "{root}/q.csv"),
    ("incident", "open", "--from", "yesterday", "--to", "2026-03-04T00:00:00"),
    ("incident", "open", "--from", "2026-03-05T00:00:00", "--to", "2026-03-04T00:00:00"),
    # rates and limits out of range
    ("sample", "--random-rate", "5"),
    ("sample", "--random-rate", "-0.1"),
    ("gate", "--threshold", "1.5"),
    ("gate", "--adversarial-threshold", "-1"),
    # missing and unwritable paths
    ("labels", "export", "--output", "{root}/no/such/folder/q.csv"),
    ("labels", "export", "--output", "{root}"),
    ("scrub", "--input", "{root}/missing.jsonl", "--output", "{root}/out.jsonl"),
    ("scrub", "--input", "{traces}", "--output", "{root}/no/such/folder/out.jsonl"),
    ("evalset", "export", "--output", "{root}/no/such/folder/v1.jsonl"),
    ("ingest", "{root}/missing.jsonl"),
    ("evalset", "import", "{root}/missing.csv"),
    ("results", "import", "{root}/missing.jsonl"),
    ("labels", "import", "{root}/missing.csv"),
    ("status", "--data-dir", "{root}/typo"),
    ("gate", "--data-dir", "{root}/typo"),
    ("lookup", "--customer-id", "c-1", "--data-dir", "{root}/typo"),
    ("evalset", "versions", "--data-dir", "{root}/typo"),
    ("review", "--data-dir", "{root}/typo"),
    # empty and wrong-format files
    ("evalset", "import", "{empty}"),
    ("evalset", "import", "{latin1}"),
    ("evalset", "import", "{list}"),
    ("labels", "import", "{jsonl}"),
    ("labels", "import", "{empty}"),
    # unknown versions, model versions and codes
    ("evalset", "export", "--version", "42", "--output", "{root}/v42.jsonl"),
    ("evalset", "diff", "1", "7"),
    ("gate", "--version", "42"),
    ("gate", "--model-version", "never-ran"),
    ("regress", "--target", "mybot:echo", "--version", "42"),
    ("taxonomy", "show", "no_such_code"),
    # targets that cannot be imported
    ("regress", "--target", "no_such_module:fn"),
    ("regress", "--target", "mybot:no_such_function"),
    ("regress", "--target", "not-a-spec"),
    # harnesses
    ("results", "import", "--format", "inspect", "{empty}"),
    ("results", "import", "--format", "promptfoo", "{list}"),
    ("evalset", "export", "--format", "promptfoo", "--output", "{root}/no/such/folder/tests.jsonl"),
    ("gate", "--junit", "{root}/no/such/folder/junit.xml"),
    # trace sources
    ("ingest", "--format", "zipkin", "{traces}"),
    ("ingest", "--timestamp", "yesterday", "{traces}"),
    ("ingest", "--dry-run", "{root}/missing.jsonl"),
    ("ingest", "{root}/notes"),  # a folder without a trace file
    # the review app and its reviewers
    ("serve", "--data-dir", "{root}/typo"),
    ("serve", "--port", "70000"),
    ("serve", "--reviewers-per-trace", "3"),
    ("users", "add", "two words"),
    ("users", "reset", "nobody"),
    ("users", "disable", "nobody"),
    ("users", "list", "--data-dir", "{root}/typo"),
]


@pytest.mark.parametrize("args", MISTAKES, ids=[" ".join(a) for a in MISTAKES])
def test_a_mistake_gets_one_clean_error_line(world, args, monkeypatch):
    root, files, env = world
    monkeypatch.chdir(root)  # `regress --target mybot:...` is typed in the folder holding mybot.py
    argv = [a.format(root=root, **{k: str(v) for k, v in files.items()}) for a in args]
    result = CliRunner(env=env).invoke(main, argv)
    output = result.output
    assert result.exit_code in (1, 2), f"exit {result.exit_code}: {output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output and not DAGSTER_LOG.search(output), output
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 or (result.exit_code == 2 and "No results to judge" in output), output


def test_there_are_at_least_thirty_mistakes():
    assert len(MISTAKES) >= 30
