"""The warehouse backends: the weekly loop on the single DuckDB file against DuckLake (PostgreSQL catalog,
data files in a local folder), and four weeks backfilled one by one against four at once, in one run.

For each backend, from the same generated traffic (N demo traces over four weeks):

* ingest: `flywheel ingest` of every file, traces/s;
* the weekly loop's stations (ingest of anything new, sample, scrub, queue, suggestions, clusters,
  fold-in) for each of the four weeks, one run after the other, each run its own process as Dagster
  would start it;
* DuckLake only, on a second lake with the same traffic: the four weeks' runs started at once (the
  single file allows one writer, so there they can only queue).

The scrubber and the embedder are the small fakes: their work per trace is the same whatever the
warehouse, and the real ones would hide the warehouse's share of the time. Each week's sample is
checked to be the same on every backend. Needs Debian's PostgreSQL (skips cleanly without it).

Usage: python benchmarks/backends.py [--traces 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WEEKS = 4
START = dt.date(2026, 3, 2)
KEY = "benchmark-key-shared-by-every-backend-0123456789abcdef"

RUN_WEEK = """
import sys, dagster as dg
from flywheel.defs.evalset import fold_in
from flywheel.defs.intake import raw_traces
from flywheel.defs.labeling import label_suggestions, review_queue, week_clusters
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week
from flywheel.paths import Paths
from flywheel.resources.embedder import FakeEmbedderResource
from flywheel.resources.io_manager import WarehousePolarsIOManager
from flywheel.resources.scrubber import FakeScrubberResource
from flywheel.resources.warehouse import Warehouse
paths = Paths()
resources = {"warehouse": Warehouse(data_dir=str(paths.data_dir)),
             "io_manager": WarehousePolarsIOManager(data_dir=str(paths.data_dir)),
             "scrubber": FakeScrubberResource(vocabulary_path=str(paths.customer_vocabulary)),
             "embedder": FakeEmbedderResource()}
assets = [raw_traces, sampled_traces, scrub_week, review_queue, label_suggestions, week_clusters, fold_in]
result = dg.materialize(assets, partition_key=sys.argv[1], resources=resources, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def _env(data: Path, lake_dsn: str | None, lake_data: Path | None) -> dict:
    env = {**os.environ, "FLYWHEEL_DATA": str(data), "DAGSTER_HOME": str(data / "dagster"), "FLYWHEEL_SECRET": KEY,
           "PYTHONPATH": str(REPO)}
    env.pop("FLYWHEEL_WAREHOUSE", None)
    if lake_dsn:
        env.update(FLYWHEEL_WAREHOUSE=f"ducklake:postgres:{lake_dsn}", FLYWHEEL_LAKE_DATA=str(lake_data))
    return env


def _prepare(root: Path, name: str, demo, lake_dsn: str | None = None) -> dict:
    data = root / name
    (data / "reference").mkdir(parents=True)
    (data / "dagster").mkdir()
    shutil.copyfile(demo.vocabulary_file, data / "reference" / "customer_vocabulary.csv")
    return _env(data, lake_dsn, root / f"{name}-files" if lake_dsn else None)


def _ingest(env: dict, traces: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "flywheel"), "ingest", str(traces)], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def _weeks() -> list[str]:
    return [(START + dt.timedelta(weeks=i)).isoformat() for i in range(WEEKS)]


def _run_weeks(env: dict, at_once: bool) -> float:
    started = time.perf_counter()
    launch = lambda week: subprocess.Popen([sys.executable, "-c", RUN_WEEK, week], env=env, cwd=REPO,  # noqa: E731
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = []
    for week in _weeks():
        runs.append(launch(week))
        if not at_once:
            runs[-1].wait()
    for run in runs:
        output = run.communicate()[0]
        if run.returncode:
            raise SystemExit(f"a weekly run failed:\n{output[-3000:]}")
    return time.perf_counter() - started


def _samples(env: dict) -> dict:
    import duckdb  # noqa: F401 - loaded before flywheel's modules read the environment

    from flywheel.core.common.db import connect
    from flywheel.paths import Paths

    saved = {k: os.environ.get(k) for k in ("FLYWHEEL_WAREHOUSE", "FLYWHEEL_LAKE_DATA")}
    os.environ.pop("FLYWHEEL_WAREHOUSE", None)
    os.environ.update({k: env[k] for k in saved if k in env})
    try:
        with connect(Paths(env["FLYWHEEL_DATA"]).warehouse, read_only=True) as conn:
            return dict(conn.execute("SELECT strftime(week_start, '%Y-%m-%d'), count(*) FROM sample.sampled_traces "
                                     "GROUP BY 1 ORDER BY 1").fetchall())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Work here and keep it (default: a temporary folder, removed).")
    args = parser.parse_args()

    from flywheel_tests import pg

    binaries = pg.binaries()
    if binaries is None:
        print("SKIPPED: PostgreSQL's server is not installed (apt-get install postgresql)")
        return
    from flywheel.demo.generator import write_demo

    root = args.keep or Path(tempfile.mkdtemp(prefix="flywheel-backends-"))
    root.mkdir(parents=True, exist_ok=True)
    server = pg.Server(binaries)
    try:
        started = time.perf_counter()
        demo = write_demo(root / "generated", weeks=WEEKS, traces_per_day=max(1, args.traces // (7 * WEEKS)), seed=1)
        print(f"generated {demo.traces:,} traces over {WEEKS} weeks in {time.perf_counter() - started:.0f} s")
        traces = root / "generated" / "traces"
        backends = {"single file": _prepare(root, "file", demo),
                    "DuckLake": _prepare(root, "lake", demo, server.new_database()),
                    "DuckLake, 4 at once": _prepare(root, "lake-parallel", demo, server.new_database())}
        rows, samples = [], {}
        for name, env in backends.items():
            ingest = _ingest(env, traces)
            weeks = _run_weeks(env, at_once=name.endswith("at once"))
            samples[name] = _samples(env)
            rows.append((name, ingest, demo.traces / ingest, weeks))
            print(f"  {name}: ingest {ingest:.1f} s, four weeks {weeks:.1f} s", flush=True)
        print(f"\nThe weekly loop on {demo.traces:,} traces (fake scrubber and embedder; 2 cores here):\n")
        print(f"| backend | ingest s | traces/s | 4 weeks s | vs single file |")
        print(f"| --- | --- | --- | --- | --- |")
        base = rows[0][3]
        for name, ingest, rate, weeks in rows:
            print(f"| {name} | {ingest:.1f} | {rate:,.0f} | {weeks:.1f} | {weeks / base:.2f}x |")
        lake_one, lake_four = rows[1][3], rows[2][3]
        print(f"\nFour weeks at once on DuckLake against one by one on DuckLake: {lake_one / lake_four:.2f}x faster")
        same = len({tuple(sorted(s.items())) for s in samples.values()}) == 1
        print(f"Each week's sample the same on every backend: {'yes' if same else 'NO'} "
              f"({', '.join(f'{w} {n:,}' for w, n in samples['single file'].items())})")
        if not same:
            raise SystemExit(f"the samples differ: {samples}")
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
