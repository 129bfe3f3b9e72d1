"""The `flywheel` command group and what its verbs share."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from tqdm import tqdm

from flywheel import __version__
from flywheel.settings import DATA_DIR_ENV, Paths

MAX_PRINTED_ERRORS = 20


def data_dir_option(fn):
    """--data-dir on every verb, so it can be given where the user types it."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar=DATA_DIR_ENV,
        help=f"Where all state lives (default ./data, or ${DATA_DIR_ENV}).",
    )(fn)


def paths_for(data_dir: Path | None) -> Paths:
    return Paths(data_dir)


def progress(desc: str, total: int | None = None, unit: str = "it"):
    # Only draw bars for a person watching; CI logs and pipes get the summary alone.
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not sys.stderr.isatty(), leave=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flywheel")
def main() -> None:
    """flywheel keeps an LLM application's eval suite alive.

    Every week it samples production traces, scrubs customer data out, queues them for labelling and
    folds new rows into a versioned eval set; every month it checks the eval set still looks like
    production. State lives in one data directory (./data, $FLYWHEEL_DATA or --data-dir).
    """


