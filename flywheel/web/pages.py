"""The pages: server-rendered HTML forms that work without a script, made keyboard-first by one small
script (static/review.js). Every form carries the CSRF token; nothing is written without a signed-in
reviewer, whose name goes on the label."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from flywheel.core.labeling import agreement, review_store, reviewers, taxonomy
from flywheel.core.labeling.labels import BUCKETS, CRITERION_TYPES
from flywheel.core.labeling.suggestions import describe
from flywheel.core.labeling.unexplained import week_scope
from flywheel.web import auth
from flywheel.web.service import STATUSES, SUGGESTION_FIELDS, Conflict, Review

TEMPLATES = Path(__file__).parent / "templates"
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
PRIORITY_NAMES = ("anomaly", "stratified", "random")
PAGE_ROWS = 100  # queue rows per page: a week of 10,000 traces must not be one 3 MB page
PII_CLASSES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "LOCATION", "STREET_ADDRESS", "ORGANIZATION",
               "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "ACCOUNT_ID", "DATE_TIME", "URL", "OTHER")


def highlight(text: str | None) -> Markup:
    """Escape the text, then mark the scrubber's placeholders so a reviewer sees what was taken out."""
    escaped = str(escape(text or ""))
    return Markup(PLACEHOLDER.sub(lambda m: f'<mark class="ph">{m.group(0)}</mark>', escaped))


def pct(value) -> str:
    return "–" if value is None else f"{value:.0%}"


env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
env.filters["highlight"] = highlight
env.filters["pct"] = pct
env.globals["PRIORITY_NAMES"] = PRIORITY_NAMES



