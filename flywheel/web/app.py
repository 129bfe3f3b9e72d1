"""`flywheel serve`: the review app, a Starlette application served by uvicorn."""

from __future__ import annotations

import contextlib
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from flywheel.paths import Paths
from flywheel.settings import ReviewSettings
from flywheel.web import api, auth, otlp, pages
from flywheel.web.service import Review

STATIC = Path(__file__).parent / "static"
SESSION_HOURS = 12


def create_app(paths: Paths, settings: ReviewSettings | None = None, *, embedder_factory=None,
               snapshot_every_s: float = 2.0, https_only: bool = False, otlp_max_body: int = otlp.MAX_BODY) -> Starlette:
    review = Review(paths, settings or ReviewSettings(), embedder_factory=embedder_factory,
                    snapshot_every_s=snapshot_every_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        review.start()
        try:
            yield
        finally:
            review.stop()

    app = Starlette(
        routes=[*api.routes, *otlp.routes, *pages.routes, Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(SessionMiddleware, secret_key=auth.secret_key(review.store_path.parent),
                               session_cookie="flywheel_review", max_age=SESSION_HOURS * 3600, same_site="strict",
                               https_only=https_only)],
        lifespan=lifespan,
    )
    app.state.review = review
    app.state.otlp_max_body = otlp_max_body
    return app
