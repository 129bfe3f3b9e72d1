"""Incidents and sensors: evaluated with Dagster's test contexts."""

import datetime as dt

import dagster as dg
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.sampling import incidents
from flywheel.core.sampling import sampler as sampling
from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ensure_raw_tables
from flywheel.defs.sensors import incident_sensor, labels_sensor
from flywheel.resources.warehouse import Warehouse
from flywheel_tests.test_sampling import fill_week


def test_incident_open_writes_one_incident_per_window(data_dir):
    runner = CliRunner()
    first = runner.invoke(main, ["incident", "open", "--from", "2026-03-04T10:00:00Z", "--to", "2026-03-10T00:00:00Z",
                                 "--cohort", "enterprise", "--note", "SSO outage"])
    again = runner.invoke(main, ["incident", "open", "--from", "2026-03-04T10:00:00Z", "--to", "2026-03-10T00:00:00Z",
                                 "--cohort", "enterprise"])
    assert first.exit_code == 0 and "weeks to re-sample: 2026-03-02, 2026-03-09" in first.stdout
    assert first.stdout.split(":")[0] == again.stdout.split(":")[0], "the same window is the same incident"
    assert len(list((data_dir / "inbox" / "incidents").glob("*.json"))) == 1
    bad = runner.invoke(main, ["incident", "open", "--from", "2026-03-10", "--to", "2026-03-04"])
    assert bad.exit_code == 1 and "ends before it starts" in bad.output


def test_incident_sensor_requests_each_week_once_with_the_incident_id(data_dir):
    inc = incidents.new_incident("2026-03-04T10:00:00", "2026-03-10T00:00:00", cohort="enterprise")
    incidents.write(inc, data_dir / "inbox" / "incidents")
    (data_dir / "inbox" / "incidents" / "broken.json").write_text("{nope")
    warehouse = Warehouse(data_dir=str(data_dir))
    with dg.build_sensor_context() as ctx:
        result = incident_sensor(ctx, warehouse=warehouse)
    keys = [(r.run_key, r.partition_key, r.tags["flywheel/incident"]) for r in result.run_requests]
    assert keys == [(f"{inc.incident_id}:2026-03-02", "2026-03-02", inc.incident_id),
                    (f"{inc.incident_id}:2026-03-09", "2026-03-09", inc.incident_id)]
    # Run keys are what makes "once": the instance drops a request whose key already ran.
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance) as ctx:
        assert len(incident_sensor(ctx, warehouse=warehouse).run_requests) == 2


def test_incident_window_is_over_sampled_and_tagged(tmp_path):
    off = sampling.SamplingSettings(random_rate=0, borderline_rate=0, rare_intent_rate=0, long_conversation_rate=0,
                                    anomaly_rate=0, incident_rate=1.0)
    with connect(tmp_path / "i.duckdb") as conn:
        ensure_raw_tables(conn)
        fill_week(conn, n=700)
        conn.execute("UPDATE raw.traces SET cohort = 'enterprise' WHERE hour(timestamp) < 12")
        inc = incidents.new_incident("2026-03-03T00:00:00", "2026-03-04T00:00:00", cohort="enterprise")
        picked = sampling.sample_week(conn, dt.datetime(2026, 3, 2), off, trace_ref=lambda t: "ref-" + t, incidents=[inc])
        none = sampling.sample_week(conn, dt.datetime(2026, 3, 2), off, trace_ref=lambda t: "ref-" + t)
    assert none.height == 0
    assert picked.height == 50 and set(picked["cohort"]) == {"enterprise"}
    assert all(t.date() == dt.date(2026, 3, 3) for t in picked["timestamp"])
    assert picked["reasons"].to_list()[0] == [f"incident:{inc.incident_id}"]
    assert picked["modes"].to_list()[0] == ["stratified"]


def test_labels_sensor_moves_its_cursor_only_on_new_labels(data_dir):
    warehouse = Warehouse(data_dir=str(data_dir))
    with dg.build_sensor_context() as ctx:
        assert isinstance(labels_sensor(ctx, warehouse=warehouse), dg.SkipReason)
    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA label")
        conn.execute("CREATE TABLE label.labels AS SELECT 'l1' AS label_id, TIMESTAMP '2026-03-09 10:00' AS reviewed_at")
    with dg.build_sensor_context() as ctx:
        first = labels_sensor(ctx, warehouse=warehouse)
    [request] = first.run_requests
    with dg.build_sensor_context(cursor=first.cursor) as ctx:
        assert isinstance(labels_sensor(ctx, warehouse=warehouse), dg.SkipReason)
    with warehouse.connect() as conn:
        conn.execute("INSERT INTO label.labels VALUES ('l2', TIMESTAMP '2026-03-10 10:00')")
    with dg.build_sensor_context(cursor=first.cursor) as ctx:
        second = labels_sensor(ctx, warehouse=warehouse)
    assert second.run_requests[0].run_key != request.run_key


def test_incident_open_with_run_re_samples_each_week_once(data_dir):
    """`--run` is one tick of incident_sensor in-process, with the daemon's run-key dedupe (real scrubber)."""
    from flywheel.demo.generator import write_demo

    write_demo(data_dir.parent / "generated", weeks=1, traces_per_day=8, seed=2, traces_dir=data_dir / "inbox" / "traces")
    args = ["incident", "open", "--from", "2026-03-03T00:00:00Z", "--to", "2026-03-05T00:00:00Z", "--run"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "re-sampled week 2026-03-02" in first.stdout and "done" in first.stdout
    incident_id = first.stdout.split(":")[0]
    with connect(data_dir / "flywheel.duckdb", read_only=True) as conn:
        tagged = conn.execute("SELECT count(*) FROM sample.sampled_traces WHERE list_contains(reasons, ?)",
                              [f"incident:{incident_id}"]).fetchone()[0]
    assert tagged > 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "nothing to re-sample" in again.stdout
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"flywheel/incident": incident_id}))
    assert len(runs) == 1 and runs[0].tags["dagster/sensor_name"] == "incident_sensor"
