"""People never hold the warehouse: with the daemon running and `flywheel review` open at a prompt,
every verb answers, a run launched from the CLI succeeds, and the daemon's sensor ticks and runs succeed.

DuckDB lets one process write the file at a time. The review opens it for each read or write and
closes it before the next prompt, so a person thinking holds nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.core.common import db
from flywheel_tests.conftest import trace
from flywheel_tests.test_review import Terminal, _scrubbed_warehouse

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _flywheel(env: dict, *args: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run([str(BIN / "flywheel"), *args], env=env, capture_output=True, text=True, timeout=120)
    done.seconds = time.monotonic() - started
    return done


def _daemon_outcomes(dagster_home: Path) -> tuple[list, list]:
    """The daemon's sensor ticks and the runs it launched, from the instance."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        ticks = [tick for state in instance.all_instigator_state()
                 for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)]
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "labels_sensor"}))
    return ticks, runs


@pytest.fixture
def daemon(data_dir):
    env = {**os.environ, "FLYWHEEL_DATA": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster")}
    (data_dir / "dagster").mkdir(exist_ok=True)
    (data_dir / "dagster" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    log = open(data_dir / "daemon.log", "wb")
    proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_review_open_at_a_prompt_blocks_no_verb_run_or_sensor(data_dir, daemon, tmp_path):
    env = daemon
    _scrubbed_warehouse(data_dir / "flywheel.duckdb")
    traces = tmp_path / "t.jsonl"
    traces.write_text("".join(json.dumps(trace(f"t{i}")) + "\n" for i in range(20)))

    review = Terminal([str(BIN / "flywheel"), "review", "--reviewer", "ana"], env=env)
    try:
        review.expect("label [k]")
        review.type("o\n")  # not a bug
        review.expect("adversarial?")
        review.type("n\n")
        review.expect("clean of customer data?")
        review.type("y\n")
        review.expect("label [k]")  # the next trace: the reviewer now thinks, holding nothing

        for args in (["status"], ["taxonomy", "list"], ["ingest", str(traces)], ["residue"],
                     ["fold-in"]):
            done = _flywheel(env, *args)
            assert done.returncode == 0, f"flywheel {' '.join(args)}: {done.stdout}{done.stderr}"
            assert done.seconds < 60 and "in use by" not in done.stderr, (args, done.seconds, done.stderr)

        deadline = time.monotonic() + 150  # labels_sensor ticks every 60 s; its run then takes a few seconds
        while True:
            ticks, runs = _daemon_outcomes(data_dir / "dagster")
            if runs and all(r.is_finished for r in runs):
                break
            assert time.monotonic() < deadline, f"no finished labels_sensor run; daemon log:\n" \
                                                f"{(data_dir / 'daemon.log').read_text()[-3000:]}"
            time.sleep(3)
        assert [t.status.value for t in ticks if t.status.value == "FAILURE"] == []
        assert all(r.status.value == "SUCCESS" for r in runs), [(r.run_id, r.status) for r in runs]

        review.type("q\n")
        assert "1/2 reviewed" in review.rest()
    finally:
        if review.proc.poll() is None:
            review.proc.kill()


def test_a_lock_held_past_the_wait_names_the_holder_in_one_line(tmp_path):
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
                               "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(db.WarehouseBusy) as busy:
            db.open_connection(path, timeout_s=0.5)
        message = str(busy.value)
        assert f"(PID {holder.pid})" in message and str(path) in message and "\n" not in message
    finally:
        holder.kill()
