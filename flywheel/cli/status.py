"""flywheel status: the loop's story so far, from the warehouse, any time."""

from __future__ import annotations

from pathlib import Path

import click
import duckdb

from flywheel.cli.common import data_dir_option, main, paths_for


def _section(title: str, render) -> str:
    """One station's summary, or why there is none yet: status must work on any warehouse."""
    try:
        return render()
    except (duckdb.CatalogException, duckdb.BinderException):
        return f"{title}: nothing yet."


@main.command()
@data_dir_option
def status(data_dir: Path | None) -> None:
    """What the loop has done: the story month by month (production CSAT and judge scores beside the
    eval suite's pass rates and drift), samples, scrub findings and residue, labels, eval set versions
    with pass rates, drift per month, whether the essay's trap applies, and which UI pages to open."""
    from flywheel.cli import summary
    from flywheel.core.sampling import sampler as sampling
    from flywheel import story
    from flywheel.core.common.db import connect
    from flywheel.settings import SamplingSettings

    paths = paths_for(data_dir)

    def weeks() -> str:
        with connect(paths.warehouse, read_only=True) as conn:
            starts = [w for (w,) in conn.execute("SELECT DISTINCT week_start FROM sample.sampled_traces ORDER BY 1").fetchall()]
            results = [{"week": w.date().isoformat(), **sampling.summarize(sampling.read_sample(conn, w),
                                                                        sampling.week_traffic(conn, w), SamplingSettings())}
                       for w in starts]
        return summary.sample_summary(results)

    def trap() -> str:
        with connect(paths.warehouse) as conn:
            return "The essay's trap: " + story.version_drop(conn)

    parts = [
        _section("The story", lambda: summary.story_summary(paths)),
        _section("Intake", lambda: summary.intake_summary(paths)),
        _section("Station 1", weeks),
        _section("Station 2", lambda: summary.scrub_summary(paths, None)),
        _section("Station 3", lambda: summary.label_summary(paths, {})),
        _section("Station 4", lambda: summary.evalset_summary(paths)),
        _section("Station 5", lambda: summary.drift_summary(paths)),
        _section("The essay's trap", trap),
    ]
    click.echo("\n\n".join(parts))
    click.echo(f"\nWarehouse: {paths.warehouse}\n" + summary.ui_summary())
