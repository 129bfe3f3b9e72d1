"""flywheel serve and flywheel users: the review app in a browser, and the people who use it."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback exposes the app to the network: put it behind TLS.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option("--reviewers-per-trace", type=click.IntRange(1, 2), default=None,
              help="2: double review (each trace to two reviewers, blind; agreement reported, disagreements "
              "adjudicated). Default: [review] reviewers_per_trace in <data>/flywheel.toml, else 1.")
@click.option("--reservation-minutes", type=click.FloatRange(min=0.1), default=None,
              help="How long an opened trace stays reserved for its reviewer (default 10).")
@data_dir_option
def serve(host: str, port: int, reviewers_per_trace: int | None, reservation_minutes: float | None,
          data_dir: Path | None) -> None:
    """The review app: a queue several people label at once in a browser, with its JSON API.

    Sign in with a reviewer made by `flywheel users add NAME`. Keyboard first: press ? on any page. The
    app keeps serving while the weekly loop, the sensors and other verbs run: labels go to a side store
    (<data>/review/) and reach the warehouse when it is free. A page that hangs: `kill -USR1 <pid>` prints
    what every thread of the app is doing to its stderr (code locations only, no data).
    """
    from flywheel.settings import review_settings

    paths = paths_for(data_dir)
    try:
        settings = review_settings(paths.data_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if reviewers_per_trace is not None:
        settings.reviewers_per_trace = reviewers_per_trace
    if reservation_minutes is not None:
        settings.reservation_minutes = reservation_minutes
    _seed_readable_or_fail(paths)
    _port_free_or_fail(host, port)
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    import uvicorn

    from flywheel.web.app import create_app

    app = create_app(paths, settings, https_only=False)
    with _store(paths) as store:
        from flywheel.core.labeling import reviewers

        nobody = not reviewers.listing(store)
    click.echo(f"flywheel review on http://{host}:{port}/  (data: {paths.data_dir}; Ctrl-C stops it)")
    if nobody:
        click.echo("No reviewer yet: create one with `flywheel users add NAME --admin` (it prints the password).")
    if not loopback:
        click.echo(f"warning: listening on {host}, not loopback: anyone who reaches this address can try to sign in; "
                   "serve it behind TLS.", err=True)
    _stacks_on_sigusr1()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _stacks_on_sigusr1() -> None:
    """SIGUSR1 prints every thread's stack (file, line, function: never a value) to stderr, so a hang can be
    seen without a debugger."""
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)


def _seed_readable_or_fail(paths) -> None:
    """The app seeds the taxonomy at start-up: a broken taxonomy.yaml is named here, not in a traceback."""
    from flywheel.core.labeling import taxonomy

    if paths.taxonomy_seed.exists():
        try:
            taxonomy.load_seed(paths.taxonomy_seed)
        except taxonomy.TaxonomyError as exc:
            raise click.ClickException(str(exc)) from None


def _port_free_or_fail(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc} (another program "
                                       "uses it? pick another with --port)") from None


def _store(paths):
    from flywheel.core.labeling.review_store import opened, path_for

    return opened(path_for(paths.data_dir))


@main.group()
def users() -> None:
    """Reviewers of the review app (flywheel serve): add, list, reset, disable."""


@users.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Admins manage reviewers, edit the taxonomy and adjudicate.")
@data_dir_option
def users_add(name: str, admin: bool, data_dir: Path | None) -> None:
    """Create a reviewer; prints their password and API token once (only hashes are kept)."""
    from flywheel.core.labeling import reviewers

    paths = paths_for(data_dir, need_warehouse=False)
    if not paths.warehouse.exists():  # the first step of a live setup: serve, before any trace arrives
        from flywheel.core.common.db import connect
        from flywheel.core.intake.ingest import ensure_raw_tables

        with connect(paths.warehouse) as conn:
            ensure_raw_tables(conn)
        click.echo(f"Started a new data directory: {paths.data_dir}")
    with _store(paths) as store:
        try:
            made = reviewers.add(store, name, admin=admin)
        except reviewers.ReviewerError as exc:
            raise click.ClickException(str(exc)) from None
    _print_credentials(made, "Created")


def _print_credentials(made, verb: str) -> None:
    click.echo(f"{verb} reviewer {made.name}. Shown once, hand them over now:")
    click.echo(f"  password:  {made.password}")
    click.echo(f"  API token: {made.token}")
    click.echo("Sign in at the address `flywheel serve` prints; scripts send `Authorization: Bearer <token>`.")


@users.command("list")
@data_dir_option
def users_list(data_dir: Path | None) -> None:
    """Every reviewer, whether admin, and whether disabled."""
    from flywheel.core.common.markdown import table
    from flywheel.core.labeling import reviewers

    with _store(paths_for(data_dir)) as store:
        people = reviewers.listing(store)
    if not people:
        click.echo("No reviewer yet: flywheel users add NAME --admin")
        return
    click.echo(table(["name", "admin", "since", "status"], [(p["name"], "yes" if p["admin"] else "", p["created_at"][:10],
                                                              "disabled" if p["disabled"] else "active") for p in people]))


@users.command("reset")
@click.argument("name")
@data_dir_option
def users_reset(name: str, data_dir: Path | None) -> None:
    """A new password and API token for a reviewer (the old ones stop working)."""
    from flywheel.core.labeling import reviewers

    with _store(paths_for(data_dir)) as store:
        try:
            made = reviewers.reset(store, name)
        except reviewers.ReviewerError as exc:
            raise click.ClickException(str(exc)) from None
    _print_credentials(made, "Reset")


@users.command("disable")
@click.argument("name")
@data_dir_option
def users_disable(name: str, data_dir: Path | None) -> None:
    """Stop a reviewer from signing in or using their token (their labels stay)."""
    from flywheel.core.labeling import reviewers

    with _store(paths_for(data_dir)) as store:
        try:
            reviewers.disable(store, name)
        except reviewers.ReviewerError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Disabled {name}.")
