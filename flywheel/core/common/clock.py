"""The time the loop believes it is.

Wall-clock UTC, unless FLYWHEEL_NOW holds an ISO 8601 time: then every timestamp flywheel writes
(intake, label reviews, taxonomy entries, residue reports, eval versions, regression runs, and so
retirement's months) uses it. `make demo` replays six months of Mondays this way, so retirement's
"two clean months" and the versions' dates mean what they say; a backfill of a past week can do the
same.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator

ENV = "FLYWHEEL_NOW"


def now() -> dt.datetime:
    """Naive UTC, like every TIMESTAMP column in the warehouse."""
    pinned = os.environ.get(ENV)
    if pinned:
        try:
            moment = dt.datetime.fromisoformat(pinned.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{ENV}={pinned!r} is not an ISO 8601 time (e.g. 2026-05-04T06:00:00)") from None
        return moment.astimezone(dt.timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def today() -> dt.date:
    return now().date()


@contextlib.contextmanager
def pinned_at(moment: dt.datetime) -> Iterator[None]:
    """Run a block as if it were `moment` (the demo's replay; Dagster runs in this process see it too)."""
    before = os.environ.get(ENV)
    os.environ[ENV] = moment.isoformat()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
