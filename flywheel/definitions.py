"""The Dagster code location: thin on purpose, everything is built in flywheel/defs."""

import dagster as dg
from dagster_duckdb_polars import DuckDBPolarsIOManager

from flywheel.defs import intake, sampling
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import Paths


def build_definitions(data_dir: str | None = None) -> dg.Definitions:
    paths = Paths(data_dir)
    return dg.Definitions(
        assets=[intake.raw_traces, sampling.sampled_traces],
        jobs=[intake.ingest_job, sampling.weekly_sample_job],
        resources={
            "warehouse": Warehouse(data_dir=str(paths.data_dir)),
            # Asset key prefix -> schema: sample/sampled_traces is table sample.sampled_traces.
            "io_manager": DuckDBPolarsIOManager(database=str(paths.warehouse)),
        },
    )


defs = build_definitions()
