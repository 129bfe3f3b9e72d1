"""Reviewers of the review app: names, admin flag, a password and an API token.

Only derived values are stored: the password as scrypt (a standard memory-hard key-derivation function,
in the standard library) with a random salt, the token as its SHA-256 (a random 256-bit token needs no
slow hash to resist guessing). Both are printed once, when made, and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass

from flywheel.core.common import clock

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$")
# scrypt at n=2**14, r=8 (OWASP's minimum): about 50 ms and 16 MiB per sign-in here.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
TOKEN_PREFIX = "fw_"


class ReviewerError(ValueError):
    pass


@dataclass(frozen=True)
class Reviewer:
    name: str
    admin: bool


@dataclass(frozen=True)
class Credentials:
    name: str
    password: str
    token: str


def ensure_tables(store: sqlite3.Connection) -> None:
    store.execute(
        """CREATE TABLE IF NOT EXISTS reviewers (
             name TEXT PRIMARY KEY, admin INTEGER NOT NULL, password_hash TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
             created_at TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0)"""
    )


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add(store: sqlite3.Connection, name: str, *, admin: bool = False) -> Credentials:
    """A new reviewer with a fresh password and token, returned once (only their hashes are kept)."""
    ensure_tables(store)
    if not NAME.match(name or ""):
        raise ReviewerError(f"reviewer name {name!r} must be 1-63 letters, digits or . _ @ - (starting with a "
                            "letter or digit): it goes on every label")
    if store.execute("SELECT 1 FROM reviewers WHERE name = ?", [name]).fetchone():
        raise ReviewerError(f"reviewer {name!r} exists already; `flywheel users reset {name}` gives a new password "
                            "and token")
    password, token = secrets.token_urlsafe(12), TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store:
        store.execute("INSERT INTO reviewers VALUES (?, ?, ?, ?, ?, 0)",
                      [name, int(admin), hash_password(password), token_hash(token), clock.now().isoformat()])
    return Credentials(name, password, token)


def reset(store: sqlite3.Connection, name: str) -> Credentials:
    """A new password and token for an existing reviewer (the old ones stop working)."""
    ensure_tables(store)
    if not store.execute("SELECT 1 FROM reviewers WHERE name = ?", [name]).fetchone():
        raise ReviewerError(f"no reviewer {name!r}; see flywheel users list")
    password, token = secrets.token_urlsafe(12), TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store:
        store.execute("UPDATE reviewers SET password_hash = ?, token_hash = ?, disabled = 0 WHERE name = ?",
                      [hash_password(password), token_hash(token), name])
    return Credentials(name, password, token)


def set_password(store: sqlite3.Connection, name: str, password: str) -> None:
    if len(password) < 10:
        raise ReviewerError("a password needs at least 10 characters")
    with store:
        store.execute("UPDATE reviewers SET password_hash = ? WHERE name = ?", [hash_password(password), name])


def disable(store: sqlite3.Connection, name: str) -> None:
    ensure_tables(store)
    with store:
        if store.execute("UPDATE reviewers SET disabled = 1 WHERE name = ?", [name]).rowcount == 0:
            raise ReviewerError(f"no reviewer {name!r}; see flywheel users list")


def by_password(store: sqlite3.Connection, name: str, password: str) -> Reviewer | None:
    ensure_tables(store)
    row = store.execute("SELECT name, admin, password_hash FROM reviewers WHERE name = ? AND disabled = 0",
                        [name]).fetchone()
    if row is None:
        hash_password(password)  # the same time whether or not the name exists
        return None
    return Reviewer(row[0], bool(row[1])) if check_password(password, row[2]) else None


def by_token(store: sqlite3.Connection, token: str) -> Reviewer | None:
    ensure_tables(store)
    row = store.execute("SELECT name, admin FROM reviewers WHERE token_hash = ? AND disabled = 0",
                        [token_hash(token)]).fetchone()
    return Reviewer(row[0], bool(row[1])) if row else None


def by_name(store: sqlite3.Connection, name: str) -> Reviewer | None:
    ensure_tables(store)
    row = store.execute("SELECT name, admin FROM reviewers WHERE name = ? AND disabled = 0", [name]).fetchone()
    return Reviewer(row[0], bool(row[1])) if row else None


def listing(store: sqlite3.Connection) -> list[dict]:
    ensure_tables(store)
    cur = store.execute("SELECT name, admin, created_at, disabled FROM reviewers ORDER BY name")
    return [{"name": n, "admin": bool(a), "created_at": c, "disabled": bool(d)} for n, a, c, d in cur.fetchall()]
