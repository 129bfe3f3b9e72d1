"""The `flywheel` command: one entry point, a module per group of verbs."""

from flywheel.cli import demo, drift, evalset, incident, ingest, labels, sample, scrub, status  # noqa: F401 - each registers its verbs
from flywheel.cli.common import main

__all__ = ["main"]
