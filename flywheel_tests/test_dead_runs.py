"""A run that dies (kill -9) frees the duckdb pool slot: the next run proceeds instead of waiting forever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg

from flywheel.defs.dead_runs import reap_dead_runs

JOB_SCRIPT = """
import sys, time, dagster as dg
from flywheel.defs.runner import run_job
from flywheel.settings import Paths

@dg.op(pool="duckdb")
def step():
    print("holding the pool", flush=True)
    time.sleep(float(sys.argv[1]))

@dg.job
def pool_job():
    step()

result = run_job(dg.Definitions(jobs=[pool_job]), "pool_job", Paths(), raise_on_error=False)
print("success" if result.success else "failure", flush=True)
"""


def _pool_job(tmp_path, seconds: float) -> subprocess.Popen:
    script = tmp_path / "pool_job.py"
    script.write_text(JOB_SCRIPT)
    return subprocess.Popen([sys.executable, str(script), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env=os.environ.copy())


def test_a_killed_run_is_marked_failed_and_the_next_run_gets_the_pool(data_dir, tmp_path):
    victim = _pool_job(tmp_path, seconds=300)
    assert victim.stdout.readline().strip() == "holding the pool"
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    started = time.monotonic()
    nxt = _pool_job(tmp_path, seconds=0)
    try:
        out, _ = nxt.communicate(timeout=90)  # without the reaper it would wait for the dead run's slot forever
    finally:
        nxt.kill()
    assert out.split() == ["holding", "the", "pool", "success"], out
    assert time.monotonic() - started < 60

    with dg.DagsterInstance.get() as instance:
        statuses = sorted(r.status.value for r in instance.get_runs())
        assert statuses == ["FAILURE", "SUCCESS"]
        dead = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))[0]
        assert any("is gone" in (e.message or "") for e in instance.all_logs(dead.run_id))
        assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots == []
        assert reap_dead_runs(instance) == []  # idempotent: nothing left to reap


def test_a_live_run_is_left_alone(data_dir, tmp_path):
    alive = _pool_job(tmp_path, seconds=30)
    try:
        assert alive.stdout.readline().strip() == "holding the pool"
        with dg.DagsterInstance.get() as instance:
            assert reap_dead_runs(instance) == []
            assert [r.status.value for r in instance.get_runs()] == ["STARTED"]
    finally:
        alive.kill()
        alive.wait()
