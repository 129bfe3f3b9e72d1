"""The trace contract as DuckDB queries.

Validating in SQL keeps intake near DuckDB's own JSON load speed: records are parsed by DuckDB's C++
JSON reader and the checks run vectorised on the parsed columns. The queries are generated from
``flywheel.contracts.TRACE_FIELDS``, so the contract is written down once.

Two queries, one contract:

* ``validation_sql``, the reference: names the first fault of a record (field, value, position);
* ``acceptance_sql``, the fast path every record goes through first: it parses each record straight
  into the stored types, reads the JSON kind of every field from one more parse, and answers only
  "valid or not".
  Records it does not accept (usually none) go through the reference for their reason. It must never
  accept a record the reference rejects; flywheel_tests/test_validation.py holds the two together.

Input: a relation (``chunk`` unless named) with columns ``line`` (BIGINT) and ``text`` (VARCHAR, one
record). Output: one row per non-blank record with ``line``, ``reason`` (NULL when valid), ``text``
(only when not valid) and the typed trace columns (NULL unless valid).
"""

from __future__ import annotations

import json

from flywheel.contracts import (
    DUCKDB_TYPES,
    MESSAGE_ROLES,
    TRACE_FIELD_NAMES,
    TRACE_FIELDS,
    FieldSpec,
)

NUMERIC_JSON_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"
INTEGER_JSON_TYPES = "('BIGINT', 'UBIGINT')"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _value(name: str) -> str:
    return f"v_{name}"


def _type_of(name: str) -> str:
    return f"t_{name}"


def _parsed(name: str) -> str:
    """A timestamp field parsed once, for both its check and its typed column."""
    return f"p_{name}"


def _kind_word(kind: str) -> str:
    """SQL for the words naming a JSON kind (json_type's names): a reason says what kind of value a
    field holds, never the value itself (traces hold customer data)."""
    return (
        f"CASE {kind} WHEN 'VARCHAR' THEN 'a string' WHEN 'BIGINT' THEN 'an integer' "
        f"WHEN 'UBIGINT' THEN 'an integer' WHEN 'DOUBLE' THEN 'a decimal number' WHEN 'BOOLEAN' THEN 'true or false' "
        f"WHEN 'OBJECT' THEN 'an object' WHEN 'ARRAY' THEN 'a list' WHEN 'NULL' THEN 'null' ELSE 'nothing' END"
    )


def _got(kind: str, wrong_kind: str | None = None, otherwise: str = "") -> str:
    """SQL for ', got <kind>'; with `wrong_kind`, only when that holds, and ', got <otherwise>'
    when the kind is right but the value is not (out of range, not a timestamp)."""
    if wrong_kind is None:
        return f"', got ' || {_kind_word(kind)}"
    return f"', got ' || CASE WHEN {wrong_kind} THEN {_kind_word(kind)} ELSE {_sql_str(otherwise)} END"


def _wrong_kind(f: FieldSpec, kind: str) -> str:
    """SQL that holds when `kind`, a JSON type name (json_type's words), is not one the field takes.
    Shared by both queries: which kinds a field takes is part of the contract."""
    if f.kind == "string":
        return f"{kind} NOT IN " + ("('VARCHAR', 'BIGINT', 'UBIGINT')" if f.accepts_number else "('VARCHAR')")
    if f.kind in ("number", "integer"):
        return f"{kind} NOT IN " + (NUMERIC_JSON_TYPES if f.kind == "number" else INTEGER_JSON_TYPES)
    single = {"timestamp": "VARCHAR", "boolean": "BOOLEAN", "object": "OBJECT", "messages": "ARRAY"}
    if f.kind not in single:
        raise ValueError(f"unknown field kind {f.kind!r}")
    return f"{kind} <> '{single[f.kind]}'"


def _beyond_python(timestamp: str) -> str:
    """SQL that holds for a time DuckDB parses but Python cannot hold (the year 10000, infinity, BC):
    stored, it would fail every later reader of the row (`flywheel status`, the stations)."""
    return (f"({timestamp} < TIMESTAMPTZ '0001-01-01 00:00:00+00' "
            f"OR {timestamp} >= TIMESTAMPTZ '10000-01-01 00:00:00+00')")


