"""Objects out of export files, whatever their container: JSON Lines, one JSON document (a list of
records, or one pretty-printed object), CSV, Parquet; and which source a file holds."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flywheel.core.common.records import (NOT_UTF8, RecordsError, csv_rows, header_delimiter, parse_object,
                                          plain_parquet_value)
from flywheel.core.intake.sources import chatlog, langfuse, langsmith, phoenix
from flywheel.core.intake.sources.otlp import is_otlp
from flywheel.core.intake.sources.values import maybe_json

FORMATS = ("auto", "flywheel", "otel", "openinference", "langfuse", "langsmith", "openai-chat")
MAX_LINE_BYTES = 64 * 1024 * 1024  # an OTLP batch on one line: the OTLP spec's recommended body limit


class UnknownFormat(ValueError):
    pass


@dataclass
class Bad:
    """A record that is not a JSON object (or a row that is not one): why, and its text for the quarantine."""
    reason: str
    text: str = ""


def objects(path: Path) -> Iterator[tuple[int, dict | Bad]]:
    """(line, row or element number; the object, or the problem) for every record of the file."""
    suffix = kind(path)
    if suffix == ".parquet":
        yield from _parquet(path)
        return
    if suffix == ".csv":
        try:
            _, rows = csv_rows(path, by_line=True) if path.suffix.lower() != ".gz" else _csv_rows_gz(path)
        except RecordsError as exc:
            raise UnknownFormat(str(exc)) from None
        for number, row in rows:
            yield number, ({k: maybe_json(v) if v != "" else None for k, v in row.items()} if isinstance(row, dict)
                           else Bad(row))
        return
    data = read_bytes(path)
    try:
        text, broken = data.decode("utf-8-sig"), False
    except UnicodeDecodeError:  # bytes that are not UTF-8 somewhere: kept as lone surrogates, found by line below
        text, broken = data.decode("utf-8-sig", errors="surrogateescape"), True
    stripped = text.lstrip()
    if stripped.startswith("[") or (stripped.startswith("{") and "\n" in stripped.strip()):
        try:
            whole = json.loads(text)
        except (ValueError, RecursionError):
            whole = None
        if broken and isinstance(whole, (list, dict)):  # one JSON document: no record of it stands apart
            line = text.count("\n", 0, _NOT_UTF8.search(text).start()) + 1
            raise UnknownFormat(f"{path}: line {line}: not UTF-8 text, in a file that is one JSON document; "
                                "save it as UTF-8 and try again")
        if isinstance(whole, list):  # an API export: a list of records
            for i, item in enumerate(whole, 1):
                yield i, item if isinstance(item, dict) else Bad(f"element {i} is not a JSON object", json.dumps(item)[:2000])
            return
        if isinstance(whole, dict):
            items = page_items(whole)
            if items is not None:
                yield from _elements(items)
            else:
                yield 1, whole
            return
    one_line = "\n" not in stripped.rstrip()
    for number, line in enumerate(text.split("\n"), 1):  # a third of the time StringIO's lines took
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            yield number, Bad(f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB", line[:2000])
            continue
        line = line.rstrip("\r\n")  # else a line cut short is "wrong at column 1" of the line after it
        bad_byte = _NOT_UTF8.search(line) if broken else None
        if bad_byte:  # this record only, as the contract's reader does
            raw = line.encode("utf-8", errors="surrogateescape")
            at = len(line[:bad_byte.start()].encode("utf-8", errors="surrogateescape")) + 1
            yield number, Bad(f"not valid UTF-8 (byte {at})", raw[:2000].decode("utf-8", errors="replace"))
            continue
        found = parse_object(line)
        # An API page saved as it came (curl writes it on one line); only data and meta, as a record of
        # any source may have a field named data.
        items = page_items(found) if isinstance(found, dict) and set(found) <= PAGE_LINE_KEYS else None
        if items is not None:
            yield from _elements(items, None if one_line else number)
            continue
        yield number, found if isinstance(found, dict) else Bad(found, line[:2000])


PAGE_LINE_KEYS = {"data", "meta"}


def page_items(doc: dict) -> list | None:
    """The records of a paginated API response ({"data": [...], "meta": ...}), or None for any other object."""
    return doc["data"] if isinstance(doc.get("data"), list) and not is_otlp(doc) else None


def _elements(items: list, line: int | None = None) -> Iterator[tuple[int, dict | Bad]]:
    """A page's records, numbered by element (or all by the line holding them, when a file holds several)."""
    for i, item in enumerate(items, 1):
        yield line or i, item if isinstance(item, dict) else Bad(f"element {i} is not a JSON object")


# What surrogateescape makes of a byte that is not UTF-8.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def read_bytes(path: Path, limit: int = -1) -> bytes:
    """A file's bytes (its first `limit` when given), gunzipped when it is a .gz (Langfuse's blob export
    can compress); UnknownFormat, naming the file, for a .gz cut short or damaged."""
    if path.suffix.lower() != ".gz":
        with open(path, "rb") as fh:
            return fh.read(limit)
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(limit)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        why = "cut short" if isinstance(exc, EOFError) else "damaged"
        raise UnknownFormat(f"{path}: not a readable gzip file ({why}); copy or export it again") from None


