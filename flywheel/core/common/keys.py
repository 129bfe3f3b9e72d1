"""Keyed hashes: how a trace or customer is referred to downstream of the scrubber.

HMAC-SHA256 with a secret from $FLYWHEEL_SECRET, or a key generated once into the data directory with
owner-only permissions. Without the key a reference cannot be reversed or guessed from a known id;
with it, a privacy officer can hash a customer id and look it up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_ENV = "FLYWHEEL_SECRET"
KEY_FILE = "secret.key"


def load_key(data_dir: Path) -> bytes:
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode("utf-8")
    path = Path(data_dir) / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    # O_EXCL: two processes racing to create the key must not end up with different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def keyed_hash(key: bytes, value: str, *, kind: str = "trace") -> str:
    """A stable reference for `value`; `kind` keeps a trace id and a customer id that happen to be
    equal from getting the same reference."""
    digest = hmac.new(key, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind[0]}_{digest[:32]}"
