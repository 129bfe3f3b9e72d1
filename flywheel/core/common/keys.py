"""Keyed hashes: how a trace or customer is referred to downstream of the scrubber.

HMAC-SHA256 with a secret from $FLYWHEEL_SECRET, or a key generated once into the data directory with
owner-only permissions. Without the key a reference cannot be reversed or guessed from a known id;
with it, a privacy officer can hash a customer id and look it up.

A reference is only findable with the key that made it, so the warehouse remembers which key that
was: a fingerprint (a keyed hash of a constant, never the key) stored on first use. A process whose
key does not match it (another $FLYWHEEL_SECRET, a deleted or replaced secret.key) is refused with one
line, instead of answering "no row comes from this customer" about rows it can no longer find.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path

from flywheel.core.common.durable import fsync_path

SECRET_ENV = "FLYWHEEL_SECRET"
KEY_FILE = "secret.key"
MIN_KEY_BYTES = 16  # a generated key has 64; anything this short is a truncated file, not a key
FINGERPRINT_TABLE = "privacy.key_fingerprint"
_FINGERPRINT_INPUT = "flywheel key fingerprint v1"
_READ_RETRY_S = 2.0  # how long a reader waits for a key file another process has created but not yet written
_EVIDENCE_ROWS = 20  # scrubbed traces checked against raw ids before adopting a key for an older warehouse


class KeyMismatch(OSError):
    """The key in use is not the one the warehouse's references were made with, or the key file is
    unusable.

    An OSError naming the key file (or $FLYWHEEL_SECRET) on purpose: every entry point already reports
    a problem with a file as one line, `<file>: <what is wrong>` (the CLI's errors, Dagster's step
    failures), and this is a problem with that file, not a crash."""

    def __init__(self, where: str, message: str):
        super().__init__(errno.EINVAL, message, where)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def fingerprint(key: bytes) -> str:
    """What the warehouse stores to recognise its key: a keyed hash of a constant. It says whether two
    keys are the same and nothing about either."""
    return keyed_hash(key, _FINGERPRINT_INPUT, kind="fingerprint")


def keyed_hash(key: bytes, value: str, *, kind: str = "trace") -> str:
    """A stable reference for `value`; `kind` keeps a trace id and a customer id that happen to be
    equal from getting the same reference."""
    digest = hmac.new(key, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind[0]}_{digest[:32]}"


def load_key(data_dir: Path) -> bytes:
    """The key for the data directory: $FLYWHEEL_SECRET, else <data>/secret.key, created on first use.

    Raises KeyMismatch when the warehouse's references were made with another key, or when secret.key
    is missing although the warehouse has references (a new key would make every one unfindable)."""
    from flywheel.paths import Paths

    data_dir = Path(data_dir)
    warehouse = Paths(data_dir).warehouse
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        key, where = from_env.encode("utf-8"), f"${SECRET_ENV}"
    else:
        path = data_dir / KEY_FILE
        where = str(path)
        key = _read_key(path)
        if key is None:
            stored = _stored_fingerprint(warehouse)
            # Read again: a process creating the key links the file before it stores the fingerprint,
            # so a fingerprint seen here with no file behind it means the file is really gone.
            key = _read_key(path)
        if key is None:
            if stored:
                raise KeyMismatch(where, f"missing, but the warehouse {warehouse} holds references made with a key "
                                         f"(fingerprint {stored[:10]}...): restore secret.key from your backup or set "
                                         f"${SECRET_ENV} to that key; a new key would make every reference unfindable")
            _create_key(path)
            key = _read_key(path)
            if key is None:
                raise KeyMismatch(where, "was created but cannot be read back: check the data directory's permissions")
    _check_fingerprint(warehouse, key, where)
    return key


# ---------------------------------------------------------------------------------------------
# The key file: created once, atomically
# ---------------------------------------------------------------------------------------------


def _read_key(path: Path) -> bytes | None:
    """The key in the file, or None when there is no file. A file too short to be a key is waited for
    briefly (a writer from an older flywheel creates the file before it writes it), then refused: a
    short or empty key makes references anyone can recompute."""
    deadline = time.monotonic() + _READ_RETRY_S
    while True:
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            return None
        if len(key) >= MIN_KEY_BYTES:
            return key
        if time.monotonic() > deadline:
            raise KeyMismatch(str(path), f"holds {len(key)} bytes, not a key (at least {MIN_KEY_BYTES}): restore it "
                                         f"from your backup, or delete it if this warehouse holds no references yet")
        time.sleep(0.02)


def _create_key(path: Path) -> None:
    """Write a new key where none is. The key is written whole to a private temporary file and then
    hard-linked into place: link() fails when the name exists, so of several processes creating the
    key at once exactly one wins, and nobody can read a half-written key. Every caller then reads
    the file that won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return  # another process won; its key is the key
        except OSError:
            # A filesystem without hard links: O_EXCL still lets one creator win; readers wait out the
            # moment between its create and its write (_read_key).
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return
            with os.fdopen(out, "wb") as fh:
                fh.write(key)
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # a folder some file systems cannot fsync: the key is written all the same
        fsync_path(folder)


