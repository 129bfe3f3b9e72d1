"""The JSON API: what a script (an LLM pre-label, a bulk import) and the pages' own scripts call.

Authenticated by `Authorization: Bearer <token>` (from `flywheel users add`), or by the session cookie
with the CSRF token in the X-CSRF-Token header (the pages' scripts).

- `GET /api/queue/next?week=YYYY-MM-DD` reserves and returns the next trace: trace_ref, week, messages,
  reasons, judge_score, adversarial_candidate, reserved_until, and `suggestion` (label.suggestions, or
  null before the loop has made one): suggested_bucket (null when the suggester abstained),
  suggested_code, suggestion_confidence, suggested_expected_behaviour, suggested_criterion_type,
  suggested_criterion_value, similar ([{trace_ref, similarity}] of labelled traces) and text.
- `POST /api/labels` takes the label contract of `flywheel labels import` as one JSON object; the
  optional suggested_bucket, suggested_code and suggestion_confidence say which suggestion was shown
  when the label was given (copy them from `suggestion`, taken or not), so acceptance can be measured.
"""

from __future__ import annotations

import datetime as dt
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flywheel.core.labeling import labels
from flywheel.core.labeling.suggestions import describe
from flywheel.web import auth
from flywheel.web.service import Conflict, Review


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _who(request: Request, review: Review, *, writing: bool):
    """The reviewer behind a request, or the error response to send."""
    with review.store() as store:
        reviewer = auth.bearer_reviewer(request, store)
        if reviewer is None and "authorization" not in request.headers:
            reviewer = auth.session_reviewer(request, store)
            if reviewer is not None and writing and not auth.csrf_ok(request, request.headers.get(auth.CSRF_HEADER)):
                return None, _error(403, "missing or wrong X-CSRF-Token header for a cookie-authenticated request")
    if reviewer is None:
        return None, _error(401, "sign in, or send Authorization: Bearer <token> (flywheel users add prints one)")
    return reviewer, None


def _week(value: str | None) -> dt.date | None:
    if not value:
        return None
    return dt.date.fromisoformat(value)


def queue_next(request: Request) -> Response:
    review: Review = request.app.state.review
    reviewer, error = _who(request, review, writing=True)
    if error:
        return error
    try:
        week = _week(request.query_params.get("week"))
    except ValueError:
        return _error(422, "week must be a date, YYYY-MM-DD (the Monday the week starts)", field="week")
    got = review.next_for(reviewer.name, week)
    if got is None:
        return Response(status_code=204)
    item, reservation = got
    suggestion = review.live.get().suggestions.get(item["trace_ref"])
    return JSONResponse(trace_json(item, reservation.reserved_until, suggestion))


def trace_json(item: dict, reserved_until: dt.datetime | None, suggestion: dict | None = None) -> dict:
    return {
        "trace_ref": item["trace_ref"], "week": item["week"].isoformat(), "messages": item["messages"],
        "reasons": list(item["reasons"] or []), "judge_score": item["judge_score"],
        "adversarial_candidate": bool(item["adversarial_candidate"]),
        "reserved_until": reserved_until.isoformat() + "Z" if reserved_until else None,
        "suggestion": suggestion_json(suggestion),
    }


def suggestion_json(s: dict | None) -> dict | None:
    """The trace's suggestion, under the label fields' own names so a client can send them back."""
    if not s:
        return None
    keys = ("suggested_bucket", "suggested_code", "suggestion_confidence", "suggested_expected_behaviour",
            "suggested_criterion_type", "suggested_criterion_value")
    return {**{k: s[k] for k in keys},
            "similar": [{"trace_ref": r, "similarity": v}
                        for r, v in zip(s["similar_refs"] or [], s["similar_scores"] or [])],
            "text": describe(s)}


async def post_label(request: Request) -> Response:
    review: Review = request.app.state.review
    reviewer, error = _who(request, review, writing=True)
    if error:
        return error
    try:
        payload = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"the body is not JSON: {exc}")
    if not isinstance(payload, dict):
        return _error(422, "the body must be one JSON object: the label contract of `flywheel labels import`",
                      errors=[{"field": "(body)", "message": "expected an object"}])
    return await run_in_threadpool(_store_label, review, reviewer.name, payload)


def _store_label(review: Review, reviewer: str, payload: dict) -> Response:
    row, problems = review.parse(payload, reviewer, "api")
    if row is None:
        return _error(422, "the label is not valid; nothing was stored", errors=problems)
    try:
        submitted = review.submit(reviewer, row)
    except Conflict as exc:
        return _error(409, str(exc))
    return JSONResponse(submitted.to_json(), status_code=201)


async def skip(request: Request) -> Response:
    review: Review = request.app.state.review
    reviewer, error = _who(request, review, writing=True)
    if error:
        return error
    try:
        ref = (json.loads(await request.body() or b"{}") or {}).get("trace_ref")
    except (json.JSONDecodeError, AttributeError):
        ref = None
    if not ref:
        return _error(422, "send {\"trace_ref\": ...}", errors=[{"field": "trace_ref", "message": "missing"}])
    review.skip(reviewer.name, ref)
    return Response(status_code=204)


def check_criterion(request: Request) -> Response:
    """The typed criterion as the store will judge it, for validation as the reviewer types."""
    review: Review = request.app.state.review
    _, error = _who(request, review, writing=False)
    if error:
        return error
    kind = (request.query_params.get("type") or "").strip().lower()
    value = request.query_params.get("value")
    probe = labels.Label("probe", "known_failure", "probe", "probe", "probe", kind or None, value)
    problems = labels.criterion_errors(probe)
    return JSONResponse({"ok": not problems, "errors": [{"field": p.field, "message": p.message} for p in problems]})


def health(request: Request) -> Response:
    review: Review = request.app.state.review
    snap = review.live.get()
    with review.store() as store:
        from flywheel.core.labeling import review_store

        pending = review_store.pending_count(store)
    return JSONResponse({"ok": True, "snapshot_at": snap.loaded_at.isoformat() if snap.loaded_at else None,
                         "traces": len(snap.items), "labels_waiting_to_land": pending})


routes = [
    Route("/api/queue/next", queue_next, methods=["GET"]),
    Route("/api/queue/skip", skip, methods=["POST"]),
    Route("/api/labels", post_label, methods=["POST"]),
    Route("/api/criterion", check_criterion, methods=["GET"]),
    Route("/api/health", health, methods=["GET"]),
]
