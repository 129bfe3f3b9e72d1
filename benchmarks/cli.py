"""Start-up of the light verbs against `python -c "import duckdb"`, the floor any verb that reads the
warehouse pays.

Target (issue 16): `flywheel --help`, `flywheel gate`, `flywheel evalset versions` and `flywheel lookup`
each within 2x the baseline, as the median of N runs (default 10), all measured in this run on a small
warehouse made here (a 20-row eval set and its results).

    .venv/bin/python benchmarks/cli.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 2.0
BIN = Path(sys.executable).parent


def median_seconds(cmd: list[str], runs: int, env: dict) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def make_warehouse(data: Path, env: dict) -> None:
    starter = data.parent / "starter.csv"
    starter.write_text("input,expected\n" + "".join(f"question {i},answer {i}\n" for i in range(20)))
    subprocess.run([str(BIN / "flywheel"), "evalset", "import", str(starter)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([str(BIN / "flywheel"), "regress", "--target", "benchmarks_cli_model:reply",
                    "--model-version", "bench"], env={**env, "PYTHONPATH": str(data.parent)}, check=True,
                   stdout=subprocess.DEVNULL, cwd=data.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "FLYWHEEL_DATA": str(data), "DAGSTER_HOME": str(data / "dagster")}
        (Path(tmp) / "benchmarks_cli_model.py").write_text("def reply(messages):\n    return 'answer 1'\n")
        make_warehouse(data, env)
        fw = str(BIN / "flywheel")
        baseline = median_seconds([sys.executable, "-c", "import duckdb"], args.runs, env)
        print(f"baseline  python -c 'import duckdb': {baseline * 1000:.0f} ms (median of {args.runs})")
        worst = 0.0
        for name, cmd in [("flywheel --help", [fw, "--help"]), ("flywheel gate", [fw, "gate"]),
                          ("flywheel evalset versions", [fw, "evalset", "versions"]),
                          ("flywheel lookup", [fw, "lookup", "--customer-id", "c-1"])]:
            took = median_seconds(cmd, args.runs, env)
            ratio = took / baseline
            worst = max(worst, ratio)
            verdict = "ok" if ratio <= TARGET else "OVER TARGET"
            print(f"{name:<28} {took * 1000:6.0f} ms  {ratio:4.2f}x baseline  (target <= {TARGET:.0f}x) {verdict}")
        print(f"worst: {worst:.2f}x; target {'met' if worst <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
