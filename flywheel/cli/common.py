"""The `flywheel` command group and what its verbs share.

The group loads a verb's module only when that verb runs, so `flywheel --help` and the light verbs
(`gate`, `lookup`, `evalset versions`) start in a fraction of a second: the verbs that scrub, embed or
launch Dagster runs import those libraries inside their own functions.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
from pathlib import Path

import click

from flywheel import __version__
from flywheel.paths import DATA_DIR_ENV, Paths

MAX_PRINTED_ERRORS = 20
DEBUG_ENV = "FLYWHEEL_DEBUG"  # set to 1 to see the traceback behind an unexpected error

# verb -> (module that registers it, its one-line help as `flywheel --help` lists it). The help is
# written here so that listing the verbs imports none of them; test_cli_startup.py checks it matches
# each verb's own docstring.
VERBS: dict[str, tuple[str, str]] = {
    "ingest": ("flywheel.cli.ingest", "Load trace files (JSON Lines, Parquet, CSV) or folders of them into raw/traces."),
    "run": ("flywheel.cli.loop", "Run the loop for one week (ingest, sample, scrub, queue) or one month (drift, retirement)."),
    "review": ("flywheel.cli.labels", "Label the review queue from the terminal: anomalies first, one trace at a time."),
    "clusters": ("flywheel.cli.clusters", "Group unexplained traces (a week's queue, a month, or a file) into clusters a reviewer reads as one candidate failure mode."),
    "serve": ("flywheel.cli.serve", "The review app: a queue several people label at once in a browser, with its JSON API."),
    "users": ("flywheel.cli.serve", "Reviewers of the review app (flywheel serve): add, list, reset, disable."),
    "fold-in": ("flywheel.cli.loop", "Fold reviewed labels into a new eval set version."),
    "sample": ("flywheel.cli.sample", "Run station 1 (sample/sampled_traces) for weekly partitions, as Dagster runs."),
    "labels": ("flywheel.cli.labels", "The spreadsheet round trip: export the review queue, fill in labels, import them."),
    "taxonomy": ("flywheel.cli.labels", "The failure taxonomy labels use (seeded from data/reference/taxonomy.yaml)."),
    "evalset": ("flywheel.cli.evalset", "The versioned eval set: import the starter suite, export a version, compare two."),
    "results": ("flywheel.cli.evalset", "Regression results from your own runner (the regression result contract)."),
    "regress": ("flywheel.cli.evalset", "Run the eval set against your model and store a result per row (archived rows included)."),
    "gate": ("flywheel.cli.evalset", "The one gate for CI: exit 1 when the overall pass rate or the adversarial slice is under its threshold, 0 when both pass, 2 when there are no results to judge."),
    "forget": ("flywheel.cli.privacy", "Erase a customer along lineage: raw traces, quarantine, samples, scrubbed traces, queue, labels' free text, embeddings and drift references go; their eval rows are tombstoned in every version, exports rewritten, an audit row written, the database file rebuilt."),
    "lookup": ("flywheel.cli.evalset", "Is this customer's data in the eval set? Lists rows derived from their traces, in any version or the archive, found through the keyed hash (the id itself is stored nowhere)."),
    "status": ("flywheel.cli.status", "What the loop has done: the story month by month (production CSAT and judge scores beside the eval suite's pass rates and drift), samples, scrub findings and residue, labels, eval set versions with pass rates, drift per month, whether the essay's trap applies, and which UI pages to open."),
    "scrub": ("flywheel.cli.scrub", "Scrub customer data out of texts or traces; stateless (touches no warehouse)."),
    "residue": ("flywheel.cli.scrub", "Misses per PII class: traces scrubbed, misses reviewers reported, miss rate."),
    "keep-terms": ("flywheel.cli.scrub", "Words reviewers marked as not personal data: see them, approve them into the scrubber's keep list, or reject them."),
    "drift": ("flywheel.cli.drift", "Does the eval set still look like production?"),
    "incident": ("flywheel.cli.incident", "Declare incidents: their window is re-sampled, anomalies at 100% and their cohort over-sampled."),
    "warehouse": ("flywheel.cli.warehouse", "Where the warehouse is (the DuckDB file or a DuckLake), and moving a single file into a DuckLake."),
    "demo": ("flywheel.cli.demo", "SIMULATED help-desk traffic and the whole loop on it (what `make demo` runs)."),
}


class LazyGroup(click.Group):
    """A click group whose verbs live in modules imported on first use (see VERBS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in VERBS:
            importlib.import_module(VERBS[name][0])  # its decorators register the verb on this group
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in VERBS)
        rows = [(name, click.Command(name, help=help_).get_short_help_str(limit)) for name, (_, help_) in VERBS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise SystemExit(130) from None
        except BrokenPipeError:  # `flywheel status | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(0) from None
        except Exception as exc:  # noqa: BLE001 - the one place that turns a crash into one line
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(one_line(exc)) from None


def one_line(exc: BaseException) -> str:
    """An exception as one line a person can act on, for the errors a mistake or a busy machine causes."""
    if type(exc).__name__ in ("WarehouseBusy", "WarehouseSettingError"):
        return str(exc)
    if type(exc).__module__.startswith("duckdb") and "Transaction conflict" in str(exc):
        return ("another writer (a run, or another command) changed the same table of the DuckLake at the same "
                "moment, and this command's change was rolled back: run it again")
    if type(exc).__module__.startswith("duckdb") and ("Postgres" in str(exc) or "DuckLake" in str(exc)):
        from flywheel.core.common.lake import WAREHOUSE_ENV, mask_password

        first = mask_password(str(exc).strip().splitlines()[0])  # libpq repeats the connection string
        return f"the DuckLake warehouse ({WAREHOUSE_ENV}) failed: {first}"
    if type(exc).__module__.startswith("duckdb") and "lock" in str(exc).lower():
        return ("the warehouse is in use by another flywheel process (a run, the UI's daemon or another "
                "command): try again when it has finished")
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8 and try again"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"unexpected {type(exc).__name__}: {first} (this is a bug in flywheel; run again with "
            f"{DEBUG_ENV}=1 to see where, and report it)")


def data_dir_option(fn):
    """--data-dir on every verb, so it can be given where the user types it."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar=DATA_DIR_ENV,
        help=f"Where all state lives (default ./data, or ${DATA_DIR_ENV}).",
    )(fn)


def quarantined_line(file, line, reason) -> str:
    """`file:line: reason` for a quarantined record; the reader's reasons start with their line, said once."""
    return f"{file}:{line}: {str(reason).removeprefix(f'line {line}: ')}"


def paths_for(data_dir: Path | None, *, need_warehouse: bool = True) -> Paths:
    """The data directory's paths. Verbs that read state refuse a directory with no warehouse, so a
    mistyped --data-dir is named instead of silently starting an empty one."""
    from flywheel.core.common.lake import Lake, WarehouseSettingError

    paths = Paths(data_dir)
    try:
        target = paths.warehouse
    except WarehouseSettingError as exc:
        raise click.ClickException(str(exc)) from None
    if need_warehouse and not target.exists():
        if isinstance(target, Lake):
            raise click.ClickException(
                f"no flywheel warehouse in the DuckLake {target}: it holds no flywheel tables, or its PostgreSQL "
                f"cannot be reached; check FLYWHEEL_WAREHOUSE, or start with flywheel ingest PATH")
        raise click.ClickException(
            f"no flywheel warehouse in {paths.data_dir} ({target.name} not found): check --data-dir "
            f"or ${DATA_DIR_ENV}, or start with flywheel ingest PATH")
    return paths


def output_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Option callback for a file a verb writes: its folder must exist and be writable, checked before
    any work is done, so a typo costs nothing."""
    if value is None:
        return None
    folder = value.parent if str(value.parent) else Path(".")
    if not folder.is_dir():
        raise click.BadParameter(f"{value}: the folder {folder} does not exist; create it first or pick another path",
                                 ctx, param)
    if value.is_dir():
        raise click.BadParameter(f"{value} is a folder; give a file name inside it", ctx, param)
    if not os.access(folder, os.W_OK) or (value.exists() and not os.access(value, os.W_OK)):
        raise click.BadParameter(f"{value}: not writable here (permissions); pick another path", ctx, param)
    return value


def partition_or_fail(partitions_def, key: str, what: str, option: str) -> None:
    """Refuse a week or month outside the partitions before Dagster does it with a traceback."""
    if partitions_def.has_partition_key(key):
        return
    first, last = partitions_def.get_first_partition_key(), partitions_def.get_last_partition_key()
    span = f"from {first} to {last}" if last else f"from {first} (none has ended yet)"
    raise click.BadParameter(
        f"{what} {key} is not one flywheel can run: {what}s run {span}, and only once they have ended; for older "
        f"traffic set FLYWHEEL_PARTITIONS_START to an earlier Monday", param_hint=option)


def progress(desc: str, total: int | None = None, unit: str = "it"):
    from tqdm import tqdm

    # Only draw bars for a person watching; CI logs and pipes get the summary alone.
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not sys.stderr.isatty(), leave=False)


def _iso_date(text: str) -> dt.date:
    return dt.date.fromisoformat(text.strip())


class WeekType(click.ParamType):
    """A week, given as any day of it (YYYY-MM-DD); the value is its Monday."""

    name = "DAY"

    def convert(self, value, param, ctx) -> dt.date:
        if isinstance(value, dt.date):
            day = value
        else:
            try:
                day = _iso_date(value)
            except ValueError as exc:
                self.fail(f"{value!r} is not a date: give a day of the week as YYYY-MM-DD ({exc})", param, ctx)
        return day - dt.timedelta(days=day.weekday())


class MonthType(click.ParamType):
    """A calendar month, YYYY-MM; the value is its first day."""

    name = "YYYY-MM"

    def convert(self, value, param, ctx) -> dt.date:
        if isinstance(value, dt.date):
            return value.replace(day=1)
        try:
            return _iso_date(f"{value.strip()}-01") if len(value.strip()) == 7 else self.fail("", param, ctx)
        except (ValueError, click.BadParameter):
            self.fail(f"{value!r} is not a month: give it as YYYY-MM, e.g. 2026-05", param, ctx)


WEEK = WeekType()
MONTH = MonthType()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flywheel")
def main() -> None:
    """flywheel keeps an LLM application's eval suite alive.

    Every week it samples production traces, scrubs customer data out, queues them for labelling and
    folds new rows into a versioned eval set; every month it checks the eval set still looks like
    production. State lives in one data directory (./data, $FLYWHEEL_DATA or --data-dir).

    Your first week: flywheel ingest FILES, flywheel run --week DAY, flywheel review, flywheel fold-in,
    flywheel regress --target module:function, flywheel gate.
    """
