"""The key behind every keyed hash: created once by exactly one process, remembered by the warehouse as
a fingerprint, and a key that does not match it is refused instead of answering "nothing"."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli.common import main
from flywheel.core.common import keys
from flywheel.core.common.db import connect

PROCESSES = 6


def _touch(data_dir: str, barrier, results) -> None:
    """A process that first touches the data directory: read (or create) the key and hash with it."""
    try:
        barrier.wait(timeout=120)
        key = keys.load_key(Path(data_dir))
        results.put(("ok", key, keys.keyed_hash(key, "t-1")))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test with it
        results.put(("error", repr(exc).encode(), ""))


def _race(data_dir: Path) -> list[tuple[str, bytes, str]]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_touch, args=(str(data_dir), barrier, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    out = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return out


@pytest.mark.parametrize("with_warehouse, trials, budget_s, at_least", [(False, 50, 25.0, 10), (True, 12, 20.0, 3)])
def test_six_processes_touching_a_fresh_data_directory_agree_on_one_key(tmp_path, monkeypatch, with_warehouse,
                                                                        trials, budget_s, at_least):
    monkeypatch.delenv(keys.SECRET_ENV, raising=False)
    deadline, done = time.monotonic() + budget_s, 0
    while done < trials and time.monotonic() < deadline:
        data_dir = tmp_path / f"trial-{done}"
        if with_warehouse:  # a warehouse with no fingerprint yet: all six race to store it
            with connect(data_dir / "flywheel.duckdb"):
                pass
        elif done % 2:
            data_dir.mkdir()  # half the trials find the directory, half create it
        results = _race(data_dir)
        errors = [detail.decode() for status, detail, _ in results if status != "ok"]
        assert not errors, errors
        on_disk = (data_dir / keys.KEY_FILE).read_bytes()
        assert {key for _, key, _ in results} == {on_disk} and len(on_disk) == 64, "one key, never empty or different"
        assert len({ref for *_, ref in results}) == 1
        assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")], "no temporary key file is left behind"
        if with_warehouse:
            with connect(data_dir / "flywheel.duckdb", read_only=True) as conn:
                assert conn.execute("SELECT list(fingerprint) FROM privacy.key_fingerprint").fetchone()[0] == [
                    keys.fingerprint(on_disk)]
        done += 1
    assert done >= at_least, f"only {done} trials ran in {budget_s:.0f} s"


def test_the_fingerprint_says_nothing_about_the_key(warehouse, data_dir):
    key = keys.load_key(data_dir)
    with connect(warehouse, read_only=True) as conn:
        [(stored,)] = conn.execute("SELECT fingerprint FROM privacy.key_fingerprint").fetchall()
    assert stored == keys.fingerprint(key) and key.decode() not in stored and stored != keys.fingerprint(b"other" * 8)


def test_another_secret_is_refused_and_lookup_does_not_answer_nothing(warehouse, data_dir, monkeypatch):
    keys.load_key(data_dir)  # first use: the warehouse remembers this key
    monkeypatch.setenv(keys.SECRET_ENV, "another-secret-entirely")
    with pytest.raises(keys.KeyMismatch, match=r"^\$FLYWHEEL_SECRET: not the key the warehouse"):
        keys.load_key(data_dir)
    result = CliRunner().invoke(main, ["lookup", "--customer-id", "cust-42", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "FLYWHEEL_SECRET" in lines[0] and "No eval row" not in result.output


def test_a_deleted_key_file_is_not_silently_replaced(warehouse, data_dir):
    keys.load_key(data_dir)
    (data_dir / keys.KEY_FILE).unlink()
    with pytest.raises(keys.KeyMismatch, match="missing, but the warehouse"):
        keys.load_key(data_dir)
    assert not (data_dir / keys.KEY_FILE).exists(), "a new key would make every reference unfindable"
    result = CliRunner().invoke(main, ["forget", "--customer-id", "cust-42", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "secret.key: missing" in result.output


def test_a_replaced_key_file_is_refused(warehouse, data_dir):
    keys.load_key(data_dir)
    (data_dir / keys.KEY_FILE).write_bytes(b"f" * 64)
    with pytest.raises(keys.KeyMismatch, match="secret.key: not the key"):
        keys.load_key(data_dir)


def test_an_empty_key_file_is_never_used(data_dir, monkeypatch):
    monkeypatch.setattr(keys, "_READ_RETRY_S", 0.1)
    (data_dir / keys.KEY_FILE).write_bytes(b"")
    with pytest.raises(keys.KeyMismatch, match="holds 0 bytes, not a key"):
        keys.load_key(data_dir)


def test_a_warehouse_from_before_fingerprints_adopts_only_the_key_that_made_it(warehouse, data_dir, monkeypatch):
    right, wrong = b"r" * 64, b"w" * 64
    with connect(warehouse) as conn:
        conn.execute("""INSERT INTO raw.traces (trace_id, "timestamp", messages)
                        VALUES ('t-1', TIMESTAMP '2026-03-02 10:00', [{'role': 'user', 'content': 'hi'}])""")
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces AS
                        SELECT ? AS trace_ref, TIMESTAMP '2026-03-02 10:00' AS "timestamp\"""",
                     [keys.keyed_hash(right, "t-1")])
    monkeypatch.setenv(keys.SECRET_ENV, wrong.decode())
    with pytest.raises(keys.KeyMismatch, match="do not hash from their raw trace ids"):
        keys.load_key(data_dir)
    monkeypatch.setenv(keys.SECRET_ENV, right.decode())
    assert keys.load_key(data_dir) == right
    with connect(warehouse, read_only=True) as conn:
        assert conn.execute("SELECT fingerprint FROM privacy.key_fingerprint").fetchone()[0] == keys.fingerprint(right)


def test_the_key_file_is_owner_only_and_checked_once_per_process(warehouse, data_dir, monkeypatch):
    key = keys.load_key(data_dir)
    assert os.stat(data_dir / keys.KEY_FILE).st_mode & 0o777 == 0o600
    opened = []
    monkeypatch.setattr(keys, "_fingerprint_in", lambda *a: opened.append(a) or keys.fingerprint(key))
    for _ in range(3):
        assert keys.load_key(data_dir) == key
    assert opened == [], "a key already checked against this warehouse is not checked again"
