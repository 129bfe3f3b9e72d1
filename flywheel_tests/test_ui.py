"""The UI as a user meets it: `dagster dev` on 127.0.0.1 (what `make ui` runs) over a data directory
with a few runs, driven by headless Debian Chromium through Playwright. Screenshots go to
build/ui-screenshots/ (or $FLYWHEEL_UI_SCREENSHOTS).

Skipped when Chromium or Playwright is missing, unless FLYWHEEL_REQUIRE_BROWSER=1 (set by .ci/run,
which installs both), so CI can never skip it silently."""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flywheel.core.evalset import versions as evalset
from flywheel.core.evalset import regression
from flywheel.core.common.db import connect

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("FLYWHEEL_CHROMIUM", "/usr/bin/chromium")
# As root, on a machine with no network: no sandbox, no background calls home.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
STATION_GROUPS = ["intake", "station_1_sample", "station_2_scrub", "station_3_label", "station_4_evalset",
                  "station_5_drift"]
STATION_ASSETS = ["sampled_traces", "anonymized_traces", "review_queue", "eval_rows", "pass_rates", "scores"]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [what for what, ok in (("playwright", sync_playwright), ("chromium", Path(CHROMIUM).exists())) if not ok]
    if missing:
        message = f"{' and '.join(missing)} not installed (apt-get install chromium; pip install playwright)"
        if os.environ.get("FLYWHEEL_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UI_WEEKS = 4  # March: one new eval version a week, each run by the build in production


def _loop_runs(data_dir: Path) -> None:
    """Four weeks of the demo's loop on the fake scrubber and embedder, recorded in the instance as
    `make demo` records them: weekly loop, review, fold-in, regression, pass_rates_job. Before that the
    next build ran version 1 once, so the pass-rate chart has another build's line too; the build in
    production stays under the 90% gate, so every pass_rates_job run has a failed gate check."""
    from flywheel.core.common import clock
    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import run_job
    from flywheel.demo import model
    from flywheel.demo.generator import DEFAULT_START, write_demo
    from flywheel.demo.replay import Replay
    from flywheel.resources.embedder import FakeEmbedderResource
    from flywheel.resources.scrubber import FakeScrubberResource
    from flywheel.settings import Paths

    paths = Paths(str(data_dir))
    demo = write_demo(data_dir.parent / "generated", weeks=UI_WEEKS, traces_per_day=40, seed=5)
    # Version 1 dates from the first Monday, as in `flywheel demo run`: the replay's regressions run
    # the versions that existed on their (pinned) day.
    with clock.pinned_at(dt.datetime.combine(DEFAULT_START, dt.time(9))), connect(paths.warehouse) as conn:
        evalset.import_starter(conn, demo.eval_set_file)
        regression.run_regression(conn, model.LATEST.reply, model_version=model.LATEST.version,
                                  rubric_judge=model.rubric_judge)
    defs = build_definitions(str(data_dir), scrubber=FakeScrubberResource(), embedder=FakeEmbedderResource())
    run_job(defs, "taxonomy_job", paths)
    replay = Replay(paths, defs, demo)
    for week in range(UI_WEEKS):
        replay.run_week(DEFAULT_START + dt.timedelta(weeks=week))


def _pass_rates_job_runs() -> list:
    """The instance's pass_rates_job runs (DAGSTER_HOME is the test's data directory)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        return instance.get_runs(filters=dg.RunsFilter(job_name="pass_rates_job"))


@pytest.fixture
def ui(data_dir):
    _loop_runs(data_dir)
    port = _free_port()
    env = {**os.environ, "FLYWHEEL_DATA": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster")}
    dagster = Path(sys.executable).with_name("dagster")
    log = open(data_dir / "dagster-dev.log", "wb")
    server = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/server_info", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dagster dev did not come up: {(data_dir / 'dagster-dev.log').read_text()[-3000:]}")
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # dagster dev runs the webserver and the daemon as children
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


PER_VERSION_COLUMNS = ["version", "model", "gate", "n", "pass rate", "adv n", "adv pass rate", "shared n",
                       "shared before", "shared now"]


def test_asset_graph_asset_page_checks_and_runs_in_a_real_browser(ui):
    sync_playwright = _browser_or_skip()
    shots = Path(os.environ.get("FLYWHEEL_UI_SCREENSHOTS", REPO / "build" / "ui-screenshots"))
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    runs = _pass_rates_job_runs()
    assert len(runs) == UI_WEEKS and all(r.status.value == "SUCCESS" for r in runs), "a failed gate fails no run"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})

        def visit(path: str, shot: str, expect: list[str]) -> str:
            page.goto(ui + path, wait_until="networkidle", timeout=90_000)
            for text in expect:  # the UI renders after its GraphQL answers: wait for each text
                page.get_by_text(text, exact=False).first.wait_for(timeout=60_000)
            page.screenshot(path=str(shots / f"{shot}.png"))
            return page.inner_text("body")

        page.goto(ui + "/asset-groups", wait_until="networkidle", timeout=90_000)
        skip = page.get_by_role("button", name="Skip")  # Dagster's first-visit "join the community" dialog
        try:
            skip.wait_for(timeout=10_000)
            skip.click()
        except Exception:  # noqa: BLE001 - no dialog this time is fine
            pass
        lineage = visit("/asset-groups", "1-global-lineage", STATION_GROUPS)
        assert all(g in lineage for g in STATION_GROUPS)
        group = visit("/locations/flywheel/asset-groups/station_1_sample/lineage", "2-station-1-lineage",
                      ["sampled_traces", "anonymized_traces"])
        assert "traces" in group and "scrub_report" in group, "the station's upstream and downstream are drawn"
        catalog = visit("/assets", "3-catalog", STATION_ASSETS)
        assert all(a in catalog for a in STATION_ASSETS)
        asset = visit("/assets/regression/pass_rates", "4-pass-rates", ["Pass rate and n per eval version"])
        assert "station_4_evalset" in asset and "Checks" in asset
        _pass_rates_chart_table_and_time_plot(page, shots)
        checks = visit("/assets/regression/pass_rates?view=checks", "5-pass-rates-checks", ["gate_passes", "Failed"])
        assert "non-blocking" in checks, "the gate is red, and says it does not stop the run"
        runs_page = visit("/runs", "6-runs", ["weekly_loop_job"])
        assert "pass_rates_job" in runs_page and "taxonomy_job" in runs_page
        gate_runs = visit("/runs?q%5B0%5D=job%3Apass_rates_job", "7-pass-rates-job-runs", ["Job is", "Success"])
        assert "Failure" not in gate_runs and gate_runs.count("Success") == UI_WEEKS
        browser.close()
    assert len(list(shots.glob("*.png"))) == 10
    print(f"screenshots in {shots}")


def _pass_rates_chart_table_and_time_plot(page, shots: Path) -> None:
    """On the asset's overview, without a click: the chart of pass rate against eval version (an
    image that decoded), the per-version table; then Dagster's own plot over time, one toggle away."""
    chart = page.locator("img[alt^='pass rate by eval version']")
    chart.wait_for(state="visible", timeout=60_000)
    assert chart.get_attribute("alt") == f"pass rate by eval version v1-v{UI_WEEKS + 1}"
    assert chart.evaluate("img => img.complete && img.naturalWidth >= 400"), "the SVG decoded and shows"
    chart.screenshot(path=str(shots / "4a-pass-rate-chart.png"))
    table = page.locator("table", has=page.locator("th", has_text="adv pass rate")).last  # the inner table
    headers = table.locator("th").all_inner_texts()
    assert headers == PER_VERSION_COLUMNS
    rows = [row.split("\t") for row in table.locator("tbody tr").all_inner_texts()]
    assert [r[0].strip() for r in rows][:2] == [str(UI_WEEKS + 1), str(UI_WEEKS)], "newest version first"
    assert len(rows) == UI_WEEKS + 2, "every version under the build in production, and v1 under the next one"
    assert rows[0][2].strip() == "FAIL"
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "4b-pass-rates-table.png"))
    page.get_by_role("button", name="Plots").click()
    page.get_by_text("latest_version_pass_rate").first.wait_for(timeout=60_000)
    page.locator("canvas").first.wait_for(state="visible", timeout=60_000)
    page.screenshot(path=str(shots / "4c-pass-rates-plots-over-time.png"))
