"""flywheel evalset: the versioned eval set (station 4)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, output_file, paths_for


@main.group("evalset")
def evalset_group() -> None:
    """The versioned eval set: import the starter suite, export a version, compare two."""


def _connect(data_dir: Path | None, *, need_warehouse: bool = True):
    from flywheel.core.common.db import open_connection

    return open_connection(paths_for(data_dir, need_warehouse=need_warehouse).warehouse)


def _known_version(conn, version: int | None, option: str) -> int:
    """The version asked for (default the latest), refused unless it exists: an answer about a version
    that does not exist would be a wrong answer, not an empty one."""
    from flywheel.core.evalset import versions as evalset

    evalset.ensure_tables(conn)
    latest = evalset.latest_version(conn)
    if not latest:
        raise click.ClickException("the eval set is empty: import your suite (flywheel evalset import FILE) or "
                                   "fold in reviewed labels (flywheel fold-in)")
    if version is not None and not 1 <= version <= latest:
        raise click.BadParameter(f"no eval set version {version}: versions are 1 to {latest} (flywheel evalset versions)",
                                 param_hint=option)
    return latest if version is None else version


@evalset_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def evalset_import(path: Path, data_dir: Path | None) -> None:
    """Load the team's existing suite (CSV or JSONL) as version 1.

    Columns: input (text, or a JSON list of {role, content}), expected (or expected_behaviour),
    optional taxonomy_code, optional criterion (type:value, e.g. contains:30 days, refusal), optional
    adversarial (true/false), optional added_at. Without a criterion, an expected answer of up to 8
    words must match exactly (equals) and a longer one must appear in the reply (contains). All rows
    are validated; a file with any bad row imports nothing, and each problem is listed by row and column.
    """
    from flywheel.core.evalset import versions as evalset

    with _connect(data_dir, need_warehouse=False) as conn:
        try:
            version = evalset.import_starter(conn, path)
        except evalset.EvalSetError as exc:
            raise click.ClickException(str(exc)) from None
        written = evalset.export_versions(conn, paths_for(data_dir).exports)
        n = evalset.rows_at(conn, version).height
    click.echo(f"Imported {n} rows as version {version}" + (f"; exported {written[0]}" if written else "") + ".")


@evalset_group.command("export")
@click.option("--version", type=int, help="Default: the latest.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "promptfoo", "inspect", "openai-evals"]),
              default="jsonl", show_default=True, help="jsonl and csv: the eval row contract; promptfoo, inspect, "
              "openai-evals: that harness's test files, each criterion as its own assertion.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, callback=output_file)
@click.option("--provider", help="promptfoo: the provider id the ready config names (default file://provider.py).")
@click.option("--model-version", help="promptfoo: the provider's label in the ready config, which becomes the "
              "model_version of the imported results (default my-model).")
@data_dir_option
def evalset_export(version: int | None, fmt: str, output: Path, provider: str | None, model_version: str | None,
                   data_dir: Path | None) -> None:
    """Write one version's rows: in the eval row contract, or where your tests run.

    promptfoo: a tests file (JSON Lines) with a chat prompt file and, if there is none, a ready
    promptfooconfig.yaml beside it; inspect: an Inspect AI dataset and a task file whose scorer applies
    flywheel's criteria; openai-evals: input/ideal samples for the rows whose criterion maps, the others
    listed. Every row carries row_id and eval_version, so `flywheel results import` reads the results back.
    """
    from flywheel.core.evalset import harness
    from flywheel.core.evalset import versions as evalset

    with _connect(data_dir) as conn:
        version = _known_version(conn, version, "'--version'")
        if fmt in ("jsonl", "csv"):
            n = evalset.export(conn, output, version, fmt)
            click.echo(f"Wrote {n} rows of version {version} to {output}.")
            return
        rows = evalset.contract_rows(conn, version)
    if fmt == "promptfoo":
        done = harness.promptfoo(rows, output, version, provider, model_version)
    elif fmt == "inspect":
        done = harness.inspect(rows, output, version)
    else:
        done = harness.openai_evals(rows, output, version)
    click.echo(f"Wrote {done.rows} rows of version {version} for {fmt} to {output}"
               + (f" (and {', '.join(p.name for p in done.written[1:])} beside it)" if len(done.written) > 1 else "") + ".")
    for row in done.unmapped:
        click.echo(f"  {row['row_id']} ({row['criterion']}): {row['why']}", err=True)
    if done.unmapped:
        click.echo(f"{len(done.unmapped)} row(s) the harness cannot check as exported, listed above.", err=True)


@evalset_group.command("diff")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def evalset_diff(a: int, b: int, as_json: bool, data_dir: Path | None) -> None:
    """Rows added and removed between versions A and B, and how many they share."""
    from flywheel.core.evalset import versions as evalset

    with _connect(data_dir) as conn:
        _known_version(conn, a, "'A'")
        _known_version(conn, b, "'B'")
        d = evalset.diff(conn, a, b)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"v{a} -> v{b}: {len(d['added'])} added, {len(d['removed'])} removed, {len(d['common'])} in common")
    for rid in d["added"]:
        click.echo(f"  + {rid}")
    for rid in d["removed"]:
        click.echo(f"  - {rid}")


@evalset_group.command("versions")
@data_dir_option
def evalset_versions(data_dir: Path | None) -> None:
    """Every version: rows added, active rows, adversarial share, what caused it."""
    from flywheel.core.evalset import versions as evalset
    from flywheel.core.common.markdown import table

    with _connect(data_dir) as conn:
        rows = evalset.versions(conn)
    click.echo(table(["version", "created", "added", "active", "adversarial", "cause"],
                     [(v["version"], f"{v['created_at']:%Y-%m-%d %H:%M}", v["rows_added"], v["active_rows"],
                       f"{v['adversarial_share']:.0%}", v["cause"]) for v in rows]) if rows else "No versions yet.")


@main.group("results")
def results_group() -> None:
    """Regression results from your own runner (the regression result contract)."""


@results_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "flywheel", "promptfoo", "inspect"]), default="auto",
              show_default=True, help="promptfoo: `promptfoo eval --output results.json` (or .jsonl); inspect: an "
              "Inspect AI eval log (JSON or .eval); flywheel: the result contract. auto tells them apart.")
@click.option("--model-version", help="promptfoo and inspect: the model_version to record (default: the provider's "
              "label, or the model Inspect names).")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def results_import(path: Path, fmt: str, model_version: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Load results (JSONL or CSV: row_id, eval_version, model_version, passed, optional score, run_at),
    or a harness's output: promptfoo's, or an Inspect AI eval log, matched to rows through the metadata
    `flywheel evalset export` gave each test.

    Whole file or nothing: every line is validated first, and a line with a bad value, an unknown row
    id or a version mismatch is reported by line and column, and nothing loads. The same result (the
    same row_id, eval_version, model_version and run_at) is stored once, so importing a file again
    adds nothing; a result without run_at is stamped with the import time. Exits 1 when any line was
    rejected.
    """
    from flywheel.core.evalset import harness_results, regression

    if not path.is_file():
        raise click.ClickException(f"{path}: no such file")
    chosen = harness_results.detect(path) if fmt == "auto" else fmt
    converted = None
    with _connect(data_dir) as conn:
        try:
            if chosen == "flywheel":
                report = regression.import_results(conn, path)
            else:
                converted = harness_results.convert(path, chosen)
                if model_version:
                    converted.relabel(model_version)
                report = harness_results.import_converted(conn, converted)
        except (regression.ResultsError, harness_results.HarnessResultsError) as exc:
            raise click.ClickException(str(exc)) from None
    if converted is not None:
        for skipped in converted.skipped:
            click.echo(f"{path}: {skipped['position']}: not imported: {skipped['reason']}", err=True)
        if not as_json:
            click.echo(f"Read {path} as {chosen} output: {len(converted.records)} result(s) for model "
                       f"{', '.join(sorted(converted.model_versions)) or '-'}, {len(converted.skipped)} not imported.")
    if as_json:
        out = report.to_json()
        if converted is not None:
            out.update(format=chosen, not_imported=converted.skipped)
        click.echo(json.dumps(out, indent=2))
    elif report.rejected:
        click.echo(f"Nothing loaded: {len(report.rejected)} line(s) of {path} rejected; fix them and import the "
                   "file again.")
        for r in report.rejected:
            click.echo(f"{path}:{r['line']}: {r['reason']}", err=True)
    else:
        click.echo(f"Loaded {report.loaded} results" + (f"; {report.already} already stored" if report.already else "")
                   + ".")
        if report.stamped:
            click.echo(f"{report.stamped} result(s) had no run_at and are stamped with the import time: importing "
                       "this file again would add them again.")
    raise SystemExit(1 if report.rejected else 0)


