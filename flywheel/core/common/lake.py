"""Where the warehouse lives: one DuckDB file (the default) or a DuckLake on PostgreSQL.

`FLYWHEEL_WAREHOUSE` picks it: `duckdb:<file>` (default `<data>/flywheel.duckdb`) or
`ducklake:postgres:<libpq dsn>`, the lake's Parquet files at `FLYWHEEL_LAKE_DATA` (a folder shared by every
machine that writes, or an object-store URI; default `<data>/lake`). On DuckLake a connection is an
in-memory DuckDB with the lake attached as its default catalog, so every station's SQL (`raw.traces`,
`scrub.anonymized_traces`, ...) runs unchanged, and several processes write at once: DuckLake turns two
writers of one table into a transaction conflict at commit, which callers retry, instead of a file lock.

The extensions come from their PyPI packages (`duckdb-extension-ducklake`, `duckdb-extension-postgres`,
`duckdb-extension-httpfs` for object stores), never from the network: we lay their files out as a DuckDB extension directory and point DuckDB at it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WAREHOUSE_ENV = "FLYWHEEL_WAREHOUSE"
LAKE_DATA_ENV = "FLYWHEEL_LAKE_DATA"
CATALOG = "lake"  # the attached lake's name inside each connection
CONFLICT_MARKERS = ("Transaction conflict", "conflict on tuple", "could not serialize access")


class WarehouseSettingError(ValueError):
    """FLYWHEEL_WAREHOUSE (or a --to target) names no warehouse we can open; the message says what to write."""


@dataclass(frozen=True)
class Lake:
    """A DuckLake: its catalog in PostgreSQL (a libpq connection string) and its data files."""

    dsn: str
    data_path: str

    @property
    def url(self) -> str:
        return f"ducklake:postgres:{self.dsn}"

    @property
    def name(self) -> str:
        return str(self)

    def __str__(self) -> str:
        """The target with any password masked: this string goes into messages and run logs."""
        return f"ducklake:postgres:{mask_password(self.dsn)} (data files in {self.data_path})"

    __repr__ = __str__  # never the password, wherever a Lake is printed

    def exists(self) -> bool:
        """Has anything made tables in this lake? (the first write does, as it makes the single file.)
        False when the catalog cannot be reached."""
        import duckdb

        try:
            conn = connect_lake(self)
        except duckdb.Error:
            return False
        try:
            return bool(conn.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ?", [CATALOG],
            ).fetchone()[0])
        finally:
            conn.close()


def mask_password(dsn: str) -> str:
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", dsn))


def parse_target(value: str | None, data_dir: Path) -> Path | Lake:
    """The warehouse a FLYWHEEL_WAREHOUSE value names: a Path for the single file, a Lake otherwise."""
    if not value or not value.strip():
        return data_dir / "flywheel.duckdb"
    value = value.strip()
    if value.startswith("duckdb:"):
        named = value[len("duckdb:"):].strip()
        file = Path(named).expanduser()
        if not named:
            raise WarehouseSettingError(f"{WAREHOUSE_ENV}={value!r} names no file: write duckdb:/path/to/flywheel.duckdb")
        return file if file.is_absolute() else (data_dir / file).resolve()
    if value.startswith("ducklake:postgres:"):
        dsn = value[len("ducklake:postgres:"):].strip()
        if not dsn:
            raise WarehouseSettingError(f"{WAREHOUSE_ENV} names no PostgreSQL database: write "
                                        "ducklake:postgres:dbname=flywheel host=... user=...")
        data = os.environ.get(LAKE_DATA_ENV) or str(data_dir / "lake")
        if "://" not in data:  # a folder: make it absolute so every process means the same one
            data = str(Path(data).expanduser().resolve())
        return Lake(dsn=dsn, data_path=data.rstrip("/") + "/")
    raise WarehouseSettingError(f"{WAREHOUSE_ENV}={mask_password(value)!r} is not a warehouse: write duckdb:<file> "
                                "or ducklake:postgres:<libpq connection string>")


def is_conflict(exc: BaseException) -> bool:
    """A DuckLake commit that lost to another writer: safe to run the same work again."""
    return any(marker in str(exc) for marker in CONFLICT_MARKERS)


def extension_directory() -> Path:
    """A DuckDB extension directory made of links to the extension packages' files.

    The packages ship `extensions/v<version>/<name>.duckdb_extension`; DuckDB looks for
    `<dir>/v<version>/<platform>/<name>.duckdb_extension`, and names the postgres extension
    `postgres_scanner` (its entry point is called so)."""
    import duckdb

    try:
        import duckdb_extension_ducklake
        import duckdb_extension_httpfs
        import duckdb_extension_postgres
    except ImportError:
        raise WarehouseSettingError(
            "DuckLake needs the packages duckdb-extension-ducklake and duckdb-extension-postgres, which "
            "flywheel depends on: reinstall flywheel (make setup)") from None
    version = f"v{duckdb.__version__}"
    platform = _platform()
    root = Path(tempfile.gettempdir()) / f"flywheel-duckdb-extensions-{os.getuid()}"
    folder = root / version / platform
    folder.mkdir(parents=True, exist_ok=True)
    for package, name, loaded_as in ((duckdb_extension_ducklake, "ducklake", "ducklake"),
                                     (duckdb_extension_postgres, "postgres", "postgres_scanner"),
                                     (duckdb_extension_httpfs, "httpfs", "httpfs")):
        source = Path(package.__file__).parent / "extensions" / version / f"{name}.duckdb_extension"
        if not source.exists():
            raise WarehouseSettingError(f"{source.parent.parent.parent.name} has no build for DuckDB {duckdb.__version__}: "
                                        f"install the version that matches duckdb ({duckdb.__version__})")
        link = folder / f"{loaded_as}.duckdb_extension"
        if not (link.is_symlink() and os.readlink(link) == str(source)):
            temporary = folder / f".{loaded_as}.{os.getpid()}"
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(source)
            os.replace(temporary, link)  # atomic: a second process never sees a half-made link
    return root


_PLATFORM: str | None = None


def _platform() -> str:
    global _PLATFORM
    if _PLATFORM is None:
        import duckdb

        with duckdb.connect() as probe:
            _PLATFORM = probe.execute("SELECT platform FROM pragma_platform()").fetchone()[0]
    return _PLATFORM


# One in-memory DuckDB per process and lake, the lake attached once: every connection after the first is
# a cursor on it (its own transactions and temporary tables), which costs microseconds instead of the
# half second that loading the extensions and reading the catalog takes. Each transaction still
# starts from the catalog's latest snapshot, so other processes' commits are seen.
_ATTACHED: dict[tuple, object] = {}
_ATTACHED_LOCK = threading.Lock()
_MAX_ATTACHED = 4


def connect_lake(lake: Lake, *, read_only: bool = False):
    """A connection with the lake attached as its default catalog."""
    key = (os.getpid(), lake.dsn, lake.data_path, read_only)  # a forked child attaches its own
    with _ATTACHED_LOCK:
        base = _ATTACHED.get(key)
        if base is None:
            base = _attach(lake, read_only=read_only)
            while len(_ATTACHED) >= _MAX_ATTACHED:  # tests make many lakes; keep the latest few open
                _ATTACHED.pop(next(iter(_ATTACHED)))
            _ATTACHED[key] = base
        conn = base.cursor()
    conn.execute(f"USE {CATALOG}")
    return conn


def _attach(lake: Lake, *, read_only: bool):
    import duckdb

    conn = duckdb.connect(config={"autoinstall_known_extensions": "false",
                                  "extension_directory": str(extension_directory())})
    try:
        conn.execute("LOAD ducklake")
        conn.execute("LOAD postgres_scanner")
        _object_store_secret(conn, lake.data_path)
        # No data inlining: it reserves the column name row_id (the eval set's key), and it would keep
        # small writes' rows in PostgreSQL rather than in the data files erasure rewrites.
        options = f"DATA_PATH '{_quote(lake.data_path)}', DATA_INLINING_ROW_LIMIT 0" + (", READ_ONLY" if read_only else "")
        conn.execute(f"ATTACH '{_quote(lake.url)}' AS {CATALOG} ({options})")
        conn.execute(f"USE {CATALOG}")
    except duckdb.Error as exc:
        conn.close()
        # libpq's messages repeat the connection string: the same error, the password masked.
        raise type(exc)(mask_password(str(exc))) from None
    except BaseException:
        conn.close()
        raise
    return conn


S3_ENV = {"KEY_ID": "AWS_ACCESS_KEY_ID", "SECRET": "AWS_SECRET_ACCESS_KEY", "SESSION_TOKEN": "AWS_SESSION_TOKEN",
          "REGION": "AWS_REGION", "ENDPOINT": "AWS_ENDPOINT_URL"}


def _object_store_secret(conn, data_path: str) -> None:
    """Data files on S3 (or an S3-compatible store) are read with DuckDB's httpfs, given the usual AWS_*
    variables as a temporary secret of this connection. Tested against moto's S3 server on loopback,
    not against AWS itself."""
    if not data_path.startswith(("s3://", "s3a://", "r2://")) or not os.environ.get(S3_ENV["KEY_ID"]):
        return
    options = {k: os.environ[v] for k, v in S3_ENV.items() if os.environ.get(v)}
    if "ENDPOINT" in options:  # DuckDB wants host[:port]; the AWS variable is a URL
        endpoint = options["ENDPOINT"]
        options["USE_SSL"] = "false" if endpoint.startswith("http://") else "true"
        options["ENDPOINT"] = endpoint.split("://", 1)[-1].rstrip("/")
        options["URL_STYLE"] = "path"
    listed = ", ".join(f"{k} '{_quote(v)}'" if k != "USE_SSL" else f"{k} {v}" for k, v in options.items())
    conn.execute(f"CREATE TEMPORARY SECRET flywheel_lake (TYPE s3, {listed})")


def _quote(text: str) -> str:
    return text.replace("'", "''")


@contextlib.contextmanager
def one_at_a_time(conn, name: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock called `name` for the block when `conn` is on a DuckLake (waiting
    for another process that holds it); on the single file, where one process writes at a time
    anyway, do nothing. The lock lives in the lake's own catalog database and is released when its
    session closes, so a killed process never leaves it held."""
    if not on_lake(conn):
        yield
        return
    import psycopg2

    path = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = ?", [CATALOG]).fetchone()[0]
    session = psycopg2.connect(path.removeprefix("postgres:"))
    try:
        with session.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"flywheel:{name}"])
        yield
    finally:
        session.close()


def on_lake(conn) -> bool:
    return conn.execute("SELECT current_database()").fetchone()[0] == CATALOG


_CONSTRAINT = re.compile(r"\s+PRIMARY KEY\b|\s+UNIQUE\b|\s+CHECK\s*\((?:[^()]|\([^()]*\))*\)", re.IGNORECASE)
_TABLE_KEY = re.compile(r",\s*PRIMARY KEY\s*\([^)]*\)", re.IGNORECASE)


def portable_ddl(sql: str) -> str:
    """A CREATE TABLE without the constraints DuckLake does not keep (PRIMARY KEY, UNIQUE, CHECK).
    The stations never rely on them to reject a row: they write by anti join or delete-then-insert,
    and the constraints are only a second guard on the single file."""
    return _CONSTRAINT.sub("", _TABLE_KEY.sub("", sql))

