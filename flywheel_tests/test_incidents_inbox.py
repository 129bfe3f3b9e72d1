"""Incidents cannot poison the loop: `incident open` validates before it writes, and a bad file in the
inbox is reported and skipped by the sensor, the weekly sample and `incident list`, never fatal."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.intake.ingest import ensure_raw_tables
from flywheel.core.sampling import incidents
from flywheel.defs.sensors import incident_sensor
from flywheel.resources.warehouse import Warehouse
from flywheel_tests.test_sampling import fill_week

GOOD = {"incident_id": "inc-sso", "start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z", "cohort": "enterprise"}

BAD_FILES = {
    "not_utf8.json": b'{"incident_id": "x", "note": "caf\xe9"}',
    "not_json.json": b"incident: sso outage\n",
    "list.json": b'[{"incident_id": "x"}]',
    "scalar.json": b"42",
    "empty.json": b"",
    "missing.json": json.dumps({"incident_id": "x", "start": "2026-03-03T00:00:00Z"}).encode(),
    "overflow.json": json.dumps({"incident_id": "y", "start": "9999-12-27T00:00:00", "end": "9999-12-31T00:00:00"}).encode(),
    "year1.json": json.dumps({"incident_id": "z", "start": "0001-01-01T00:00:00+05:00",
                              "end": "2026-03-04T00:00:00"}).encode(),
    "backwards.json": json.dumps({**GOOD, "incident_id": "b", "start": GOOD["end"], "end": GOOD["start"]}).encode(),
    "too_long.json": json.dumps({**GOOD, "incident_id": "l", "end": "2026-09-01T00:00:00Z"}).encode(),
    "bad_id.json": json.dumps({**GOOD, "incident_id": "no spaces/or slashes"}).encode(),
    "cohort_list.json": json.dumps({**GOOD, "incident_id": "c", "cohort": ["enterprise"]}).encode(),
    "same_id.json": json.dumps({**GOOD, "start": "2026-03-05T00:00:00Z", "end": "2026-03-06T00:00:00Z"}).encode(),
}


@pytest.fixture
def inbox(data_dir):
    folder = data_dir / "inbox" / "incidents"
    folder.mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps(GOOD))
    for name, content in BAD_FILES.items():
        (folder / name).write_bytes(content)
    (folder / "directory.json").mkdir()
    return folder


@pytest.mark.parametrize("start,end,fragment", [
    ("9999-12-27T00:00:00", "9999-12-31T00:00:00", '"--from" is outside 2000-01-01 to 2099-12-31'),
    ("2026-03-03T00:00:00", "9999-12-31T23:00:00-05:00", '"--to" is outside 2000-01-01 to 2099-12-31'),
    ("0001-01-01T00:00:00+05:00", "2026-03-04T00:00:00", '"--from" is outside'),
    ("1970-01-01T00:00:00", "1970-01-02T00:00:00", '"--from" is outside'),
    ("2026-03-05T00:00:00", "2026-03-04T00:00:00", "the window ends before it starts"),
    ("2026-03-04T00:00:00", "2026-03-04T00:00:00", "the window ends before it starts"),
    ("2026-01-01T00:00:00", "2026-12-31T00:00:00", "the window is longer than 92 days"),
    ("yesterday", "2026-03-04T00:00:00", '"--from" is not an ISO 8601 timestamp'),
])
def test_incident_open_validates_before_it_writes(data_dir, start, end, fragment):
    result = CliRunner().invoke(main, ["incident", "open", "--from", start, "--to", end])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert fragment in result.output and "Traceback" not in result.output, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error")] == [result.output.strip()]
    assert not (data_dir / "inbox" / "incidents").exists() or not list((data_dir / "inbox" / "incidents").iterdir()), \
        "nothing is written for a refused incident"


def test_incident_open_writes_a_whole_file_the_sensor_can_read(data_dir):
    result = CliRunner().invoke(main, ["incident", "open", "--from", "2026-03-03T00:00:00Z", "--to", "2026-03-04T00:00:00Z"])
    assert result.exit_code == 0, result.output
    files = list((data_dir / "inbox" / "incidents").iterdir())
    assert [f.suffix for f in files] == [".json"], "no temporary file is left behind"
    found, problems = incidents.read_all(data_dir / "inbox" / "incidents")
    assert problems == [] and len(found) == 1 and found[0].weeks() == [dt.datetime(2026, 3, 2)]


def test_every_bad_file_is_reported_with_its_reason_and_skipped(inbox):
    found, problems = incidents.read_all(inbox)
    assert [i.incident_id for i in found] == ["inc-sso"]
    by_file = {p.split(": ", 1)[0].rsplit("/", 1)[-1]: p.split(": ", 1)[1] for p in problems}
    assert set(by_file) == set(BAD_FILES) | {"directory.json"}
    assert by_file["not_utf8.json"].startswith("line 1, byte 34: not UTF-8 text")
    assert by_file["not_json.json"].startswith("line 1, column 1: not valid JSON")
    assert by_file["list.json"] == "a JSON list where a JSON object belongs"
    assert by_file["scalar.json"] == "a JSON number where a JSON object belongs"
    assert by_file["empty.json"] == "the file is empty"
    assert by_file["missing.json"] == 'missing "end"'
    assert by_file["overflow.json"] == '"start" is outside 2000-01-01 to 2099-12-31'
    assert by_file["year1.json"] == '"start" is outside 2000-01-01 to 2099-12-31'
    assert by_file["backwards.json"] == "the window ends before it starts"
    assert by_file["too_long.json"].startswith("the window is longer than 92 days")
    assert by_file["bad_id.json"].startswith('"incident_id" must be')
    assert by_file["cohort_list.json"] == '"cohort" must be text'
    assert by_file["same_id.json"] == '"incident_id" is already used by good.json'
    assert "caf" not in " ".join(problems) and "sso outage" not in " ".join(problems), "no file content is quoted"


def test_the_sensor_skips_bad_files_and_says_so_without_failing(inbox, data_dir):
    warehouse = Warehouse(data_dir=str(data_dir))
    with dg.build_sensor_context() as ctx:
        result = incident_sensor(ctx, warehouse=warehouse)
    assert [r.run_key for r in result.run_requests] == ["inc-sso:2026-03-02"]
    (inbox / "good.json").unlink()
    (inbox / "same_id.json").unlink()  # valid on its own, once good.json no longer holds its id
    with dg.build_sensor_context() as ctx:
        skip = incident_sensor(ctx, warehouse=warehouse)
    assert isinstance(skip, dg.SkipReason)
    assert "no incident in the inbox" in skip.skip_message and "13 invalid incident file(s) skipped" in skip.skip_message
    assert "backwards.json: the window ends before it starts" in skip.skip_message and "and 10 more" in skip.skip_message


def test_the_file_that_broke_every_tick_is_only_skipped(data_dir):
    """The operator's file: 9999-12-27 to 9999-12-31 overflowed on every tick of incident_sensor."""
    folder = data_dir / "inbox" / "incidents"
    folder.mkdir(parents=True)
    (folder / "inc-99991227-x.json").write_text(json.dumps(
        {"incident_id": "inc-99991227-x", "start": "9999-12-27T00:00:00", "end": "9999-12-31T00:00:00"}))
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance) as ctx:
        for _ in range(3):
            skip = incident_sensor(ctx, warehouse=Warehouse(data_dir=str(data_dir)))
            assert isinstance(skip, dg.SkipReason) and "inc-99991227-x.json" in skip.skip_message


