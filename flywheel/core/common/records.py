"""Reading small user files (CSV, JSON Lines, one JSON object) for imports that report by row or line.

Whatever a file holds, reading it ends in records or in one RecordsError naming the file and where:
not UTF-8 (the line and byte), empty, a JSON list where objects belong, a CSV cell past the size
limit, broken CSV quoting. A UTF-8 byte order mark is accepted; a CSV delimited by semicolons or tabs
(what spreadsheets write in many locales) is recognised from its header. A single bad record comes
back as its problem text, for the caller to report by number. No message quotes the file's content:
traces and labels hold customer data.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import orjson

# Far beyond any conversation cell a labels export writes, far below what a stray 50 MB cell costs.
CSV_FIELD_LIMIT = 16 * 1024 * 1024
DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
# The timestamps flywheel accepts from a file: anything outside is a typo or a placeholder (year 1,
# 9999-12-31), and near the ends of Python's range moving it to UTC or adding a week overflows.
EARLIEST = dt.datetime(2000, 1, 1)
LATEST = dt.datetime(2100, 1, 1)
TIMESTAMP_RANGE = "2000-01-01 to 2099-12-31"


class RecordsError(ValueError):
    """A file that cannot be read as records: the message is one line naming the file and where."""


def is_csv(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".csv", ".tsv")


def numbering(path: str | Path) -> str:
    """How a record's number reads: spreadsheet rows for CSV (the header is row 1), lines for JSONL."""
    return "row" if is_csv(path) else "line"


def read_text(path: str | Path, *, max_bytes: int | None = None) -> str:
    """The file as text: UTF-8 (a byte order mark is dropped), or a RecordsError naming the line and
    byte where it is not; an empty file is an error too."""
    path = Path(path)
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise RecordsError(f"{path}: larger than {max_bytes // 1024} KB; this file should be small")
        data = path.read_bytes()
    except FileNotFoundError:
        raise RecordsError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecordsError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # exc.object, not data: after a byte order mark, positions count from the end of the mark.
        breaks = list(re.finditer(rb"\r\n|\r|\n", exc.object[:exc.start]))
        line = len(breaks) + 1
        byte = exc.start - (breaks[-1].end() if breaks else 0) + 1
        raise RecordsError(f"{path}: line {line}, byte {byte}: not UTF-8 text ({exc.reason}); "
                           "save the file as UTF-8 and try again") from None
    if not text.strip():
        raise RecordsError(f"{path}: the file is empty")
    return text


def json_kind(value) -> str:
    """What a JSON value is, for 'a JSON list where an object belongs'."""
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, bool) or value is None:
        return f"JSON {json.dumps(value)}"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, (int, float)):
        return "a JSON number"
    return f"a value of type {type(value).__name__}"  # bytes from an OTLP bytesValue, a Parquet date


def listed(value) -> list:
    """A field that should hold a list, as one: anything else (a number, a string, an object where a
    list belongs, in a hostile, hand-edited or other version's file) holds no items."""
    return value if isinstance(value, list) else []


def mapping_of(value) -> dict:
    """A field that should hold an object, as one (an empty one when it holds anything else)."""
    return value if isinstance(value, dict) else {}


def json_problem(exc: Exception) -> str:
    """Why a JSON text did not parse, without its content."""
    if isinstance(exc, json.JSONDecodeError):
        return f"column {exc.colno}: not valid JSON ({exc.msg.removesuffix(' at').strip()})"
    if isinstance(exc, RecursionError):
        return "not valid JSON (nested too deeply)"
    return "not valid JSON (a number too long to read)"


def _has_lone_surrogate(value) -> bool:
    """A \\ud800-style escape decodes to half a character, which no UTF-8 store accepts."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def loads(text: str | bytes):
    """json.loads, through orjson first: 1.3 times as fast on the OTLP benchmark's batch lines, twice
    as fast on a message list. What orjson refuses (NaN, Infinity, a lone surrogate,
    broken JSON) goes to json, which reads it or raises its own error naming the column. One
    difference: an integer beyond 64 bits comes back as a float (no field of a trace or a label is
    such a number)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def parse_object(text: str) -> dict | str:
    """One JSON object from a text, or the problem: not JSON, or a list or scalar where an object belongs.
    Read as `loads` reads: orjson first, json for what orjson refuses."""
    try:
        value, whole_characters = orjson.loads(text), True  # orjson refuses lone surrogates itself
    except orjson.JSONDecodeError:
        try:
            value, whole_characters = json.loads(text), "\\u" not in text
        except (ValueError, RecursionError) as exc:
            return json_problem(exc)
    if not isinstance(value, dict):
        return f"{json_kind(value)} where a JSON object belongs"
    if not whole_characters and _has_lone_surrogate(value):
        return "a \\u escape stands for half a character (a lone surrogate), not text"
    return value


def json_lines(path: str | Path) -> list[tuple[int, dict | str]]:
    """(line number, object or problem) for each non-blank line of a JSON Lines file."""
    path = Path(path)
    text = read_text(path)
    stripped = text.lstrip()
    if stripped[:1] in "[{" and "\n" in stripped.strip():
        # One JSON document over several lines (a pretty-printed list or object): say so once, not
        # "not valid JSON" on every line.
        try:
            whole = json.loads(text)
        except (ValueError, RecursionError):
            whole = None
        if isinstance(whole, (list, dict)):
            what = "a JSON list" if isinstance(whole, list) else "one JSON object over several lines"
            raise RecordsError(f"{path}: line 1: {what}; write JSON Lines, one object on each line")
    out: list[tuple[int, dict | str]] = []
    for number, line in enumerate(io.StringIO(text), 1):
        if line.strip():
            out.append((number, parse_object(line)))
    return out


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def header_delimiter(text: str) -> str:
    """Commas, unless the header (the first non-blank line) splits into more columns on semicolons or tabs."""
    header_line = re.split(r"\r\n|\r|\n", text.lstrip("\r\n"), maxsplit=1)[0]
    best, best_n = ",", 1
    for d in DELIMITERS:
        try:
            n = len(next(csv.reader([header_line], delimiter=d), []))
        except csv.Error:  # the reader proper reports what is wrong, with the row
            continue
        if n > best_n:
            best, best_n = d, n
    return best


