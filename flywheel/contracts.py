"""The file contracts of DESIGN.md, one definition each.

The validation SQL (flywheel.core.intake.validation) and the table schemas are generated from these tuples,
and a test holds the README's contract table to them, so a field is changed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "timestamp", "messages", "number", "integer", "boolean", "object"]

MESSAGE_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # Ids are often integers in the systems traces come from; accept them and keep their text.
    accepts_number: bool = False
    description: str = ""


# DuckDB column type for each kind. Timestamps are stored as UTC TIMESTAMP: the Dagster DuckDB IO
# manager's partition delete only matches a TIMESTAMP column.
DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "messages": "STRUCT(role VARCHAR, content VARCHAR)[]",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
    "object": "JSON",
}

TRACE_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("trace_id", "string", required=True, accepts_number=True,
              description="Unique id of the trace; re-ingesting an id adds nothing."),
    FieldSpec("timestamp", "timestamp", required=True,
              description="ISO 8601; a timestamp without offset is read as UTC."),
    FieldSpec("messages", "messages", required=True,
              description="Non-empty list of {role, content}; role is one of " + ", ".join(MESSAGE_ROLES) + "."),
    FieldSpec("customer_id", "string", accepts_number=True,
              description="Leaves the scrub station only as a keyed hash."),
    FieldSpec("cohort", "string", description="Customer segment, e.g. smb or enterprise."),
    FieldSpec("intent", "string", description="Classified intent of the conversation."),
    FieldSpec("judge_score", "number", minimum=0.0, maximum=1.0,
              description="Online judge's confidence that the answer was good, 0-1."),
    FieldSpec("turns", "integer", minimum=0, description="User turns; counted from messages when absent."),
    FieldSpec("guardrail_tripped", "boolean", description="A guardrail fired on this trace."),
    FieldSpec("retried", "boolean", description="The application retried the model call."),
    FieldSpec("handed_off", "boolean", description="The conversation was handed to a human."),
    FieldSpec("csat", "number", description="Customer satisfaction score, if collected."),
    FieldSpec("model_version", "string", description="Model or prompt version that answered."),
    FieldSpec("metadata", "object", description="Anything else; unknown top-level fields are kept here."),
)

TRACE_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in TRACE_FIELDS)
REQUIRED_TRACE_FIELDS: tuple[str, ...] = tuple(f.name for f in TRACE_FIELDS if f.required)

# Eval row (export) and regression result (import), used by later stations.
EVAL_ROW_FIELDS: tuple[str, ...] = (
    "row_id", "eval_version", "input", "expected_behaviour", "pass_criterion",
    "taxonomy_code", "adversarial", "source_trace_ref", "added_at",
)
REGRESSION_RESULT_FIELDS: tuple[str, ...] = ("row_id", "eval_version", "model_version", "passed", "score", "run_at")


def trace_table_columns(*, on_lake: bool = False) -> list[tuple[str, str]]:
    """(name, DuckDB type) of raw.traces: the contract's fields plus provenance. DuckLake writes 128-bit
    integers to Parquet as doubles (measured: md5_number('abc') came back changed in its last 17
    digits), so there the key is kept as its decimal text; readers cast it back with ::UHUGEINT,
    which on the single file costs nothing."""
    return [(f.name, DUCKDB_TYPES[f.kind]) for f in TRACE_FIELDS] + [
        ("source_file", "VARCHAR"),
        ("source_line", "BIGINT"),
        ("ingested_at", "TIMESTAMP"),
        # md5 of the trace id, computed once at intake: station 1's deterministic draws read slices of
        # it instead of hashing every trace of the week again.
        ("sample_key", "VARCHAR" if on_lake else "UHUGEINT"),
    ]