def test_the_weekly_sample_ignores_bad_incident_files(inbox, data_dir):
    from flywheel.defs.sampling import sampled_traces

    warehouse = Warehouse(data_dir=str(data_dir))
    with warehouse.connect() as conn:
        ensure_raw_tables(conn)
        fill_week(conn, n=700)
        conn.execute("UPDATE raw.traces SET cohort = 'enterprise'")
    run = dg.materialize([sampled_traces], partition_key="2026-03-02", resources={"warehouse": warehouse})
    assert run.success
    with warehouse.connect() as conn:
        tagged = conn.execute("SELECT count(*) FROM sample.sampled_traces WHERE list_contains(reasons, 'incident:inc-sso')"
                              ).fetchone()[0]
    assert tagged > 0, "the valid incident is still over-sampled"


def test_incident_list_shows_each_invalid_file_with_its_reason(inbox):
    result = CliRunner().invoke(main, ["incident", "list"])
    assert result.exit_code == 0 and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("inc-sso  2026-03-03 00:00 -> 2026-03-04 00:00  cohort=enterprise")
    invalid = [line for line in lines if line.startswith("invalid (skipped): ")]
    assert len(invalid) == len(BAD_FILES) + 1
    assert any(line.endswith('overflow.json: "start" is outside 2000-01-01 to 2099-12-31') for line in invalid)
