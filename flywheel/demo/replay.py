"""SIMULATION driver: months of the loop, replayed week by week as Dagster runs.

Every Monday at 05:00 the week's traffic has landed in the inbox and `weekly_loop_job` runs for it
(ingest, sample, scrub, queue, fold in); when a month has ended, `monthly_drift_job` follows (drift,
the high-distance traces that focus next week's sample, retirement). On Tuesday the simulated
reviewer labels the week's queue, a tick of `labels_sensor` folds the labels in, and the simulated
model build that is in production runs every version it has not run yet, as CI would on a new eval
set or a new build. One incident is declared on the way and a tick of `incident_sensor` re-samples
its week, once. FLYWHEEL_NOW is pinned to each of those moments, so versions, labels and regression
runs carry their week's dates and retirement's "two clean months" are real months.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.common import clock
from flywheel.core.evalset import versions as evalset
from flywheel.core.sampling import incidents
from flywheel.core.common import keys
from flywheel.core.evalset import regression
from flywheel.core.sampling import sampler as sampling
from flywheel.core.common.db import connect
from flywheel.defs.runner import run_job, tick_sensor
from flywheel.demo import model
from flywheel.demo.generator import DEFAULT_START, ENTERPRISE_ONBOARD_WEEK, DemoSummary
from flywheel.demo.reviewer import load_truth, review_weeks
from flywheel.settings import Paths, SamplingSettings

MONDAY_LOOP = dt.time(5, 0)
# The story compares production month by month from raw traffic, and six months exceed the 90 days of
# retention a real deployment keeps: the demo keeps all of it (raw_days = 0) and says so in the README.
KEEP_RAW_TRAFFIC = {"ops": {"privacy__raw_retention": {"config": {"raw_days": 0}}}}
MONTHLY_DRIFT = dt.time(6, 0)
TUESDAY_REVIEW = dt.time(10, 0)


@dataclass
class WeekOutcome:
    week: str
    traffic: int = 0
    sample: dict = field(default_factory=dict)  # sampling.summarize() of the week
    checks: list[tuple[str, bool]] = field(default_factory=list)
    labelled: Counter = field(default_factory=Counter)
    new_versions: list[int] = field(default_factory=list)
    regression: list[str] = field(default_factory=list)  # "v3 relay-assist-2026.04: 47/52"
    months_scored: list[str] = field(default_factory=list)
    incident: str | None = None


def day_files(traces_dir: Path, week_start: dt.date) -> list[Path]:
    days = [week_start + dt.timedelta(days=i) for i in range(7)]
    return [p for d in days if (p := traces_dir / f"traces-{d.isoformat()}.jsonl").exists()]


def months_ending_in(week_start: dt.date) -> list[dt.date]:
    """First days of the months whose last day falls in this week."""
    out = []
    for i in range(7):
        day = week_start + dt.timedelta(days=i)
        if (day + dt.timedelta(days=1)).month != day.month:
            out.append(day.replace(day=1))
    return out


def run_pending_regressions(paths: Paths, day: dt.date) -> list[str]:
    """The build in production on `day` runs each eval version it has not run yet."""
    build = model.build_on(day)
    done = []
    with connect(paths.warehouse) as conn:
        regression.ensure_table(conn)
        ran = {v for (v,) in conn.execute("SELECT DISTINCT eval_version FROM regression.results WHERE model_version = ?",
                                          [build.version]).fetchall()}
        evalset.ensure_tables(conn)
        # The latest version as of the replayed day (a rerun of the demo finds later ones already there).
        latest = conn.execute("SELECT coalesce(max(version), 0) FROM eval.versions WHERE created_at <= ?",
                              [clock.now()]).fetchone()[0]
        # A build runs the versions that appeared since its last run; a new build runs them all, so
        # every version has a pass rate under the build in production.
        for version in range(max(ran, default=0) + 1, latest + 1):
            report = regression.run_regression(conn, build.reply, version=version, model_version=build.version,
                                               rubric_judge=model.rubric_judge)
            done.append(f"v{version} {build.version.removesuffix(' (simulated)')}: {report.passed}/{report.run}")
    return done


class Replay:
    """Week-by-week driver; `run_week` is idempotent per week (a rerun of the demo adds nothing)."""

    def __init__(self, paths: Paths, defs, demo: DemoSummary, *, start: dt.date = DEFAULT_START, embedder=None):
        self.paths, self.defs, self.demo, self.start = paths, defs, demo, start
        self.source = Path(demo.trace_files[0]).parent if demo.trace_files else paths.demo / "traces"
        self.truth = load_truth(Path(demo.answers_file), keys.load_key(paths.data_dir))
        self.embedder = embedder
        self.labels_cursor: str | None = None
        self.incident_week = start + dt.timedelta(weeks=ENTERPRISE_ONBOARD_WEEK)

    def run_week(self, week_start: dt.date) -> WeekOutcome:
        monday = dt.datetime.combine(week_start + dt.timedelta(days=7), MONDAY_LOOP)
        out = WeekOutcome(week_start.isoformat())
        with connect(self.paths.warehouse) as conn:
            before = evalset.latest_version(conn)
        self.paths.inbox_traces.mkdir(parents=True, exist_ok=True)
        for path in day_files(self.source, week_start):  # the week's production traffic lands
            if not (self.paths.inbox_traces / path.name).exists():
                shutil.copyfile(path, self.paths.inbox_traces / path.name)

        with clock.pinned_at(monday):
            result = run_job(self.defs, "weekly_loop_job", self.paths, partition_key=out.week, raise_on_error=False,
                             run_config=KEEP_RAW_TRAFFIC)
            if not result.is_node_success("sample__sampled_traces"):
                raise RuntimeError(f"weekly_loop_job for {out.week} failed: see run {result.run_id} in the UI")
            out.checks = [(c.check_name, c.passed) for c in result.get_asset_check_evaluations()]
        if week_start == self.incident_week:
            out.incident = self._incident(week_start, monday)
        for month in months_ending_in(week_start):
            with clock.pinned_at(dt.datetime.combine(monday.date(), MONTHLY_DRIFT)):
                run_job(self.defs, "monthly_drift_job", self.paths, partition_key=month.isoformat(),
                        raise_on_error=False, log_level="ERROR")
            out.months_scored.append(f"{month:%Y-%m}")

        tuesday = dt.datetime.combine(monday.date() + dt.timedelta(days=1), TUESDAY_REVIEW)
        with clock.pinned_at(tuesday):
            with connect(self.paths.warehouse) as conn:
                out.labelled = review_weeks(conn, self.truth, week=dt.datetime.combine(week_start, dt.time()),
                                            embedder=self.embedder)
            # What the daemon's labels_sensor does on its next tick: new labels, one fold-in run.
            self.labels_cursor, _ = tick_sensor(self.defs, "labels_sensor", self.paths, cursor=self.labels_cursor)
            out.regression = run_pending_regressions(self.paths, tuesday.date())
            if out.regression:
                # The gate fails on a harder set by design; the story says why, the UI shows the check.
                run_job(self.defs, "pass_rates_job", self.paths, raise_on_error=False, log_level="CRITICAL")
            with connect(self.paths.warehouse) as conn:
                out.new_versions = list(range(before + 1, evalset.latest_version(conn) + 1))
                sample = sampling.read_sample(conn, dt.datetime.combine(week_start, dt.time()))
                traffic = sampling.week_traffic(conn, dt.datetime.combine(week_start, dt.time()))
        out.traffic = traffic
        out.sample = sampling.summarize(sample, traffic, SamplingSettings())
        return out

    def _incident(self, week_start: dt.date, monday: dt.datetime) -> str:
        """On-call declares an SSO outage for enterprise tenants in the cohort's first week; a tick of
        incident_sensor re-runs the week's loop with the incident's strata, once (its run key)."""
        begin = week_start + dt.timedelta(days=1)
        inc = incidents.new_incident(f"{begin}T00:00:00", f"{begin + dt.timedelta(days=2)}T00:00:00", cohort="enterprise",
                                     note="SIMULATED: SSO outage for enterprise tenants")
        incidents.write(inc, self.paths.inbox_incidents)
        with clock.pinned_at(monday + dt.timedelta(hours=1)):
            _, runs = tick_sensor(self.defs, "incident_sensor", self.paths)
        with connect(self.paths.warehouse, read_only=True) as conn:
            tagged = conn.execute("SELECT count(*) FROM sample.sampled_traces WHERE list_contains(reasons, ?)",
                                  [f"incident:{inc.incident_id}"]).fetchone()[0]
        return (f"incident {inc.incident_id} ({inc.note}): {len(runs)} run(s) of the week's loop, "
                f"{tagged} traces tagged incident:{inc.incident_id}")


def replay(paths: Paths, defs, demo: DemoSummary, weeks: int, *, embedder=None,
           on_week: Callable[[WeekOutcome], None] | None = None) -> list[WeekOutcome]:
    driver = Replay(paths, defs, demo, embedder=embedder)
    outcomes = []
    for i in range(weeks):
        outcome = driver.run_week(DEFAULT_START + dt.timedelta(weeks=i))
        outcomes.append(outcome)
        if on_week:
            on_week(outcome)
    return outcomes
