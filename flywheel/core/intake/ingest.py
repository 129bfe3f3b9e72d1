"""Trace intake: files in, valid traces to raw.traces, every bad record to raw.quarantine.

JSON Lines, Parquet and CSV files are turned into chunks of (line, text) records. Files are loaded
in batches, one transaction each. The records of a whole batch stream through one fast SQL check
(flywheel.core.intake.validation.acceptance_sql), which inserts the valid ones with new trace ids straight
into raw.traces. A file the fast statement did not load completely is read again for the rest (bad
records, ids loaded before, blank lines), which the reference query names the fault of. Nothing is
dropped silently: a record is loaded, counted as a duplicate of a trace already loaded, or
quarantined with its file, line and reason. Re-ingesting a file is idempotent, and a file is loaded
all or nothing.

Nothing is assumed either: each reader checks that it read its whole file, and at the end of each
file loaded + duplicates + quarantined must equal the records its first reading counted; a file that
does not add up is an error for that file. Line numbers are physical lines (JSON Lines; CSV: the line
a record starts on, the header being line 1) or row numbers from 1 (Parquet). Every ingest starts by
reconciling the manifest with the rows a torn commit may have left (flywheel.core.intake.manifest).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flywheel.core.common import clock, lake
from flywheel.core.common.db import rollback_quietly, setting
from flywheel.core.common.records import NOT_UTF8, plain_parquet_value
from flywheel.contracts import TRACE_FIELDS, trace_table_columns
from flywheel.core.intake import manifest
from flywheel.core.intake.csv_records import BOM, CsvHeaderError, CsvRecord, read_csv_records
from flywheel.core.intake.validation import acceptance_sql, validation_sql
from flywheel.settings import IntakeSettings

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".csv": "csv"}
BLOCK_BYTES = 32 * 1024 * 1024
HASH_BUFFER_BYTES = 8 * 1024 * 1024
EXCERPT_BYTES = 4096
# Kept in memory for the report; all of them are in raw.quarantine whatever this says.
MAX_REPORTED = 100_000


class UnreadableFile(Exception):
    """The file as a whole cannot be read (missing, no permission, not Parquet...)."""


@dataclass
class Rejected:
    line: int
    reason: str
    record: str


@dataclass
class Chunk:
    """Records of one file, ready for the validation query, plus those rejected before parsing."""

    table: pa.Table  # line: int64, text: large_string
    rejected: list[Rejected] = field(default_factory=list)
    blank: int = 0  # rows of the table that are blank lines: read, but not records


@dataclass
class FileResult:
    file: str
    sha256: str = ""
    ingested: int = 0
    duplicates: int = 0
    quarantined: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    files: list[FileResult] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    skipped_files: int = 0  # already in the manifest with the same content
    formats: dict[str, str] = field(default_factory=dict)  # file -> the source it was read as (not flywheel's)
    skipped_spans: Counter = field(default_factory=Counter)  # reason -> spans or runs that are not LLM calls
    mapped: Counter = field(default_factory=Counter)  # "field <- source" -> traces
    # Rows an interrupted ingest left without their manifest row, given one (see manifest.reconcile).
    recovered: list[manifest.RecoveredBatch] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        return sum(f.ingested for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def errors(self) -> list[dict]:
        return [{"file": f.file, "error": f.error} for f in self.files if f.error]

    @property
    def quarantine_rate(self) -> float:
        seen = self.ingested + self.duplicates + self.quarantined
        return self.quarantined / seen if seen else 0.0

    def to_json(self) -> dict:
        return {
            "ingested": self.ingested,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "quarantine": self.quarantine,
            "errors": self.errors,
            "formats": self.formats,
            "skipped_spans": dict(self.skipped_spans),
            "mapped": dict(self.mapped),
        }


# ---------------------------------------------------------------------------------------------
# Warehouse tables
# ---------------------------------------------------------------------------------------------


def ensure_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in trace_table_columns(on_lake=lake.on_lake(conn)))
    conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(f"CREATE TABLE IF NOT EXISTS raw.traces ({columns})")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS raw.quarantine (
             source_file VARCHAR, source_sha256 VARCHAR, line BIGINT, reason VARCHAR,
             record VARCHAR, quarantined_at TIMESTAMP)"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS raw.ingested_files (
             file_name VARCHAR, sha256 VARCHAR, size_bytes BIGINT, ingested BIGINT,
             duplicates BIGINT, quarantined BIGINT, ingested_at TIMESTAMP)"""
    )


# ---------------------------------------------------------------------------------------------
# Readers: every format becomes chunks of (line, text)
# ---------------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    # One reused buffer: reading into fresh bytes objects costs as much as the hashing.
    buffer = memoryview(bytearray(HASH_BUFFER_BYTES))
    try:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buffer):
                digest.update(buffer[:n])
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _lines_table(data: bytes, first_line: int) -> Chunk:
    """Zero-copy split of a block of whole lines into an Arrow (line, text) table."""
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10) + 1
    if len(data) and data[-1] != 10:
        ends = np.append(ends, len(data))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    n = len(ends)
    lines = pa.array(np.arange(first_line, first_line + n, dtype=np.int64))
    raw = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        text = raw.cast(pa.large_string())
    except pa.ArrowInvalid:
        return _lines_table_slow(raw, first_line)
    return Chunk(_batched(pa.table({"line": lines, "text": text})), blank=_blank_lines(data, offsets))


# What the validation queries skip as a blank line (validation._NOT_BLANK), counted here so that
# every line read is accounted for: the length test spares looking at any but short lines.
BLANK_MAX_BYTES = 64
BLANK_BYTES = b" \t\r\n"