@main.command()
@click.option("--version", type=int, help="Eval set version (default: the latest).")
@click.option("--model-version", help="Default: the model version with the newest results for that eval version.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--adversarial-threshold", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), callback=output_file,
              help="Also write JUnit XML, one test case per row, for CI systems to list the failing rows.")
@data_dir_option
def gate(version: int | None, model_version: str | None, threshold: float, adversarial_threshold: float,
         as_json: bool, junit: Path | None, data_dir: Path | None) -> None:
    """The one gate for CI: exit 1 when the overall pass rate or the adversarial slice is under its
    threshold, 0 when both pass, 2 when there are no results to judge."""
    from flywheel.core.evalset import regression
    from flywheel.core.common.markdown import table

    with _connect(data_dir) as conn:
        version = _known_version(conn, version, "'--version'")
        verdict = regression.gate(conn, version, model_version, threshold, adversarial_threshold)
        if junit is not None:
            from flywheel.core.evalset import junit as junit_xml

            rows = junit_xml.row_results(conn, verdict.eval_version, verdict.model_version) \
                if verdict.model_version is not None else []
            junit_xml.write(junit, verdict, rows)
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=2))
    elif verdict.exit_code == regression.EXIT_NO_RESULTS:
        click.echo(f"No results to judge for eval set version {verdict.eval_version} (model {verdict.model_version}).")
    else:
        adv = f"{verdict.adversarial_pass_rate:.1%} of {verdict.adversarial_n}" if verdict.adversarial_n else "no rows"
        click.echo(f"eval set v{verdict.eval_version}, model {verdict.model_version}: overall {verdict.pass_rate:.1%} "
                   f"of {verdict.n} (threshold {threshold:.0%}); adversarial {adv} (threshold {adversarial_threshold:.0%})")
        click.echo(table(["taxonomy code", "rows", "pass rate"], [(c, n, f"{r:.1%}") for c, n, r in verdict.per_code]))
        click.echo("GATE FAILED: " + "; ".join(verdict.reasons) if verdict.reasons else "gate passed")
    raise SystemExit(verdict.exit_code)


