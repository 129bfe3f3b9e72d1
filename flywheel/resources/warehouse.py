"""The warehouse resource: the one place that knows where state lives.

Everything that touches DuckDB goes through here, so a team that outgrows one file changes this
resource's configuration (or swaps the class), not the stations.
"""


import contextlib
from collections.abc import Callable, Iterator

import dagster as dg
import duckdb

from flywheel.core.common import db
from flywheel.core.common import keys
from flywheel.settings import Paths


class Warehouse(dg.ConfigurableResource):
    """DuckDB file under the data directory, opened late and briefly, retried when locked."""

    data_dir: str

    @property
    def paths(self) -> Paths:
        return Paths(self.data_dir)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with db.connect(self.paths.warehouse, read_only=read_only) as conn:
            yield conn

    def trace_ref(self) -> Callable[[str], str]:
        key = keys.load_key(self.paths.data_dir)
        return lambda trace_id: keys.keyed_hash(key, trace_id, kind="trace")