def _render(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    review: Review = request.app.state.review
    snap = review.live.get()
    html = env.get_template(name).render(
        request=request, me=context.pop("me", None), csrf=auth.csrf_token(request), snapshot_at=snap.loaded_at,
        warehouse_busy=review.live.busy_since, landing_busy=review.lander.busy_since, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _me(request: Request):
    review: Review = request.app.state.review
    with review.store() as store:
        return auth.session_reviewer(request, store)


def _login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)


async def _form(request: Request) -> dict | None:
    """The posted form, or None when its CSRF token is missing or wrong."""
    form = await request.form()
    data = {k: form.get(k) for k in form.keys()}
    data["_lists"] = {k: form.getlist(k) for k in form.keys()}
    return data if auth.csrf_ok(request, data.get(auth.CSRF_FIELD)) else None


def _refused(request: Request) -> HTMLResponse:
    return HTMLResponse("Refused: this form has no valid CSRF token. Reload the page and send it again.",
                        status_code=403)


def signed_in(handler):
    """A page for a signed-in reviewer, handed to `handler(request, me)`; anyone else goes to sign in.
    A plain function runs in the thread pool, as Starlette runs it, off the event loop."""
    @functools.wraps(handler)
    async def page(request: Request) -> Response:
        me = await run_in_threadpool(_me, request)
        if me is None:
            return _login_redirect(request)
        if inspect.iscoroutinefunction(handler):
            return await handler(request, me)
        return await run_in_threadpool(handler, request, me)
    return page


def posted(handler):
    """A form posted by a signed-in reviewer with the session's CSRF token: `handler(request, me, form)`."""
    @functools.wraps(handler)
    async def page(request: Request) -> Response:
        me = await run_in_threadpool(_me, request)
        if me is None:
            return _login_redirect(request)
        form = await _form(request)
        if form is None:
            return _refused(request)
        return await handler(request, me, form)
    return page


def _week(value: str | None, review: Review) -> dt.date | None:
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    weeks = review.live.get().weeks
    return weeks[-1] if weeks else None


# ---------------------------------------------------------------------------------------------
# Signing in
# ---------------------------------------------------------------------------------------------

async def login(request: Request) -> Response:
    review: Review = request.app.state.review
    nxt = request.query_params.get("next") or "/queue"
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/queue"
    if request.method == "GET":
        return _render(request, "login.html", next=nxt)
    form = await _form(request)
    if form is None:
        return _refused(request)
    with review.store() as store:
        who = reviewers.by_password(store, (form.get("name") or "").strip(), form.get("password") or "")
    if who is None:
        return _render(request, "login.html", 401, next=nxt, error="Wrong name or password.")
    request.session.clear()
    request.session["reviewer"] = who.name
    auth.csrf_token(request)
    return RedirectResponse(nxt, status_code=303)


async def logout(request: Request) -> Response:
    if await _form(request) is None:
        return _refused(request)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@signed_in
async def account(request: Request, me) -> Response:
    if request.method == "GET":
        return _render(request, "account.html", me=me)
    form = await _form(request)
    if form is None:
        return _refused(request)
    review: Review = request.app.state.review
    with review.store() as store:
        if reviewers.by_password(store, me.name, form.get("current") or "") is None:
            return _render(request, "account.html", 422, me=me, error="The current password is wrong.")
        try:
            reviewers.set_password(store, me.name, form.get("new") or "")
        except reviewers.ReviewerError as exc:
            return _render(request, "account.html", 422, me=me, error=str(exc))
    return _render(request, "account.html", me=me, done=True)


# ---------------------------------------------------------------------------------------------
# The queue
# ---------------------------------------------------------------------------------------------

@signed_in
def queue(request: Request, me) -> Response:
    review: Review = request.app.state.review
    snap = review.live.get()
    week = _week(request.query_params.get("week"), review)
    statuses = review.statuses(week)
    items = [snap.items[ref] for ref in snap.order.get(week, [])]
    filters = {k: request.query_params.get(k, "") for k in ("reason", "cohort", "intent", "candidate", "status")}

    def keep(item: dict) -> bool:
        return ((not filters["reason"] or filters["reason"] in (item["reasons"] or []))
                and (not filters["cohort"] or item["cohort"] == filters["cohort"])
                and (not filters["intent"] or item["intent"] == filters["intent"])
                and (not filters["candidate"] or bool(item["adversarial_candidate"]) == (filters["candidate"] == "yes"))
                and (not filters["status"] or statuses[item["trace_ref"]] == filters["status"]))

    matching = [i for i in items if keep(i)]
    pages = max(1, -(-len(matching) // PAGE_ROWS))
    try:
        page = min(max(1, int(request.query_params.get("page", 1))), pages)
    except ValueError:
        page = 1
    shown = matching[(page - 1) * PAGE_ROWS: page * PAGE_ROWS]
    reviewed = sum(1 for s in statuses.values() if s == "reviewed")
    counts = Counter(statuses.values())
    return _render(
        request, "queue.html", me=me, week=week, weeks=snap.weeks, items=shown, statuses=statuses,
        total=len(items), reviewed=reviewed, matching=len(matching), page=page, pages=pages,
        page_link=lambda n: "?" + urlencode({"week": str(week), **{k: v for k, v in filters.items() if v}, "page": n}), counts=[(s, counts.get(s, 0)) for s in STATUSES], filters=filters,
        reasons=sorted({r for i in items for r in (i["reasons"] or [])}),
        cohorts=sorted({i["cohort"] for i in items if i["cohort"]}),
        intents=sorted({i["intent"] for i in items if i["intent"]}),
        current=snap.current, message=request.query_params.get("message"),
    )


@signed_in
def next_trace(request: Request, me) -> Response:
    review: Review = request.app.state.review
    week = _week(request.query_params.get("week"), review)
    got = review.next_for(me.name, week)
    prev = request.query_params.get("prev")
    if got is None:
        return RedirectResponse("/queue?" + urlencode({"week": str(week or ""), "message": "Nothing left to review "
                                "in this week: every trace is labelled or reserved by someone else."}), status_code=303)
    item, _ = got
    query = {"week": str(item["week"])} | ({"prev": prev} if prev else {})
    return RedirectResponse(f"/trace/{item['trace_ref']}?" + urlencode(query), status_code=303)


# ---------------------------------------------------------------------------------------------
# One trace and its label form
# ---------------------------------------------------------------------------------------------

def _trace_context(request: Request, review: Review, ref: str, me, cluster_key: str | None = None) -> dict | None:
    snap = review.live.get()
    item = snap.items.get(ref)
    if item is None:
        return None
    suggestion = snap.suggestions.get(ref)
    cluster = review.cluster(cluster_key)
    with review.store() as store:
        held = review_store.reservation(store, ref)
        notes = review_store.comments(store, ref)
        given = review_store.verdicts_of(store, ref)
        pending = review.final_refs(store) - set(snap.current)
        opened_codes = review_store.opened_codes(store)
    history = list(reversed(snap.history.get(ref, [])))
    blind = review.settings.reviewers_per_trace > 1 and ref not in snap.current and ref not in pending
    codes = [dict(t) for t in snap.taxonomy] + [{"code": e.code, "name": e.name, "definition": e.definition}
                                                for e in opened_codes.values() if e.code not in snap.codes()]
    return {
        "me": me, "item": item, "week": item["week"], "held": held, "comments": notes, "history": history,
        # Double review is blind: a reviewer sees another's verdict only once the label is final.
        "verdicts": [] if blind else given, "waiting_to_land": ref in pending, "codes": codes,
        "buckets": BUCKETS, "criteria": CRITERION_TYPES, "pii_classes": PII_CLASSES,
        "prev": request.query_params.get("prev"),
        # The loop's suggestion (label.suggestions): `offer` only when it names a bucket (else it abstained).
        "suggestion": suggestion, "suggestion_text": describe(suggestion),
        "offer": suggestion if suggestion and suggestion["suggested_bucket"] else None,
        "similar": [{"trace_ref": r, "similarity": v, "label": snap.current.get(r)}
                    for r, v in zip(suggestion["similar_refs"] or [], suggestion["similar_scores"] or [])][:3]
        if suggestion else [],
        "cluster": cluster, "cluster_key": cluster_key if cluster else None,
    }


@signed_in
def trace(request: Request, me) -> Response:
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    context = _trace_context(request, review, ref, me, request.query_params.get("cluster"))
    if context is None:
        return _render(request, "missing.html", 404, me=me, ref=ref)
    held = review.open(me.name, ref)
    context["held"] = held or context["held"]
    context["reserved_by_other"] = held is None
    return _render(request, "trace.html", form={}, errors={}, **context)


@posted
async def post_label(request: Request, me, form: dict) -> Response:
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    payload = {k: form.get(k) for k in ("bucket", "taxonomy_code", "new_code_name", "new_code_definition",
                                        "expected_behaviour", "criterion_type", "criterion_value", "pii_issue_class",
                                        "pii_note", "not_personal", *SUGGESTION_FIELDS)}
    payload["trace_ref"] = ref
    payload["adversarial"] = "true" if form.get("adversarial") else "false"
    payload["pii_ok"] = "false" if form.get("pii_leak") else "true"
    if payload["bucket"] == "new_failure":
        payload["taxonomy_code"] = form.get("new_code") or ""
    elif payload["bucket"] == "not_a_bug":
        payload.update(taxonomy_code="", expected_behaviour="", criterion_type="", criterion_value="")
    row, problems = await run_in_threadpool(review.parse, payload, me.name, "review")
    week = form.get("week") or ""
    cluster = {"cluster": form["cluster"]} if form.get("cluster") else {}  # a cluster's members become the siblings
    if row is not None:
        try:
            submitted = await run_in_threadpool(review.submit, me.name, row)
        except Conflict as exc:
            problems = [{"field": "trace_ref", "message": str(exc)}]
        else:
            if row.label.bucket == "new_failure" and submitted.state in ("final", "agreed", "waiting"):
                return RedirectResponse(f"/trace/{ref}/siblings?" + urlencode({"week": week, **cluster}),
                                        status_code=303)
            return RedirectResponse("/next?" + urlencode({"week": week, "prev": ref}), status_code=303)
    context = _trace_context(request, review, ref, me, form.get("cluster"))
    if context is None:
        return _render(request, "missing.html", 404, me=me, ref=ref)
    errors = {}
    for p in problems:
        errors.setdefault(p["field"], []).append(p["message"])
    return _render(request, "trace.html", 422, form=form, errors=errors, reserved_by_other=False, **context)


@posted
async def skip(request: Request, me, form: dict) -> Response:
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    await run_in_threadpool(review.skip, me.name, ref)
    return RedirectResponse("/next?" + urlencode({"week": form.get("week") or "", "prev": ref}), status_code=303)


@posted
async def comment(request: Request, me, form: dict) -> Response:
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    try:
        await run_in_threadpool(review.comment, me.name, ref, form.get("body") or "")
    except ValueError:
        pass  # an empty comment adds nothing
    return RedirectResponse(f"/trace/{ref}?" + urlencode({"week": form.get("week") or ""}) + "#comments",
                            status_code=303)


# ---------------------------------------------------------------------------------------------
# Siblings of a new failure mode
# ---------------------------------------------------------------------------------------------

def _failure_label(review: Review, ref: str, me) -> dict | None:
    """The new-failure verdict this reviewer just gave on `ref` (siblings copy its code and criterion)."""
    with review.store() as store:
        rows = store.execute("SELECT payload FROM verdicts WHERE trace_ref = ? AND reviewer = ? AND bucket = "
                             "'new_failure' ORDER BY submitted_at DESC LIMIT 1", [ref, me.name]).fetchall()
    if not rows:
        return None
    label, _ = review_store._from_payload(rows[0][0])
    return {"taxonomy_code": label.taxonomy_code, "expected_behaviour": label.expected_behaviour,
            "criterion_type": label.criterion_type, "criterion_value": label.criterion_value,
            "adversarial": label.adversarial}


@signed_in
def siblings(request: Request, me) -> Response:
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    week = request.query_params.get("week") or ""
    failure = _failure_label(review, ref, me)
    if failure is None:
        return RedirectResponse("/next?" + urlencode({"week": week, "prev": ref}), status_code=303)
    cluster = review.cluster(request.query_params.get("cluster"))
    # Opened on a cluster: its other members are the siblings, as the terminal's `--cluster N` offers them.
    found = review.cluster_siblings(cluster, ref, me.name) if cluster else review.siblings(ref, me.name)
    return _render(request, "siblings.html", me=me, ref=ref, week=week, failure=failure, siblings=found,
                   cluster=cluster)


@posted
async def post_siblings(request: Request, me, form: dict) -> Response:
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    failure = _failure_label(review, ref, me)
    week = form.get("week") or ""
    accepted = [k.removeprefix("decision_") for k, v in form.items() if k.startswith("decision_") and v == "accept"]
    refused = []
    for sibling in accepted if failure else []:
        payload = {"trace_ref": sibling, "bucket": "known_failure", "taxonomy_code": failure["taxonomy_code"],
                   "expected_behaviour": failure["expected_behaviour"], "criterion_type": failure["criterion_type"],
                   "criterion_value": failure["criterion_value"] or "", "adversarial": failure["adversarial"]}
        row, problems = await run_in_threadpool(review.parse, payload, me.name, "sibling")
        try:
            if row is None:
                raise ValueError("; ".join(f"{p['field']}: {p['message']}" for p in problems))
            await run_in_threadpool(review.submit, me.name, row, kind="sibling", wait_s=0)
        except (Conflict, ValueError) as exc:  # e.g. someone opened it meanwhile: theirs to label
            refused.append(f"{sibling[:12]}: {exc}")
    if refused:
        return RedirectResponse("/queue?" + urlencode({"week": week, "message": f"{len(refused)} accepted sibling(s) "
                                "not stored: " + " · ".join(refused)}), status_code=303)
    return RedirectResponse("/next?" + urlencode({"week": week, "prev": ref}), status_code=303)


# ---------------------------------------------------------------------------------------------
# Failure-mode clusters of a week (label.clusters)
# ---------------------------------------------------------------------------------------------

@signed_in
def clusters_page(request: Request, me) -> Response:
    review: Review = request.app.state.review
    snap = review.live.get()
    week = _week(request.query_params.get("week"), review)
    scope = week_scope(week) if week else None
    rows = []
    for c in sorted((c for c in snap.clusters if c["scope"] == scope), key=lambda c: c["cluster_id"]):
        left = review.open_members(c, me.name)
        link = f"/trace/{left[0]}?" + urlencode({"week": str(week), "cluster": f"{scope}/{c['cluster_id']}"})
        rows.append({**c, "open": len(left), "link": link if left else None})
    return _render(request, "clusters.html", me=me, week=week, weeks=snap.weeks, scope=scope, clusters=rows)


# ---------------------------------------------------------------------------------------------
# Taxonomy, eval set, residue, agreement, people
# ---------------------------------------------------------------------------------------------

@signed_in
def taxonomy_page(request: Request, me) -> Response:
    snap = request.app.state.review.live.get()
    counts = Counter(row["taxonomy_code"] for row in snap.current.values() if row.get("taxonomy_code"))
    return _render(request, "taxonomy.html", me=me, entries=snap.taxonomy, counts=counts,
                   message=request.query_params.get("message"))


@posted
async def post_taxonomy(request: Request, me, form: dict) -> Response:
    if not me.admin:
        return HTMLResponse("Only an admin edits the taxonomy.", status_code=403)
    review: Review = request.app.state.review
    entry = taxonomy.TaxonomyEntry((form.get("code") or "").strip(), (form.get("name") or "").strip(),
                                   " ".join((form.get("definition") or "").split()), created_from=f"admin:{me.name}")
    try:
        message = await run_in_threadpool(_write_taxonomy, review, entry, form.get("action") == "edit")
    except taxonomy.TaxonomyError as exc:
        message = f"Not saved: {exc}"
    return RedirectResponse("/taxonomy?" + urlencode({"message": message}), status_code=303)


def _write_taxonomy(review: Review, entry: taxonomy.TaxonomyEntry, edit: bool) -> str:
    from flywheel.core.common.db import WarehouseBusy, open_connection

    try:
        with review.warehouse_lock:
            conn = open_connection(review.paths.warehouse, timeout_s=5.0)
            try:
                taxonomy.update(conn, entry) if edit else taxonomy.add(conn, entry)
            finally:
                conn.close()
    except WarehouseBusy:
        return "Not saved: a run holds the warehouse right now; send it again in a minute."
    review.refresh(force=True)
    return f"Saved {entry.code}."


@signed_in
def evalset_page(request: Request, me) -> Response:
    snap = request.app.state.review.live.get()
    shown = sorted(snap.version_rows)
    latest = shown[-1] if shown else None
    rows = snap.version_rows.get(latest, []) if latest else []
    before = {r["row_id"] for r in snap.version_rows.get(shown[0], [])} if len(shown) == 2 else set()
    return _render(request, "evalset.html", me=me, versions=list(reversed(snap.versions)), latest=latest,
                   rows=rows, previous=shown[0] if len(shown) == 2 else None, before=before, pass_rates=snap.pass_rates,
                   labelled=set(snap.current))


@signed_in
def residue_page(request: Request, me) -> Response:
    return _render(request, "residue.html", me=me, rows=request.app.state.review.live.get().residue)


@signed_in
def agreement_page(request: Request, me) -> Response:
    review: Review = request.app.state.review
    snap = review.live.get()
    with review.store() as store:
        pairs = review_store.paired_verdicts(store)
        disputes = review_store.disagreements(store)
    week_of = lambda ref: snap.items[ref]["week"] if ref in snap.items else None  # noqa: E731
    return _render(request, "agreement.html", me=me, weeks=agreement.per_week(pairs, week_of), disputes=disputes,
                   reviewers_per_trace=review.settings.reviewers_per_trace)


@posted
async def adjudicate(request: Request, me, form: dict) -> Response:
    if not me.admin:
        return HTMLResponse("Only an admin adjudicates.", status_code=403)
    review: Review = request.app.state.review
    ref = request.path_params["ref"]
    with review.store() as store:
        choice = [v for v in review_store._review_verdicts(store, ref) if v[0].label_id == form.get("label_id")]
    if choice:
        label = choice[0][0]
        payload = {k: getattr(label, k) for k in ("bucket", "taxonomy_code", "expected_behaviour", "criterion_type",
                                                  "criterion_value", "adversarial", "pii_ok", "pii_issue_class",
                                                  "pii_note", *SUGGESTION_FIELDS)}
        payload["trace_ref"] = ref
        await run_in_threadpool(review.adjudicate, me.name, payload)
    return RedirectResponse("/agreement", status_code=303)


@signed_in
async def users_page(request: Request, me) -> Response:
    if not me.admin:
        return HTMLResponse("Only an admin manages reviewers.", status_code=403)
    review: Review = request.app.state.review
    made, error = None, None
    if request.method == "POST":
        form = await _form(request)
        if form is None:
            return _refused(request)
        with review.store() as store:
            try:
                if form.get("action") == "disable":
                    reviewers.disable(store, form.get("name") or "")
                else:
                    made = reviewers.add(store, (form.get("name") or "").strip(), admin=bool(form.get("admin")))
            except reviewers.ReviewerError as exc:
                error = str(exc)
    with review.store() as store:
        people = reviewers.listing(store)
    return _render(request, "users.html", me=me, people=people, made=made, error=error)


def home(request: Request) -> Response:
    return RedirectResponse("/queue", status_code=303)


routes = [
    Route("/", home),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/account", account, methods=["GET", "POST"]),
    Route("/queue", queue),
    Route("/next", next_trace),
    Route("/trace/{ref}", trace),
    Route("/trace/{ref}/label", post_label, methods=["POST"]),
    Route("/trace/{ref}/skip", skip, methods=["POST"]),
    Route("/trace/{ref}/comment", comment, methods=["POST"]),
    Route("/trace/{ref}/siblings", siblings),
    Route("/trace/{ref}/siblings", post_siblings, methods=["POST"]),
    Route("/clusters", clusters_page),
    Route("/taxonomy", taxonomy_page),
    Route("/taxonomy", post_taxonomy, methods=["POST"]),
    Route("/evalset", evalset_page),
    Route("/residue", residue_page),
    Route("/agreement", agreement_page),
    Route("/agreement/{ref}", adjudicate, methods=["POST"]),
    Route("/users", users_page, methods=["GET", "POST"]),
]