@main.command()
@click.option("--customer-id", required=True, help="The customer's id as your systems know it.")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def lookup(customer_id: str, as_json: bool, data_dir: Path | None) -> None:
    """Is this customer's data in the eval set? Lists rows derived from their traces, in any version or
    the archive, found through the keyed hash (the id itself is stored nowhere)."""
    from flywheel.core.common import keys
    from flywheel.core.evalset import regression

    paths = paths_for(data_dir)
    with _connect(data_dir) as conn:
        # The key's fingerprint check opens the warehouse too: with this connection open, DuckDB hands
        # it the same database instead of loading the file a second time (a third of lookup's start-up).
        ref = keys.keyed_hash(keys.load_key(paths.data_dir), customer_id, kind="customer")
        rows = regression.lookup_customer(conn, ref)
    if as_json:
        click.echo(json.dumps({"customer_ref": ref, "rows": rows}, indent=2, default=str))
        return
    if not rows:
        click.echo(f"No eval row in any version or the archive comes from customer {customer_id} (ref {ref}).")
        return
    click.echo(f"{len(rows)} eval row(s) come from customer {customer_id} (ref {ref}):")
    for r in rows:
        where = f"archived in v{r['version_retired']}" if r["archived"] else "active"
        click.echo(f"  {r['row_id']}  added in v{r['version_added']}, {where}  ({r['taxonomy_code']}, trace {r['source_trace_ref']})")


@main.command()
@click.option("--target", required=True, help="module:function taking a list of {role, content} and returning the reply.")
@click.option("--version", type=int, help="Eval set version (default: the latest).")
@click.option("--model-version", default="unknown", show_default=True, help="Recorded with each result.")
@click.option("--judge", help="module:function(row, rubric, reply) -> bool for rubric criteria; without one, "
              "rubric rows are skipped (and counted).")
@data_dir_option
def regress(target: str, version: int | None, model_version: str, judge: str | None, data_dir: Path | None) -> None:
    """Run the eval set against your model and store a result per row (archived rows included).

    contains / not_contains / equals are case-insensitive text checks, regex is re.search, refusal
    looks for a declining phrase (see flywheel.core.evalset.regression.REFUSAL_PHRASES), rubric asks --judge.
    """
    from flywheel.core.evalset import regression

    try:
        fn = regression.load_callable(target)
        rubric = regression.load_callable(judge) if judge else None
    except regression.ResultsError as exc:
        raise click.ClickException(str(exc)) from None
    with _connect(data_dir) as conn:
        version = _known_version(conn, version, "'--version'")
        try:
            report = regression.run_regression(conn, fn, version=version, model_version=model_version, rubric_judge=rubric)
        except regression.ResultsError as exc:
            raise click.ClickException(str(exc)) from None
    rate = report.passed / report.run if report.run else 0.0
    click.echo(f"eval set v{report.eval_version}, model {report.model_version}: {report.passed}/{report.run} passed "
               f"({rate:.1%}); {report.archived_run} archived rows run; {report.skipped} rubric rows skipped (no judge).")
