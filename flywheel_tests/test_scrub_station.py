"""Station 2 wired into Dagster, on the fake scrubber (the real one: test_scrubber.py)."""

import shutil

import dagster as dg
import pytest
from flywheel.resources.io_manager import WarehousePolarsIOManager

from flywheel.core.common import keys
from flywheel.core.intake.ingest import ingest_paths
from flywheel.core.scrub import leaks
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week
from flywheel.demo.generator import write_demo
from flywheel.resources.scrubber import FakeScrubberResource
from flywheel.resources.warehouse import Warehouse

WEEK = "2026-03-02"


@pytest.fixture
def demo_week(data_dir):
    summary = write_demo(data_dir / "demo", weeks=1, traces_per_day=30, seed=3)
    (data_dir / "reference").mkdir()
    shutil.copy(summary.vocabulary_file, data_dir / "reference" / "customer_vocabulary.csv")
    warehouse = Warehouse(data_dir=str(data_dir))
    with warehouse.connect() as conn:
        ingest_paths(conn, [data_dir / "demo" / "traces"])
    resources = {
        "warehouse": warehouse,
        "io_manager": WarehousePolarsIOManager(data_dir=str(warehouse.paths.data_dir)),
        "scrubber": FakeScrubberResource(vocabulary_path=str(data_dir / "reference" / "customer_vocabulary.csv")),
    }
    return warehouse, resources


def _run(resources):
    return dg.materialize([sampled_traces, scrub_week], partition_key=WEEK, resources=resources, raise_on_error=False)


def test_scrubbed_rows_carry_keyed_refs_not_raw_ids(demo_week, data_dir):
    warehouse, resources = demo_week
    _run(resources)  # the leak check may fail on the fake; the outputs are written either way
    key = keys.load_key(data_dir)
    with warehouse.connect() as conn:
        sampled = conn.execute("SELECT trace_ref FROM sample.sampled_traces").fetchall()
        sample_ids = conn.execute("SELECT trace_ref, trace_id FROM raw.sample_ids").fetchall()
        refs = {r[0] for r in conn.execute("SELECT trace_ref FROM scrub.anonymized_traces").fetchall()}
        report = conn.execute("SELECT count(*), sum(total_spans) FROM scrub.scrub_report").fetchone()
        raw_ids = {r[0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall()}
        raw_customers = {r[0] for r in conn.execute("SELECT DISTINCT customer_id FROM raw.traces").fetchall()}
        texts = " ".join(t for _, t in leaks.table_texts(conn, schemas_to_skip=("raw", "sample")))
    assert refs == {r for (r,) in sampled}, "the scrubbed traces are the sampled ones, under the sample's references"
    assert sorted(r for r, _ in sample_ids) == sorted(r for (r,) in sampled)
    assert all(keys.keyed_hash(key, tid) == r for r, tid in sample_ids), "the sample's refs are the keyed hashes"
    assert report[0] == len(sampled) and report[1] > 0
    assert not any(i in texts for i in raw_ids | raw_customers), "no raw id reaches a scrub table"


def test_leak_check_fails_on_a_miss_and_nothing_known_is_written(demo_week):
    warehouse, resources = demo_week
    result = _run(resources)  # the fake misses colleague names and phone numbers the vocabulary does not hold
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "no_pii_canary_leak"]
    assert not check.passed and check.metadata["leaks"].value > 0
    canaries = leaks.canaries_from_answers(warehouse.paths.demo / "truth" / "answers.jsonl")
    with warehouse.connect() as conn:
        assert leaks.find_leaks(conn, leaks.table_texts(conn, schemas_to_skip=("raw",)), canaries) == []
        assert "[LEAK_REDACTED]" in " ".join(t for _, t in leaks.table_texts(conn, schemas_to_skip=("raw", "sample")))


def test_rerun_rewrites_the_partition(demo_week):
    warehouse, resources = demo_week
    _run(resources)
    _run(resources)
    with warehouse.connect() as conn:
        n, distinct = conn.execute("SELECT count(*), count(DISTINCT trace_ref) FROM scrub.anonymized_traces").fetchone()
        reports = conn.execute("SELECT count(*) FROM scrub.scrub_report").fetchone()[0]
    assert n == distinct == reports > 0
