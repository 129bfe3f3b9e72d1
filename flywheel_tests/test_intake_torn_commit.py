"""Manifest and rows agree after a crash. Killed during COMMIT, DuckDB 1.5 sometimes keeps a batch's
rows in raw.traces but not its raw.ingested_files rows. The torn state is made here by hand: a
batch's rows (stamped with its moment) with no manifest row."""

import pytest

from flywheel.core.intake import manifest
from flywheel.core.intake.ingest import ingest_paths
from flywheel_tests.conftest import trace, write_jsonl


def _torn(conn, *, keep_quarantine: bool = True) -> None:
    """What the crash leaves: the rows (and maybe the quarantined records), not the manifest."""
    conn.execute("DELETE FROM raw.ingested_files")
    if not keep_quarantine:
        conn.execute("DELETE FROM raw.quarantine")


def _manifest(conn) -> list[tuple]:
    return conn.execute(
        "SELECT file_name, sha256 IS NOT NULL, ingested, duplicates, quarantined FROM raw.ingested_files ORDER BY ALL"
    ).fetchall()


def _moments_agree(conn) -> bool:
    """Every (file, moment) of raw.traces has a manifest row with that moment."""
    return conn.execute(
        """SELECT count(*) FROM (SELECT DISTINCT source_file, ingested_at FROM raw.traces) t
           ANTI JOIN raw.ingested_files m ON m.file_name = t.source_file AND m.ingested_at = t.ingested_at"""
    ).fetchone()[0] == 0


@pytest.fixture
def torn_file(conn, tmp_path):
    path = write_jsonl(tmp_path / "week.jsonl", [trace("a"), trace("b"), "not json", trace("a"), trace("c")])
    first = ingest_paths(conn, [path])
    assert (first.ingested, first.duplicates, first.quarantined) == (3, 1, 1)
    _torn(conn)
    return path


def test_rows_left_without_their_manifest_row_get_one_when_the_next_ingest_starts(conn, tmp_path, torn_file):
    moment = conn.execute("SELECT DISTINCT ingested_at FROM raw.traces").fetchone()[0]
    other = write_jsonl(tmp_path / "other.jsonl", [trace("z")])
    report = ingest_paths(conn, [other])
    assert report.recovered == [manifest.RecoveredBatch(str(torn_file), moment, 3)]
    assert _manifest(conn) == [(str(other), True, 1, 0, 0), (str(torn_file), False, 3, None, 1)]
    assert _moments_agree(conn)


@pytest.mark.parametrize("skip_known", [True, False], ids=["inbox", "flywheel ingest"])
def test_a_torn_file_ingested_again_is_loaded_once_and_reported_as_loaded(conn, torn_file, skip_known):
    again = ingest_paths(conn, [torn_file], skip_known=skip_known)
    [result] = again.files
    assert (result.ingested, result.duplicates, result.quarantined, result.error) == (3, 1, 1, None), \
        "reported as the first (torn) load would have been, not as its own duplicates"
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 3, "nothing loaded twice"
    assert conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 1
    assert _manifest(conn) == [(str(torn_file), True, 3, 1, 1)], "the recovered row gave way to a full one"
    assert _moments_agree(conn)
    if skip_known:
        assert ingest_paths(conn, [torn_file], skip_known=True).skipped_files == 1


def test_quarantined_records_the_crash_lost_are_quarantined_again(conn, tmp_path):
    path = write_jsonl(tmp_path / "week.jsonl", [trace("a"), "bad"])
    ingest_paths(conn, [path])
    _torn(conn, keep_quarantine=False)
    again = ingest_paths(conn, [path], skip_known=True)
    assert (again.ingested, again.quarantined) == (1, 1)
    assert conn.execute("SELECT line FROM raw.quarantine").fetchall() == [(2,)]


def test_a_torn_file_that_changed_since_keeps_the_rows_it_no_longer_holds(conn, tmp_path, torn_file):
    # Line 2 now holds another trace: its old row ("b") stays under the recovered manifest row.
    write_jsonl(torn_file, [trace("a"), trace("b2"), "not json", trace("a"), trace("c"), trace("d")])
    again = ingest_paths(conn, [torn_file], skip_known=True)
    [result] = again.files
    assert (result.ingested, result.duplicates, result.quarantined) == (4, 1, 1)  # a, c adopted; b2, d new
    assert _manifest(conn) == [(str(torn_file), False, 1, None, 1), (str(torn_file), True, 4, 1, 1)]
    ids = sorted(r[0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall())
    assert ids == ["a", "b", "b2", "c", "d"]
    assert _moments_agree(conn)


def test_every_file_of_a_torn_batch_is_recovered(conn, tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", [trace("a")])
    two = write_jsonl(tmp_path / "two.jsonl", [trace("b"), trace("c")])
    ingest_paths(conn, [one, two])
    _torn(conn)
    report = ingest_paths(conn, [])
    assert sorted((r.file, r.rows) for r in report.recovered) == [(str(one), 1), (str(two), 2)]
    assert _moments_agree(conn)


def test_a_healthy_warehouse_is_left_alone(conn, tmp_path):
    path = write_jsonl(tmp_path / "week.jsonl", [trace("a"), trace("b")])
    ingest_paths(conn, [path])
    ingest_paths(conn, [path])  # all duplicates: a manifest row with no rows of its own
    before = _manifest(conn)
    assert ingest_paths(conn, []).recovered == []
    assert _manifest(conn) == before


def test_manifest_rows_stamped_the_old_way_are_not_taken_for_torn_ones(conn, tmp_path):
    """Manifest rows written before they carried the batch's moment held the clock at the end of the
    batch: a file's rows then match no manifest moment, and must not be recovered twice."""
    path = write_jsonl(tmp_path / "week.jsonl", [trace("a")])
    ingest_paths(conn, [path])
    conn.execute("UPDATE raw.ingested_files SET ingested_at = ingested_at + INTERVAL 2 SECOND")
    assert ingest_paths(conn, []).recovered == []
    # ... but a torn load of the same file after it still is.
    write_jsonl(path, [trace("a"), trace("b")])
    ingest_paths(conn, [path])
    conn.execute("DELETE FROM raw.ingested_files WHERE duplicates = 1")
    assert [(r.file, r.rows) for r in ingest_paths(conn, []).recovered] == [(str(path), 1)]


def test_a_torn_load_is_found_after_retention_deleted_an_older_load_of_the_same_file_name(conn, tmp_path, monkeypatch):
    """Retention deletes old rows, and inboxes reuse names: the old load's manifest row (with no rows
    left) must not be taken for the record of a torn load weeks later."""
    path = tmp_path / "export.jsonl"
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-03-02T06:00:00")
    ingest_paths(conn, [write_jsonl(path, [trace("week1")])])
    conn.execute("DELETE FROM raw.traces")  # retention
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-06-01T06:00:00")
    ingest_paths(conn, [write_jsonl(path, [trace("week14")])])
    conn.execute("DELETE FROM raw.ingested_files WHERE ingested_at > '2026-05-01'")  # torn
    assert [(r.file, r.rows) for r in ingest_paths(conn, []).recovered] == [(str(path), 1)]


def test_rows_not_written_by_intake_are_not_intakes_to_reconcile(conn):
    conn.execute("INSERT INTO raw.traces (trace_id, messages) VALUES ('x', [{'role': 'user', 'content': 'hi'}])")
    assert ingest_paths(conn, []).recovered == []
    assert conn.execute("SELECT count(*) FROM raw.ingested_files").fetchone()[0] == 0