# ---------------------------------------------------------------------------------------------
# The fingerprint in the warehouse
# ---------------------------------------------------------------------------------------------

# (warehouse, its inode, fingerprint) already checked in this process: a long-lived process (the UI's
# daemon, the demo) checks once per key it reads, not on every hash. A changed key file gives a new
# fingerprint and is checked again; a rebuilt warehouse (flywheel forget) is a new inode.
_checked: set[tuple] = set()
_lock = threading.Lock()


def _check_fingerprint(warehouse: Path, key: bytes, where: str) -> None:
    """Store the key's fingerprint in the warehouse on first use; refuse a key that does not match.
    Without a warehouse there is no reference to protect yet, and nothing is stored."""
    from flywheel.core.common.lake import Lake

    mine = fingerprint(key)
    if isinstance(warehouse, Lake):
        token = (warehouse.url, warehouse.data_path, mine)
        # Looked up in the catalog only until checked once: load_key runs in every step and verb.
        if token not in _checked and not warehouse.exists():
            return
    else:
        try:
            st = warehouse.stat()
        except FileNotFoundError:
            return
        token = (str(warehouse.resolve()), st.st_dev, st.st_ino, mine)
    with _lock:
        if token in _checked:
            return
        stored = _fingerprint_in(warehouse, key)
        if stored is None:  # the warehouse cannot be opened from here (see _open): not checked, not cached
            return
        if stored is _OLDER_KEY:
            raise KeyMismatch(where, f"not the key that made the references in {warehouse} (its scrubbed traces do "
                                     f"not hash from their raw trace ids with it), so flywheel refuses to run: use "
                                     f"the original secret.key or ${SECRET_ENV}")
        if stored != mine:
            raise KeyMismatch(where, f"not the key the warehouse {warehouse} was keyed with (its fingerprint is "
                                     f"{stored[:10]}..., this key's is {mine[:10]}...): references made with the "
                                     f"other key cannot be found with this one, so flywheel refuses to run; restore "
                                     f"the original secret.key or ${SECRET_ENV}")
        _checked.add(token)


_OLDER_KEY = "older key"  # sentinel: no fingerprint stored, and the references contradict this key


def _stored_fingerprint(warehouse: Path) -> str | None:
    if not warehouse.exists():
        return None
    conn = _open(warehouse, read_only=True)
    if conn is None:
        return None
    try:
        return _read_fingerprint(conn)
    finally:
        conn.close()


def _read_fingerprint(conn) -> str | None:
    from flywheel.core.common.db import table_exists

    if not table_exists(conn, "privacy", "key_fingerprint"):
        return None
    row = conn.execute(f"SELECT fingerprint FROM {FINGERPRINT_TABLE} ORDER BY recorded_at LIMIT 1").fetchone()
    return row[0] if row else None