def _is_blank(line: bytes) -> bool:
    return len(line) <= BLANK_MAX_BYTES and not line.strip(BLANK_BYTES)


def _blank_lines(data, offsets: np.ndarray) -> int:
    short = np.flatnonzero(np.diff(offsets) <= BLANK_MAX_BYTES)
    return sum(_is_blank(bytes(data[offsets[i]:offsets[i + 1]])) for i in short)


def _lines_table_slow(raw: pa.LargeBinaryArray, first_line: int) -> Chunk:
    """The block holds bytes that are not UTF-8: find those lines one by one."""
    good_lines, good_text, rejected, blank = [], [], [], 0
    for i, value in enumerate(raw.to_pylist()):
        try:
            good_text.append(value.decode("utf-8"))
            good_lines.append(first_line + i)
            blank += _is_blank(value)
        except UnicodeDecodeError as exc:
            rejected.append(
                Rejected(first_line + i, f"not valid UTF-8 (byte {exc.start})", value[:EXCERPT_BYTES].decode("utf-8", "replace"))
            )
    table = pa.table({"line": pa.array(good_lines, pa.int64()), "text": pa.array(good_text, pa.large_string())})
    return Chunk(_batched(table), rejected, blank)


def _batched(table: pa.Table) -> pa.Table:
    # Several record batches let DuckDB scan the chunk on every core.
    return pa.Table.from_batches(table.to_batches(max_chunksize=2_048), schema=table.schema)


def read_jsonl(path: Path, settings: IntakeSettings) -> Iterator[Chunk]:
    """Blocks of whole lines. Each block is one read, handed to Arrow without a copy; the partial line
    at its end is read again with the next block rather than copied over. A line over the size limit
    is never held whole. A byte order mark at the start of the file is not part of the first line."""
    line_no = 1
    with open(path, "rb") as fh:
        file_size = os.fstat(fh.fileno()).st_size
        if fh.read(len(BOM)) != BOM:
            fh.seek(0)
        while buffer := fh.read(BLOCK_BYTES):
            size = len(buffer)
            if size == BLOCK_BYTES:  # more may follow: end the block at its last newline
                cut = buffer.rfind(b"\n")
                if cut == -1:
                    yield _long_line(fh, buffer[:EXCERPT_BYTES], line_no, settings.max_line_bytes)
                    line_no += 1
                    continue
                fh.seek(cut + 1 - size, 1)
                size = cut + 1
            chunk = _lines_table(memoryview(buffer)[:size], line_no)
            line_no += chunk.table.num_rows + len(chunk.rejected)
            yield chunk
        _check_read_to_end(fh, file_size, path)


def _check_read_to_end(fh, size: int, path: Path) -> None:
    """Every byte was read: a reader that stopped early would lose the records after it unseen."""
    at = fh.tell()
    if at != size:
        raise UnreadableFile(f"{path}: reading stopped at byte {at} of {size}")


def _long_line(fh, head: bytes, line_no: int, limit: int) -> Chunk:
    """A line longer than a read block (which the file has just been read past; `head` is its
    start): quarantined without being held whole when it is over the limit, read whole otherwise
    (only when the limit exceeds a block)."""
    start = fh.tell() - BLOCK_BYTES
    size = BLOCK_BYTES
    while block := fh.read(BLOCK_BYTES):
        cut = block.find(b"\n")
        if cut != -1:
            size += cut
            fh.seek(cut + 1 - len(block), 1)  # the next line starts after the newline
            break
        size += len(block)
    if size > limit:
        reason = f"record is {size} bytes, over the limit of {limit} bytes"
        return Chunk(_empty_table(), [Rejected(line_no, reason, head.decode("utf-8", "replace"))])
    fh.seek(start)
    return _lines_table(memoryview(fh.read(size + 1)), line_no)  # the line and its newline


def _empty_table() -> pa.Table:
    return pa.table({"line": pa.array([], pa.int64()), "text": pa.array([], pa.large_string())})


def _records_to_chunks(records: Iterable[tuple[int, dict | Rejected]], batch: int) -> Iterator[Chunk]:
    lines, texts, rejected = [], [], []
    for line, record in records:
        if isinstance(record, Rejected):
            rejected.append(record)
        else:
            lines.append(line)
            texts.append(record_text(record))
        if len(lines) + len(rejected) >= batch:
            yield Chunk(_batched(pa.table({"line": pa.array(lines, pa.int64()), "text": pa.array(texts, pa.large_string())})), rejected)
            lines, texts, rejected = [], [], []
    if lines or rejected:
        yield Chunk(_batched(pa.table({"line": pa.array(lines, pa.int64()), "text": pa.array(texts, pa.large_string())})), rejected)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME  # datetimes through _json_default


def record_text(record: dict) -> str:
    """A record as the JSON text the contract's query reads. orjson writes it about 15 times faster than
    json (66,667 benchmark records: 1.05 s -> 0.07 s; this runs inside the load, for every record another
    source gave). json writes what orjson cannot write as json always did: an integer beyond 64 bits,
    and a top-level NaN or infinity, which the query then names as not a finite number (orjson would
    write null, and the value would pass as missing)."""
    if not any(type(v) is float and not math.isfinite(v) for v in record.values()):
        try:
            return orjson.dumps(record, default=_json_default, option=_ORJSON_OPTIONS).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(record, default=_json_default, ensure_ascii=False)


def _json_default(value):
    if isinstance(value, (dt.datetime, dt.date)):
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


