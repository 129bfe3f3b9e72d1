"""flywheel incident: look at a window of production again, now."""

from __future__ import annotations

from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for


@main.group()
def incident() -> None:
    """Declare incidents: their window is re-sampled, anomalies at 100% and their cohort over-sampled."""


@incident.command("open")
@click.option("--from", "start", required=True, help="Window start, ISO 8601 (UTC if no offset).")
@click.option("--to", "end", required=True, help="Window end, ISO 8601.")
@click.option("--cohort", help="Only this cohort is over-sampled (default: every cohort).")
@click.option("--intent", help="Only this intent is over-sampled.")
@click.option("--note", help="What happened, for whoever reviews the traces.")
@click.option("--run", "run_now", is_flag=True,
              help="Re-sample now, in this process (one tick of incident_sensor) instead of waiting for the daemon.")
@data_dir_option
def incident_open(start: str, end: str, cohort: str | None, intent: str | None, note: str | None, run_now: bool,
                  data_dir: Path | None) -> None:
    """Write the incident to <data>/inbox/incidents/; incident_sensor re-runs the weekly loop for each
    week the window touches, once (its run key is the incident id and the week). The sensor runs under
    `make ui` (dagster dev starts the daemon), or now with --run. Opening the same window twice is one
    incident, and its weeks are not re-sampled twice."""
    from flywheel.core.sampling import incidents

    try:  # validated whole before anything is written: a file in the inbox is read by every sensor tick
        inc = incidents.new_incident(start, end, cohort, intent, note)
    except incidents.IncidentError as exc:
        raise click.ClickException(str(exc)) from None
    weeks = ", ".join(f"{w:%Y-%m-%d}" for w in inc.weeks())
    # Like a trace file, an incident is dropped into the inbox: the run it triggers creates the warehouse.
    paths = paths_for(data_dir, need_warehouse=False)
    path = incidents.write(inc, paths.inbox_incidents)
    click.echo(f"{inc.incident_id}: {path}\nweeks to re-sample: {weeks}")
    if not run_now:
        click.echo("incident_sensor re-samples them within a minute under `make ui`; or run this again with --run.")
        return
    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import tick_sensor

    _, runs = tick_sensor(build_definitions(str(paths.data_dir)), "incident_sensor", paths)
    for result in runs:
        state = "done" if result.success else "FAILED (see the run in the UI)"
        click.echo(f"re-sampled week {result.dagster_run.tags.get('dagster/partition')}: run {result.run_id} {state}")
    if not runs:
        click.echo("nothing to re-sample: every week of every open incident already ran once (or has no traffic).")


@incident.command("list")
@data_dir_option
def incident_list(data_dir: Path | None) -> None:
    """Incidents in the inbox, and each file that is not a valid incident, with its reason."""
    from flywheel.core.sampling import incidents

    found, problems = incidents.read_all(paths_for(data_dir, need_warehouse=False).inbox_incidents)
    for i in found:
        scope = " ".join(x for x in (i.cohort and f"cohort={i.cohort}", i.intent and f"intent={i.intent}") if x)
        click.echo(f"{i.incident_id}  {i.start:%Y-%m-%d %H:%M} -> {i.end:%Y-%m-%d %H:%M}  {scope}  {i.note or ''}".rstrip())
    for p in problems:  # skipped by the sensor and the weekly sample alike; fix or remove the file
        click.echo(f"invalid (skipped): {p}")
    if not found and not problems:
        click.echo("No incidents.")