def kind(path: Path) -> str:
    """The container of a file, .gz aside: .json, .jsonl, .csv, .parquet ..."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _csv_rows_gz(path: Path):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".csv") as tmp:
        tmp.write(read_bytes(path))
        tmp.flush()
        return csv_rows(tmp.name, by_line=True)


def _parquet(path: Path) -> Iterator[tuple[int, dict | str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnknownFormat(f"{path}: not a readable Parquet file: {exc}") from None
    row = 0
    for batch in parquet.iter_batches(batch_size=20_000):
        for values in batch.to_pylist():
            row += 1
            record = {k: plain_parquet_value(v) for k, v in values.items() if v is not None}
            not_text = next((k for k, v in record.items() if v is NOT_UTF8), None)
            yield row, (Bad(f'column "{not_text}" is not valid UTF-8') if not_text is not None
                        else {k: maybe_json(v) for k, v in record.items()})


def classify(record: dict) -> str | None:
    """Which source wrote this record, or None when it looks like none of them."""
    if is_otlp(record):
        return "openinference" if _openinference(record) else "otel"
    if phoenix.is_row(record):
        return "openinference"  # a row of Phoenix's spans dataframe
    if langsmith.is_run(record):
        return "langsmith"
    if langfuse.is_score(record) or langfuse.is_manifest(record):
        return "langfuse"
    if langfuse.is_observation(record) or langfuse.is_trace(record):
        return "langfuse"
    if {"trace_id", "timestamp", "messages"} <= set(record):
        return "flywheel"
    if chatlog.is_chat(record):
        return "openai-chat"
    return None


def _openinference(doc: dict) -> bool:
    text = json.dumps(doc)[:200_000]
    return "openinference.span.kind" in text or '"llm.input_messages.' in text


def _head(path: Path, sample: int) -> Iterator[dict]:
    """The first records of a file, reading only its beginning (a detection must not load a large file)."""
    suffix = kind(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            batch = next(pq.ParquetFile(path).iter_batches(batch_size=sample), None)
        except Exception as exc:  # noqa: BLE001 - any reason it cannot be read is a reason to say so
            raise UnknownFormat(f"{path}: not a readable Parquet file: {exc}") from None
        for values in batch.to_pylist() if batch is not None else []:
            yield {k: maybe_json(v) for k, v in values.items() if v is not None}
        return
    head = read_bytes(path, HEAD_BYTES)
    text = head.decode("utf-8", errors="ignore").removeprefix("\ufeff")  # a byte order mark is accepted
    if suffix == ".csv":
        import csv

        rows = csv.DictReader(io.StringIO(text), delimiter=header_delimiter(text))  # as the reader splits it
        for i, row in enumerate(rows):
            if i >= sample:
                break
            yield {k: maybe_json(v) for k, v in row.items() if k and v not in (None, "")}
        return
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON list: its first elements
        decoder, at = json.JSONDecoder(), stripped.index("[") + 1
        for _ in range(sample):
            while at < len(stripped) and stripped[at] in " \t\r\n,":
                at += 1
            try:
                item, at = decoder.raw_decode(stripped, at)
            except ValueError:
                return
            if isinstance(item, dict):
                yield item
        return
    if stripped.startswith("{") and "\n" in stripped.strip() and len(head) < HEAD_BYTES:
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None
        if isinstance(whole, dict):
            yield from _records_of(whole, sample)
            return
    if len(head) == HEAD_BYTES and "\n" not in text:  # one long first line (an OTLP batch): read it whole
        first = read_bytes(path, MAX_LINE_BYTES).split(b"\n", 1)[0]  # gunzipped too, as the rest was read
        text = first.decode("utf-8", errors="ignore").removeprefix("\ufeff")
    for line in text.splitlines()[:sample]:
        if line.strip():
            found = parse_object(line)
            if isinstance(found, dict):
                yield from _records_of(found, sample, one_line=True)


def _records_of(doc: dict, sample: int, one_line: bool = False) -> list[dict]:
    """The records an object holds for detection: a page's first ones, else the object itself (a line
    is a page only when it holds nothing but data and meta, as objects() reads it)."""
    items = page_items(doc) if not one_line or set(doc) <= PAGE_LINE_KEYS else None
    return [item for item in items[:sample] if isinstance(item, dict)] if items is not None else [doc]


HEAD_BYTES = 4 * 1024 * 1024


def is_empty(path: Path) -> bool:
    try:
        if path.stat().st_size == 0:
            return True
        if path.suffix.lower() in (".parquet", ".gz"):
            return False
        with open(path, "rb") as fh:
            return not fh.read(65536).strip()
    except OSError:
        return False


def holds_no_records(path: Path) -> bool:
    """An empty file, gzipped or not, or a JSON document of no records: `[]`, or an API page with an
    empty "data" list (a quiet window's export). Decided on its first bytes: a larger file holds some."""
    if is_empty(path):
        return True
    head = read_bytes(path, HEAD_BYTES + 1)
    if len(head) > HEAD_BYTES:
        return False
    text = head.decode("utf-8", errors="ignore").removeprefix("\ufeff").strip()
    if not text or not text.startswith(("[", "{")):
        return not text
    try:
        whole = json.loads(text)
    except ValueError:
        return False
    return whole == [] or (isinstance(whole, dict) and page_items(whole) == [])


def detect(path: Path, sample: int = 20) -> str:
    """The format of a file from its first records; UnknownFormat when none matches. A file that holds
    no record (holds_no_records) is flywheel's: it holds no record of any source."""
    if is_empty(path):
        return "flywheel"
    for record in _head(path, sample):
        found = classify(record)
        if found:
            return found
    if holds_no_records(path):
        return "flywheel"
    raise UnknownFormat(f"{path}: cannot tell which source wrote it (none of OTLP JSON, OpenInference, Langfuse, "
                        "LangSmith, OpenAI chat or flywheel's contract in its first records); give --format")