_KINDS = {f.name: f.kind for f in TRACE_FIELDS}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def coerce_cell(name: str, cell: str):
    """A CSV cell to the JSON value the contract expects; a value that does not convert is kept as
    text, so the validation query reports the field by name."""
    kind = _KINDS.get(name)
    if kind in ("messages", "object"):
        return json.loads(cell)  # the caller quarantines a JSONDecodeError
    if kind == "number":
        try:
            return float(cell)
        except ValueError:
            return cell
    if kind == "integer":
        try:
            return int(cell)
        except ValueError:
            return cell
    if kind == "boolean":
        low = cell.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else cell
    return cell


def _csv_records(path: Path, limit: int) -> Iterator[tuple[int, dict | Rejected]]:
    """Each record of a CSV file as the JSON object the contract expects, named by the physical line
    it starts on (see csv_records)."""
    try:
        for header, record in read_csv_records(path, limit):
            yield record.line, _csv_record(header, record)
    except CsvHeaderError as exc:
        raise UnreadableFile(f"{path}: {exc}") from exc


def _csv_record(header: list[str], record: CsvRecord) -> dict | Rejected:
    if record.cells is None:
        return Rejected(record.line, record.reason, record.excerpt)
    if len(record.cells) != len(header):
        return Rejected(record.line, f"row has {len(record.cells)} cells, header has {len(header)}", record.excerpt)
    values: dict = {}
    for name, cell in zip(header, record.cells):
        if cell == "":
            continue
        try:
            values[name] = coerce_cell(name, cell)
        except json.JSONDecodeError as exc:
            return Rejected(record.line, f'column "{name}" is not valid JSON: {exc.msg}', record.excerpt)
        except RecursionError:
            return Rejected(record.line, f'column "{name}" is not valid JSON: nested too deeply', record.excerpt)
    return values