def csv_rows(path: str | Path, *, by_line: bool = False) -> tuple[list[str], list[tuple[int, dict | str]]]:
    """The header and (row number, row or problem) for each non-blank row, numbered as a spreadsheet
    shows them (the header is row 1; a cell over several lines is still one row), or with `by_line` by
    the line the row starts on (as trace files are named). A row with more cells than the header has
    columns comes back as its problem."""
    path = Path(path)
    text = read_text(path)
    header: list[str] | None = None
    rows: list[tuple[int, dict | str]] = []
    number = 0
    with _field_limit(CSV_FIELD_LIMIT):
        delimiter = header_delimiter(text)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        try:
            ended = 0  # the line the previous row ended on
            for number, cells in enumerate(reader, 1):
                at, ended = (ended + 1 if by_line else number), reader.line_num
                if not any(c.strip() for c in cells):
                    continue  # a blank row, as spreadsheets leave them
                if header is None:
                    header = [c.strip() for c in cells]
                    _check_header(path, header, number)
                    continue
                if any(c.strip() for c in cells[len(header):]):
                    rows.append((at, f"{len(cells)} cells, but the header has {len(header)} columns (a "
                                         f"{DELIMITER_NAMES[delimiter][:-1]} in a cell that is not quoted?)"))
                    continue
                rows.append((at, dict(zip(header, cells + [""] * (len(header) - len(cells))))))
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                why = (f"a cell is larger than {CSV_FIELD_LIMIT // (1024 * 1024)} MB, the limit for one cell; "
                       "nothing after it was read")
            elif "end of data" in str(exc):
                why = "broken CSV quoting (a quoted cell is never closed); nothing after it was read"
            elif "expected after" in str(exc):
                why = "broken CSV quoting (text right after a closing quote); nothing after it was read"
            else:
                why = "broken CSV (not a table of cells); nothing after it was read"
            raise RecordsError(f"{path}: row {number + 1} (line {reader.line_num}): {why}") from None
    assert header is not None  # read_text refused a file with nothing but blanks
    return header, rows


def _check_header(path: Path, header: list[str], number: int) -> None:
    seen: set[str] = set()
    for i, name in enumerate(header, 1):
        if not name:
            if all(not later for later in header[i:]):
                continue  # trailing delimiters
            raise RecordsError(f"{path}: row {number}, column {i}: the header has a column without a name")
        if name in seen:
            raise RecordsError(f"{path}: row {number}: column {name} appears twice in the header")
        seen.add(name)


def numbered_records(path: str | Path) -> list[tuple[int, dict | str]]:
    """(number, record) pairs: CSV rows numbered as a spreadsheet shows them (the header is row 1),
    JSON Lines by line. A record that cannot be read comes back as its problem text, for the caller
    to report; a file that cannot be read at all raises RecordsError."""
    if is_csv(path):
        return csv_rows(path)[1]
    return json_lines(path)


def parse_timestamp(value) -> dt.datetime:
    """An ISO 8601 timestamp as naive UTC (no offset means UTC), within EARLIEST..LATEST. The
    ValueError says what is wrong with the value's shape, never the value."""
    if isinstance(value, dt.datetime):
        t = value
    else:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("not an ISO 8601 timestamp (e.g. 2026-05-04T06:00:00Z)")
        text = value.strip()
        if text[-1:] in "zZ":
            text = text[:-1] + "+00:00"
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO 8601 timestamp (e.g. 2026-05-04T06:00:00Z)") from None
    if t.tzinfo is not None:
        try:
            t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(f"outside {TIMESTAMP_RANGE}") from None
    if not EARLIEST <= t < LATEST:
        raise ValueError(f"outside {TIMESTAMP_RANGE}")
    return t


def parse_date(value) -> dt.date:
    """A calendar date (YYYY-MM-DD, or the date of an ISO 8601 timestamp) within the same range."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    else:
        text = value.strip() if isinstance(value, str) else ""
        try:
            day = dt.date.fromisoformat(text[:10])
        except ValueError:
            raise ValueError("not a date (YYYY-MM-DD)") from None
    if not EARLIEST.date() <= day < LATEST.date():
        raise ValueError(f"outside {TIMESTAMP_RANGE}")
    return day


# A Parquet binary cell that is not UTF-8 text.
NOT_UTF8 = object()


def plain_parquet_value(value, *, integer: bool = False):
    """A Parquet cell as the JSON value it stands for: binary as its UTF-8 text (NOT_UTF8 when it is
    not text), a decimal as a number, and in an integer field a whole float as an integer (pandas
    writes an integer column with a missing value as float64)."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return NOT_UTF8
    if isinstance(value, decimal.Decimal):
        return int(value) if integer and value.is_finite() and value == value.to_integral_value() else float(value)
    if integer and isinstance(value, float) and value.is_integer():
        return int(value)
    return value