def _type_check(f: FieldSpec) -> tuple[str, str] | None:
    """(condition that the present value is wrong, reason SQL) for one field's kind."""
    v = _value(f.name)
    t = _type_of(f.name)
    label = f'field "{f.name}"'
    wrong = _wrong_kind(f, t)
    if f.kind == "string":
        return wrong, _sql_str(f"{label} must be a string") + " || " + _got(t)
    if f.kind == "timestamp":
        parsed = _parsed(f.name)
        return (
            f"{wrong} OR {parsed} IS NULL OR {_beyond_python(parsed)}",
            _sql_str(f"{label} must be an ISO 8601 timestamp") + " || "
            + f"', got ' || CASE WHEN {wrong} THEN {_kind_word(t)} WHEN {parsed} IS NULL "
            + "THEN 'text that is not a valid one' ELSE 'a time outside the years 1 to 9999' END",
        )
    if f.kind in ("number", "integer"):
        # Out of the stored type's range: an integer past BIGINT would fail the cast that stores it
        # (and with it the whole batch), a number past DOUBLE would be stored as infinity.
        fits = f"try_cast({v} AS BIGINT) IS NULL" if f.kind == "integer" else f"NOT isfinite(try_cast({v} AS DOUBLE))"
        bad = [wrong, fits]
        bounds = []
        if f.minimum is not None:
            bad.append(f"try_cast({v} AS DOUBLE) < {f.minimum}")
            bounds.append(f">= {f.minimum:g}")
        if f.maximum is not None:
            bad.append(f"try_cast({v} AS DOUBLE) > {f.maximum}")
            bounds.append(f"<= {f.maximum:g}")
        what = "a number" if f.kind == "number" else "an integer"
        if bounds:
            what += " " + " and ".join(bounds)
        return " OR ".join(bad), _sql_str(f"{label} must be {what}") + " || " + _got(t, wrong, "one out of range")
    if f.kind == "boolean":
        return wrong, _sql_str(f"{label} must be true or false") + " || " + _got(t)
    if f.kind == "object":
        return wrong, _sql_str(f"{label} must be a JSON object") + " || " + _got(t)
    if f.kind == "messages":
        return wrong, _sql_str(f"{label} must be a list of {{role, content}}") + " || " + _got(t)
    raise ValueError(f"unknown field kind {f.kind!r}")


def _checks(max_bytes: int) -> list[tuple[str, str]]:
    """Ordered (condition, reason) pairs; the first that holds names the record's fault."""
    checks: list[tuple[str, str]] = [
        ("oversize", f"'record is ' || strlen(text) || ' bytes, over the limit of {int(max_bytes)} bytes'"),
        ("NOT is_json", "'not valid JSON'"),
        ("r IS NULL", "'record is not a JSON object'"),
    ]
    for f in TRACE_FIELDS:
        v = _value(f.name)
        present = f"coalesce({_type_of(f.name)} <> 'NULL', false)"
        if f.required:
            checks.append((f"NOT {present}", _sql_str(f'missing required field "{f.name}"')))
        cond, reason = _type_check(f)
        checks.append((f"{present} AND ({cond})", reason))
        if f.required and f.kind == "string":
            checks.append((f"json_extract_string({v}, '$') = ''", _sql_str(f'field "{f.name}" must not be empty')))
        if f.kind == "messages":
            checks += [
                ("len(msgs) = 0", _sql_str('field "messages" must not be empty')),
                (
                    "bad_role_at > 0",
                    "'messages[' || (bad_role_at - 1) || '] has ' || "
                    "CASE WHEN typed_msgs[bad_role_at].role IS NULL THEN 'no role' ELSE 'an unknown role' END || "
                    + _sql_str(", expected one of " + ", ".join(MESSAGE_ROLES)),
                ),
                (
                    "bad_content_at > 0",
                    "'messages[' || (bad_content_at - 1) || '].content must be a string, got ' || "
                    + _kind_word("json_type(msgs[bad_content_at].content)"),
                ),
            ]
    return checks