def _parquet_records(path: Path) -> Iterator[tuple[int, dict | Rejected]]:
    """Each row of a Parquet file, named by its row number (from 1). The row count the file's
    metadata gives is checked at the end: a row not read would be lost unseen."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile(f"{path}: not a readable Parquet file: {exc}") from exc
    row = 0
    for batch in parquet.iter_batches(batch_size=50_000):
        for values in _batch_rows(batch):
            row += 1
            yield row, _parquet_record(row, values)
    if row != parquet.metadata.num_rows:
        raise UnreadableFile(f"{path}: read {row} rows of the {parquet.metadata.num_rows} the file holds")


def _batch_rows(batch: pa.RecordBatch) -> Iterator[dict | str]:
    """The batch's rows as dicts; a row holding text that is not UTF-8 (Parquet does not check)
    as the name of the column holding it, so that only that row is rejected."""
    try:
        rows = batch.to_pylist()
    except UnicodeDecodeError:
        rows = None
    if rows is not None:
        yield from rows
        return
    for i in range(batch.num_rows):
        values: dict | str = {}
        for name, column in zip(batch.schema.names, batch.columns):
            try:
                values[name] = column[i].as_py()
            except UnicodeDecodeError:
                values = name
                break
        yield values


def _parquet_record(row: int, values: dict | str) -> dict | Rejected:
    if isinstance(values, str):
        return Rejected(row, f'column "{values}" is not valid UTF-8', "")
    record = {}
    for name, value in values.items():
        if value is None:
            continue
        value = plain_parquet_value(value, integer=_KINDS.get(name) == "integer")
        if value is NOT_UTF8:  # a binary column: decoded with replacement, two ids would become one
            return Rejected(row, f'column "{name}" is not valid UTF-8', "")
        record[name] = value
    for name in ("messages", "metadata"):
        if isinstance(record.get(name), str):
            try:
                record[name] = json.loads(record[name])
            except json.JSONDecodeError as exc:
                return Rejected(row, f'column "{name}" is not valid JSON: {exc.msg}', "")
            except RecursionError:
                return Rejected(row, f'column "{name}" is not valid JSON: nested too deeply', "")
    return record


def read_chunks(path: Path, settings: IntakeSettings, prepared: dict | None = None) -> Iterator[Chunk]:
    if prepared is not None and str(path) in prepared:  # another source's file, already mapped to the contract
        return _records_to_chunks(_prepared_records(prepared[str(path)]), settings.chunk_records)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind == "jsonl":
        return read_jsonl(path, settings)
    if kind == "csv":
        return _records_to_chunks(_csv_records(path, settings.max_line_bytes), settings.chunk_records)
    if kind == "parquet":
        return _records_to_chunks(_parquet_records(path), settings.chunk_records)
    raise UnreadableFile(f"{path}: unsupported file type (expected {', '.join(sorted(SUFFIXES))})")


def _prepared_records(items) -> Iterator[tuple[int, dict | Rejected]]:
    for position, record in items:
        yield position, (Rejected(position, record.reason, record.excerpt) if not isinstance(record, dict) else record)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the trace files inside them (sorted, recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and (f.suffix.lower() in SUFFIXES or (
                f.suffix.lower() == ".gz" and "".join(f.suffixes[-2:-1]).lower() in SUFFIXES)))
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Other sources
# ---------------------------------------------------------------------------------------------


def _read_sources(conn, files: list[Path], report: IngestReport, source_format: str, mapping, timestamp,
                  skip_known: bool, on_read: Callable[[int], None] | None = None,
                  ) -> tuple[list[Path], dict, dict[Path, str]]:
    """Detect each file's source and map the non-native ones to the contract (all files together: a
    conversation may span them). Files already in the manifest are left out first, as the loading
    would skip them; files whose source cannot be told are reported as errors."""
    from flywheel.core.intake.sources import reader
    from flywheel.core.intake.sources.mapping import Mapping

    hashed: dict[Path, str] = {}  # handed to the loading, which would otherwise hash each file again
    if skip_known:
        known = set(conn.execute("SELECT file_name, sha256 FROM raw.ingested_files").fetchall())
        if known:
            hashed = {f: file_sha256(f) for f in files if f.is_file()}
            files = [f for f in files if (str(f), hashed.get(f)) not in known]
    readable = [f for f in files if f.is_file()]
    read = reader.read(readable, source_format, mapping or Mapping({}), timestamp=timestamp, on_read=on_read)
    report.formats.update(read.formats)
    report.skipped_spans.update(read.skipped)
    report.mapped.update(read.mapped)
    for name, error in read.unreadable.items():
        _record_error(report, FileResult(name), error)
    _quarantine_continuations(conn, read.prepared)
    return [f for f in files if str(f) not in read.unreadable], read.prepared, hashed


CONTINUED = ("a conversation an earlier ingest loaded, read again with other messages (its later turns in a "
             "later file?): kept here whole, as a loaded trace is not changed; ingest a conversation's files together")


def _quarantine_continuations(conn, prepared: dict) -> None:
    """A conversation is assembled from the files of one ingest. Read again later with other messages
    (the endpoint's next hour, tomorrow's export holding its later turns), it would share the loaded
    trace's id and be counted as a duplicate, its new turns lost: it is quarantined whole instead,
    with the reason. The same messages again are a duplicate, as before."""
    from flywheel.core.intake.sources.reader import Problem

    ids = sorted({r["trace_id"] for items in prepared.values() for _, r in items if isinstance(r, dict)})
    if not ids:
        return
    with _scan_once(conn, "read_ids", pa.table({"trace_id": pa.array(ids, pa.large_string())})):
        stored = dict(conn.execute(
            "SELECT t.trace_id, t.messages FROM raw.traces t SEMI JOIN read_ids r ON t.trace_id = r.trace_id"
        ).fetchall())
    if not stored:
        return
    for items in prepared.values():
        for i, (line, record) in enumerate(items):
            if isinstance(record, dict) and record["trace_id"] in stored and _said(record["messages"]) != _said(
                    stored[record["trace_id"]]):
                whole = json.dumps(record, ensure_ascii=False, default=str)
                items[i] = (line, Problem(f"line {line}: {CONTINUED}", whole))


def _said(messages) -> list[tuple]:
    return [(m.get("role"), m.get("content")) for m in messages or []]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

# The records of a batch of files as the fast statement reads them. Which file a record came from
# travels dictionary-encoded: one name per Arrow batch, not one string per record.
_STREAM_SCHEMA = pa.schema([
    ("source_file", pa.dictionary(pa.int32(), pa.large_string())),
    ("line", pa.int64()),
    ("text", pa.large_string()),
])


def _json_error_detail(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON at column {exc.colno}: {exc.msg.removesuffix(' at').strip()}"
    except RecursionError:
        return "not valid JSON: nested too deeply"
    return "not valid JSON"


@contextlib.contextmanager
def _scan_once(conn: duckdb.DuckDBPyConnection, name: str, data: pa.Table | pa.RecordBatchReader) -> Iterator[None]:
    """`data` readable as `name` for one scan. Registered as a one-shot stream, not as a table:
    inside a transaction an unregistered view stays in the catalog until commit, and a table would
    stay with it (every block of text the batch has read); a spent stream holds nothing."""
    if isinstance(data, pa.Table):
        data = pa.RecordBatchReader.from_batches(data.schema, iter(data.to_batches()))
    conn.register(name, data)
    try:
        yield
    finally:
        conn.unregister(name)


@contextlib.contextmanager
def _without_filter_pushdown(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """For the fast path's insert. Pushing its `reason IS NULL` filter down through the query's
    projections would copy the expressions behind `reason` into the filter, every field reference
    with its own from_json of the record: 20 times the cost of the query itself."""
    disabled = conn.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0]
    with setting(conn, "disabled_optimizers", ",".join(filter(None, [disabled, "filter_pushdown"]))):
        yield


class _AbandonedFile(Exception):
    """A file failed after some of its records were written: its batch must be rolled back."""

    def __init__(self, path: Path, error: str):
        super().__init__(error)
        self.path = path
        self.error = error


# Errors that mean "this file cannot be read", as opposed to a bug or a broken warehouse.
_FILE_ERRORS = (UnreadableFile, OSError, UnicodeDecodeError, pa.ArrowException)
# Errors a record can raise inside DuckDB that validation did not foresee: they fail the file, not
# the run. (A Python error inside the stream of records reaches us as InvalidInputException too;
# the stream keeps the original, so it is told apart.)
_RECORD_ERRORS = (duckdb.ConversionException, duckdb.InvalidInputException)


def _file_error(path: Path, exc: BaseException) -> str:
    if isinstance(exc, UnreadableFile):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):  # its message would quote the bytes
        return f"{path}: not valid UTF-8 (byte {exc.start})"
    return f"{path}: {exc}"


def _record_error_message(path: Path, exc: BaseException) -> str:
    """DuckDB's message would quote the value it could not convert: traces hold customer data."""
    return f"{path}: a record could not be loaded ({type(exc).__name__}); nothing of the file was loaded"


