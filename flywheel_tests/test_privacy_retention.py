"""Retention: raw traffic older than retention.raw_days goes once its week was sampled and scrubbed;
scrubbed traces, labels and eval rows stay; 0 keeps raw traffic forever."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest
from flywheel.resources.io_manager import WarehousePolarsIOManager

from flywheel.core.common import clock
from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ingest_paths
from flywheel.core.privacy import retention
from flywheel.defs.intake import raw_traces
from flywheel.defs.privacy import RAW_RETENTION, raw_retention
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week
from flywheel.resources.embedder import FakeEmbedderResource
from flywheel.resources.scrubber import FakeScrubberResource
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import Paths, RetentionSettings

from .conftest import trace, write_jsonl

W1, W2, W3 = dt.datetime(2026, 3, 2), dt.datetime(2026, 3, 9), dt.datetime(2026, 3, 16)
NOW = dt.datetime(2026, 6, 15, 6)  # cutoff at 90 days: 2026-03-17 06:00


def _at(day: dt.datetime, hours: int = 10) -> str:
    return (day + dt.timedelta(hours=hours)).isoformat() + "Z"


def _ingest(conn, path, when: dt.datetime) -> None:
    with clock.pinned_at(when):
        ingest_paths(conn, [path])


@pytest.fixture
def loaded(warehouse, data_dir):
    """Week 1 and 2 in one file, week 3 (its Monday, before the cutoff, and its Wednesday, after it) in
    another; quarantined lines from March and from June."""
    inbox = Paths(str(data_dir)).inbox_traces
    inbox.mkdir(parents=True)
    early = write_jsonl(inbox / "early.jsonl", [trace("a1", timestamp=_at(W1)), trace("a2", timestamp=_at(W2)),
                                                "not json: quarantined in March"])
    late = write_jsonl(inbox / "late.jsonl", [trace("b1", timestamp=_at(W3)), trace("b2", timestamp=_at(W3, 60))])
    june = write_jsonl(inbox / "june.jsonl", ["not json: quarantined in June"])
    with connect(warehouse) as conn:
        _ingest(conn, early, W2)
        _ingest(conn, late, W3 + dt.timedelta(days=7))
        _ingest(conn, june, NOW - dt.timedelta(days=1))
    return warehouse, inbox


def _ids(conn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT trace_id FROM raw.traces ORDER BY 1").fetchall()]


def test_expired_traffic_of_processed_weeks_goes_and_the_rest_waits(loaded):
    warehouse, inbox = loaded
    with connect(warehouse) as conn:
        report = retention.apply_retention(conn, raw_days=90, now=NOW, processed_weeks=[W1, W2], inbox=inbox)
        assert report.cutoff == dt.datetime(2026, 3, 17, 6)
        assert (report.traces_deleted, report.traces_waiting, report.quarantine_deleted) == (2, 1, 1)
        # b1 is past the cutoff but its week was never sampled; b2 (Wednesday) is within 90 days.
        assert _ids(conn) == ["b1", "b2"]
        assert conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM raw.ingested_files").fetchone()[0] == 3, "the manifest stays"
    # early.jsonl has nothing left in the warehouse and was ingested before the cutoff; late.jsonl has.
    assert report.inbox_files_deleted == 1
    assert sorted(p.name for p in inbox.iterdir()) == ["june.jsonl", "late.jsonl"]

    with connect(warehouse) as conn:  # its week sampled and scrubbed at last, b1 goes the next week
        again = retention.apply_retention(conn, raw_days=90, now=NOW, processed_weeks=[W1, W2, W3], inbox=inbox)
        assert (again.traces_deleted, again.traces_waiting) == (1, 0) and _ids(conn) == ["b2"]


def test_zero_days_keeps_raw_traffic_forever(loaded):
    warehouse, inbox = loaded
    with connect(warehouse) as conn:
        report = retention.apply_retention(conn, raw_days=0, now=NOW + dt.timedelta(days=3650),
                                           processed_weeks=[W1, W2, W3], inbox=inbox)
        assert report.cutoff is None and report.traces_deleted == 0 and _ids(conn) == ["a1", "a2", "b1", "b2"]
    assert len(list(inbox.iterdir())) == 3


def test_an_inbox_file_changed_since_it_was_ingested_is_kept(loaded):
    warehouse, inbox = loaded
    with open(inbox / "early.jsonl", "a") as fh:
        fh.write(json.dumps(trace("a3", timestamp=_at(W2))) + "\n")  # the next ingest reads it again
    with connect(warehouse) as conn:
        report = retention.apply_retention(conn, raw_days=90, now=NOW, processed_weeks=[W1, W2], inbox=inbox)
    assert report.traces_deleted == 2 and report.inbox_files_deleted == 0 and (inbox / "early.jsonl").exists()


@pytest.mark.parametrize("days, valid", [(90, True), (0, True), (-1, False)])
def test_the_setting_defaults_to_90_days_and_0_means_forever(days, valid):
    assert RetentionSettings().raw_days == 90
    if valid:
        assert RetentionSettings(raw_days=days).raw_days == days
    else:
        with pytest.raises(ValueError):
            RetentionSettings(raw_days=days)


def test_the_weekly_loop_deletes_a_sampled_and_scrubbed_week_once_it_expires(data_dir):
    """Through Dagster: the week's run keeps everything (nothing is 90 days old yet); the same asset run
    months later deletes the raw traces of the week it sampled and scrubbed, and of no other week."""
    from flywheel.definitions import build_definitions

    assert RAW_RETENTION in build_definitions(str(data_dir)).resolve_job_def("weekly_loop_job").asset_layer.selected_asset_keys
    paths = Paths(str(data_dir))
    paths.inbox_traces.mkdir(parents=True)
    write_jsonl(paths.inbox_traces / "traffic.jsonl",
                [trace(f"w1-{i}", timestamp=_at(W1, i), guardrail_tripped=True) for i in range(6)]
                + [trace(f"w2-{i}", timestamp=_at(W2, i)) for i in range(4)])
    resources = {"warehouse": Warehouse(data_dir=str(data_dir)), "scrubber": FakeScrubberResource(),
                 "embedder": FakeEmbedderResource(), "io_manager": WarehousePolarsIOManager(data_dir=str(paths.data_dir))}
    instance = dg.DagsterInstance.ephemeral()
    with clock.pinned_at(W2 + dt.timedelta(hours=5)):
        week = dg.materialize([raw_traces, sampled_traces, scrub_week, raw_retention], partition_key=W1.date().isoformat(),
                              resources=resources, instance=instance)
    meta = week.asset_materializations_for_node("privacy__raw_retention")[0].metadata
    assert meta["traces_deleted"].value == 0 and meta["dagster/row_count"].value == 10
    with connect(paths.warehouse, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.sample_ids").fetchone()[0] == 6, "the sample's raw ids stay with their traces"
    with clock.pinned_at(W2 + dt.timedelta(days=120)):
        later = dg.materialize([raw_retention], resources=resources, instance=instance)
    meta = later.asset_materializations_for_node("privacy__raw_retention")[0].metadata
    assert (meta["traces_deleted"].value, meta["traces_waiting"].value) == (6, 4)
    assert all(isinstance(v.value, (int, float, str)) and "w1-" not in str(v.value) for v in meta.values())
    with connect(paths.warehouse, read_only=True) as conn:
        assert [r[0] for r in conn.execute("SELECT DISTINCT trace_id[:2] FROM raw.traces").fetchall()] == ["w2"]
        assert conn.execute("SELECT count(*) FROM scrub.anonymized_traces").fetchone()[0] == 6, "scrubbed rows stay"
        assert conn.execute("SELECT count(*) FROM raw.sample_ids").fetchone()[0] == 0, "raw ids go with their traces"
        assert conn.execute("SELECT count(*) FROM sample.sampled_traces").fetchone()[0] == 6, "the keyed sample stays"
    with clock.pinned_at(W2 + dt.timedelta(days=120)):
        kept = dg.materialize([raw_retention], resources=resources, instance=instance,
                              run_config={"ops": {"privacy__raw_retention": {"config": {"raw_days": 0}}}})
    assert kept.asset_materializations_for_node("privacy__raw_retention")[0].metadata["cutoff"].value == "kept forever"
