"""The review app (`flywheel serve`) through its HTTP interface: the JSON API a script uses and the
forms the pages post, on a small scrubbed warehouse, in-process (Starlette's test client runs the
app's start-up: the snapshot, the lander thread). The browser test is test_review_browser.py; the
load test with the weekly loop running beside it is test_review_load.py."""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flywheel.core.common import clock
from flywheel.core.common.db import connect
from flywheel.core.labeling import agreement, labels, review_store, reviewers, suggestions, taxonomy, unexplained
from flywheel.paths import Paths
from flywheel.resources.embedder import HashingEmbedder
from flywheel.settings import ReviewSettings
from flywheel.web.app import create_app

REPO = Path(__file__).resolve().parents[1]
WEEK = "2026-03-02"
HOSTILE = "<script>alert(1)</script>"


def _warehouse(path: Path, n: int = 6) -> list[str]:
    """n scrubbed traces of one week, the taxonomy seeded; returns their refs in review order."""
    refs = [f"t_{i:02d}" for i in range(n)]
    with connect(path) as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces (
            week_start TIMESTAMP, trace_ref VARCHAR, reasons VARCHAR[], modes VARCHAR[], judge_score DOUBLE,
            weight DOUBLE, intent VARCHAR, cohort VARCHAR, turns BIGINT, timestamp TIMESTAMP,
            messages STRUCT(role VARCHAR, content VARCHAR)[], scrubber_version VARCHAR)""")
        for i, ref in enumerate(refs):
            user = ("My SSO login keeps looping back to the sign-in page for account [ACCOUNT_ID_1]" if i % 2 else
                    f"How do I get a refund for order {i}? {HOSTILE if i == 0 else ''}")
            conn.execute(
                "INSERT INTO scrub.anonymized_traces VALUES (TIMESTAMP '2026-03-02', ?, ['random'], ['random'], ?, 50.0, "
                "'billing', 'smb', 2, TIMESTAMP '2026-03-03 09:00' + INTERVAL (?) MINUTE, ?, '3')",
                [ref, 0.5 + i / 100, i, [{"role": "user", "content": user}, {"role": "assistant", "content": "Done."}]])
        taxonomy.seed(conn, taxonomy.load_seed(REPO / "data" / "reference" / "taxonomy.yaml"))
        labels.ensure_tables(conn)
    return refs


@pytest.fixture
def site(data_dir):
    """(make_client, refs, tokens): reviewers alice (admin) and bob, and a factory of app clients."""
    paths = Paths(data_dir)
    refs = _warehouse(paths.warehouse)
    with review_store.opened(data_dir / "review" / "review.sqlite3") as store:
        made = {"alice": reviewers.add(store, "alice", admin=True), "bob": reviewers.add(store, "bob")}
    clients = []

    def make(settings: ReviewSettings | None = None) -> TestClient:
        app = create_app(paths, settings or ReviewSettings(), embedder_factory=HashingEmbedder, snapshot_every_s=0.2)
        client = TestClient(app, base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield make, refs, made
    for client in clients:
        client.__exit__(None, None, None)


def _bearer(made, name: str) -> dict:
    return {"Authorization": f"Bearer {made[name].token}"}


def _current(paths_warehouse: Path) -> list[tuple]:
    with connect(paths_warehouse, read_only=True) as conn:
        return conn.execute("SELECT trace_ref, bucket, taxonomy_code, reviewer, source FROM label.current_labels "
                            "ORDER BY trace_ref").fetchall()


def _all_labels(paths_warehouse: Path) -> list[tuple]:
    with connect(paths_warehouse, read_only=True) as conn:
        return conn.execute("SELECT label_id, trace_ref, reviewer FROM label.labels ORDER BY reviewed_at").fetchall()


KNOWN = {"bucket": "known_failure", "taxonomy_code": "missed_escalation", "expected_behaviour": "Hand over to a person",
         "criterion_type": "contains", "criterion_value": "hand you over"}


def test_a_label_posted_through_the_api_is_stored_once_with_the_reviewers_name(site, data_dir):
    make, refs, made = site
    client = make()
    got = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice"))
    assert got.status_code == 200
    body = got.json()
    assert set(body) >= {"trace_ref", "messages", "reasons", "judge_score", "adversarial_candidate", "reserved_until"}
    assert body["trace_ref"] in refs and body["messages"][0]["role"] == "user"
    posted = client.post("/api/labels", headers=_bearer(made, "alice"), json={"trace_ref": body["trace_ref"], **KNOWN})
    assert posted.status_code == 201, posted.text
    assert posted.json()["landed"] is True and posted.json()["label"]["reviewer"] == "alice"
    again = client.post("/api/labels", headers=_bearer(made, "alice"), json={"trace_ref": body["trace_ref"], **KNOWN})
    assert again.status_code == 201  # the same verdict again: accepted, and stored once
    client.get("/api/health")
    _wait_landed(client)
    assert _current(data_dir / "flywheel.duckdb") == [(body["trace_ref"], "known_failure", "missed_escalation", "alice",
                                                        "api")]
    assert len(_all_labels(data_dir / "flywheel.duckdb")) == 1


def _wait_landed(client, timeout=20):
    deadline = time.monotonic() + timeout
    while client.get("/api/health").json()["labels_waiting_to_land"]:
        assert time.monotonic() < deadline, "labels did not land"
        time.sleep(0.1)


def test_two_tokens_never_reserve_the_same_trace(site):
    make, refs, made = site
    client = make()
    served = {"alice": [], "bob": []}
    for _ in range(len(refs)):
        for who in served:
            got = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, who))
            if got.status_code == 200:
                ref = got.json()["trace_ref"]
                # asking again while holding it returns the same trace (a reload keeps the place)
                assert client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, who)).json()["trace_ref"] == ref
                served[who].append(ref)
                assert client.post("/api/labels", headers=_bearer(made, who),
                                   json={"trace_ref": ref, "bucket": "not_a_bug"}).status_code == 201
    assert not set(served["alice"]) & set(served["bob"])
    assert sorted(served["alice"] + served["bob"]) == sorted(refs)
    assert client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).status_code == 204


def test_refusals_name_the_problem(site, data_dir):
    make, refs, made = site
    client = make()
    assert client.post("/api/labels", json={"trace_ref": refs[0], "bucket": "not_a_bug"}).status_code == 401
    assert client.post("/api/labels", headers={"Authorization": "Bearer fw_wrong"},
                       json={"trace_ref": refs[0], "bucket": "not_a_bug"}).status_code == 401
    assert client.get(f"/api/queue/next?week={WEEK}").status_code == 401
    bad = client.post("/api/labels", headers=_bearer(made, "alice"), json={
        "trace_ref": "t_nope", "bucket": "known_failure", "taxonomy_code": "no_such_code", "criterion_type": "regex",
        "criterion_value": "(", "adversarial": "maybe", "colour": "red"})
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert fields >= {"trace_ref", "taxonomy_code", "expected_behaviour", "criterion_value", "adversarial", "colour"}
    assert client.post("/api/labels", headers=_bearer(made, "alice"), content=b"{not json").status_code == 400
    assert client.post("/api/labels", headers=_bearer(made, "alice"), json=[1]).status_code == 422
    assert client.get("/api/queue/next?week=March", headers=_bearer(made, "alice")).status_code == 422
    # Reserved by alice: bob's label is a conflict, stored nowhere.
    ref = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()["trace_ref"]
    taken = client.post("/api/labels", headers=_bearer(made, "bob"), json={"trace_ref": ref, "bucket": "not_a_bug"})
    assert taken.status_code == 409 and "alice" in taken.json()["error"]
    assert _current(data_dir / "flywheel.duckdb") == []


def _sign_in(client: TestClient, name: str, password: str) -> str:
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    done = client.post("/login", data={"name": name, "password": password, "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303, done.text
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/queue").text).group(1)


def test_forms_need_a_session_and_a_csrf_token(site, data_dir):
    make, refs, made = site
    client = make()
    form = {"bucket": "not_a_bug", "week": WEEK}
    anonymous = client.post(f"/trace/{refs[0]}/label", data=form, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert client.post("/login", data={"name": "alice", "password": made["alice"].password},
                       follow_redirects=False).status_code == 403  # the sign-in form carries one too
    csrf = _sign_in(client, "alice", made["alice"].password)
    assert client.post(f"/trace/{refs[0]}/label", data=form, follow_redirects=False).status_code == 403
    assert client.post(f"/trace/{refs[0]}/label", data={**form, "csrf_token": "forged"},
                       follow_redirects=False).status_code == 403
    # A cookie-authenticated API call needs the token in its header.
    assert client.post("/api/labels", json={"trace_ref": refs[0], "bucket": "not_a_bug"}).status_code == 403
    assert _current(data_dir / "flywheel.duckdb") == []
    done = client.post(f"/trace/{refs[0]}/label", data={**form, "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/next")
    _wait_landed(client)
    assert _current(data_dir / "flywheel.duckdb") == [(refs[0], "not_a_bug", None, "alice", "review")]
    assert client.post("/login", data={"name": "alice", "password": "wrong", "csrf_token": csrf}).status_code == 401


def test_pages_render_escaped_with_placeholders_marked(site):
    make, refs, made = site
    client = make()
    _sign_in(client, "alice", made["alice"].password)
    for page in ("/queue", f"/queue?week={WEEK}&status=unreviewed&cohort=smb", "/taxonomy", "/evalset", "/residue",
                 "/agreement", "/users", "/account"):
        assert client.get(page).status_code == 200, page
    queue = client.get(f"/queue?week={WEEK}").text
    assert f"0 of {len(refs)} reviewed this week" in queue
    hostile = client.get(f"/trace/{refs[0]}?week={WEEK}").text
    assert HOSTILE not in hostile and "&lt;script&gt;" in hostile
    marked = client.get(f"/trace/{refs[1]}?week={WEEK}").text
    assert '<mark class="ph">[ACCOUNT_ID_1]</mark>' in marked
    assert 'name="not_personal"' in marked  # where a reviewer marks a placeholder hiding no personal data
    assert client.get("/trace/t_nope").status_code == 404
    bob = make()
    _sign_in(bob, "bob", made["bob"].password)
    assert bob.get("/users").status_code == 403  # admins only


def test_skip_releases_the_trace_and_serves_it_last(site):
    make, refs, made = site
    client = make()
    first = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()["trace_ref"]
    assert client.post("/api/queue/skip", headers=_bearer(made, "alice"), json={"trace_ref": first}).status_code == 204
    second = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()["trace_ref"]
    assert second != first
    assert client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "bob")).json()["trace_ref"] == first


def test_an_expired_reservation_is_served_to_someone_else(site, monkeypatch):
    make, refs, made = site
    # The clock is pinned and moved by hand: with a short real reservation, a slow machine let alice's
    # expire before bob even asked.
    start = clock.now()
    monkeypatch.setenv(clock.ENV, start.isoformat())
    client = make(ReviewSettings(reservation_minutes=5))
    first = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()["trace_ref"]
    assert client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "bob")).json()["trace_ref"] != first
    assert client.post("/api/labels", headers=_bearer(made, "bob"),
                       json={"trace_ref": first, "bucket": "not_a_bug"}).status_code == 409  # alice holds it
    monkeypatch.setenv(clock.ENV, (start + dt.timedelta(minutes=6)).isoformat())
    client.post("/api/queue/skip", headers=_bearer(made, "bob"), json={"trace_ref": "none"})
    served = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "bob")).json()["trace_ref"]
    # bob's own expired reservation came back to the pool too; either way alice's first trace is free again
    assert client.post("/api/labels", headers=_bearer(made, "bob"),
                       json={"trace_ref": first, "bucket": "not_a_bug"}).status_code == 201
    assert served in refs


def test_labels_wait_in_the_side_store_while_another_process_holds_the_warehouse(site, data_dir):
    make, refs, made = site
    client = make()
    warehouse = data_dir / "flywheel.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time\n"
        f"c = duckdb.connect({str(warehouse)!r})\n"
        "c.execute('BEGIN'); c.execute('CREATE TABLE IF NOT EXISTS held (x INT)')\n"
        "print('held', flush=True); time.sleep(4)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        posted = client.post("/api/labels", headers=_bearer(made, "alice"), json={"trace_ref": refs[2], **KNOWN})
        assert posted.status_code == 201 and posted.json()["landed"] is False
        assert time.monotonic() - started < 3.5  # answered without waiting for the other process
        assert client.get("/api/health").json()["labels_waiting_to_land"] == 1
    finally:
        holder.wait(timeout=30)
    _wait_landed(client)
    assert [r[1:] for r in _all_labels(warehouse)] == [(refs[2], "alice")]


def test_a_label_in_the_warehouse_already_is_not_landed_twice(data_dir):
    _warehouse(data_dir / "flywheel.duckdb", n=2)
    label = labels.Label("t_00", "not_a_bug", "alice", source="api")
    with review_store.opened(data_dir / "review.sqlite3") as store, connect(data_dir / "flywheel.duckdb") as conn:
        review_store.submit(store, label)
        labels.record(conn, label)  # a crash after the warehouse committed, before the store heard of it
        assert review_store.land(store, conn).landed == 1
        assert conn.execute("SELECT count(*) FROM label.labels").fetchone()[0] == 1
        assert review_store.pending_count(store) == 0


def test_a_label_the_warehouse_refuses_is_kept_with_its_reason(data_dir):
    _warehouse(data_dir / "flywheel.duckdb", n=2)
    with review_store.opened(data_dir / "review.sqlite3") as store, connect(data_dir / "flywheel.duckdb") as conn:
        review_store.submit(store, labels.Label("t_00", "not_a_bug", "alice"))
        conn.execute("DELETE FROM scrub.anonymized_traces WHERE trace_ref = 't_00'")  # erased meanwhile
        assert review_store.land(store, conn).rejected == 1
        assert "no scrubbed trace" in review_store.rejected(store)[0]["error"]


def test_new_failure_mode_and_its_siblings_through_the_forms(site, data_dir):
    make, refs, made = site
    client = make()
    csrf = _sign_in(client, "alice", made["alice"].password)
    new = {"csrf_token": csrf, "week": WEEK, "bucket": "new_failure", "new_code": "sso_login_loop",
           "new_code_name": "SSO login loop",
           "new_code_definition": "SSO users are sent back to the sign-in page. The user says they are stuck in a loop.",
           "expected_behaviour": "Escalate SSO loops", "criterion_type": "contains", "criterion_value": "escalat"}
    done = client.post(f"/trace/{refs[1]}/label", data=new, follow_redirects=False)
    assert done.status_code == 303 and "/siblings" in done.headers["location"]
    page = client.get(done.headers["location"])
    offered = re.findall(r'name="decision_([^"]+)"', page.text)
    assert 1 <= len(offered) <= 5 and refs[1] not in offered
    assert offered[0] in (refs[3], refs[5])  # the other SSO traces are the nearest
    decisions = {f"decision_{offered[0]}": "accept", **{f"decision_{r}": "reject" for r in offered[1:]}}
    client.post(f"/trace/{refs[1]}/siblings", data={"csrf_token": csrf, "week": WEEK, **decisions})
    _wait_landed(client)
    current = {r[0]: r for r in _current(data_dir / "flywheel.duckdb")}
    assert current[refs[1]][1:3] == ("new_failure", "sso_login_loop")
    assert current[offered[0]][1:] == ("known_failure", "sso_login_loop", "alice", "sibling")
    assert all(r not in current for r in offered[1:])
    with connect(data_dir / "flywheel.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT created_from FROM label.taxonomy WHERE code = 'sso_login_loop'").fetchone() == (refs[1],)


def test_a_regex_that_does_not_compile_is_refused_before_submit(site):
    make, refs, made = site
    client = make()
    _sign_in(client, "alice", made["alice"].password)
    assert client.get("/api/criterion", params={"type": "regex", "value": "("}).json()["ok"] is False
    assert client.get("/api/criterion", params={"type": "regex", "value": "30 days?"}).json()["ok"] is True
    assert client.get("/api/criterion", params={"type": "refusal"}).json()["ok"] is True


def test_double_review_agrees_blind_and_sends_disagreements_to_an_admin(site, data_dir):
    make, refs, made = site
    client = make(ReviewSettings(reviewers_per_trace=2))
    verdict = {ref: "not_a_bug" for ref in refs}
    given = {"alice": [], "bob": []}
    for who in ("alice", "bob"):
        while (got := client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, who))).status_code == 200:
            ref = got.json()["trace_ref"]
            given[who].append(ref)
            body = {"trace_ref": ref, "bucket": verdict[ref]}
            if who == "bob" and ref == refs[0]:
                body = {"trace_ref": ref, **KNOWN}  # the one disagreement
            posted = client.post("/api/labels", headers=_bearer(made, who), json=body)
            assert posted.status_code == 201
            assert posted.json()["state"] == ("waiting" if who == "alice" else
                                              "disagreement" if ref == refs[0] else "agreed")
    assert sorted(given["alice"]) == sorted(given["bob"]) == sorted(refs)  # each trace to both
    _wait_landed(client)
    current = {r[0]: r for r in _current(data_dir / "flywheel.duckdb")}
    assert refs[0] not in current  # a disagreement is not folded in
    assert all(current[r][3] == "alice+bob" and current[r][4] == "double_review" for r in refs[1:])
    csrf = _sign_in(client, "alice", made["alice"].password)
    page = client.get("/agreement").text
    assert "Cohen" in page and refs[0][:16] in page
    with review_store.opened(data_dir / "review" / "review.sqlite3") as store:
        chosen = [v for v in review_store.disagreements(store)[0]["verdicts"] if v.reviewer == "bob"][0]
    client.post(f"/agreement/{refs[0]}", data={"csrf_token": csrf, "label_id": chosen.label_id})
    _wait_landed(client)
    assert {r[0]: r for r in _current(data_dir / "flywheel.duckdb")}[refs[0]][1:] == (
        "known_failure", "missed_escalation", "alice", "adjudication")


def test_agreement_measures_percent_and_cohens_kappa():
    def pair(a, b, code_a=None, code_b=None):
        return (labels.Label("t", a, "x", code_a), labels.Label("t", b, "y", code_b))

    pairs = [pair("not_a_bug", "not_a_bug"), pair("not_a_bug", "not_a_bug"),
             pair("known_failure", "known_failure", "c1", "c2"), pair("known_failure", "not_a_bug", "c1")]
    summary = agreement.summarise(pairs)
    assert summary["bucket_agreement"] == 0.75 and summary["code_agreement"] == 0.5
    # by hand: po = 0.75; pe = (3/4 * 2/4) + (1/4 * 2/4)... for buckets: rater 1 = [n, n, k, k], rater 2 = [n, n, k, n]
    pe = (2 / 4) * (3 / 4) + (2 / 4) * (1 / 4)
    assert summary["bucket_kappa"] == pytest.approx((0.75 - pe) / (1 - pe))
    assert agreement.summarise([pair("not_a_bug", "not_a_bug")])["bucket_kappa"] is None  # undefined, not 1 or nan


def test_passwords_are_scrypt_hashes_and_tokens_are_kept_as_digests(tmp_path):
    with review_store.opened(tmp_path / "s.sqlite3") as store:
        made = reviewers.add(store, "carol")
        stored = store.execute("SELECT password_hash, token_hash FROM reviewers").fetchone()
        assert stored[0].startswith("scrypt$") and made.password not in stored[0] and made.token not in stored[1]
        assert reviewers.by_password(store, "carol", made.password).name == "carol"
        assert reviewers.by_password(store, "carol", "not it") is None
        assert reviewers.by_token(store, made.token).name == "carol"
        with pytest.raises(reviewers.ReviewerError):
            reviewers.add(store, "carol")
        with pytest.raises(reviewers.ReviewerError):
            reviewers.add(store, "bad name; drop")
        reviewers.disable(store, "carol")
        assert reviewers.by_token(store, made.token) is None


def test_users_add_prints_the_password_and_token_once(warehouse, data_dir):
    from click.testing import CliRunner

    from flywheel.cli import main

    runner = CliRunner()
    done = runner.invoke(main, ["users", "add", "dana", "--admin"])
    assert done.exit_code == 0, done.output
    assert re.search(r"password:\s+\S{12,}", done.output) and re.search(r"API token:\s+fw_\S+", done.output)
    again = runner.invoke(main, ["users", "add", "dana"])
    assert again.exit_code == 1 and "exists already" in again.output and "Traceback" not in again.output
    listed = runner.invoke(main, ["users", "list"])
    assert "dana" in listed.output and "yes" in listed.output


def test_double_review_counts_one_verdict_per_reviewer_and_holds_disputes_for_an_admin(data_dir):
    _warehouse(data_dir / "flywheel.duckdb", n=2)
    with review_store.opened(data_dir / "review.sqlite3") as store:
        def verdict(who, bucket, ref="t_00"):
            return review_store.submit(store, labels.Label(ref, bucket, who), reviewers_per_trace=2).state

        assert verdict("ana", "not_a_bug") == "waiting"
        assert verdict("ana", "not_a_bug") == "waiting"  # the same reviewer again: still one verdict
        assert verdict("ben", "new_failure") == "disagreement"
        with pytest.raises(review_store.AwaitingAdjudication):
            verdict("cy", "not_a_bug")  # a third reviewer cannot outvote: an admin decides
        assert review_store.queued_refs(store) == set()
        adjudicated = review_store.adjudicate(store, labels.Label("t_00", "not_a_bug", "admin"))
        assert adjudicated.state == "final" and review_store.queued_refs(store) == {"t_00"}
        assert review_store.disagreements(store) == []


def test_the_queue_comes_in_pages_and_the_apps_own_labels_need_no_reload(data_dir):
    paths = Paths(data_dir)
    refs = _warehouse(paths.warehouse, n=130)
    with review_store.opened(data_dir / "review" / "review.sqlite3") as store:
        made = reviewers.add(store, "alice", admin=True)
    app = create_app(paths, ReviewSettings(), embedder_factory=HashingEmbedder, snapshot_every_s=0.2)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        _sign_in(client, "alice", made.password)
        first = client.get(f"/queue?week={WEEK}").text
        assert "page 1 of 2" in first and first.count("<tr class=") == 100
        second = client.get(f"/queue?week={WEEK}&page=2").text
        assert second.count("<tr class=") == 30 and "page 2 of 2" in second
        live = app.state.review.live
        loaded = live.get()
        for ref in refs[:3]:
            assert client.post("/api/labels", headers={"Authorization": f"Bearer {made.token}"},
                               json={"trace_ref": ref, "bucket": "not_a_bug"}).json()["landed"] is True
        time.sleep(0.6)  # three snapshot ticks
        assert live.get() is loaded  # the labels were absorbed, not reloaded
        assert {r for r in refs[:3]} <= set(loaded.current)
        assert "3 of 130 reviewed this week" in client.get(f"/queue?week={WEEK}").text


# ---------------------------------------------------------------------------------------------
# Label suggestions and failure-mode clusters (label.suggestions, label.clusters)
# ---------------------------------------------------------------------------------------------

SUGGESTED = {"suggested_bucket": "known_failure", "suggested_code": "missed_escalation", "suggestion_confidence": 0.83,
             "suggested_expected_behaviour": "Hand over to a person", "suggested_criterion_type": "contains",
             "suggested_criterion_value": "hand you over"}
SUGGESTED_TEXT = "suggested: known failure missed_escalation (83%, from 12 labels)"
SUGGESTION_FIELDS = ("suggested_bucket", "suggested_code", "suggestion_confidence")


def _suggest(warehouse: Path, rows: dict[str, dict]) -> None:
    """label.suggestions as the loop writes it: one row per trace, t_05 and t_03 its most similar."""
    with connect(warehouse) as conn:
        suggestions.ensure_table(conn)
        for ref, row in rows.items():
            full = {k: None for k in suggestions.COLUMNS} | {
                "trace_ref": ref, "similar_refs": ["t_05", "t_03"], "similar_scores": [0.91, 0.87], "trained_on": 12,
                "model": "test", "created_at": dt.datetime(2026, 3, 9)} | row
            conn.execute(f"INSERT INTO label.suggestions ({', '.join(full)}) VALUES ({', '.join('?' for _ in full)})",
                         list(full.values()))


def _cluster(warehouse: Path, scope: str, cluster_id: int, refs: list[str], terms: list[str]) -> None:
    with connect(warehouse) as conn:
        unexplained.ensure_table(conn)
        conn.execute("INSERT INTO label.clusters VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [scope, cluster_id, len(refs), refs, terms, 0.25, dt.datetime(2026, 3, 9)])


def _hidden(page: str, names=SUGGESTION_FIELDS) -> dict:
    found = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page))
    return {k: html.unescape(v) for k, v in found.items() if k in names}


def _suggested_in_warehouse(warehouse: Path, ref: str) -> tuple:
    with connect(warehouse, read_only=True) as conn:
        return conn.execute("SELECT bucket, suggested_bucket, suggested_code, suggestion_confidence "
                            "FROM label.current_labels WHERE trace_ref = ?", [ref]).fetchone()


def test_the_trace_page_shows_the_suggestion_and_the_similar_labelled_traces(site, data_dir):
    make, refs, made = site
    _suggest(data_dir / "flywheel.duckdb", {refs[1]: SUGGESTED})
    client = make()
    _sign_in(client, "alice", made["alice"].password)
    page = client.get(f"/trace/{refs[1]}?week={WEEK}").text
    shown = re.search(r'<div class="suggestion" id="suggestion">.*?</div>', page, re.S).group(0)
    assert SUGGESTED_TEXT in shown
    assert "t_05" in shown and "0.91" in shown and "t_03" in shown and "0.87" in shown
    assert page.index('id="suggestion"') < page.index('<ol class="messages">')  # above the conversation
    # The accept button carries what `a` fills in; the keys overlay lists it.
    button = re.search(r'<button type="button" id="accept-suggestion"[^>]*>', shown, re.S).group(0)
    for attribute in ('data-bucket="known_failure"', 'data-code="missed_escalation"',
                      'data-expected="Hand over to a person"', 'data-criterion-type="contains"',
                      'data-criterion-value="hand you over"'):
        assert attribute in button
    assert re.search(r"<kbd>a</kbd></td><td>accept the suggestion", page)
    assert _hidden(page) == {"suggested_bucket": "known_failure", "suggested_code": "missed_escalation",
                             "suggestion_confidence": "0.83"}


def test_no_suggestion_no_accept_button(site, data_dir):
    make, refs, made = site
    _suggest(data_dir / "flywheel.duckdb", {refs[2]: {"suggestion_confidence": 0.41}})  # abstained
    client = make()
    _sign_in(client, "alice", made["alice"].password)
    abstained = client.get(f"/trace/{refs[2]}?week={WEEK}").text
    assert "no suggestion (best guess only 41% sure)" in abstained and "t_05" in abstained
    none = client.get(f"/trace/{refs[0]}?week={WEEK}").text
    assert 'id="suggestion"' not in none
    for page in (abstained, none):
        assert 'id="accept-suggestion"' not in page and _hidden(page) == {}


def test_a_label_given_on_the_trace_page_records_the_suggestion_on_screen(site, data_dir):
    make, refs, made = site
    warehouse = data_dir / "flywheel.duckdb"
    _suggest(warehouse, {refs[1]: SUGGESTED})
    client = make()
    csrf = _sign_in(client, "alice", made["alice"].password)
    shown = _hidden(client.get(f"/trace/{refs[1]}?week={WEEK}").text)
    assert shown  # what the page carries is what the form sends back
    done = client.post(f"/trace/{refs[1]}/label", data={"csrf_token": csrf, "week": WEEK, "bucket": "not_a_bug",
                                                        **shown}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/next"), done.text
    _wait_landed(client)
    # Declined, and recorded as such: the suggestion is on the label, the verdict differs.
    assert _suggested_in_warehouse(warehouse, refs[1]) == ("not_a_bug", "known_failure", "missed_escalation", 0.83)


def test_the_api_item_carries_the_suggestion_and_a_label_sends_it_back(site, data_dir):
    make, refs, made = site
    warehouse = data_dir / "flywheel.duckdb"
    _suggest(warehouse, {refs[0]: SUGGESTED})  # refs[0] is served first (its judge score is the most doubtful)
    client = make()
    body = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()
    assert body["trace_ref"] == refs[0]
    assert body["suggestion"] == {**SUGGESTED, "text": SUGGESTED_TEXT, "similar": [
        {"trace_ref": "t_05", "similarity": 0.91}, {"trace_ref": "t_03", "similarity": 0.87}]}
    echoed = {k: body["suggestion"][k] for k in SUGGESTION_FIELDS}
    posted = client.post("/api/labels", headers=_bearer(made, "alice"), json={"trace_ref": refs[0], **KNOWN, **echoed})
    assert posted.status_code == 201, posted.text
    _wait_landed(client)
    assert _suggested_in_warehouse(warehouse, refs[0]) == ("known_failure", "known_failure", "missed_escalation", 0.83)
    after = client.get(f"/api/queue/next?week={WEEK}", headers=_bearer(made, "alice")).json()
    assert after["trace_ref"] != refs[0] and after["suggestion"] is None


def test_the_clusters_page_lists_the_weeks_stored_clusters(site, data_dir):
    make, refs, made = site
    warehouse = data_dir / "flywheel.duckdb"
    _cluster(warehouse, f"week:{WEEK}", 0, [refs[1], refs[3], refs[5]], ["sso", "login", "loop"])
    _cluster(warehouse, f"week:{WEEK}", 1, [refs[0], refs[2], refs[4]], ["refund", "order"])
    _cluster(warehouse, "week:2026-02-23", 0, [refs[0], refs[1], refs[2]], ["another_week"])
    client = make()
    assert client.post("/api/labels", headers=_bearer(made, "alice"),
                       json={"trace_ref": refs[1], "bucket": "not_a_bug"}).status_code == 201
    _sign_in(client, "alice", made["alice"].password)
    assert 'href="/clusters"' in client.get(f"/queue?week={WEEK}").text
    page = client.get(f"/clusters?week={WEEK}").text
    assert "sso, login, loop" in page and "refund, order" in page and "25%" in page
    assert "another_week" not in page
    links = [html.unescape(h) for h in re.findall(r'href="(/trace/[^"]+)"', page)]
    # The first member nobody has labelled yet (refs[1] is labelled), with the cluster carried along.
    assert links == [f"/trace/{refs[3]}?week={WEEK}&cluster=week%3A{WEEK}%2F0",
                     f"/trace/{refs[0]}?week={WEEK}&cluster=week%3A{WEEK}%2F1"]
    empty = client.get("/clusters?week=2026-02-16").text
    assert "flywheel clusters --week 2026-02-16" in empty and "label/clusters" in empty


def test_a_new_failure_mode_opened_on_a_cluster_offers_its_members_as_siblings(site, data_dir):
    make, refs, made = site
    warehouse = data_dir / "flywheel.duckdb"
    # Cluster order, not similarity: refs[4] (a refund question) comes before refs[3] (SSO, like refs[1]).
    _cluster(warehouse, f"week:{WEEK}", 4, [refs[1], refs[4], refs[3], refs[0], refs[2]], ["sso"])
    client = make()
    review = client.app.state.review
    review.siblings = lambda *a, **k: pytest.fail("cluster mode needs no embedding search")
    assert client.post("/api/labels", headers=_bearer(made, "alice"),
                       json={"trace_ref": refs[0], "bucket": "not_a_bug"}).status_code == 201  # labelled already
    review.open("bob", refs[2])  # held by someone else
    csrf = _sign_in(client, "alice", made["alice"].password)
    link = html.unescape(re.search(r'href="(/trace/[^"]+)"', client.get(f"/clusters?week={WEEK}").text).group(1))
    assert link.startswith(f"/trace/{refs[1]}?")
    page = client.get(link).text
    assert 'id="cluster-note"' in page
    cluster = _hidden(page, ("cluster",))
    assert cluster == {"cluster": f"week:{WEEK}/4"}
    new = {"csrf_token": csrf, "week": WEEK, "bucket": "new_failure", "new_code": "sso_login_loop",
           "new_code_name": "SSO login loop", "new_code_definition": "SSO users are sent back to the sign-in "
           "page. The user says they are stuck in a loop.", "expected_behaviour": "Escalate SSO loops",
           "criterion_type": "contains", "criterion_value": "escalat", **cluster}
    done = client.post(f"/trace/{refs[1]}/label", data=new, follow_redirects=False)
    assert done.status_code == 303 and "/siblings" in done.headers["location"]
    siblings = client.get(done.headers["location"]).text
    assert re.findall(r'name="decision_([^"]+)"', siblings) == [refs[4], refs[3]]
    assert "in the same cluster" in siblings
    client.post(f"/trace/{refs[1]}/siblings", data={"csrf_token": csrf, "week": WEEK, f"decision_{refs[4]}": "accept",
                                                    f"decision_{refs[3]}": "reject"})
    _wait_landed(client)
    current = {r[0]: r for r in _current(warehouse)}
    assert current[refs[1]][1:3] == ("new_failure", "sso_login_loop")
    assert current[refs[4]][1:] == ("known_failure", "sso_login_loop", "alice", "sibling")
    assert refs[3] not in current and refs[2] not in current


def test_placeholders_marked_not_personal_become_keep_term_proposals(site, data_dir):
    make, refs, made = site
    client = make()
    odd = refs[1]  # its user message shows [ACCOUNT_ID_1]
    wrong = client.post("/api/labels", headers=_bearer(made, "bob"),
                        json={"trace_ref": odd, "bucket": "not_a_bug", "not_personal": "[PERSON_4]"})
    assert wrong.status_code == 422 and "not_personal" in wrong.text and "[PERSON_4]" in wrong.text
    posted = client.post("/api/labels", headers=_bearer(made, "bob"),
                         json={"trace_ref": odd, "bucket": "not_a_bug", "not_personal": "[ACCOUNT_ID_1]"})
    assert posted.status_code == 201, posted.text
    _wait_landed(client)
    with connect(data_dir / "flywheel.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT trace_ref, placeholder, reviewer FROM scrub.keep_proposals").fetchall() == [
            (odd, "[ACCOUNT_ID_1]", "bob")]
