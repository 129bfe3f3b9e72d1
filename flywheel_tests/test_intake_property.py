"""Every record accounted for, in every format: random files with random bad records at random
places (and blank lines, duplicate ids, byte order marks, line endings, multi-line CSV cells,
delimiters, lines longer than a read block) must load exactly the good records, count the repeats
as duplicates and quarantine the bad ones on the lines they are on.

hypothesis is not installed: a seeded generator, many iterations; a failure prints its seed."""

import csv
import io
import json
import random
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.core.common.db import open_connection
from flywheel.core.intake import csv_records
from flywheel.core.intake import ingest as intake
from flywheel.core.intake.ingest import ingest_paths
from flywheel.settings import IntakeSettings

LIMIT = 4000  # max_line_bytes: good records stay well under it, oversized ones go past twice it
ITERATIONS = 60  # files per format


@dataclass
class Expected:
    records: int = 0
    loaded: dict[str, int] = field(default_factory=dict)  # trace id -> line it was loaded from
    duplicates: int = 0
    bad: dict[int, str] = field(default_factory=dict)  # line -> a word its reason must hold

    def good(self, trace_id: str, line: int) -> None:
        self.records += 1
        if trace_id in self.loaded:
            self.duplicates += 1
        else:
            self.loaded[trace_id] = line

    def quarantined(self, line: int, word: str) -> None:
        self.records += 1
        self.bad[line] = word


def _messages(rng: random.Random, long: bool = False) -> list[dict]:
    words = rng.randint(80, 200) if long else rng.randint(1, 12)  # long: past a read block
    pieces = ["refund", "café", "\u2603", 'say "hi"', "a,b", "x;y", "t\tab", "p|q"]
    text = " ".join(rng.choice(pieces) for _ in range(words))
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]


def _fields(rng: random.Random, trace_id: str, long: bool = False) -> dict:
    record = {"trace_id": trace_id, "timestamp": "2026-03-02T10:00:00Z", "messages": _messages(rng, long)}
    if rng.random() < 0.5:
        record["judge_score"] = round(rng.random(), 3)
    if rng.random() < 0.3:
        record["intent"] = rng.choice(["billing", "two\nlines", 'with "quotes"', "semi;colon"])
    return record


def _next_id(rng: random.Random, prefix: str, used: list[str]) -> str:
    if used and rng.random() < 0.15:
        return rng.choice(used)  # a repeat: the first one wins
    used.append(f"{prefix}-{len(used)}")
    return used[-1]


# ---------------------------------------------------------------------------------------------
# JSON Lines
# ---------------------------------------------------------------------------------------------

JSONL_BAD = {
    "not json": (lambda rng, r: json.dumps(r)[:-3].encode(), "JSON"),
    "missing field": (lambda rng, r: json.dumps({k: v for k, v in r.items() if k != "messages"}).encode(), "messages"),
    "bad timestamp": (lambda rng, r: json.dumps({**r, "timestamp": "soon"}).encode(), "timestamp"),
    "not utf-8": (lambda rng, r: json.dumps(r).encode().replace(b'"user"', b'"us\xe9r"', 1), "UTF-8"),
    "oversized": (lambda rng, r: json.dumps({**r, "metadata": {"pad": "p" * (2 * LIMIT)}}).encode(), "over the limit"),
    "not an object": (lambda rng, r: b"[1, 2]", "object"),
}


def _jsonl_file(rng: random.Random, prefix: str) -> tuple[bytes, Expected]:
    expected, used, out = Expected(), [], []
    line = 0
    for _ in range(rng.randint(1, 40)):
        line += 1
        ending = rng.choice([b"\n", b"\n", b"\r\n"])
        if rng.random() < 0.1:
            out.append(rng.choice([b"", b"   ", b"\t"]) + ending)
            continue
        if rng.random() < 0.3:
            kind = rng.choice(list(JSONL_BAD))
            make, word = JSONL_BAD[kind]
            out.append(make(rng, _fields(rng, f"{prefix}-bad")) + ending)
            expected.quarantined(line, word)
            continue
        trace_id = _next_id(rng, prefix, used)
        record = _fields(rng, trace_id, long=rng.random() < 0.1)
        out.append(json.dumps(record, ensure_ascii=rng.random() < 0.5).encode() + ending)
        expected.good(trace_id, line)
    data = b"".join(out)
    if rng.random() < 0.3:
        data = data.rstrip(b"\r\n")  # no newline at the end
    if rng.random() < 0.2:
        data = csv_records.BOM + data
    return data, expected


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

