"""The `flywheel` command: one entry point, a module per group of verbs, each imported when its verb runs."""

from flywheel.cli.common import main

__all__ = ["main"]