def _stored_column(f: FieldSpec, value: str, messages: str) -> str:
    """The column stored for a field, from the SQL of its typed value and of the typed conversation;
    NULL unless the record is valid."""
    expr = value
    if f.kind == "object":
        # Unknown top-level fields are kept in metadata; an explicit metadata key wins a clash.
        # Merge-patching the record with {known: null, ...} leaves exactly its unknown fields.
        expr = (
            f"CASE WHEN has_extras THEN json_merge_patch(json_merge_patch(text, {_sql_str(_NULL_KNOWN)}), "
            f"coalesce({value}, '{{}}')) ELSE {value} END"
        )
    if f.name == "turns":
        # Counted from the conversation when the producer did not say.
        expr = f"coalesce({expr}, len(list_filter({messages}, lambda m: m.role = 'user')))"
    return f"CASE WHEN reason IS NULL THEN {expr} END AS {f.name}"


def _typed_column(f: FieldSpec) -> str:
    """The reference's stored column, converted from the field's JSON leaf."""
    v = _value(f.name)
    if f.kind == "string":
        value = f"json_extract_string({v}, '$')"
    elif f.kind == "timestamp":
        value = f"CAST({_parsed(f.name)} AS TIMESTAMP)"
    elif f.kind == "messages":
        value = "typed_msgs"
    elif f.kind == "object":
        value = v
    else:
        value = f"CAST({v} AS {DUCKDB_TYPES[f.kind]})"
    return _stored_column(f, value, "typed_msgs")


def _json_kind(v: str) -> str:
    """The JSON type of a serialized value from its first character: from_json re-serializes the
    values it returns compactly, so this replaces a json_type() call, which would parse the value
    again (for messages, the whole conversation)."""
    return (
        f"CASE left({v}, 1) WHEN '\"' THEN 'VARCHAR' WHEN '{{' THEN 'OBJECT' WHEN '[' THEN 'ARRAY' "
        f"WHEN 't' THEN 'BOOLEAN' WHEN 'f' THEN 'BOOLEAN' WHEN 'n' THEN 'NULL' "
        f"WHEN '-' THEN CASE WHEN regexp_matches({v}, '[.eE]') THEN 'DOUBLE' ELSE 'BIGINT' END "
        f"ELSE CASE WHEN {v} IS NULL THEN NULL WHEN regexp_matches({v}, '[.eE]') THEN 'DOUBLE' ELSE 'UBIGINT' END END"
    )


_NULL_KNOWN = json.dumps({name: None for name in TRACE_FIELD_NAMES})
_STRUCTURE = json.dumps({name: "JSON" for name in TRACE_FIELD_NAMES})
_ROLES = "(" + ", ".join(_sql_str(r) for r in MESSAGE_ROLES) + ")"
_KNOWN = "(" + ", ".join(_sql_str(n) for n in TRACE_FIELD_NAMES) + ")"
# Blank lines are not records. The length test first spares trimming (a copy) of every record.
_NOT_BLANK = "strlen(text) > 64 OR trim(text, E' \\t\\r\\n') <> ''"
_IS_OBJECT = "left(ltrim(text, E' \\t\\r\\n'), 1) = '{'"


def _has_extras(parsed: str, text: str = "text") -> str:
    """Whether a record (the JSON in column `text`) has top-level fields the contract does not name
    (computed when `parsed`)."""
    return f"CASE WHEN {parsed} THEN len(list_filter(json_keys({text}), lambda k: k NOT IN {_KNOWN})) > 0 END AS has_extras"


def _leaf_columns(fields) -> str:
    return ",\n    ".join(f"r.{f.name} AS {_value(f.name)}, {_json_kind(f'r.{f.name}')} AS {_type_of(f.name)}" for f in fields)


def _parsed_timestamps() -> str:
    return ",\n    ".join(
        f"CASE WHEN {_type_of(f.name)} = 'VARCHAR' THEN try_cast(json_extract_string({_value(f.name)}, '$') AS TIMESTAMPTZ) "
        f"END AS {_parsed(f.name)}"
        for f in TRACE_FIELDS if f.kind == "timestamp"
    )