class _HashAhead:
    """The sha256 of the next file, worked out on a thread while the current one loads (hashlib lets
    go of the GIL): 5-10% off an ingest of many files."""

    def __init__(self, files: list[Path], known: dict[Path, str] | None = None):
        self._known = known or {}  # hashed already (reading other sources skips known files first)
        self._following = dict(zip(files, files[1:]))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-sha256")
        self._pending: dict[Path, Future] = {}

    def sha256(self, path: Path) -> str:
        if path in self._known:
            return self._known[path]
        future = self._pending.pop(path, None)
        following = self._following.get(path)
        if following is not None and following not in self._pending and following not in self._known:
            self._pending[following] = self._pool.submit(file_sha256, following)
        return future.result() if future else file_sha256(path)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Streamed:
    """One file of a batch, as the fast statement read it."""

    path: Path
    result: FileResult
    size_bytes: int
    rows: int = 0  # rows handed to the fast statement (records and blank lines)
    blank: int = 0  # of the rows, blank lines: not records
    rejected: int = 0  # records rejected before parsing (not UTF-8, over the size limit)
    fast: int = 0  # of the rows, those the fast statement loaded
    valid_later: int = 0  # valid records the reference found among the rest, loaded or not
    torn_moments: list[dt.datetime] = field(default_factory=list)  # see manifest.torn_moments
    adopted: bool = False  # rows a torn commit left of this file were taken back (see manifest)

    @property
    def records(self) -> int:
        """The records the file holds, as its first reading counted them."""
        return self.rows - self.blank + self.rejected


class _BatchStream:
    """The records of the next batch of files, as one Arrow stream for the fast statement.

    Files are taken off `pending` as the statement reads. A batch ends after the file that brings it
    to settings.transaction_records records, before a file name it already holds, and around a file
    marked to be loaded alone. A file that cannot be read at all is recorded and left out; one that
    breaks after some of its records went into the stream ends the statement with an error, and is
    kept in `broken`.

    DuckDB can return from a failed statement while one of its threads is still inside the stream
    (taking a file off `pending` and hashing it): the caller `close`s the stream before it looks at
    `files`, and a file is taken off the queue and into `files` under one lock, so none is lost
    between the two."""

    def __init__(
        self, pending: deque[tuple[Path, bool]], settings: IntakeSettings, hashes: _HashAhead,
        manifest: set[tuple[str, str]] | None, on_progress: Callable[[int], None] | None, progressed: set[Path],
        prepared: dict | None = None,
    ):
        self.pending, self.settings, self.hashes, self.manifest = pending, settings, hashes, manifest
        self.prepared = prepared
        self.on_progress, self.progressed = on_progress, progressed
        self.files: list[_Streamed] = []
        self.unreadable: list[FileResult] = []
        self.skipped = 0
        self.broken: _Streamed | None = None
        self.failure: BaseException | None = None  # what broke the stream, whatever it was
        self._lock = threading.Lock()
        self._closed = False

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(_STREAM_SCHEMA, self._batches())

    def close(self) -> None:
        """No file is taken off the queue after this (one being taken is finished first)."""
        with self._lock:
            self._closed = True

    def _batches(self) -> Iterator[pa.RecordBatch]:
        records, names = 0, set()
        try:
            while (taken := self._take_next(records, names)) is not None:
                streamed, alone = taken
                yield from self._file_batches(streamed)
                records += streamed.rows + streamed.rejected
                if alone:
                    break
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):  # DuckDB letting go of the stream is no failure
                self.failure = exc
            raise

    def _take_next(self, records: int, names: set[str]) -> tuple[_Streamed, bool] | None:
        """The next file of the batch, off the queue and into `files` at once; None when the batch
        is complete or the stream closed."""
        with self._lock:
            while not self._closed and self.pending and records < self.settings.transaction_records:
                path, alone = self.pending[0]
                if str(path) in names or (alone and self.files):
                    return None
                self.pending.popleft()
                streamed = self._open(path)
                if streamed is not None:
                    names.add(streamed.result.file)
                    self.files.append(streamed)
                    return streamed, alone
            return None

    def _open(self, path: Path) -> _Streamed | None:
        result = FileResult(str(path))
        try:
            if not path.is_file():
                raise UnreadableFile(f"{path}: no such file")
            size_bytes = path.stat().st_size
            result.sha256 = self.hashes.sha256(path)
        except _FILE_ERRORS as exc:
            self._unreadable(result, exc)
            return None
        if self.manifest is not None and (result.file, result.sha256) in self.manifest:
            self.skipped += 1
            return None
        return _Streamed(path, result, size_bytes)

    def _unreadable(self, result: FileResult, exc: BaseException) -> None:
        result.error = _file_error(Path(result.file), exc)
        self.unreadable.append(result)

    def _file_batches(self, streamed: _Streamed) -> Iterator[pa.RecordBatch]:
        source = pa.array([streamed.result.file], pa.large_string())
        report_progress = self.on_progress is not None and streamed.path not in self.progressed
        self.progressed.add(streamed.path)
        try:
            for chunk in read_chunks(streamed.path, self.settings, self.prepared):
                streamed.rejected += len(chunk.rejected)
                streamed.blank += chunk.blank
                for batch in chunk.table.to_batches():
                    streamed.rows += batch.num_rows
                    file_column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(batch.num_rows, np.int32)), source)
                    yield pa.record_batch([file_column, batch.column(0), batch.column(1)], schema=_STREAM_SCHEMA)
                if report_progress:
                    self.on_progress(chunk.table.num_rows + len(chunk.rejected))
        except _FILE_ERRORS as exc:
            with self._lock:
                if self._closed:  # the statement has already failed, and the batch been settled
                    return
                if streamed.rows == 0:  # nothing of it went into the statement: left out, not broken
                    self.files.remove(streamed)
                    self._unreadable(streamed.result, exc)
                    return
            streamed.result.error = _file_error(streamed.path, exc)
            self.broken = streamed
            raise


