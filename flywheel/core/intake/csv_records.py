"""CSV files as records, every one of them: read, blank, or rejected with the line it starts on.

Python's csv module parses, but it is fed one physical line at a time (split on b"\\n") by
`_PhysicalLines`, which decodes each line on its own and watches the size of the record being read.
So a problem stays inside its record:

* a byte that is not UTF-8 is replaced for the parser (which keeps the record's boundaries) and
  rejects only the record holding it;
* a record over the size limit is never held whole nor parsed: once over, the rest of it is read
  in pieces, and where it ends is found by the parser's own state machine (`_RecordEnd`) run over
  the text made short (`_collapse`); the record is rejected with its size;
* a parse error rejects the record it happened in, and reading goes on with the next line.

Records are named by the physical line they start on (the header is line 1), the same numbering
as a text editor and as JSON Lines files.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BOM = b"\xef\xbb\xbf"
# Delimiters the sniffer may choose from. A header is plain column names, so sniffing it alone
# is reliable; the rows would mislead it (their cells hold JSON, full of commas and colons).
DELIMITERS = ",;\t|"
QUOTE = '"'
# A line is read in pieces of at most this much, so an oversized one is never held whole.
PIECE_BYTES = 1024 * 1024
EXCERPT_CHARS = 4096

# The parser never meets a record over the size limit (the reader skips it), so its own guard
# (128 KiB by default, which raised "field larger than field limit" and ended the file) only gets
# in the way. The setting is process-wide; raising it is safe.
csv.field_size_limit(min(2**31 - 1, sys.maxsize))


class CsvHeaderError(Exception):
    """The header cannot be read: the file as a whole is unusable."""


@dataclass
class CsvRecord:
    line: int  # the physical line the record starts on
    cells: list[str] | None  # None when the record is rejected
    reason: str | None = None
    excerpt: str = ""  # the record's raw text, cut short: what raw.quarantine keeps of a rejected one


def sniff_delimiter(header: str) -> str:
    """The header's delimiter among DELIMITERS (csv.Sniffer, on the header line alone); a comma when
    it cannot tell (a header of one column)."""
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


# The states of Python's csv parser (Modules/_csv.c) for our dialect: non-strict, doubled quotes,
# no escape character. ENDED: the parser raised an error, and drops the rest of the line.
START_RECORD, START_FIELD, IN_FIELD, IN_QUOTED_FIELD, QUOTE_IN_QUOTED_FIELD, EAT_CRNL, ENDED = range(7)
_CR, _LF, _QUOTE = ord("\r"), ord("\n"), ord(QUOTE)


class _RecordEnd:
    """Python's csv state machine without the fields: where a record ends. Used for a record over
    the size limit, which is read to its end without being held or parsed. Mid-record, a line ends
    in a quoted cell (any other state ends the record at the end of the line), so a record's lines
    after its first start in IN_QUOTED_FIELD."""

    def __init__(self, delimiter: str, state: int):
        self.delimiter, self.state = ord(delimiter), state

    def feed(self, data: bytes) -> None:
        state, delimiter = self.state, self.delimiter
        for c in data:
            if state == ENDED:
                break
            if state == START_RECORD:
                state = EAT_CRNL if c in (_CR, _LF) else START_FIELD
                if state == EAT_CRNL:
                    continue
            if state == START_FIELD:
                state = (EAT_CRNL if c in (_CR, _LF) else IN_QUOTED_FIELD if c == _QUOTE
                         else START_FIELD if c == delimiter else IN_FIELD)
            elif state == IN_FIELD:
                state = EAT_CRNL if c in (_CR, _LF) else START_FIELD if c == delimiter else IN_FIELD
            elif state == IN_QUOTED_FIELD:
                state = QUOTE_IN_QUOTED_FIELD if c == _QUOTE else IN_QUOTED_FIELD
            elif state == QUOTE_IN_QUOTED_FIELD:
                state = (IN_QUOTED_FIELD if c == _QUOTE else START_FIELD if c == delimiter
                         else EAT_CRNL if c in (_CR, _LF) else IN_FIELD)
            else:  # EAT_CRNL: anything but a line break after a carriage return is an error
                state = EAT_CRNL if c in (_CR, _LF) else ENDED
        self.state = state

    def ends_with_line(self) -> bool:
        """At the end of a line: does the record end here?"""
        return self.state != IN_QUOTED_FIELD


class _PhysicalLines:
    """The file's lines for csv.reader, one at a time, keeping count of where the current record
    started, how big it is so far and whether any of its bytes is not UTF-8."""

    def __init__(self, fh, limit: int, delimiter: str):
        self.fh, self.limit, self.delimiter = fh, limit, delimiter
        self.read = 0  # physical lines read
        quote, delimiter_ = re.escape(QUOTE.encode()), re.escape(delimiter.encode())
        self._others = re.compile(b"[^" + quote + delimiter_ + b"\r\n]+")
        self._delimiters = re.compile(delimiter_ + b"{2,}")
        self._quotes = re.compile(quote + b"{3,}")
        self._inert = re.compile(b"x(?:" + quote + quote + b"|" + delimiter_ + b"x)+")
        self.new_record()

    def new_record(self) -> None:
        self.first = self.read + 1
        self.size = 0
        self.bad_byte: int | None = None  # offset in the record of the first byte that is not UTF-8
        self._excerpt: list[str] = []
        self._kept = 0

    @property
    def oversized(self) -> bool:
        return self.size > self.limit

    @property
    def excerpt(self) -> str:
        return "".join(self._excerpt)[:EXCERPT_CHARS]

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        piece = self.fh.readline(PIECE_BYTES)
        if not piece:
            raise StopIteration
        self.read += 1
        start = self.size
        self.size += len(piece)
        if self.size <= self.limit and (piece.endswith(b"\n") or len(piece) < PIECE_BYTES):
            return self._decoded(piece, start)  # the usual case: a whole line, within the limit
        return self._long_line(piece, start)

    def _long_line(self, piece: bytes, start: int) -> str:
        """A line read in pieces while the record is within the limit; past it, the rest of the
        record is skipped."""
        kept = [piece]
        while not self.oversized:
            if piece.endswith(b"\n") or not (piece := self.fh.readline(PIECE_BYTES)):
                return self._decoded(b"".join(kept), start)
            self.size += len(piece)
            kept.append(piece)
        return self._skip_oversized(b"".join(kept))

    def _skip_oversized(self, line_so_far: bytes) -> str:
        """Read the rest of a record over the limit, from the start of its current line, without
        holding or parsing it: its end is found by _RecordEnd over the text collapsed. Returns a
        stand-in line that ends the record the parser has begun, which is then rejected for its
        size: "x" for a record whose first line this is (the parser is at the start of a record),
        a closing quote for a later one (the parser is in a quoted cell)."""
        at_start = self.read == self.first
        machine = _RecordEnd(self.delimiter, START_RECORD if at_start else IN_QUOTED_FIELD)
        piece = line_so_far
        while True:
            self._keep_excerpt(piece)
            machine.feed(self._collapse(piece))
            end_of_line = piece.endswith(b"\n")
            if end_of_line and machine.ends_with_line():
                break
            if not (piece := self.fh.readline(PIECE_BYTES)):
                break  # the end of the file ends the record, in a quoted cell or not
            self.size += len(piece)
            if end_of_line:
                self.read += 1
        return "x\n" if at_start else QUOTE + "\n"

    def _keep_excerpt(self, raw: bytes) -> None:
        if self._kept < EXCERPT_CHARS:
            head = raw[: EXCERPT_CHARS - self._kept].decode("utf-8", "replace")
            self._excerpt.append(head)
            self._kept += len(head)

    def _collapse(self, data: bytes) -> bytes:
        """Shorter text that takes Python's csv state machine (and _RecordEnd) from any state to the
        same state as `data`, so that finding where a record ends costs little. Each rewrite maps
        every state to the same state as the text it replaces: a run of ordinary characters
        (neither delimiter, quote nor line break) acts as one; a run of delimiters as one; a run of
        quotes as one or two by its parity; and after an ordinary character (which leaves the
        parser inside a field, quoted or not) a doubled quote, or a delimiter and another ordinary
        character, changes nothing. test_intake_csv holds this against the parser itself."""
        while True:
            before = len(data)
            data = self._others.sub(b"x", data)
            data = self._delimiters.sub(lambda m: m.group()[:1], data)
            data = self._quotes.sub(lambda m: m.group()[: 1 + (len(m.group()) % 2 == 0)], data)
            data = self._inert.sub(b"x", data)
            if len(data) == before:
                return data

    def _decoded(self, line: bytes, start: int) -> str:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.bad_byte is None:
                self.bad_byte = start + exc.start
            # Replaced bytes are ordinary characters to the parser: the record ends where it would.
            text = line.decode("utf-8", "replace")
        if self._kept < EXCERPT_CHARS:
            self._excerpt.append(text)
            self._kept += len(text)
        return text


def _problem(lines: _PhysicalLines) -> str | None:
    if lines.oversized:
        return f"record is {lines.size} bytes, over the limit of {lines.limit} bytes"
    if lines.bad_byte is not None:
        return f"not valid UTF-8 (byte {lines.bad_byte})"
    return None


def _csv_error_reason(exc: csv.Error) -> str:
    if "new-line character seen in unquoted field" in str(exc):
        return "a carriage return inside an unquoted cell"
    return f"unreadable CSV record: {exc}"  # the csv module's messages never quote the data


def _skip_bom(fh) -> None:
    if fh.read(len(BOM)) != BOM:
        fh.seek(0)


def _header_delimiter(fh, limit: int) -> str:
    start = fh.tell()
    first = fh.readline(min(limit, PIECE_BYTES) + 1)
    fh.seek(start)
    return sniff_delimiter(first.decode("utf-8", "replace"))


def read_csv_records(path: Path, limit: int) -> Iterator[tuple[list[str], CsvRecord]]:
    """(header, record) for every record of the file after the header; blank rows (no cell with
    anything but spaces) are skipped. Raises CsvHeaderError when the header cannot be read, and
    OSError when the file stops short of the size it had when opened."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        _skip_bom(fh)
        delimiter = _header_delimiter(fh, limit)
        lines = _PhysicalLines(fh, limit, delimiter)
        reader = csv.reader(lines, delimiter=delimiter, quotechar=QUOTE, doublequote=True, strict=False)
        header = _read_header(reader, lines)
        if header is None:
            return
        while True:
            lines.new_record()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield header, CsvRecord(lines.first, None, _csv_error_reason(exc), lines.excerpt)
                continue
            problem = _problem(lines)
            if problem is not None:
                yield header, CsvRecord(lines.first, None, problem, lines.excerpt)
            elif any(cell.strip() for cell in cells):
                yield header, CsvRecord(lines.first, cells, excerpt=lines.excerpt)
        _check_read_to_end(fh, size, path)


def _read_header(reader, lines: _PhysicalLines) -> list[str] | None:
    try:
        header = next(reader)
    except StopIteration:
        return None  # an empty file
    except csv.Error as exc:
        raise CsvHeaderError(f"cannot read the CSV header: {_csv_error_reason(exc)}") from exc
    problem = _problem(lines)
    if problem is not None:
        raise CsvHeaderError(f"cannot read the CSV header: {problem}")
    if not any(name.strip() for name in header):
        raise CsvHeaderError("cannot read the CSV header: the first line is blank")
    return [name.strip() for name in header]  # "trace_id, timestamp" names timestamp, not " timestamp"


def _check_read_to_end(fh, size: int, path: Path) -> None:
    """Every byte was read: a reader that stopped early would lose the records after it unseen."""
    at = fh.tell()
    if at != size:
        raise OSError(f"{path}: reading stopped at byte {at} of {size}")
