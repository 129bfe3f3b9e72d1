"""Where everything lives: the data directory and the paths under it.

Kept apart from flywheel.settings (pydantic models, whose import costs more than a light verb's whole
run) so that `flywheel gate` and friends start fast; flywheel.settings re-exports all of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from flywheel.core.common.lake import WAREHOUSE_ENV, Lake, parse_target

DATA_DIR_ENV = "FLYWHEEL_DATA"
# The repository's own data/reference (the demo's taxonomy lives there), for data directories elsewhere.
REPO_REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
DEFAULT_DATA_DIR = "data"
# Weekly partitions start here; set FLYWHEEL_PARTITIONS_START (a Monday, YYYY-MM-DD) for older traffic.
PARTITIONS_START_ENV = "FLYWHEEL_PARTITIONS_START"
DEFAULT_PARTITIONS_START = "2026-03-02"


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The one data directory: an explicit path, else $FLYWHEEL_DATA, else ./data."""
    raw = explicit or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(raw).expanduser().resolve()


def partitions_start() -> str:
    return os.environ.get(PARTITIONS_START_ENV, DEFAULT_PARTITIONS_START)


class Paths:
    """Where everything lives under the data directory."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.data_dir = resolve_data_dir(data_dir)

    @property
    def warehouse(self) -> Path | Lake:
        """The single DuckDB file (<data>/flywheel.duckdb), or the DuckLake FLYWHEEL_WAREHOUSE names."""
        return parse_target(os.environ.get(WAREHOUSE_ENV), self.data_dir)

    @property
    def inbox_traces(self) -> Path:
        return self.data_dir / "inbox" / "traces"

    @property
    def inbox_incidents(self) -> Path:
        return self.data_dir / "inbox" / "incidents"

    @property
    def reference(self) -> Path:
        return self.data_dir / "reference"

    @property
    def customer_vocabulary(self) -> Path:
        """The CRM export the lookup layer reads (customer data: never committed)."""
        return self.reference / "customer_vocabulary.csv"

    @property
    def taxonomy_seed(self) -> Path:
        """<data>/reference/taxonomy.yaml, or the repository's (the demo's help-desk taxonomy) when the
        data directory has none."""
        own = self.reference / "taxonomy.yaml"
        return own if own.exists() else REPO_REFERENCE / "taxonomy.yaml"

    @property
    def trace_mapping(self) -> Path:
        """<data>/reference/trace_mapping.yaml, or the repository's defaults: which attribute, metadata
        key, tag or score feeds the fields only flywheel has, for traces from other sources."""
        own = self.reference / "trace_mapping.yaml"
        return own if own.exists() else REPO_REFERENCE / "trace_mapping.yaml"

    @property
    def pii_patterns(self) -> Path:
        """Patterns an admin approved from reported misses ({entity_type, regex} a line of a YAML list)."""
        return self.reference / "pii_patterns.yaml"

    @property
    def keep_terms(self) -> Path:
        """The product's own words the NER layer must leave alone (one a line)."""
        return self.reference / "keep_terms.txt"

    @property
    def demo(self) -> Path:
        return self.data_dir / "demo"

    @property
    def exports(self) -> Path:
        return self.data_dir / "exports"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster"