def _batch_moment(conn: duckdb.DuckDBPyConnection) -> dt.datetime:
    """The ingested_at of a batch: now, or just past the rows and manifest rows stamped within a
    second after now, until none has it, so that `ingested_at = ?` picks out the batch's rows and
    manifest rows (two batches can share a clock reading, and with FLYWHEEL_NOW every batch does).
    Looking only a second ahead keeps a pinned clock's moment, rather than jumping past rows a
    later pinned moment loaded."""
    moment = clock.now()
    while True:
        latest = conn.execute(
            """SELECT max(stamp) FROM (SELECT ingested_at AS stamp FROM raw.traces
                                       UNION ALL SELECT ingested_at FROM raw.ingested_files)
               WHERE stamp >= ? AND stamp < ? + INTERVAL 1 SECOND""",
            [moment, moment],
        ).fetchone()[0]
        if latest is None:
            return moment
        moment = latest + dt.timedelta(microseconds=1)


def _stored_row(source_file: str) -> str:
    """The select list of a raw.traces row from a checked record `v` (the validation queries'
    output); `source_file` is SQL, and the batch's ingested_at a parameter after it."""
    fields = ", ".join(f"v.{f.name}" for f in TRACE_FIELDS)
    return (f"{fields}, {source_file} AS source_file, v.line AS source_line, ?::TIMESTAMP AS ingested_at, "
            "md5_number(v.trace_id) AS sample_key")


def _insert_accepted(conn: duckdb.DuckDBPyConnection, stream: _BatchStream, ingested_at: dt.datetime, max_bytes: int) -> None:
    """The fast statement: every record of the batch the fast path accepts whose id is not loaded
    yet, straight into raw.traces. One statement for the whole batch, run on every core: storing a
    million typed rows took 1.9 s in one insert and 5.8 s in 28 inserts of 35k rows (each leaves a
    partial row group, and the last ones are written again, serially, at commit)."""
    accepted = acceptance_sql(max_bytes, source="intake_stream", carry=("source_file",))
    with _without_filter_pushdown(conn), _scan_once(conn, "intake_stream", stream.reader()):
        try:
            conn.execute(
                f"""INSERT INTO raw.traces
                    SELECT {_stored_row("v.source_file")}
                    FROM ({accepted}) v
                    -- Matching on the md5 first reads 16-byte integers instead of every id string.
                    ANTI JOIN raw.traces t ON t.sample_key::UHUGEINT = md5_number(v.trace_id) AND t.trace_id = v.trace_id
                    WHERE v.reason IS NULL""",
                [ingested_at],
            )
        except BaseException:
            # The failed statement aborted the transaction: roll it back now, or the stream could
            # not be unregistered nor the setting put back.
            rollback_quietly(conn)
            raise


def _rows_per_file(conn: duckdb.DuckDBPyConnection, ingested_at: dt.datetime) -> dict[str, int]:
    rows = conn.execute(
        "SELECT source_file, count(*) FROM raw.traces WHERE ingested_at = ? GROUP BY source_file", [ingested_at]
    ).fetchall()
    return dict(rows)


def _load_rest(
    conn: duckdb.DuckDBPyConnection, streamed: _Streamed, ingested_at: dt.datetime, settings: IntakeSettings,
    quarantine: list[dict], prepared: dict | None = None,
) -> None:
    """The file read again for what the fast statement did not load: records it did not accept
    (their reason), ids loaded before (duplicates), blank lines (dropped) and the records rejected
    before parsing. Valid records among them are loaded; the bad ones quarantined."""
    file_name = streamed.result.file
    loaded = conn.execute(
        "SELECT source_line FROM raw.traces WHERE ingested_at = ? AND source_file = ?", [ingested_at, file_name]
    ).to_arrow_table()["source_line"]
    try:
        for chunk in read_chunks(streamed.path, settings, prepared):
            intake_rest = chunk.table.filter(pc.invert(pc.is_in(chunk.table["line"], value_set=loaded)))
            rejected = list(chunk.rejected)
            if intake_rest.num_rows:
                rejected += _check_rest(conn, intake_rest, streamed, ingested_at, settings.max_line_bytes)
            _quarantine_rejected(conn, rejected, streamed.result, quarantine, ingested_at)
    except _FILE_ERRORS as exc:
        raise _AbandonedFile(streamed.path, _file_error(streamed.path, exc)) from exc


def _check_rest(
    conn: duckdb.DuckDBPyConnection, intake_rest: pa.Table, streamed: _Streamed, ingested_at: dt.datetime, max_bytes: int,
) -> list[Rejected]:
    """The reference query over records the fast statement did not load: the valid ones go in
    unless their id was loaded before this batch (repeats inside the batch are settled after it);
    returns the bad ones."""
    with _scan_once(conn, "intake_rest", intake_rest):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {validation_sql(max_bytes, source='intake_rest')}")
    streamed.valid_later += conn.execute("SELECT count(*) FROM checked WHERE reason IS NULL").fetchone()[0]
    conn.execute(
        f"""INSERT INTO raw.traces
            SELECT {_stored_row("?")}
            FROM checked v
            WHERE reason IS NULL
              AND NOT EXISTS (SELECT 1 FROM raw.traces t
                              WHERE t.sample_key::UHUGEINT = md5_number(v.trace_id) AND t.trace_id = v.trace_id
                                AND t.ingested_at IS DISTINCT FROM ?)""",
        [streamed.result.file, ingested_at, ingested_at],
    )
    if streamed.torn_moments:
        manifest.adopt_torn_rows(conn, "checked", streamed.result.file, streamed.torn_moments, ingested_at)
        streamed.adopted = True
    bad = conn.execute("SELECT line, reason, text FROM checked WHERE reason IS NOT NULL ORDER BY line").fetchall()
    conn.execute("DROP TABLE checked")
    return [Rejected(line, reason, text) for line, reason, text in bad]


