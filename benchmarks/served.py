"""What the benchmarks that start `flywheel serve` share: a free port, a reviewer and their
credentials, the server up and idle, and stopping it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, limit_s: float) -> float:
    """Wait until the server burns under 5% of a CPU for a second (it loads the embedding model in the
    background at start); returns the seconds waited."""
    started = time.perf_counter()
    last = cpu_seconds(pid)
    while time.perf_counter() - started < limit_s:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - last < 0.05:
            break
        last = now
    return time.perf_counter() - started


def add_reviewer(data: Path, env: dict, name: str, admin: bool = False) -> tuple[str, str]:
    """(password, API token) of a new reviewer, as `flywheel users add` prints them."""
    made = subprocess.run([str(BIN / "flywheel"), "users", "add", name, *(["--admin"] if admin else []),
                           "--data-dir", str(data)], env=env, capture_output=True, text=True, check=True).stdout
    password = re.search(r"^\s*password:\s+(\S+)", made, re.MULTILINE)
    token = re.search(r"^\s*API token:\s+(fw_\S+)", made, re.MULTILINE)
    if not (password and token):
        raise RuntimeError(f"`flywheel users add` printed no password or API token:\n{made}")
    return password.group(1), token.group(1)


def serve(data: Path, env: dict, log: Path, ready=lambda health: True, limit_s: float = 90):
    """`flywheel serve` on a free port, answering /api/health with what `ready(health)` wants;
    (server, base url, seconds until it did)."""
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with open(log, "wb") as out:
        server = subprocess.Popen([str(BIN / "flywheel"), "serve", "--port", str(port), "--data-dir", str(data)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=base, timeout=10.0) as client:
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"flywheel serve exited ({server.returncode}):\n{log.read_text()[-2000:]}")
                if time.perf_counter() - started > limit_s:
                    raise RuntimeError(f"flywheel serve did not answer /api/health within {limit_s:.0f} s")
                try:
                    health = client.get("/api/health")
                    if health.status_code == 200 and ready(health.json()):
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
    except BaseException:
        stop(server)
        raise
    return server, base, time.perf_counter() - started


def stop(server: subprocess.Popen | None) -> None:
    if server is None or server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    except ProcessLookupError:
        pass