def _fingerprint_in(warehouse: Path, key: bytes) -> str | None:
    """The warehouse's fingerprint, storing this key's first when it has none and nothing in it says
    the key is wrong. None when the warehouse cannot be opened from this process."""
    conn = _open(warehouse, read_only=False) or _open(warehouse, read_only=True)
    if conn is None:
        return None
    try:
        stored = _read_fingerprint(conn)
        if stored:
            return stored
        if _refs_disagree(conn, key):
            return _OLDER_KEY
        return _store(conn, fingerprint(key))
    finally:
        conn.close()


def _store(conn, mine: str) -> str:
    """Insert the fingerprint unless one is there; the stored one wins. DuckDB lets one process write
    the file at a time, and the single-row key keeps two threads of one process from both inserting.
    On a read-only connection nothing is stored and this key is taken as it is."""
    import duckdb

    from flywheel.core.common import clock
    from flywheel.core.common.db import create_table

    try:
        conn.execute("CREATE SCHEMA IF NOT EXISTS privacy")
        create_table(conn, f"""CREATE TABLE IF NOT EXISTS {FINGERPRINT_TABLE} (
                                 id INTEGER PRIMARY KEY CHECK (id = 1), fingerprint VARCHAR NOT NULL, recorded_at TIMESTAMP)""")
        # Not ON CONFLICT: DuckLake keeps no keys. The key still guards the single file.
        conn.execute(f"INSERT INTO {FINGERPRINT_TABLE} SELECT 1, ?, ? WHERE NOT EXISTS (SELECT 1 FROM {FINGERPRINT_TABLE})",
                     [mine, clock.now()])
    except duckdb.InvalidInputException:  # read-only: the next writer stores it
        return mine
    except (duckdb.TransactionException, duckdb.ConstraintException):
        pass  # another thread or process inserted first: read what it stored
    return _read_fingerprint(conn) or mine


def _refs_disagree(conn, key: bytes) -> bool:
    """For a warehouse made before fingerprints existed: do its scrubbed traces' references contradict
    this key? A scrubbed trace's reference is the keyed hash of a raw trace id with the same
    timestamp; if some scrubbed traces can be paired with raw traces and none hashes right, the key
    is not the one that made them. No evidence either way (no scrubbed traces, or their raw traffic
    deleted by retention) adopts the key."""
    from flywheel.core.common.db import table_exists

    if not (table_exists(conn, "scrub", "anonymized_traces") and table_exists(conn, "raw", "traces")):
        return False
    try:
        pairs = conn.execute(
            f"""WITH picked AS (SELECT trace_ref, "timestamp" FROM scrub.anonymized_traces
                                ORDER BY trace_ref LIMIT {_EVIDENCE_ROWS})
                SELECT p.trace_ref, list(r.trace_id ORDER BY r.trace_id)[1:50]
                FROM picked p JOIN raw.traces r ON r."timestamp" = p."timestamp" GROUP BY p.trace_ref"""
        ).fetchall()
    except Exception:  # noqa: BLE001 - tables of another shape are no evidence, not an error
        return False
    return bool(pairs) and not any(keyed_hash(key, tid, kind="trace") == ref for ref, ids in pairs for tid in ids)


def _open(warehouse: Path, *, read_only: bool):
    """A connection for the check, or None when this process already holds the file in a way that
    forbids another: DuckDB refuses a second connection of another configuration in one process
    (and the process that opened it has been through this check), or the file is not writable."""
    import duckdb

    from flywheel.core.common.db import open_connection

    try:
        return open_connection(warehouse, read_only=read_only)
    except duckdb.ConnectionException:
        return None
    except duckdb.IOException as exc:
        message = str(exc).lower()
        if not read_only and ("read-only" in message or "permission" in message):
            return None
        raise
