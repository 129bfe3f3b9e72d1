"""Trace intake: files in, valid traces to raw.traces, every bad record to raw.quarantine.

JSON Lines, Parquet and CSV files are turned into chunks of (line, text) records. A fast SQL check
(flywheel.core.validation) inserts the valid ones with new trace ids straight into raw.traces; the
rest (bad records, ids loaded before) go through the reference query, which names each fault.
Nothing is dropped silently: a record is loaded, counted as a duplicate of a trace already loaded,
or quarantined with its file, line and reason. Re-ingesting a file is idempotent, and a file is
loaded all or nothing.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flywheel.core import clock
from flywheel.core.db import rollback_quietly, setting
from flywheel.contracts import TRACE_FIELDS, trace_table_columns
from flywheel.core.validation import acceptance_sql, validation_sql
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
        }


# ---------------------------------------------------------------------------------------------
# Warehouse tables
# ---------------------------------------------------------------------------------------------


def ensure_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in trace_table_columns())
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


def already_ingested(conn: duckdb.DuckDBPyConnection, file_name: str, sha256: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM raw.ingested_files WHERE file_name = ? AND sha256 = ?", [file_name, sha256]
    ).fetchone()
    return bool(row and row[0])


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
        return Chunk(_batched(pa.table({"line": lines, "text": text})))
    except pa.ArrowInvalid:
        return _lines_table_slow(raw, first_line)


def _lines_table_slow(raw: pa.LargeBinaryArray, first_line: int) -> Chunk:
    """The block holds bytes that are not UTF-8: find those lines one by one."""
    good_lines, good_text, rejected = [], [], []
    for i, value in enumerate(raw.to_pylist()):
        try:
            good_text.append(value.decode("utf-8"))
            good_lines.append(first_line + i)
        except UnicodeDecodeError as exc:
            rejected.append(
                Rejected(first_line + i, f"not valid UTF-8 (byte {exc.start})", value[:EXCERPT_BYTES].decode("utf-8", "replace"))
            )
    table = pa.table({"line": pa.array(good_lines, pa.int64()), "text": pa.array(good_text, pa.large_string())})
    return Chunk(_batched(table), rejected)


def _batched(table: pa.Table) -> pa.Table:
    # Several record batches let DuckDB scan the chunk on every core.
    return pa.Table.from_batches(table.to_batches(max_chunksize=2_048), schema=table.schema)


def read_jsonl(path: Path, settings: IntakeSettings) -> Iterator[Chunk]:
    """Blocks of whole lines. Each block is one read, handed to Arrow without a copy; the partial line
    at its end is read again with the next block rather than copied over. A line over the size limit
    is never held whole."""
    line_no = 1
    with open(path, "rb") as fh:
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
            texts.append(json.dumps(record, default=_json_default, ensure_ascii=False))
        if len(lines) + len(rejected) >= batch:
            yield Chunk(_batched(pa.table({"line": pa.array(lines, pa.int64()), "text": pa.array(texts, pa.large_string())})), rejected)
            lines, texts, rejected = [], [], []
    if lines or rejected:
        yield Chunk(_batched(pa.table({"line": pa.array(lines, pa.int64()), "text": pa.array(texts, pa.large_string())})), rejected)


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


def _csv_records(path: Path) -> Iterator[tuple[int, dict | Rejected]]:
    with open(path, newline="", encoding="utf-8", errors="strict") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UnreadableFile(f"{path}: cannot read the CSV header: {exc}") from exc
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield line, Rejected(line, f"unreadable CSV row: {exc}", "")
                return
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield line, Rejected(line, f"row has {len(row)} cells, header has {len(header)}", ",".join(row)[:EXCERPT_BYTES])
                continue
            record: dict = {}
            try:
                for name, cell in zip(header, row):
                    if cell != "":
                        record[name] = coerce_cell(name, cell)
            except json.JSONDecodeError as exc:
                yield line, Rejected(line, f'column "{name}" is not valid JSON: {exc.msg}', ",".join(row)[:EXCERPT_BYTES])
                continue
            yield line, record


def _parquet_records(path: Path) -> Iterator[tuple[int, dict | Rejected]]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableFile(f"{path}: not a readable Parquet file: {exc}") from exc
    row = 0
    for batch in parquet.iter_batches(batch_size=50_000):
        for record in batch.to_pylist():
            row += 1
            record = {k: v for k, v in record.items() if v is not None}
            for name in ("messages", "metadata"):
                if isinstance(record.get(name), str):
                    try:
                        record[name] = json.loads(record[name])
                    except json.JSONDecodeError as exc:
                        record = Rejected(row, f'column "{name}" is not valid JSON: {exc.msg}', "")
                        break
            yield row, record


def read_chunks(path: Path, settings: IntakeSettings) -> Iterator[Chunk]:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind == "jsonl":
        return read_jsonl(path, settings)
    if kind == "csv":
        return _records_to_chunks(_csv_records(path), settings.chunk_records)
    if kind == "parquet":
        return _records_to_chunks(_parquet_records(path), settings.chunk_records)
    raise UnreadableFile(f"{path}: unsupported file type (expected {', '.join(sorted(SUFFIXES))})")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the trace files inside them (sorted, recursive)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

_TRACE_COLUMNS = ", ".join(f.name for f in TRACE_FIELDS)


def _json_error_detail(text: str) -> str:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return "not valid JSON: nested too deeply"
    return "not valid JSON"


@contextlib.contextmanager
def _scan_once(conn: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    """`table` readable as `name` for one scan. Registered as a one-shot stream, not as the table:
    inside a transaction an unregistered view stays in the catalog until commit, and a table would
    stay with it (every block of text the batch has read, 0.8 GiB more at 1M traces); a spent
    stream holds nothing."""
    conn.register(name, pa.RecordBatchReader.from_batches(table.schema, iter(table.to_batches())))
    try:
        yield
    finally:
        conn.unregister(name)


def _insert_new(conn: duckdb.DuckDBPyConnection, validated_sql: str, file_name: str, ingested_at) -> pa.Table:
    """Insert the valid records of a validation query whose trace id is not loaded yet; returns the
    (line, trace_id) of those inserted. Straight from the query into raw.traces: no staging copy."""
    return conn.execute(
        f"""INSERT INTO raw.traces
            SELECT {_TRACE_COLUMNS}, ? AS source_file, line AS source_line, ?::TIMESTAMP AS ingested_at,
                   md5_number(trace_id) AS sample_key
            FROM ({validated_sql}) v
            WHERE reason IS NULL
              -- Matching on the md5 first reads 16-byte integers instead of every id string: a third
              -- of the time against a million loaded traces. The ids are still compared.
              AND NOT EXISTS (SELECT 1 FROM raw.traces t
                              WHERE t.sample_key = md5_number(v.trace_id) AND t.trace_id = v.trace_id)
            RETURNING source_line AS line, trace_id""",
        [file_name, ingested_at],
    ).to_arrow_table()


@contextlib.contextmanager
def _without_filter_pushdown(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """For the fast path's insert. Pushing its `reason IS NULL` filter down through the query's
    projections would copy the expressions behind `reason` into the filter, every field reference
    with its own from_json of the record: 20 times the cost of the query itself."""
    disabled = conn.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0]
    with setting(conn, "disabled_optimizers", ",".join(filter(None, [disabled, "filter_pushdown"]))):
        yield


def _keep_first_of_repeats(conn: duckdb.DuckDBPyConnection, intake_inserted: pa.Table) -> int:
    """An id repeated inside one insert went in every time (the anti-join sees only rows loaded
    before the statement); keep its first line. Returns how many of the inserted rows stay."""
    n = intake_inserted.num_rows
    if n == 0 or pc.count_distinct(intake_inserted["trace_id"]).as_py() == n:
        return n
    # Every row with such an id came from this insert, so its line number tells them apart.
    with _scan_once(conn, "intake_inserted", intake_inserted):
        dropped = conn.execute(
            """DELETE FROM raw.traces t
               USING (SELECT trace_id, min(line) AS first_line FROM intake_inserted GROUP BY trace_id HAVING count(*) > 1) r
               WHERE t.trace_id = r.trace_id AND t.source_line > r.first_line"""
        ).fetchone()[0]
    return n - dropped


def _drop_later_lines(conn: duckdb.DuckDBPyConnection, intake_inserted: pa.Table, file_name: str) -> int:
    """Delete the rows this chunk inserted whose id a valid row of `checked` has on an earlier line.
    Those ids were new before the chunk (the insert's anti-join), so (file, line, id) is this chunk's
    own row."""
    with _scan_once(conn, "intake_inserted", intake_inserted):
        return conn.execute(
            """DELETE FROM raw.traces t
               USING (SELECT i.trace_id, i.line FROM intake_inserted i JOIN checked c USING (trace_id)
                      WHERE c.reason IS NULL AND c.line < i.line) d
               WHERE t.source_file = ? AND t.source_line = d.line AND t.trace_id = d.trace_id""",
            [file_name],
        ).fetchone()[0]


def load_chunk(
    conn: duckdb.DuckDBPyConnection, chunk: Chunk, file_name: str, sha256: str, result: FileResult,
    report: IngestReport, max_bytes: int,
) -> None:
    ingested_at = clock.now()
    with _scan_once(conn, "intake_rows", chunk.table), _without_filter_pushdown(conn):
        inserted = _insert_new(conn, acceptance_sql(max_bytes, source="intake_rows"), file_name, ingested_at)
    kept = _keep_first_of_repeats(conn, inserted)
    result.ingested += kept
    result.duplicates += inserted.num_rows - kept
    # Everything else goes through the reference query: records the fast path did not accept (their
    # reason), ids loaded before (duplicates) and blank lines (which it drops).
    intake_rest = chunk.table.filter(pc.invert(pc.is_in(chunk.table["line"], value_set=inserted["line"])))
    rejected = list(chunk.rejected)
    if intake_rest.num_rows:
        with _scan_once(conn, "intake_rest", intake_rest):
            conn.execute(f"CREATE OR REPLACE TEMP TABLE checked AS {validation_sql(max_bytes, source='intake_rest')}")
        valid = conn.execute("SELECT count(*) FROM checked WHERE reason IS NULL").fetchone()[0]
        if valid:
            # Valid here but not accepted by the fast path: loaded all the same, never lost, and
            # ahead of a later line of the chunk with the same id that the fast path did load.
            displaced = _drop_later_lines(conn, inserted, file_name)
            late = _keep_first_of_repeats(conn, _insert_new(conn, "SELECT * FROM checked", file_name, ingested_at))
            result.ingested += late - displaced
            result.duplicates += valid - late + displaced
        bad = conn.execute("SELECT line, reason, text FROM checked WHERE reason IS NOT NULL ORDER BY line").fetchall()
        rejected += [Rejected(line, reason, text) for line, reason, text in bad]
        conn.execute("DROP TABLE checked")
    for r in rejected:
        if r.reason == "not valid JSON":
            r.reason = _json_error_detail(r.record)
        r.record = r.record[:EXCERPT_BYTES] if len(r.record) > EXCERPT_BYTES else r.record
    rejected.sort(key=lambda r: r.line)
    if rejected:
        _quarantine(conn, pa.table({
            "line": pa.array([r.line for r in rejected], pa.int64()),
            "reason": pa.array([r.reason for r in rejected], pa.large_string()),
            "record": pa.array([r.record for r in rejected], pa.large_string()),
        }), file_name, sha256)
    result.quarantined += len(rejected)
    room = MAX_REPORTED - len(report.quarantine)
    report.quarantine += [{"file": file_name, "line": r.line, "reason": r.reason} for r in rejected[:max(room, 0)]]


def _quarantine(conn: duckdb.DuckDBPyConnection, intake_rejected: pa.Table, file_name: str, sha256: str) -> None:
    # Keyed by (file content, line): re-ingesting a file never quarantines a line twice.
    with _scan_once(conn, "intake_rejected", intake_rejected):
        conn.execute(
            """INSERT INTO raw.quarantine
               SELECT ?, ?, r.line, r.reason, r.record, ? FROM intake_rejected r
               WHERE NOT EXISTS (SELECT 1 FROM raw.quarantine q WHERE q.source_sha256 = ? AND q.line = r.line)""",
            [file_name, sha256, clock.now(), sha256],
        )


class _AbandonedFile(Exception):
    """A file failed after some of its rows were written, or a statement of it failed (which aborts
    the transaction in DuckDB): its transaction must be rolled back."""

    def __init__(self, error: str, sha256: str):
        super().__init__(error)
        self.error = error
        self.sha256 = sha256


# Errors that mean "this file cannot be read", as opposed to a bug or a broken warehouse.
_FILE_ERRORS = (UnreadableFile, OSError, UnicodeDecodeError, pa.ArrowException)
# Errors a record can raise inside DuckDB that validation did not foresee: they fail the file, not
# the run.
_RECORD_ERRORS = (duckdb.ConversionException, duckdb.InvalidInputException)


def ingest_file(
    conn: duckdb.DuckDBPyConnection, path: Path, report: IngestReport, settings: IntakeSettings,
    *, skip_known: bool = False, on_progress: Callable[[int], None] | None = None,
    sha256_of: Callable[[Path], str] = file_sha256,
) -> FileResult | None:
    """Ingest one file inside the caller's transaction; None when skipped as already ingested.

    A file that cannot be read at all is recorded with its error and nothing of it is written; one
    that fails after rows of it were written raises _AbandonedFile, for the caller to roll back."""
    file_name = str(path)
    result = FileResult(file_name)
    wrote = False
    try:
        if not path.is_file():
            raise UnreadableFile(f"{path}: no such file")
        result.sha256 = sha256_of(path)
        if skip_known and already_ingested(conn, file_name, result.sha256):
            report.skipped_files += 1
            return None
        report.files.append(result)
        for chunk in read_chunks(path, settings):
            wrote = True
            load_chunk(conn, chunk, file_name, result.sha256, result, report, settings.max_line_bytes)
            if on_progress:
                on_progress(chunk.table.num_rows + len(chunk.rejected))
        conn.execute(
            "INSERT INTO raw.ingested_files VALUES (?, ?, ?, ?, ?, ?, ?)",
            [file_name, result.sha256, path.stat().st_size, result.ingested, result.duplicates, result.quarantined,
             clock.now()],
        )
    except _FILE_ERRORS as exc:
        error = str(exc) if isinstance(exc, UnreadableFile) else f"{path}: {exc}"
        if wrote:
            raise _AbandonedFile(error, result.sha256) from exc
        _record_error(report, result, error)
    except _RECORD_ERRORS as exc:
        raise _AbandonedFile(f"{path}: a record could not be loaded: {exc}", result.sha256) from exc
    return result


def _record_error(report: IngestReport, result: FileResult, error: str) -> None:
    """The file is in the report with its error and no counts, and none of its lines."""
    result.ingested = result.duplicates = result.quarantined = 0
    result.error = error
    if result not in report.files:
        report.files.append(result)
    report.quarantine = [q for q in report.quarantine if q["file"] != result.file]


def _forget(report: IngestReport, file_names: set[str]) -> None:
    """Take rolled-back files out of the report, before they are loaded again."""
    report.files = [f for f in report.files if f.file not in file_names]
    report.quarantine = [q for q in report.quarantine if q["file"] not in file_names]


class _HashAhead:
    """The sha256 of the next file, worked out on a thread while the current one loads (hashlib lets
    go of the GIL): 5-10% off an ingest of many files."""

    def __init__(self, files: list[Path]):
        self._following = dict(zip(files, files[1:]))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-sha256")
        self._pending: dict[Path, Future] = {}

    def sha256(self, path: Path) -> str:
        future = self._pending.pop(path, None)
        following = self._following.get(path)
        if following is not None and following not in self._pending:
            self._pending[following] = self._pool.submit(file_sha256, following)
        return future.result() if future else file_sha256(path)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ingest_in_batches(
    conn: duckdb.DuckDBPyConnection, files: list[Path], report: IngestReport, settings: IntakeSettings,
    skip_known: bool, on_progress: Callable[[int], None] | None,
) -> None:
    """Files are committed together until a batch holds settings.transaction_records records: a large
    transaction writes compressed row groups straight to the database file, where one small
    transaction per file writes every row twice (the write-ahead log, then the checkpoint).

    Each file is still all or nothing: a file that breaks midway rolls its batch back, and the
    batch's other files are loaded again without it."""
    batch: list[Path] = []
    batch_records = 0
    hashes = _HashAhead(files)
    conn.execute("BEGIN TRANSACTION")
    try:
        for path in files:
            try:
                result = ingest_file(conn, path, report, settings, skip_known=skip_known, on_progress=on_progress,
                                     sha256_of=hashes.sha256)
            except _AbandonedFile as abandoned:
                batch = _reload_without(conn, batch, path, abandoned, report, settings, skip_known)
                continue
            if result is None or result.error:
                continue
            batch.append(path)
            batch_records += result.ingested + result.duplicates + result.quarantined
            if batch_records >= settings.transaction_records:
                conn.execute("COMMIT")
                conn.execute("BEGIN TRANSACTION")
                batch, batch_records = [], 0
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise
    finally:
        hashes.close()


def _reload_without(
    conn: duckdb.DuckDBPyConnection, batch: list[Path], broken: Path, abandoned: _AbandonedFile, report: IngestReport,
    settings: IntakeSettings, skip_known: bool,
) -> list[Path]:
    """Roll back the open transaction, which holds part of `broken`, and load the batch's other files
    again in a new one. A file that breaks on this second reading is left out in turn. Returns the
    batch as reloaded; every file left out is in the report with its error."""
    failures = [(broken, abandoned)]
    while True:
        rollback_quietly(conn)
        _forget(report, {str(p) for p in batch} | {str(path) for path, _ in failures})
        conn.execute("BEGIN TRANSACTION")
        try:
            for earlier in batch:
                ingest_file(conn, earlier, report, settings, skip_known=skip_known)
        except _AbandonedFile as again:
            failures.append((earlier, again))
            batch = [p for p in batch if p != earlier]
            continue
        break
    for path, failure in failures:
        _record_error(report, FileResult(str(path), sha256=failure.sha256), failure.error)
    return batch


def ingest_paths(
    conn: duckdb.DuckDBPyConnection, paths: Iterable[str | Path], settings: IntakeSettings | None = None,
    *, skip_known: bool = False, on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    settings = settings or IntakeSettings()
    ensure_raw_tables(conn)
    report = IngestReport()
    # By default every commit over 16 MB of WAL also checkpoints, recompressing the table once per
    # batch. Checkpoint once at the end instead.
    files = expand_paths(paths)
    with setting(conn, "checkpoint_threshold", "16GB"):
        _ingest_in_batches(conn, files, report, settings, skip_known, on_progress)
    conn.execute("CHECKPOINT")
    # A reload after a broken file appends the batch again: report in the order the files came.
    position = {str(path): i for i, path in reversed(list(enumerate(files)))}
    report.files.sort(key=lambda f: position.get(f.file, len(position)))
    report.quarantine.sort(key=lambda q: (position.get(q["file"], len(position)), q["line"]))
    return report
