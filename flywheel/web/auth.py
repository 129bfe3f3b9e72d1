"""Who is asking: a signed-in reviewer (a signed session cookie) or a script (a bearer token), and the
CSRF token every form and every cookie-authenticated API call must carry."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from starlette.requests import Request

from flywheel.core.labeling import reviewers
from flywheel.core.labeling.reviewers import Reviewer

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def secret_key(folder: Path) -> str:
    """The key that signs session cookies: made once per data directory, readable by its owner only."""
    path = folder / "session_secret"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, sent: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected and sent and hmac.compare_digest(expected, sent))


def session_reviewer(request: Request, store) -> Reviewer | None:
    name = request.session.get("reviewer")
    return reviewers.by_name(store, name) if name else None


def bearer_reviewer(request: Request, store) -> Reviewer | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return reviewers.by_token(store, token.strip())
