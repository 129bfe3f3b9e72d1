"""A throwaway PostgreSQL server for the DuckLake tests and benchmarks: Debian's PostgreSQL 15, started in
a temporary folder on a free loopback port, stopped at the end. `.ci/run` installs the server package.

initdb refuses to run as root, so as root the server runs as the `postgres` system user the Debian
package creates; the folder lives outside pytest's tmp_path, which that user cannot enter."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

USER = "flywheel"


def binaries() -> Path | None:
    """PostgreSQL's server programs (initdb, pg_ctl), or None when the server is not installed."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True) + [os.path.dirname(shutil.which("pg_ctl") or "")]:
        if folder and os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
        self.port = _free_port()
        self.as_root = os.getuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c max_connections=200", "start")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.root)

    def dsn(self, database: str = "postgres") -> str:
        return f"dbname={database} host=127.0.0.1 port={self.port} user={USER}"

    def new_database(self) -> str:
        """A fresh, empty database; its libpq connection string."""
        import psycopg2

        name = f"lake_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            conn.cursor().execute(f"CREATE DATABASE {name}")
        finally:
            conn.close()
        return self.dsn(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