HEADER = ["trace_id", "timestamp", "messages", "judge_score", "intent"]


def _csv_cells(record: dict) -> list[str]:
    return [record["trace_id"], record["timestamp"], json.dumps(record["messages"], ensure_ascii=False),
            str(record.get("judge_score", "")), record.get("intent", "")]


def _csv_bad(rng: random.Random, record: dict, delimiter: str) -> tuple[list[str], bytes | None, bytes | None, str]:
    """(cells, marker, replacement, word): the marker, when given, is replaced in the written bytes."""
    cells = _csv_cells(record)
    kind = rng.choice(["cells", "json", "score", "utf-8", "oversized", "oversized lines", "carriage return"])
    if kind == "cells":
        return cells[:2], None, None, "cells"
    if kind == "json":
        cells[2] = cells[2][:-2]
        return cells, None, None, 'column "messages"'
    if kind == "score":
        cells[3] = "7"
        return cells, None, None, "judge_score"
    if kind == "utf-8":
        cells[4] = "MARKER"
        return cells, b"MARKER", b"caf\xe9", "UTF-8"
    if kind == "oversized":
        cells[4] = 'a "big" one ' + "b" * (2 * LIMIT) + delimiter
        return cells, None, None, "over the limit"
    if kind == "oversized lines":
        cells[4] = ("c" * 200 + '"\n') * (2 * LIMIT // 200)
        return cells, None, None, "over the limit"
    cells[4] = "crMARKERcr"  # unquoted, so the carriage return is inside an unquoted cell
    return cells, b"MARKER", b"\r", "carriage return"


def _csv_line(cells: list[str], delimiter: str, ending: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=ending).writerow(cells)
    return buffer.getvalue()


def _csv_file(rng: random.Random, prefix: str) -> tuple[bytes, Expected]:
    delimiter = rng.choice([",", ";", "\t", "|"])
    ending = rng.choice(["\n", "\r\n"])
    expected, used = Expected(), []
    out = [_csv_line(HEADER, delimiter, ending).encode()]
    line = 2
    for _ in range(rng.randint(0, 40)):
        if rng.random() < 0.1:
            text = rng.choice(["", "  ", delimiter * 4]) + ending
            out.append(text.encode())
            line += text.count("\n")
            continue
        marker = replacement = None
        if rng.random() < 0.3:
            cells, marker, replacement, word = _csv_bad(rng, _fields(rng, f"{prefix}-bad"), delimiter)
            expected.quarantined(line, word)
        else:
            trace_id = _next_id(rng, prefix, used)
            cells = _csv_cells(_fields(rng, trace_id, long=rng.random() < 0.1))
            expected.good(trace_id, line)
        text = _csv_line(cells, delimiter, ending)
        data = text.encode()
        if marker:
            data = data.replace(marker, replacement)
        out.append(data)
        line += text.count("\n")
    data = b"".join(out)
    if rng.random() < 0.3:
        data = data.rstrip(b"\r\n")
    if rng.random() < 0.2:
        data = csv_records.BOM + data
    return data, expected


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------


def _parquet_file(rng: random.Random, prefix: str, path) -> Expected:
    expected, used = Expected(), []
    columns = {"trace_id": [], "timestamp": [], "messages": [], "judge_score": [], "intent": []}
    for row in range(1, rng.randint(1, 40) + 1):
        record = {"judge_score": None, "intent": None}
        if rng.random() < 0.3:
            record.update(_fields(rng, f"{prefix}-bad"))
            record["messages"] = json.dumps(record["messages"])
            kind = rng.choice(["timestamp", "json", "utf-8", "score", "id", "oversized"])
            word = {"timestamp": "timestamp", "json": 'column "messages"', "utf-8": "UTF-8", "score": "judge_score",
                    "id": "trace_id", "oversized": "over the limit"}[kind]
            if kind == "timestamp":
                record["timestamp"] = "later"
            elif kind == "json":
                record["messages"] = record["messages"][:-1]
            elif kind == "utf-8":
                record["intent"] = b"caf\xe9"
            elif kind == "score":
                record["judge_score"] = 3.5
            elif kind == "id":
                record["trace_id"] = None
            else:
                record["intent"] = "o" * (2 * LIMIT)
            expected.quarantined(row, word)
        else:
            trace_id = _next_id(rng, prefix, used)
            record.update(_fields(rng, trace_id))
            record["messages"] = json.dumps(record["messages"])
            expected.good(trace_id, row)
        for name in columns:
            value = record.get(name)
            columns[name].append(value.encode() if name == "intent" and isinstance(value, str) else value)
    table = pa.table({
        **{name: pa.array(columns[name], pa.string()) for name in ("trace_id", "timestamp", "messages")},
        "judge_score": pa.array(columns["judge_score"], pa.float64()),
        "intent": pa.array(columns["intent"], pa.binary()).view(pa.string()),  # Parquet does not check UTF-8
    })
    pq.write_table(table, path, row_group_size=rng.choice([7, 1000]))
    return expected


# ---------------------------------------------------------------------------------------------


FILES_PER_INGEST = 5  # loaded together, so files also share batches


def _check(conn, files: list[tuple], seeds: list[int]) -> None:
    """`files` are (path, expected), ingested in one call; every file must add up on its own."""
    report = ingest_paths(conn, [path for path, _ in files], IntakeSettings(max_line_bytes=LIMIT, chunk_records=16))
    assert report.errors == [], f"seeds {seeds}"
    results = {r.file: r for r in report.files}
    for (path, expected), seed in zip(files, seeds):
        context = f"seed {seed}: {path.name}"
        result = results[str(path)]
        assert result.ingested + result.duplicates + result.quarantined == expected.records, context
        assert (result.ingested, result.duplicates, result.quarantined) == (
            len(expected.loaded), expected.duplicates, len(expected.bad)), context
        named = {q["line"]: q["reason"] for q in report.quarantine if q["file"] == str(path)}
        assert sorted(named) == sorted(expected.bad), context
        for line, word in expected.bad.items():
            assert word in named[line], f"{context}: line {line}: {named[line]!r} should say {word!r}"
        rows = conn.execute("SELECT trace_id, source_line FROM raw.traces WHERE source_file = ?", [str(path)])
        rows = rows.fetchall()
        assert dict(rows) == expected.loaded and len(rows) == len(expected.loaded), context


@pytest.fixture
def memory_conn():
    """An in-memory warehouse: the same queries, without a checkpoint to disk per ingest."""
    conn = open_connection(":memory:")
    yield conn
    conn.close()


def _random_file(kind: str, seed: int, tmp_path) -> tuple:
    rng = random.Random(f"{kind}-{seed}")
    path = tmp_path / f"f{seed}.{kind}"
    prefix = f"{kind}{seed}"
    if kind == "parquet":
        return path, _parquet_file(rng, prefix, path)
    data, expected = _jsonl_file(rng, prefix) if kind == "jsonl" else _csv_file(rng, prefix)
    path.write_bytes(data)
    return path, expected


@pytest.mark.parametrize("kind", ["jsonl", "csv", "parquet"])
def test_every_record_is_loaded_a_duplicate_or_quarantined_on_its_own_line(memory_conn, tmp_path, monkeypatch, kind):
    # Small reads, so that records cross read blocks and long lines are read in pieces.
    monkeypatch.setattr(intake, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(csv_records, "PIECE_BYTES", 512)
    for first in range(0, ITERATIONS, FILES_PER_INGEST):
        seeds = list(range(first, first + FILES_PER_INGEST))
        _check(memory_conn, [_random_file(kind, seed, tmp_path) for seed in seeds], seeds)