def _typed_faults(f: FieldSpec) -> list[str]:
    """Conditions under which a scalar field breaks the contract, read off its JSON kind (k_<name>)
    and its typed value (r.<name>): the reference's checks, without their reasons. The typed parse
    is lenient (a numeric string becomes a number, a number text), so every check looks at the kind
    first; a value the typed parse could not convert is NULL, which fails the record."""
    k, v = _kind_of(f.name), f"r.{f.name}"
    present = f"coalesce({k} <> 'NULL', false)"
    faults = [f"NOT {present}"] if f.required else []
    wrong = _wrong_kind(f, k)
    if f.kind == "string":
        if f.required:
            wrong += f" OR {v} = ''"
    elif f.kind == "timestamp":
        wrong += f" OR {v} IS NULL OR {_beyond_python(v)}"
    elif f.kind in ("number", "integer"):
        # NULL when out of the stored type's range (an integer past BIGINT); infinity past DOUBLE.
        wrong += f" OR {v} IS NULL"
        if f.kind == "number":
            wrong += f" OR NOT isfinite({v})"
        if f.minimum is not None:
            wrong += f" OR {v} < {f.minimum}"
        if f.maximum is not None:
            wrong += f" OR {v} > {f.maximum}"
    elif f.kind not in ("boolean", "object"):
        raise ValueError(f"no scalar check for field kind {f.kind!r}")
    faults.append(f"({present} AND ({wrong}))")
    return faults


def _kind_of(name: str) -> str:
    return f"k_{name}"


def _output(source: str, typed_columns: list[str], carried: str = "") -> str:
    typed = ",\n  ".join(typed_columns)
    return f"""SELECT {carried}line, reason, CASE WHEN reason IS NOT NULL THEN rtrim(text, E'\\r\\n') END AS text,
  {typed}
FROM {source}"""


NOT_ACCEPTED = "not accepted by the fast path"

# The fast path's typed parse: every field straight into its stored type (timestamps with their
# offset, converted to UTC on the way out).
_TYPED_STRUCTURE = json.dumps({
    f.name: [{"role": "VARCHAR", "content": "VARCHAR"}] if f.kind == "messages"
    else "TIMESTAMPTZ" if f.kind == "timestamp" else DUCKDB_TYPES[f.kind]
    for f in TRACE_FIELDS
})
# Conversations up to this long have the JSON kinds of their message contents read by the same
# json_type call as the fields; a longer one costs one more parse of its record.
CONTENTS_READ_BY_PATH = 16
# The paths of that one json_type call: the record itself (an object?), every top-level field, and
# the first CONTENTS_READ_BY_PATH message contents.
_KIND_PATHS = (
    ["$"] + [f"$.{f.name}" for f in TRACE_FIELDS]
    + [f"$.messages[{i}].content" for i in range(CONTENTS_READ_BY_PATH)]
)
_FIRST_CONTENT_KIND = 2 + len(TRACE_FIELDS)  # 1-based position in the kinds list


def _fast_typed_column(f: FieldSpec) -> str:
    """The fast path's stored column: the typed parse already holds the stored type."""
    value = f"CAST(r.{f.name} AS TIMESTAMP)" if f.kind == "timestamp" else f"r.{f.name}"
    return _stored_column(f, value, "r.messages")


