"""Dagster wiring only: assets and checks per station, partitions, jobs. Logic lives in core/."""
