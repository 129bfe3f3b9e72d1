"""The warehouse on DuckLake: the setting, several writers at once, Dagster on PostgreSQL, migration.

The station tests (conftest.STATION_MODULES) already run on both warehouses; these are what only the
lake has. They need Debian's PostgreSQL (the `postgres` fixture starts one; .ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common import lake
from flywheel.core.common.db import connect
from flywheel.paths import Paths
from flywheel_tests.conftest import demo_in_data_dir
from flywheel_tests.test_review_app import site  # noqa: F401 - the review app's fixture, on the lake here

REPO = Path(__file__).resolve().parents[1]
WEEKS = ["2026-03-02", "2026-03-09"]


# --- the setting, no server needed ---------------------------------------------------------------

def test_the_setting_names_the_file_or_the_lake(tmp_path, monkeypatch):
    monkeypatch.delenv(lake.LAKE_DATA_ENV, raising=False)
    assert lake.parse_target(None, tmp_path) == tmp_path / "flywheel.duckdb"
    assert lake.parse_target("duckdb:other.duckdb", tmp_path) == tmp_path / "other.duckdb"
    target = lake.parse_target("ducklake:postgres:dbname=fw host=db user=u password=hunter2", tmp_path)
    assert isinstance(target, lake.Lake) and target.data_path == f"{tmp_path / 'lake'}/"
    assert "hunter2" not in str(target) and "password=***" in str(target)
    monkeypatch.setenv(lake.LAKE_DATA_ENV, "s3://bucket/flywheel")
    assert lake.parse_target("ducklake:postgres:dbname=fw", tmp_path).data_path == "s3://bucket/flywheel/"
    for bad in ("postgres://x", "ducklake:postgres:", "duckdb:"):
        with pytest.raises(lake.WarehouseSettingError):
            lake.parse_target(bad, tmp_path)


def test_a_bad_setting_is_one_line_without_the_password(data_dir, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE", "mysql://root:hunter2@db/flywheel")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1 and "is not a warehouse" in result.output and "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_lake_is_named_without_its_password(data_dir, monkeypatch):
    import duckdb

    unreachable = lake.Lake("dbname=x host=127.0.0.1 port=1 user=u password=hunter2", "/tmp/nowhere/")
    assert "hunter2" not in repr(unreachable) and "hunter2" not in f"{[unreachable]}"
    with pytest.raises(duckdb.Error) as failed:
        lake.connect_lake(unreachable)
    assert "hunter2" not in str(failed.value) and "password=***" in str(failed.value)
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE", unreachable.url)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1 and "cannot be reached" in result.output and "hunter2" not in result.output


def test_constraints_the_lake_does_not_keep_are_left_out():
    ddl = """CREATE TABLE t (id INTEGER PRIMARY KEY CHECK (id = 1), name VARCHAR NOT NULL UNIQUE,
             n INTEGER CHECK (n > (0)), PRIMARY KEY (id, name))"""
    assert lake.portable_ddl(ddl) == """CREATE TABLE t (id INTEGER, name VARCHAR NOT NULL,
             n INTEGER)"""


# --- on a DuckLake ------------------------------------------------------------------------------

@pytest.fixture
def on_lake(postgres, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE", f"ducklake:postgres:{postgres.new_database()}")
    monkeypatch.setenv("FLYWHEEL_LAKE_DATA", str(tmp_path / "lake"))
    return Paths(data_dir)


def test_no_local_file_is_written_and_the_extensions_come_from_pypi(on_lake):
    result = CliRunner().invoke(main, ["warehouse", "where"])
    assert result.output.startswith("ducklake:postgres:")
    with connect(on_lake.warehouse) as conn:
        conn.execute("CREATE SCHEMA raw")
        loaded = dict(conn.execute("SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded").fetchall())
    assert "ducklake" in loaded and "postgres_scanner" in loaded
    assert all("site-packages" in os.path.realpath(p) for name, p in loaded.items() if name in ("ducklake", "postgres_scanner"))
    assert not (on_lake.data_dir / "flywheel.duckdb").exists()


_RUN_WEEK = """
import sys, dagster as dg
from flywheel.paths import Paths
from flywheel_tests.conftest import fake_resources
from flywheel_tests.test_loop import WEEKLY
result = dg.materialize(WEEKLY, partition_key=sys.argv[1], resources=fake_resources(Paths()),
                        instance=dg.DagsterInstance.get(), raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def _dagster_on_postgres(postgres, home: Path) -> dict:
    """DAGSTER_HOME holding deploy/dagster-postgres.yaml, pointed at a fresh database of the test server."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    dsn = dict(part.split("=", 1) for part in postgres.new_database().split())
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_USERNAME": dsn["user"], "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": dsn["host"], "DAGSTER_PG_DB": dsn["dbname"], "DAGSTER_PG_PORT": dsn["port"]}


def _per_week(warehouse) -> dict:
    with connect(warehouse, read_only=True) as conn:
        return {table: dict(conn.execute(
                    f"SELECT strftime(date_trunc('week', \"timestamp\"), '%Y-%m-%d'), count(*) FROM {table} GROUP BY 1").fetchall())
                for table in ("sample.sampled_traces", "scrub.anonymized_traces")}


def test_two_weeks_materialized_at_once_on_ducklake_with_dagster_on_postgres(postgres, on_lake, tmp_path, monkeypatch):
    import dagster as dg

    from flywheel_tests.conftest import fake_resources
    from flywheel_tests.test_loop import WEEKLY

    """Two processes run the weekly loop's stations for two weeks at the same moment (both ingest the
    inbox first), Dagster's storage on PostgreSQL (deploy/dagster-postgres.yaml), while verbs write and
    read: everything succeeds, every trace is stored once, and each week holds what the same weeks give
    one after the other on the single file."""
    # One key for both warehouses: the draw is keyed, so the same key makes the same sample.
    monkeypatch.setenv("FLYWHEEL_SECRET", "a-test-key-shared-by-both-warehouses-0123456789")
    demo_in_data_dir(on_lake.data_dir, tmp_path, weeks=2, traces_per_day=12, seed=11)
    env = {**os.environ, **_dagster_on_postgres(postgres, tmp_path / "dagster-pg"), "PYTHONPATH": str(REPO)}
    # As a deployment does once (deploy/README.md): make the instance's tables and the pool's slots,
    # which two first runs would otherwise both try to create.
    for command in (["instance", "migrate"], ["instance", "concurrency", "set", "duckdb", "4"]):
        made = subprocess.run([str(Path(sys.executable).parent / "dagster"), *command], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr[-2000:]
    logs = [tmp_path / f"run-{week}.log" for week in WEEKS]
    runs = [subprocess.Popen([sys.executable, "-c", _RUN_WEEK, week], env=env, cwd=REPO, stdout=log.open("w"),
                             stderr=subprocess.STDOUT) for week, log in zip(WEEKS, logs)]
    # Meanwhile a person's verbs write and read the same lake, for as long as the runs last.
    runner, added = CliRunner(), []
    while any(run.poll() is None for run in runs) and len(added) < 40:
        code = f"mode_{len(added)}"
        result = runner.invoke(main, ["taxonomy", "add", "--code", code, "--name", f"Mode {len(added)}",
                                      "--definition", "The reply ignores the contract. The customer is enterprise."])
        assert result.exit_code == 0, result.output
        added.append(code)
        assert runner.invoke(main, ["gate"]).exit_code == 2  # a read: no results to judge yet
        time.sleep(1.0)  # overlap, not load: the runs have two cores to share
    for run, log in zip(runs, logs):
        assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert added
    on_lake_counts = _per_week(on_lake.warehouse)
    with connect(on_lake.warehouse, read_only=True) as conn:
        stored, distinct = conn.execute("SELECT count(*), count(DISTINCT trace_id) FROM raw.traces").fetchone()
        codes = {c for (c,) in conn.execute("SELECT code FROM label.taxonomy").fetchall()}
    assert stored == distinct > 0
    assert set(added) <= codes

    # The same two weeks, one after the other, on the single file.
    single = tmp_path / "single"
    single.mkdir()
    monkeypatch.delenv("FLYWHEEL_WAREHOUSE")
    monkeypatch.setenv("FLYWHEEL_DATA", str(single))
    monkeypatch.setenv("DAGSTER_HOME", str(single / "dagster"))
    single_paths, _ = demo_in_data_dir(single, tmp_path / "again", weeks=2, traces_per_day=12, seed=11)
    for week in WEEKS:
        assert dg.materialize(WEEKLY, partition_key=week, resources=fake_resources(single_paths)).success
    assert on_lake_counts == _per_week(single_paths.warehouse)
    assert set(on_lake_counts["sample.sampled_traces"]) == set(WEEKS)


def test_a_single_file_moves_into_the_lake_with_every_row(postgres, data_dir, tmp_path, monkeypatch):
    import dagster as dg

    from flywheel_tests.conftest import fake_resources
    from flywheel_tests.test_loop import WEEKLY

    paths, _ = demo_in_data_dir(data_dir, tmp_path, weeks=1, traces_per_day=10, seed=3)
    runner = CliRunner()
    assert dg.materialize(WEEKLY, partition_key=WEEKS[0], resources=fake_resources(paths)).success
    with connect(paths.warehouse, read_only=True) as conn:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        before = {t: conn.execute(f'SELECT count(*) FROM "{t[0]}"."{t[1]}"').fetchone()[0] for t in tables}
        views = conn.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0]
    target = f"ducklake:postgres:{postgres.new_database()}"
    monkeypatch.setenv("FLYWHEEL_LAKE_DATA", str(tmp_path / "lake"))
    result = runner.invoke(main, ["warehouse", "migrate", "--to", target])
    assert result.exit_code == 0, result.output
    assert f"{len(tables)} tables, {sum(before.values()):,} rows, every one checked" in result.output
    monkeypatch.setenv("FLYWHEEL_WAREHOUSE", target)
    with connect(Paths(data_dir).warehouse, read_only=True) as conn:
        after = {t: conn.execute(f'SELECT count(*) FROM "{t[0]}"."{t[1]}"').fetchone()[0] for t in tables}
        assert conn.execute("SELECT count(*) FROM duckdb_views() WHERE database_name = 'lake'").fetchone()[0] == views
    assert after == before
    assert runner.invoke(main, ["status"]).exit_code == 0
    again = runner.invoke(main, ["warehouse", "migrate", "--to", target])
    assert again.exit_code == 1 and "already holds tables" in again.output


def test_erasure_on_the_lake_leaves_the_value_in_no_file_and_no_catalog_row(postgres, on_lake, tmp_path):
    import psycopg2

    from flywheel_tests.conftest import trace, write_jsonl

    secret = "Zebulon-Quartermaine-7781"
    write_jsonl(tmp_path / "t.jsonl", [trace("t1", customer_id="cust-9", messages=[{"role": "user", "content": f"I am {secret}"}]),
                                       trace("t2", customer_id="cust-1")])
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(tmp_path / "t.jsonl")]).exit_code == 0
    result = runner.invoke(main, ["forget", "--customer-id", "cust-9", "--operator", "dpo", "--reason", "request"])
    assert result.exit_code == 0, result.output
    assert "Rewrote the lake's" in result.output
    files = list((tmp_path / "lake").rglob("*.parquet"))
    assert files and not any(secret.encode() in f.read_bytes() for f in files)
    dsn = os.environ["FLYWHEEL_WAREHOUSE"].removeprefix("ducklake:postgres:")
    with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s', [f"%{secret}%"])
            assert cur.fetchone()[0] == 0, table
    with connect(on_lake.warehouse, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 1


def test_the_lake_s_files_can_live_in_an_s3_compatible_store(postgres, data_dir, tmp_path, monkeypatch):
    """FLYWHEEL_LAKE_DATA=s3://... with the usual AWS_* variables: moto's S3 server on loopback here."""
    import boto3
    from moto.server import ThreadedMotoServer

    from flywheel_tests.conftest import trace, write_jsonl

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="lake")
        monkeypatch.setenv("FLYWHEEL_WAREHOUSE", f"ducklake:postgres:{postgres.new_database()}")
        monkeypatch.setenv("FLYWHEEL_LAKE_DATA", "s3://lake/flywheel")
        write_jsonl(tmp_path / "t.jsonl", [trace(f"t{i}") for i in range(5)])
        result = CliRunner().invoke(main, ["ingest", str(tmp_path / "t.jsonl")])
        assert result.exit_code == 0, result.output
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
        assert any(k.startswith("flywheel/raw/traces/") and k.endswith(".parquet") for k in keys)
        with connect(Paths(data_dir).warehouse, read_only=True) as conn:
            assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 5
        assert not list(tmp_path.rglob("*.parquet"))
    finally:
        server.stop()


def test_the_review_app_lands_labels_in_the_lake(on_lake, site):
    """The review app on a DuckLake: a label posted through the API lands once, and the queue moves on."""
    from flywheel_tests.test_review_app import KNOWN, WEEK, _bearer, _current, _wait_landed

    make, refs, made = site
    client = make()
    first = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()
    posted = client.post("/api/labels", headers=_bearer(made, "alice"), json={"trace_ref": first["trace_ref"], **KNOWN})
    assert posted.status_code == 201 and posted.json()["landed"] is True, posted.text
    _wait_landed(client)
    assert _current(on_lake.warehouse) == [(first["trace_ref"], "known_failure", "missed_escalation", "alice", "api")]
    following = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()
    assert following["trace_ref"] in refs and following["trace_ref"] != first["trace_ref"]