def acceptance_sql(max_bytes: int, source: str = "chunk", carry: tuple[str, ...] = ()) -> str:
    """The fast path: reason is NULL for a valid record and NOT_ACCEPTED otherwise; the caller sends
    the records it did not accept through validation_sql for their reason. Columns of `source`
    named in `carry` are passed through to the output unchanged.

    DuckDB's C++ JSON reader passes over each record four times, the parse being most of the cost:
    json_valid; one typed from_json straight into the stored types (no JSON leaf is converted
    afterwards); one json_type call for the JSON kinds of the record (an object?), of every field
    and of the message contents, which the lenient typed parse cannot tell apart; and json_keys, for
    unknown fields. Both typed parse and json_type read the first of repeated keys, as the
    reference does.

    The typed parse could skip json_valid under try(), but one record that is not JSON makes DuckDB
    run its whole vector again row by row: 2.5 times slower on data with one bad line in 1,000."""
    scalars = [f for f in TRACE_FIELDS if f.kind != "messages"]
    faults = [fault for f in scalars for fault in _typed_faults(f)]
    faults += [
        "k_messages IS DISTINCT FROM 'ARRAY'",
        "r.messages IS NULL",
        "len(r.messages) = 0",
        f"list_position(list_transform(r.messages, lambda m: coalesce(m.role NOT IN {_ROLES}, true)), true) > 0",
        # The typed parse reads a number or an object as text; the JSON kinds of the contents tell
        # a string from the rest. A content the message lacks has no kind: by path it is NULL, by
        # the wildcard it is left out.
        "coalesce(len(content_types) <> len(r.messages), true)",
        "list_position(list_transform(content_types, lambda t: coalesce(t <> 'VARCHAR', true)), true) > 0",
    ]
    fault = "\n      OR ".join(faults)
    paths = "[" + ", ".join(map(_sql_str, _KIND_PATHS)) + "]"
    kinds = ",\n    ".join(f"kinds[{i}] AS {_kind_of(f.name)}" for i, f in enumerate(TRACE_FIELDS, start=2))
    first = _FIRST_CONTENT_KIND
    carried = "".join(f"{name}, " for name in carry)
    return f"""
WITH records AS (
  -- The JSON functions below read NULL for a record that is not JSON (a bad record must never reach
  -- them: their error would fail the query). Nulling their input rather than their output spares
  -- a CASE over the parsed values, conversations included.
  SELECT {carried}line, text,
    CASE WHEN strlen(text) <= {int(max_bytes)} AND json_valid(text) THEN text END AS json_text
  FROM {source}
  WHERE {_NOT_BLANK}
), typed AS (
  SELECT {carried}line, text,
    from_json(json_text, {_sql_str(_TYPED_STRUCTURE)}) AS r,
    json_type(json_text, {paths}) AS kinds,
    {_has_extras("json_text IS NOT NULL", "json_text")}
  FROM records
), fields AS (
  SELECT *,
    coalesce(kinds[1] = 'OBJECT', false) AS readable,
    CASE WHEN r.messages IS NULL THEN NULL
         WHEN len(r.messages) <= {CONTENTS_READ_BY_PATH} THEN kinds[{first}:{first - 1} + len(r.messages)]
         ELSE json_type(text, '$.messages[*].content') END AS content_types,
    {kinds}
  FROM typed
), checked AS (
  SELECT *, CASE WHEN NOT readable
      OR {fault}
    THEN {_sql_str(NOT_ACCEPTED)} END AS reason
  FROM fields
)
{_output("checked", [_fast_typed_column(f) for f in TRACE_FIELDS], carried)}
"""


def validation_sql(max_bytes: int, source: str = "chunk") -> str:
    """The reference: every record's first fault, in the words the quarantine shows."""
    case = "\n".join(f"      WHEN {cond} THEN {reason}" for cond, reason in _checks(max_bytes))
    return f"""
WITH parsed AS (
  SELECT line, text,
    strlen(text) > {int(max_bytes)} AS oversize,
    CASE WHEN strlen(text) <= {int(max_bytes)} THEN json_valid(text) END AS is_json
  FROM {source}
  WHERE {_NOT_BLANK}
), records AS (
  SELECT *, CASE WHEN is_json AND {_IS_OBJECT} THEN from_json(text, {_sql_str(_STRUCTURE)}) END AS r
  FROM parsed
), fields AS (
  SELECT line, text, oversize, is_json, r,
    {_leaf_columns(TRACE_FIELDS)},
    {_has_extras("r IS NOT NULL")}
  FROM records
), conversations AS (
  -- Messages are read twice: with JSON leaves, to tell a string content from a number, and typed,
  -- which is both the role check and the stored value (one C++ parse instead of a lambda per message).
  SELECT *,
    CASE WHEN t_messages = 'ARRAY' THEN try_cast(v_messages AS STRUCT(role JSON, content JSON)[]) END AS msgs,
    CASE WHEN t_messages = 'ARRAY' THEN from_json(v_messages, '[{{"role": "VARCHAR", "content": "VARCHAR"}}]') END
      AS typed_msgs,
    {_parsed_timestamps()}
  FROM fields
), located AS (
  SELECT *,
    list_position(list_transform(typed_msgs, lambda m: coalesce(m.role NOT IN {_ROLES}, true)), true)
      AS bad_role_at,
    list_position(list_transform(msgs, lambda m: coalesce(left(m.content, 1) <> '"', true)), true)
      AS bad_content_at
  FROM conversations
), checked AS (
  SELECT *,
    CASE
{case}
    END AS reason
  FROM located
)
{_output("checked", [_typed_column(f) for f in TRACE_FIELDS])}
"""
