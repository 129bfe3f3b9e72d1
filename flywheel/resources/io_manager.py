"""The IO manager for the assets that return Polars frames (the scrub station's outputs).

dagster-duckdb-polars does the work: a partition's rows are deleted, then the frame inserted. We only
change where its connection comes from, so that it follows the warehouse setting (the single DuckDB
file, or a DuckLake) like every other write, and make the delete and the insert one transaction that
is run again when DuckLake reports a conflict with another writer (another week's run, say).
"""

from __future__ import annotations

import contextlib
import random
import time

import dagster as dg
import duckdb
from dagster._core.storage.db_io_manager import DbIOManager
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_polars import DuckDBPolarsIOManager
from pydantic import Field

from flywheel.core.common import db, lake
from flywheel.paths import Paths

CONFLICT_ATTEMPTS = 8


class _WarehouseClient(DuckDbClient):
    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice, connection) -> None:
        # Checked, not caught: inside a transaction a failed statement aborts the whole transaction.
        if db.table_exists(connection, table_slice.schema, table_slice.table):
            DuckDbClient.delete_table_slice(context, table_slice, connection)

    @staticmethod
    @contextlib.contextmanager
    def connect(context, _):
        with db.connect(Paths(context.resource_config["data_dir"]).warehouse) as conn:
            if isinstance(context, dg.InputContext):  # a read: no transaction to retry
                yield conn
                return
            with db.transaction(conn):
                yield conn


class _MetadataOnce:
    """The output context for every attempt: metadata a failed attempt already added (the row count,
    added before the commit that lost) is not added again, which Dagster refuses."""

    def __init__(self, context: dg.OutputContext):
        self._context = context
        self._added: set[str] = set()

    def __getattr__(self, name):
        return getattr(self._context, name)

    def add_output_metadata(self, metadata) -> None:
        fresh = {k: v for k, v in metadata.items() if k not in self._added}
        self._added.update(fresh)
        if fresh:
            self._context.add_output_metadata(fresh)


class _RetryingIOManager(DbIOManager):
    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        delay = 0.2
        once = _MetadataOnce(context)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return super().handle_output(once, obj)
            except duckdb.Error as exc:
                if not lake.is_conflict(exc) or attempt == CONFLICT_ATTEMPTS:
                    raise
                context.log.info(f"another writer changed {context.asset_key.to_user_string()} at the same time; "
                                 f"writing again (attempt {attempt + 1} of {CONFLICT_ATTEMPTS})")
                time.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, 5.0)


class WarehousePolarsIOManager(DuckDBPolarsIOManager):
    """DuckDBPolarsIOManager on flywheel's warehouse: the DuckDB file or the DuckLake FLYWHEEL_WAREHOUSE names."""

    data_dir: str = Field(description="flywheel's data directory; the warehouse setting is read from it and the environment.")
    database: str = "flywheel"  # only a label in table names' metadata: the connection comes from data_dir

    def create_io_manager(self, context) -> DbIOManager:
        return _RetryingIOManager(
            db_client=_WarehouseClient(), database=self.database, schema=self.schema_,
            type_handlers=self.type_handlers(), default_load_type=self.default_load_type(),
            io_manager_name="WarehousePolarsIOManager",
        )