def _quarantine_rejected(
    conn: duckdb.DuckDBPyConnection, rejected: list[Rejected], result: FileResult, quarantine: list[dict],
    ingested_at: dt.datetime,
) -> None:
    """Bad records into raw.quarantine, stamped with their batch's moment like its rows."""
    if not rejected:
        return
    for r in rejected:
        if r.reason == "not valid JSON":
            r.reason = _json_error_detail(r.record)
        r.record = r.record[:EXCERPT_BYTES] if len(r.record) > EXCERPT_BYTES else r.record
    rejected.sort(key=lambda r: r.line)
    intake_rejected = pa.table({
        "line": pa.array([r.line for r in rejected], pa.int64()),
        "reason": pa.array([r.reason for r in rejected], pa.large_string()),
        "record": pa.array([r.record for r in rejected], pa.large_string()),
    })
    # Keyed by (file content, line): re-ingesting a file never quarantines a line twice.
    with _scan_once(conn, "intake_rejected", intake_rejected):
        conn.execute(
            """INSERT INTO raw.quarantine
               SELECT ?, ?, r.line, r.reason, r.record, ? FROM intake_rejected r
               WHERE NOT EXISTS (SELECT 1 FROM raw.quarantine q WHERE q.source_sha256 = ? AND q.line = r.line)""",
            [result.file, result.sha256, ingested_at, result.sha256],
        )
    result.quarantined += len(rejected)
    room = MAX_REPORTED - len(quarantine)
    quarantine += [{"file": result.file, "line": r.line, "reason": r.reason} for r in rejected[:max(room, 0)]]


def _keep_first_of_repeats(conn: duckdb.DuckDBPyConnection, files: list[str], ingested_at: dt.datetime) -> None:
    """An id loaded more than once by this batch (repeated inside it, or valid on a line the fast
    path declined and on a later one it loaded) keeps its first file and line."""
    conn.execute(
        """DELETE FROM raw.traces WHERE rowid IN (
              SELECT row_id FROM (
                SELECT t.rowid AS row_id, row_number() OVER (
                         PARTITION BY t.sample_key, t.trace_id
                         ORDER BY list_position(?, t.source_file), t.source_line) AS n
                FROM raw.traces t
                SEMI JOIN (SELECT sample_key, trace_id FROM raw.traces WHERE ingested_at = ?
                           GROUP BY sample_key, trace_id HAVING count(*) > 1) r
                  ON t.sample_key = r.sample_key AND t.trace_id = r.trace_id
                WHERE t.ingested_at = ?)
              WHERE n > 1)""",
        [files, ingested_at, ingested_at],
    )


def _load_batch(conn: duckdb.DuckDBPyConnection, stream: _BatchStream, settings: IntakeSettings) -> list[dict]:
    """Load the next batch of files inside the caller's transaction; returns the quarantine entries
    to report. Counts go into each streamed file's result."""
    ingested_at = _batch_moment(conn)
    torn = manifest.torn_moments(conn)
    _insert_accepted(conn, stream, ingested_at, settings.max_line_bytes)
    fast = _rows_per_file(conn, ingested_at)
    quarantine: list[dict] = []
    for streamed in stream.files:
        # A file read again (say with the right --format this time) replaces what it quarantined before.
        conn.execute("DELETE FROM raw.quarantine WHERE source_sha256 = ?", [streamed.result.sha256])
        streamed.fast = fast.get(streamed.result.file, 0)
        streamed.torn_moments = torn.get(streamed.result.file, [])
        if streamed.fast < streamed.rows - streamed.blank or streamed.rejected:
            _load_rest(conn, streamed, ingested_at, settings, quarantine, stream.prepared)
    _keep_first_of_repeats(conn, [s.result.file for s in stream.files], ingested_at)
    kept = _rows_per_file(conn, ingested_at)
    for streamed in stream.files:
        result = streamed.result
        result.ingested = kept.get(result.file, 0)
        result.duplicates = streamed.fast + streamed.valid_later - result.ingested
        _check_accounted(streamed)
        if streamed.adopted:
            manifest.settle_torn(conn, result.file)
        # Stamped with the batch's moment, like its rows: that is how a row finds its manifest row.
        conn.execute(
            "INSERT INTO raw.ingested_files VALUES (?, ?, ?, ?, ?, ?, ?)",
            [result.file, result.sha256, streamed.size_bytes, result.ingested, result.duplicates,
             result.quarantined, ingested_at],
        )
    return quarantine


def _check_accounted(streamed: _Streamed) -> None:
    """Every record the file holds is loaded, a duplicate or quarantined: checked for each file,
    never assumed. A file that does not add up (it changed between its two readings, or a bug
    lost records) is an error, and its batch is rolled back and loaded again without it."""
    result = streamed.result
    settled = result.ingested + result.duplicates + result.quarantined
    if settled != streamed.records or result.duplicates < 0:
        raise _AbandonedFile(
            streamed.path,
            f"{streamed.path}: {streamed.records} records read, but {result.ingested} loaded, "
            f"{result.duplicates} duplicates and {result.quarantined} quarantined; the file was left out "
            "(did it change while it was read?)",
        )


def _record_error(report: IngestReport, result: FileResult, error: str) -> None:
    """The file is in the report with its error and no counts, and none of its lines."""
    result.ingested = result.duplicates = result.quarantined = 0
    result.error = error
    report.files.append(result)


