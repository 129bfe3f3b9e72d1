"""The review app as reviewers meet it: a week sampled and scrubbed by the CLI, `flywheel users add`,
`flywheel serve`, and headless Debian Chromium through Playwright. Keyboard alone: sign in, label a
known failure (after a regex that does not compile is refused), a new failure with two siblings
accepted, and a not-a-bug; the progress moves; after `flywheel fold-in` the eval set page lists the new
rows linked to their labels. Two reviewers signed in at once are never served the same trace.
Screenshots go to build/review-screenshots/ (or $FLYWHEEL_UI_SCREENSHOTS).

Skipped without Chromium or Playwright, except under CI (FLYWHEEL_REQUIRE_BROWSER=1), where it fails."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from flywheel.core.common.db import connect
from flywheel_tests.test_ui import CHROMIUM, CHROMIUM_FLAGS, _browser_or_skip, _free_port

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WEEK = "2026-03-02"
SHOTS = Path(os.environ.get("FLYWHEEL_UI_SCREENSHOTS", REPO / "build" / "ui-screenshots")).parent / "review-screenshots"


def _flywheel(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "flywheel"), *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"flywheel {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def _credentials(output: str) -> tuple[str, str]:
    return (re.search(r"password:\s+(\S+)", output).group(1), re.search(r"API token:\s+(\S+)", output).group(1))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A data directory with one scrubbed week (real scrubber, as `flywheel run` does it), two
    reviewers, and `flywheel serve` on a free loopback port."""
    sync_playwright = _browser_or_skip()
    root = tmp_path_factory.mktemp("review-browser")
    data = root / "data"
    env = {**os.environ, "FLYWHEEL_DATA": str(data), "DAGSTER_HOME": str(data / "dagster")}
    _flywheel(env, "demo", "generate", "--out", str(root / "gen"), "--weeks", "1", "--traces-per-day", "30")
    _flywheel(env, "ingest", str(root / "gen" / "traces"))
    (data / "reference").mkdir(parents=True, exist_ok=True)
    (data / "reference" / "customer_vocabulary.csv").write_bytes((root / "gen" / "customer_vocabulary.csv").read_bytes())
    _flywheel(env, "evalset", "import", str(root / "gen" / "starter_eval_set.csv"))
    _flywheel(env, "run", "--week", WEEK)
    alice = _credentials(_flywheel(env, "users", "add", "alice", "--admin"))
    bob = _credentials(_flywheel(env, "users", "add", "bob"))
    port = _free_port()
    log = open(root / "serve.log", "wb")
    server = subprocess.Popen([str(BIN / "flywheel"), "serve", "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/api/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, (root / "serve.log").read_text()
            time.sleep(0.3)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            yield {"base": base, "env": env, "data": data, "browser": browser, "alice": alice, "bob": bob,
                   "log": root / "serve.log", "pid": server.pid}
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


# Pages by their path alone: a glob such as "**/queue**" also matches the sign-in page's
# "/login?next=/queue", which is how a sign-in that failed once passed for one that worked.
QUEUE = re.compile(r"^[^?]*/queue(\?|$)")
TRACE = re.compile(r"^[^?]*/trace/[^/?]+(\?|$)")
SIBLINGS = re.compile(r"^[^?]*/trace/[^/?]+/siblings(\?|$)")


def _on_trace(page, timeout: float = 30_000) -> None:
    """On a trace page with its keyboard script running (it marks the form with the chosen bucket)."""
    page.wait_for_url(TRACE, timeout=timeout)
    page.wait_for_selector("#label-form[data-bucket]", state="attached")


def _sign_in(browser, base: str, name: str, password: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(base + "/")
    page.wait_for_selector("input[name=name]:focus")  # typed keys go nowhere before the autofocus
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(QUEUE)
    return context, page


def _reviewed(page) -> int:
    return int(re.match(r"(\d+) of \d+ reviewed this week", page.locator("#progress-text").inner_text()).group(1))


def _submit_and_wait(page, url: str) -> None:
    page.keyboard.press("Enter")
    page.wait_for_url(lambda u: u != url, timeout=60_000)


@contextlib.contextmanager
def _server_shown_on_failure(served):
    """A step that fails (a page that never came) fails with what the server was doing: its log, and
    every thread's stack, which `flywheel serve` prints on SIGUSR1."""
    try:
        yield
    except Exception as exc:
        with contextlib.suppress(ProcessLookupError):
            os.kill(served["pid"], signal.SIGUSR1)
        time.sleep(2)
        log = served["log"].read_text(errors="replace")
        raise AssertionError(f"{exc}\n--- flywheel serve's log, with its threads' stacks at the failure:\n"
                             f"{log[-20_000:]}") from exc


def _ref(page) -> str:
    return re.search(r"/trace/([^/?]+)", page.url).group(1)


def test_a_reviewer_labels_by_keyboard_alone_and_finds_the_rows_after_fold_in(served):
    with _server_shown_on_failure(served):
        _label_by_keyboard_then_fold_in(served)


def _label_by_keyboard_then_fold_in(served) -> None:
    base, browser = served["base"], served["browser"]
    context, page = _sign_in(browser, base, "alice", served["alice"][0])
    before = _reviewed(page)
    page.screenshot(path=str(SHOTS / "1-queue.png"))
    page.keyboard.press("Enter")  # the next trace
    _on_trace(page)
    page.keyboard.press("?")
    assert page.locator("#keys").is_visible()
    page.screenshot(path=str(SHOTS / "2-keys.png"))
    page.keyboard.press("?")

    # 1. A known failure: k, the first code, expected behaviour, and a regex criterion.
    known = _ref(page)
    page.keyboard.press("k")
    page.keyboard.press("1")
    page.keyboard.type("Quote the 30-day refund window")
    page.keyboard.press("Tab")
    page.keyboard.press("r")  # the criterion list: regex
    page.keyboard.press("Tab")
    page.keyboard.type("(")
    page.wait_for_function("document.getElementById('criterion-check').textContent.includes('invalid regex')")
    url = page.url
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    assert page.url == url  # refused before submit
    page.screenshot(path=str(SHOTS / "3-invalid-regex.png"))
    page.keyboard.press("Backspace")
    page.keyboard.type("30[- ]days?")
    page.wait_for_function("document.getElementById('criterion-check').textContent === ''")
    _submit_and_wait(page, url)

    # 2. A new failure mode, then two of its siblings accepted and the rest rejected.
    _on_trace(page)
    new = _ref(page)
    page.keyboard.press("n")
    for text in ("export_limit_hidden", "Export limit hidden",
                 "The assistant does not say that exports are capped. The user later finds rows missing."):
        page.keyboard.type(text)
        page.keyboard.press("Tab")
    page.keyboard.type("State the export limit")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("limit")
    page.screenshot(path=str(SHOTS / "4-new-failure.png"))
    page.keyboard.press("Enter")
    page.wait_for_url(SIBLINGS, timeout=120_000)
    cards = page.locator(".sibling")
    assert 3 <= cards.count() <= 5
    siblings = [cards.nth(i).get_attribute("data-ref") for i in range(cards.count())]
    page.keyboard.press("a")
    page.keyboard.press("a")
    for _ in siblings[2:]:
        page.keyboard.press("r")
    page.screenshot(path=str(SHOTS / "5-siblings.png"))
    _submit_and_wait(page, page.url)

    # 3. Not a bug: o, Enter.
    _on_trace(page)
    not_a_bug = _ref(page)
    page.keyboard.press("o")
    _submit_and_wait(page, page.url)

    page.goto(f"{base}/queue?week={WEEK}")
    assert _reviewed(page) == before + 5
    page.screenshot(path=str(SHOTS / "6-progress.png"), full_page=True)
    with connect(served["data"] / "flywheel.duckdb", read_only=True) as conn:
        current = dict(conn.execute("SELECT trace_ref, bucket || ':' || coalesce(taxonomy_code, '') || ':' || reviewer "
                                    "FROM label.current_labels").fetchall())
    assert current[known].startswith("known_failure:") and current[known].endswith(":alice")
    assert current[new] == "new_failure:export_limit_hidden:alice"
    assert current[siblings[0]] == current[siblings[1]] == "known_failure:export_limit_hidden:alice"
    assert not set(siblings[2:]) & set(current)
    assert current[not_a_bug] == "not_a_bug::alice"

    _flywheel(served["env"], "fold-in")
    deadline = time.monotonic() + 30
    while True:  # the app reloads its snapshot of the warehouse within seconds of a change
        page.goto(f"{base}/evalset")
        if page.locator(f"a[href='/trace/{new}']").count():
            break
        assert time.monotonic() < deadline, "the folded-in rows never showed on the eval set page"
        page.wait_for_timeout(500)
    for ref in (known, siblings[0], siblings[1]):
        assert page.locator(f"a[href='/trace/{ref}']").count() == 1
    page.screenshot(path=str(SHOTS / "7-evalset.png"), full_page=True)
    assert page.errors == []
    context.close()


def test_two_reviewers_signed_in_at_once_never_get_the_same_trace(served):
    base, browser = served["base"], served["browser"]
    (ca, alice), (cb, bob) = (_sign_in(browser, base, "alice", served["alice"][0]),
                              _sign_in(browser, base, "bob", served["bob"][0]))
    for page in (alice, bob):  # both open a trace before either labels: each holds one
        page.goto(f"{base}/next?week={WEEK}")
        _on_trace(page)
    seen = {"alice": [_ref(alice)], "bob": [_ref(bob)]}
    bob.screenshot(path=str(SHOTS / "8-second-reviewer.png"))
    for _ in range(3):
        for name, page in (("alice", alice), ("bob", bob)):
            page.keyboard.press("o")
            _submit_and_wait(page, page.url)
            _on_trace(page)
            seen[name].append(_ref(page))
    assert not set(seen["alice"]) & set(seen["bob"]), seen
    assert len(set(seen["alice"])) == len(seen["alice"]) == 4
    ca.close()
    cb.close()


def test_posts_without_a_csrf_token_or_a_session_are_refused(served):
    base, browser = served["base"], served["browser"]
    context, page = _sign_in(browser, base, "bob", served["bob"][0])
    page.goto(f"{base}/next?week={WEEK}")
    _on_trace(page)
    ref = _ref(page)
    form = {"bucket": "not_a_bug", "week": WEEK}
    no_token = context.request.post(f"{base}/trace/{ref}/label", form=form, max_redirects=0)
    assert no_token.status == 403
    anonymous = browser.new_context().request.post(f"{base}/trace/{ref}/label", form=form, max_redirects=0)
    assert anonymous.status == 303 and "/login" in anonymous.headers["location"]
    api = browser.new_context().request.post(f"{base}/api/labels", data={"trace_ref": ref, "bucket": "not_a_bug"})
    assert api.status == 401
    with connect(served["data"] / "flywheel.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM label.labels WHERE trace_ref = ?", [ref]).fetchone()[0] == 0
    context.close()


def test_an_answer_about_the_field_before_the_last_keystroke_never_holds_back_the_enter(served):
    """The criterion is checked by the server as the reviewer types. Its answer about the field as it
    was before the last keystroke ("a contains criterion needs a value", asked when `n` was pressed)
    may arrive after that keystroke and before the next question leaves, 150 ms later: it must not
    mark the field invalid again, or the browser silently refuses the Enter (the new failure never
    submitted; under load this is how the keyboard test once waited two minutes). The page's clock is
    paused and the first answer held, so the order is the same on every run."""
    base, browser = served["base"], served["browser"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.clock.install()
    held = []
    page.route("**/api/criterion?*", lambda route: held.append(route))
    page.goto(base + "/")
    page.wait_for_selector("input[name=name]:focus")
    page.keyboard.type("bob")
    page.keyboard.press("Tab")
    page.keyboard.type(served["bob"][0])
    page.keyboard.press("Enter")
    page.wait_for_url(QUEUE)
    page.goto(f"{base}/next?week={WEEK}")
    _on_trace(page)
    page.clock.pause_at(dt.datetime.now() + dt.timedelta(hours=1))
    page.keyboard.press("n")
    page.clock.run_for(200)  # the question about the empty field leaves
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "the criterion was never checked"
        page.wait_for_timeout(50)
    for text in ("stale_answer_probe", "Stale answer probe", "The field is marked invalid by a stale answer. The Enter does nothing."):
        page.keyboard.type(text)
        page.keyboard.press("Tab")
    page.keyboard.type("State it")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("limit")  # the next question waits 150 ms on the paused clock
    asked = urllib.parse.parse_qs(urllib.parse.urlsplit(held[0].request.url).query, keep_blank_values=True)
    assert asked["value"] == [""]
    with page.expect_response("**/api/criterion?*") as answer:
        held.pop(0).continue_()
    assert answer.value.json()["ok"] is False  # the stale answer: the field was empty when asked
    page.wait_for_timeout(300)  # its handler has run
    assert page.evaluate("document.getElementById('criterion_value').validity.valid")
    assert page.locator("#criterion-check").inner_text() == ""
    page.keyboard.press("Enter")
    page.wait_for_url(SIBLINGS, timeout=60_000)
    page.unroute_all(behavior="ignoreErrors")
    context.close()
