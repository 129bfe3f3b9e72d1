"""flywheel clusters: the unexplained traces of a week, a month or a file, grouped into candidate failure modes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from flywheel.cli.common import MONTH, WEEK, data_dir_option, main, paths_for, progress

ENCODE_BATCH = 256


def _encode(embedder, texts: list[str]):
    """Embed in batches under a progress bar (10,000 queries take about a minute on two cores)."""
    import numpy as np

    chunks = []
    with progress("embedding", total=len(texts), unit="trace") as bar:
        for start in range(0, len(texts), ENCODE_BATCH):
            chunks.append(embedder.encode(texts[start:start + ENCODE_BATCH]))
            bar.update(len(chunks[-1]))
    return np.vstack(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)


def _print(found: list[dict], noise: list[str], scope_option: str | None, min_size: int) -> None:
    from flywheel.core.common.markdown import table

    if not found:
        click.echo(f"No cluster of {min_size} or more similar traces; {len(noise)} trace(s) stand alone.")
        return
    click.echo(table(
        ["cluster", "size", "covered", "terms", "read first"],
        [(c["cluster_id"], c["size"], "-" if c["covered_share"] is None else f"{c['covered_share']:.0%}",
          ", ".join(c["terms"]) or "-", " ".join(t[:12] for t in c["typical"])) for c in found]))
    click.echo(f"{sum(c['size'] for c in found)} traces in {len(found)} clusters; {len(noise)} in none (noise).")
    if scope_option:
        click.echo(f"Review one as a new failure mode with its members as siblings: "
                   f"flywheel review {scope_option} --cluster N")


@main.command("clusters")
@click.option("--week", type=WEEK, help="The week's review queue (any day of it, YYYY-MM-DD).")
@click.option("--month", type=MONTH, help="The month's unlabelled traces and drift's most distant ones (YYYY-MM).")
@click.option("--input", "input_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A JSON Lines file of traces ({trace_id, messages}) or queries ({id, text}); stores nothing.")
@click.option("--distance", type=click.FloatRange(0.05, 1.0), default=None,
              help="Cosine distance at which clusters stop merging (default 0.45: smaller gives tighter clusters).")
@click.option("--min-size", type=click.IntRange(2, None), default=None, help="Smaller groups are noise (default 3).")
@click.option("--json", "as_json", is_flag=True,
              help='Print [{"cluster_id", "size", "trace_ids", "terms", "covered_share"}], then the noise as '
                   'cluster_id -1.')
@data_dir_option
def clusters(week: dt.date | None, month: dt.date | None, input_path: Path | None, distance: float | None,
             min_size: int | None, as_json: bool, data_dir: Path | None) -> None:
    """Group unexplained traces (a week's queue, a month, or a file) into clusters a reviewer reads as one candidate failure mode.

    Clusters what the users asked (sentence embeddings, cosine distance, agglomerative clustering cut at
    a distance, so the number of clusters is found, not given). Each cluster shows its size, the share
    already covered by a taxonomy code (labelled with one, or within the drift station's coverage
    distance of an eval row that has one), characteristic terms (TF-IDF against the rest) and the traces
    nearest its centre, to read first. Traces in no cluster are noise.

    --week and --month store the clusters, so `flywheel review --week DAY --cluster N` (and the review
    app) open the same cluster as a new failure mode whose members are offered as siblings.
    """
    if sum(x is not None for x in (week, month, input_path)) != 1:
        raise click.UsageError("give one of --week DAY, --month YYYY-MM or --input FILE")
    from flywheel.core.labeling import clusters as clustering_mod
    from flywheel.core.labeling import unexplained
    from flywheel.settings import DriftSettings

    settings = DriftSettings()
    options = {"distance": distance or clustering_mod.DEFAULT_DISTANCE,
               "min_size": min_size or clustering_mod.DEFAULT_MIN_SIZE,
               "coverage_distance": settings.coverage_distance, "roles": tuple(settings.text_roles)}
    if input_path is not None:
        result, ids = _cluster_file(input_path, data_dir, options)
        scope_option = None
    else:
        result, ids, scope_option = _cluster_warehouse(week, month, data_dir, options)
    found = [c.to_json(ids) for c in result.clusters]
    noise = [ids[i] for i in result.noise]
    if as_json:
        rows = found + ([{"cluster_id": -1, "size": len(noise), "trace_ids": noise, "terms": [],
                          "covered_share": None, "noise": True}] if noise else [])
        click.echo(json.dumps(rows, indent=2))
    else:
        _print(found, noise, scope_option, options["min_size"])


def _cluster_file(path: Path, data_dir: Path | None, options: dict):
    from flywheel.core.common.db import connect
    from flywheel.core.drift.embeddings import user_text
    from flywheel.core.labeling import unexplained
    from flywheel.core.labeling.clusters import MAX_TRACES
    from flywheel.paths import Paths
    from flywheel.resources.embedder import load_embedder

    try:
        traces, problems = unexplained.input_traces(path)
    except unexplained.InputError as exc:
        raise click.ClickException(str(exc)) from None
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        click.echo(f"{path}: {len(problems)} line(s) left out, {len(traces.ids)} clustered", err=True)
    if not traces.ids:
        raise click.ClickException(f"{path}: nothing to cluster: no line holds a trace or a query")
    if len(traces.ids) > MAX_TRACES:  # before a minute of embedding, not after
        raise click.ClickException(f"{path}: {len(traces.ids):,} traces; at most {MAX_TRACES:,} can be clustered at "
                                   "once (every pair's distance is kept in memory): split the file or sample it")
    embedder = load_embedder()
    # The file's text is embedded in memory and never cached: it may hold customer data.
    vectors = _encode(embedder, [user_text(m, options["roles"]) for m in traces.messages])
    paths = Paths(data_dir)
    if paths.warehouse.exists():  # coverage by the eval set needs one; without it covered_share is unknown
        with connect(paths.warehouse) as conn:
            return unexplained.cluster(conn, embedder, traces, vectors=vectors, **options), traces.ids
    from flywheel.core.labeling.clusters import find_clusters

    texts = [user_text(m, options["roles"]) for m in traces.messages]
    return find_clusters(vectors, texts, distance=options["distance"], min_size=options["min_size"]), traces.ids


def _cluster_warehouse(week: dt.date | None, month: dt.date | None, data_dir: Path | None, options: dict):
    from flywheel.core.common.db import connect
    from flywheel.core.labeling import unexplained
    from flywheel.resources.embedder import load_embedder

    paths = paths_for(data_dir)
    with connect(paths.warehouse) as conn:  # not read-only: the queue's label tables may not exist yet
        if week is not None:
            traces = unexplained.week_traces(conn, dt.datetime.combine(week, dt.time()))
            scope, scope_option, what = unexplained.week_scope(week), f"--week {week}", f"week of {week}"
        else:
            traces = unexplained.month_traces(conn, month)
            scope, scope_option, what = unexplained.month_scope(month), f"--month {month:%Y-%m}", f"{month:%Y-%m}"
    if not traces.ids:
        raise click.ClickException(f"nothing unexplained in the {what}: no unlabelled scrubbed trace "
                                   "(run the loop for it first: flywheel run --week DAY)")
    click.echo(f"clustering {len(traces.ids)} unlabelled traces of the {what} ...", err=True)
    embedder = load_embedder()  # before the warehouse opens: loading the model takes seconds
    with connect(paths.warehouse) as conn:
        result = unexplained.cluster(conn, embedder, traces, **options)
        unexplained.store(conn, scope, result, traces.ids)
    return result, traces.ids, scope_option
