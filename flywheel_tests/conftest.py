import json
import os
from pathlib import Path

import pytest

from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ensure_raw_tables


# The station tests run on both warehouses, the single DuckDB file and a DuckLake on PostgreSQL, so
# that neither drifts. Other tests use the single file.
STATION_MODULES = {"test_sampling", "test_scrub_station", "test_labeling", "test_evalset", "test_regression",
                   "test_drift", "test_loop", "test_privacy_retention", "test_first_week"}


# The slowest files, slowest first (measured with --durations on 2 cores). `make test` hands each file
# to one of two workers (--dist loadfile) in collection order (--no-loadscope-reorder), so these start
# first and the run does not end on one worker alone with a two-minute file while the other idles.
SLOWEST_FIRST = ("test_cli.py", "test_review_browser.py", "test_lake.py", "test_ui.py", "test_shared_warehouse.py",
                 "test_loop.py", "test_privacy_keys.py", "test_scrubber.py", "test_intake_property.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order


def pytest_generate_tests(metafunc):
    if metafunc.module.__name__.rsplit(".", 1)[-1] in STATION_MODULES and "data_dir" in metafunc.fixturenames:
        metafunc.parametrize("backend", ["duckdb", "ducklake"], indirect=True)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session (Debian's, started in a temporary folder). Skips where the
    server is not installed; fails instead under CI (FLYWHEEL_REQUIRE_POSTGRES=1), which installs it."""
    from flywheel_tests import pg

    found = pg.binaries()
    if found is None:
        if os.environ.get("FLYWHEEL_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL's server is not installed (apt-get install postgresql); .ci/run installs it")
        pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
    server = pg.Server(found)
    yield server
    server.stop()


@pytest.fixture
def backend(request, monkeypatch, tmp_path) -> str:
    """Which warehouse the test's data directory uses: "duckdb" (the default) or "ducklake" (a fresh
    database on the session's PostgreSQL, data files under tmp_path)."""
    kind = getattr(request, "param", "duckdb")
    monkeypatch.delenv("FLYWHEEL_WAREHOUSE", raising=False)
    monkeypatch.delenv("FLYWHEEL_LAKE_DATA", raising=False)
    if kind == "ducklake":
        server = request.getfixturevalue("postgres")
        monkeypatch.setenv("FLYWHEEL_WAREHOUSE", f"ducklake:postgres:{server.new_database()}")
        monkeypatch.setenv("FLYWHEEL_LAKE_DATA", str(tmp_path / "lake"))
    return kind


@pytest.fixture
def data_dir(tmp_path, monkeypatch, backend) -> Path:
    """A private data directory (warehouse, key, Dagster home) for one test."""
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("FLYWHEEL_DATA", str(d))
    monkeypatch.setenv("DAGSTER_HOME", str(d / "dagster"))
    monkeypatch.delenv("FLYWHEEL_SECRET", raising=False)
    return d


@pytest.fixture
def warehouse(data_dir):
    """An empty warehouse in the test's data directory: verbs that read state refuse a directory without
    one. The DuckDB file's path, or the Lake on DuckLake runs."""
    from flywheel.paths import Paths

    target = Paths(data_dir).warehouse
    with connect(target) as c:
        ensure_raw_tables(c)
    return target


def demo_in_data_dir(data_dir: Path, tmp_path: Path, *, weeks: int, traces_per_day: int, seed: int):
    """Demo traffic in the data directory's inbox, its CRM vocabulary in reference/, its starter eval
    set as version 1. The answer file stays outside the data directory, as in a real deployment: the
    leak check's canaries are then the vocabulary, which the fake scrubber catches."""
    import shutil

    from flywheel.core.evalset import versions as evalset
    from flywheel.demo.generator import write_demo
    from flywheel.settings import Paths

    paths = Paths(str(data_dir))
    demo = write_demo(tmp_path / "generated", weeks=weeks, traces_per_day=traces_per_day, seed=seed,
                      traces_dir=paths.inbox_traces)
    paths.reference.mkdir(parents=True)
    shutil.copyfile(demo.vocabulary_file, paths.customer_vocabulary)
    with connect(paths.warehouse) as c:
        evalset.import_starter(c, demo.eval_set_file)
    return paths, demo


def fake_resources(paths) -> dict:
    """The asset resources on the data directory, with the small fake scrubber and embedder."""
    from flywheel.resources.embedder import FakeEmbedderResource
    from flywheel.resources.io_manager import WarehousePolarsIOManager
    from flywheel.resources.scrubber import FakeScrubberResource
    from flywheel.resources.warehouse import Warehouse

    return {
        "warehouse": Warehouse(data_dir=str(paths.data_dir)),
        "io_manager": WarehousePolarsIOManager(data_dir=str(paths.data_dir)),
        "scrubber": FakeScrubberResource(vocabulary_path=str(paths.customer_vocabulary)),
        "embedder": FakeEmbedderResource(),
    }


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "test.duckdb") as c:
        ensure_raw_tables(c)
        yield c


def trace(trace_id="t1", **overrides) -> dict:
    record = {
        "trace_id": trace_id,
        "timestamp": "2026-03-02T10:00:00Z",
        "messages": [{"role": "user", "content": "My invoice is wrong"}, {"role": "assistant", "content": "Let me check."}],
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records) -> Path:
    """Records may be dicts (written as JSON) or strings (written verbatim)."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


@pytest.fixture(scope="session")
def real_scrubber(tmp_path_factory):
    """The real Presidio + spaCy scrubber, loaded once for the whole session."""
    from flywheel.core.scrub import Scrubber
    from flywheel.core.scrub.vocabulary import CustomerVocabulary

    crm = tmp_path_factory.mktemp("crm") / "customer_vocabulary.csv"
    crm.write_text("customer_id,contact_name,company\nc1,Sarah Connor,Acme Bakery Ltd\nc2,Kwame Mensah,Globex Corporation\n")
    return Scrubber(vocabulary=CustomerVocabulary.from_csv(crm))


@pytest.fixture(scope="session")
def real_embedder():
    """all-MiniLM-L6-v2 from its PyPI package, loaded once for the whole session."""
    from flywheel.resources.embedder import load_embedder

    return load_embedder()