def _ingest_in_batches(
    conn: duckdb.DuckDBPyConnection, files: list[Path], report: IngestReport, settings: IntakeSettings,
    skip_known: bool, on_progress: Callable[[int], None] | None, prepared: dict | None = None,
    hashed: dict[Path, str] | None = None,
) -> None:
    """Files are loaded and committed in batches of about settings.transaction_records records, each
    batch one fast statement and one transaction: a large transaction writes compressed row groups
    straight to the database file, where one small transaction per file writes every row twice (the
    write-ahead log, then the checkpoint).

    Each file is still all or nothing. When a file breaks midway the batch is rolled back and loaded
    again without it; when a record DuckDB cannot load fails the batch, its files are loaded one by
    one, and only the file holding the record is left out."""
    pending: deque[tuple[Path, bool]] = deque((path, False) for path in files)  # (file, load it alone)
    hashes = _HashAhead(files, hashed)
    progressed: set[Path] = set()
    try:
        while pending:
            manifest = set(conn.execute("SELECT file_name, sha256 FROM raw.ingested_files").fetchall()) if skip_known else None
            stream = _BatchStream(pending, settings, hashes, manifest, on_progress, progressed, prepared)
            conn.execute("BEGIN TRANSACTION")
            try:
                quarantine = _load_batch(conn, stream, settings)
                conn.execute("COMMIT")
            except (_AbandonedFile, *_RECORD_ERRORS) as exc:
                rollback_quietly(conn)
                stream.close()
                _settle_failed_batch(stream, exc, pending, report)
                continue
            except BaseException:
                rollback_quietly(conn)
                raise
            finally:
                stream.close()
                report.skipped_files += stream.skipped
                for result in stream.unreadable:
                    _record_error(report, result, result.error)
            report.files += [s.result for s in stream.files]
            report.quarantine += quarantine[:max(MAX_REPORTED - len(report.quarantine), 0)]
    finally:
        hashes.close()


def _settle_failed_batch(stream: _BatchStream, exc: Exception, pending: deque, report: IngestReport) -> None:
    """After a batch was rolled back: the file that broke is reported with its error and the others
    go back to the front of the queue, to be loaded again."""
    if stream.failure is not None and stream.broken is None:
        raise stream.failure  # not a file that cannot be read: a bug, raised as itself
    if not stream.files:
        raise exc  # no file of the batch to blame it on
    if stream.broken is not None or isinstance(exc, _AbandonedFile):
        broken, error = (stream.broken.path, stream.broken.result.error) if stream.broken else (exc.path, exc.error)
        again = [(s.path, False) for s in stream.files if s.path != broken]
        failed = [s for s in stream.files if s.path == broken]
    elif len(stream.files) == 1:
        again, failed, error = [], stream.files, _record_error_message(stream.files[0].path, exc)
    else:
        # Which file holds the record is not known: each is loaded on its own.
        again, failed, error = [(s.path, True) for s in stream.files], [], ""
    for streamed in failed:
        _record_error(report, FileResult(streamed.result.file, sha256=streamed.result.sha256), error)
    pending.extendleft(reversed(again))


def ingest_paths(
    conn: duckdb.DuckDBPyConnection, paths: Iterable[str | Path], settings: IntakeSettings | None = None,
    *, skip_known: bool = False, on_progress: Callable[[int], None] | None = None, source_format: str = "flywheel",
    mapping=None, timestamp: str | None = None, on_read: Callable[[int], None] | None = None,
) -> IngestReport:
    """Load trace files into raw.traces. `source_format` is `flywheel` (the contract), `auto` (decided
    per file) or one source (flywheel.core.intake.sources.files.FORMATS); other sources are mapped to
    the contract first, with `mapping` (a sources.mapping.Mapping) for the fields only flywheel has.
    `on_read(n)` hears of the other sources' records (lines, elements, rows) as they are read, before
    the loading's `on_progress(n)` hears of the contract records loaded.

    One ingest at a time: the single file's lock sees to it; on DuckLake a PostgreSQL advisory lock
    does, since two inserts of the same new traces would both commit (an insert conflicts with no
    other insert) and the id would be stored twice."""
    with lake.one_at_a_time(conn, "ingest"):
        return _ingest_paths(conn, paths, settings, skip_known=skip_known, on_progress=on_progress,
                             source_format=source_format, mapping=mapping, timestamp=timestamp, on_read=on_read)


def _ingest_paths(conn, paths, settings, *, skip_known, on_progress, source_format, mapping, timestamp,
                  on_read) -> IngestReport:
    settings = settings or IntakeSettings()
    if settings.max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be at least 1, got {settings.max_line_bytes}")
    ensure_raw_tables(conn)
    report = IngestReport(recovered=manifest.reconcile(conn))
    # By default every commit over 16 MB of WAL also checkpoints, recompressing the table once per
    # batch. Checkpoint once at the end instead.
    files = expand_paths(paths)
    prepared, hashed = None, None
    if source_format != "flywheel":
        files, prepared, hashed = _read_sources(conn, files, report, source_format, mapping, timestamp, skip_known,
                                                on_read)
    with setting(conn, "checkpoint_threshold", "16GB"):
        _ingest_in_batches(conn, files, report, settings, skip_known, on_progress, prepared, hashed)
    if not lake.on_lake(conn):  # a DuckLake commit writes its Parquet files whole: nothing to checkpoint
        conn.execute("CHECKPOINT")
    # A reload after a broken file reports the batch again later: report in the order the files came.
    position = {str(path): i for i, path in reversed(list(enumerate(files)))}
    report.files.sort(key=lambda f: position.get(f.file, len(position)))
    report.quarantine.sort(key=lambda q: (position.get(q["file"], len(position)), q["line"]))
    return report
