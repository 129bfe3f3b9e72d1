"""The warehouse resource: the one place that knows where state lives.

Everything that touches DuckDB goes through here, so a team that outgrows one file changes this
resource's configuration (or swaps the class), not the stations.
"""


import contextlib
import random
from collections.abc import Callable, Iterator

import dagster as dg
import duckdb

from flywheel.core.common import db, lake
from flywheel.core.common import keys
from flywheel.settings import Paths


CONFLICT_RETRIES = 10


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file under the data directory (opened late and briefly, retried when locked), or the
    DuckLake FLYWHEEL_WAREHOUSE names."""

    data_dir: str

    @property
    def paths(self) -> Paths:
        return Paths(self.data_dir)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """On DuckLake, a write that lost to another writer (another week's run) fails the step with a
        retry request: every station writes delete-then-insert, so running the step again is safe."""
        try:
            with db.connect(self.paths.warehouse, read_only=read_only) as conn:
                yield conn
        except duckdb.Error as exc:
            if not lake.is_conflict(exc):
                raise
            raise dg.RetryRequested(max_retries=CONFLICT_RETRIES, seconds_to_wait=random.uniform(0.5, 3.0)) from exc

    def trace_ref(self) -> Callable[[str], str]:
        key = keys.load_key(self.paths.data_dir)
        return lambda trace_id: keys.keyed_hash(key, trace_id, kind="trace")
