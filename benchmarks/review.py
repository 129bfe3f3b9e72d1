"""Latency of the review web app (`flywheel serve`) on a 10,000-trace week, measured through real HTTP.

A warehouse is made here with SQL in a temporary data directory: one week (2026-03-02) of 10,000
scrubbed traces in scrub.anonymized_traces (2-6 support-chat messages each, with the scrubber's
placeholders), their scrub.scrub_report, the seed taxonomy, 2,000 labels already in label.labels and a
50-row starter eval set. A reviewer is made with `flywheel users add`, the real server is started with
`flywheel serve` in its own process, and this script signs in as a browser would (session cookie and
CSRF token) and as a script would (bearer token).

Measured once the server is idle (at start it loads the embedding model in the background), after a
few warm-up requests: N sequential requests per route (default 200; a route that is slow stops after
--budget seconds, 20 requests at least, and the table gives the count), as p50, p95 and max in ms until
the whole body has arrived:

* the pages: /queue (the whole week), /queue filtered (unreviewed, one cohort), /trace/<ref> (a
  different trace each time), /taxonomy, /evalset, /residue, /agreement, and /api/health;
* the API writes, without a target: GET /api/queue/next (reserves the next trace) and POST /api/labels
  (labels that trace not_a_bug; it waits up to 2 s for the label to land in the warehouse);
* one in-process `flywheel.web.snapshot.load` of the warehouse (what the server does at start and
  whenever the warehouse changes), before the server starts.

Target: p95 under 150 ms for every read route (the pages and /api/health).

    .venv/bin/python benchmarks/review.py [--requests 200] [--writes N] [--budget 20] [--traces 10000]
                                          [--labels 2000] [--warmup 5] [--loads 3]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TARGET_MS = 150.0
WEEK = "2026-03-02"
from served import add_reviewer, serve, stop, wait_until_idle  # noqa: E402 - benchmarks/ is the script's folder

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
TAXONOMY_SEED = REPO / "data" / "reference" / "taxonomy.yaml"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

USER_LINES = [
    "Hi, this is [PERSON_1] from [ORGANIZATION_1]. I was charged twice this month, can I get the second one back?",
    "My login is [EMAIL_ADDRESS_1] and the password reset link never arrives, I tried three times today.",
    "Please call me on [PHONE_NUMBER_1], the whole office in [LOCATION_1] is locked out of the workspace.",
    "Can you move the admin rights from [PERSON_2] to me? They left last week and nobody can approve invoices.",
    "The CSV export keeps timing out for account [ACCOUNT_ID_1]. Is there a limit on the number of rows?",
    "I want to talk to a human please. This is the third time I explain the same problem to the bot.",
]
ASSISTANT_LINES = [
    "Thanks [PERSON_1], I see two charges on [DATE_TIME_1]. Refunds follow the 30-day pro-rata rule.",
    "Sorry about that. I sent a new link to [EMAIL_ADDRESS_1]; it is valid for 24 hours, check spam too.",
    "I understand this blocks you. A support agent will call you back at [PHONE_NUMBER_1] within the hour.",
    "Ownership changes need the current owner to confirm. I sent a request to [EMAIL_ADDRESS_2] for you.",
    "Exports are capped at 100,000 rows per file. Split the export by date range under Settings > Data.",
    "Of course. I am handing this conversation to a colleague now; you keep your place in the queue.",
]
INTENTS = ["billing", "password_reset", "account_access", "data_export", "ticket_triage", "escalation_handoff",
           "troubleshooting"]
COHORTS = ["smb", "enterprise", "education"]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def build_warehouse(warehouse: Path, tmp: Path, traces: int, labelled: int) -> list[str]:
    """The warehouse the app reads; returns the trace refs."""
    from flywheel.core.common.db import connect
    from flywheel.core.evalset import versions
    from flywheel.core.labeling import labels, taxonomy

    reasons = ("CASE h % 10 WHEN 0 THEN ['guardrail_tripped'] WHEN 1 THEN ['borderline_judge', 'retried'] "
               "WHEN 2 THEN ['handed_off'] WHEN 3 THEN ['borderline_judge'] WHEN 4 THEN ['rare_intent'] "
               "WHEN 5 THEN ['long_conversation'] ELSE ['random'] END")
    modes = ("CASE h % 10 WHEN 0 THEN ['anomaly'] WHEN 1 THEN ['stratified', 'anomaly'] WHEN 2 THEN ['anomaly'] "
             "WHEN 3 THEN ['stratified'] WHEN 4 THEN ['stratified'] WHEN 5 THEN ['stratified'] ELSE ['random'] END")
    n_user, n_bot = len(USER_LINES), len(ASSISTANT_LINES)
    with connect(warehouse) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
        conn.execute(f"""
            CREATE TABLE scrub.anonymized_traces AS
            WITH base AS (
              SELECT i, hash(i) AS h, hash(i + 1000003) AS h2, 2 + (hash(i + 77) % 5)::INTEGER AS n_msgs
              FROM range({traces}) r(i)
            )
            SELECT TIMESTAMP '{WEEK}' AS week_start,
                   md5('bench-trace-' || i) AS trace_ref,
                   {reasons}::VARCHAR[] AS reasons,
                   {modes}::VARCHAR[] AS modes,
                   ((h2 % 1000) / 1000.0)::DOUBLE AS judge_score,
                   (1 + (h2 % 40) / 4.0)::DOUBLE AS weight,
                   {_sql_list(INTENTS)}[1 + (h % {len(INTENTS)})::INTEGER] AS intent,
                   {_sql_list(COHORTS)}[1 + (h2 % {len(COHORTS)})::INTEGER] AS cohort,
                   n_msgs::BIGINT AS turns,
                   TIMESTAMP '{WEEK}' + to_seconds((h2 % 604800)::BIGINT) AS timestamp,
                   list_transform(range(n_msgs), lambda j: {{
                     'role': CASE WHEN j % 2 = 0 THEN 'user' ELSE 'assistant' END,
                     'content': CASE WHEN j % 2 = 0
                                THEN {_sql_list(USER_LINES)}[1 + ((h + j) % {n_user})::INTEGER]
                                ELSE {_sql_list(ASSISTANT_LINES)}[1 + ((h + j) % {n_bot})::INTEGER] END
                   }})::STRUCT(role VARCHAR, content VARCHAR)[] AS messages,
                   'bench-scrubber-1' AS scrubber_version
            FROM base ORDER BY i""")
        conn.execute("""
            CREATE TABLE scrub.scrub_report AS
            SELECT week_start, trace_ref, scrubber_version,
                   list_filter([{'entity_type': 'PERSON', 'layer': 'ner', 'n': (h % 3)::BIGINT},
                                {'entity_type': 'EMAIL_ADDRESS', 'layer': 'regex', 'n': (h % 2)::BIGINT},
                                {'entity_type': 'PHONE_NUMBER', 'layer': 'regex', 'n': (h % 4 = 0)::BIGINT},
                                {'entity_type': 'LOCATION', 'layer': 'ner', 'n': (h % 5 = 0)::BIGINT}],
                               lambda c: c.n > 0)::STRUCT(entity_type VARCHAR, layer VARCHAR, n BIGINT)[]
                     AS entity_counts
            FROM (SELECT *, hash(trace_ref) AS h FROM scrub.anonymized_traces)""")
        taxonomy.seed(conn, taxonomy.load_seed(TAXONOMY_SEED))
        codes = sorted(taxonomy.codes(conn))
        labels.ensure_tables(conn)
        # Every (traces // labelled)-th trace is labelled: mostly not_a_bug, one in four a known failure.
        step = max(1, traces // max(1, labelled))
        conn.execute(f"""
            INSERT INTO label.labels ({', '.join(labels.COLUMNS)})
            SELECT md5('bench-label-' || i), md5('bench-trace-' || i),
                   CASE WHEN i % 4 = 0 THEN 'known_failure' ELSE 'not_a_bug' END,
                   CASE WHEN i % 4 = 0 THEN {_sql_list(codes)}[1 + (i // 4) % {len(codes)}] END,
                   CASE WHEN i % 4 = 0 THEN 'Quote the 30-day pro-rata refund rule.' END,
                   CASE WHEN i % 4 = 0 THEN 'contains' END,
                   CASE WHEN i % 4 = 0 THEN '30 days' END,
                   false, true, NULL, NULL,
                   CASE WHEN i % 3 = 0 THEN 'alice' ELSE 'bob' END,
                   TIMESTAMP '2026-03-09' + to_seconds(i), 'review'
            FROM range(0, {traces}, {step}) r(i) LIMIT {labelled}""")
        starter = tmp / "starter.csv"
        starter.write_text("input,expected\n" + "".join(f"question {i},answer {i}\n" for i in range(50)))
        versions.import_starter(conn, starter)
        conn.execute("CHECKPOINT")
        refs = [r[0] for r in conn.execute("SELECT trace_ref FROM scrub.anonymized_traces ORDER BY 1").fetchall()]
    return refs


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def timed(client: httpx.Client, method: str, url: str, **kwargs) -> tuple[float, httpx.Response]:
    t = time.perf_counter()
    response = client.request(method, url, **kwargs)
    _ = response.content
    return (time.perf_counter() - t) * 1000, response


def measure_reads(client: httpx.Client, routes: list[tuple[str, object]], n: int, warmup: int,
                  budget_s: float) -> list[dict]:
    """`n` timed GETs per route, or as many as fit in `budget_s` (never fewer than 20)."""
    out = []
    for name, url in routes:
        urls = url if callable(url) else (lambda i, u=url: u)
        for i in range(warmup):
            client.get(urls(-1 - i))
        times, bad, size = [], 0, 0
        started = time.perf_counter()
        for i in range(n):
            if i >= 20 and time.perf_counter() - started > budget_s:
                break
            ms, response = timed(client, "GET", urls(i))
            times.append(ms)
            size = max(size, len(response.content))
            bad += response.status_code != 200
        out.append({"name": name, "times": times, "bad": bad, "kb": size / 1024})
    return out


def report(rows: list[dict], target: float | None) -> bool:
    met = True
    print(f"  {'route':<50} {'n':>4} {'p50':>7} {'p95':>7} {'max':>7} {'body':>8}")
    for row in rows:
        t = row["times"]
        p95 = pct(t, 0.95)
        verdict = ""
        if target is not None:
            ok = p95 < target and not row["bad"]
            met &= ok
            verdict = "PASS" if ok else "MISS"
        body = f"{row['kb']:6.0f}KB" if row.get("kb") is not None else ""
        errors = f"  {row['bad']} non-2xx answers" if row["bad"] else ""
        print(f"  {row['name']:<50} {len(t):4d} {statistics.median(t):7.1f} {p95:7.1f} {max(t):7.1f} {body:>8}  "
              f"{verdict}{errors}".rstrip())
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="Timed requests per route.")
    parser.add_argument("--writes", type=int, default=None,
                        help="Timed queue/next + label pairs (default: --requests).")
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--labels", type=int, default=2_000, help="Labels already in label.labels.")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed requests per route first.")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="Seconds per route at most: a slow route stops early (after 20 requests at least); "
                        "the table gives the count.")
    parser.add_argument("--loads", type=int, default=3, help="In-process snapshot loads timed.")
    args = parser.parse_args()
    writes = args.requests if args.writes is None else args.writes

    tmp = Path(tempfile.mkdtemp(prefix="flywheel-review-bench-"))
    data = tmp / "data"
    data.mkdir()
    warehouse = data / "flywheel.duckdb"
    env = {**os.environ, "FLYWHEEL_DATA": str(data), "DAGSTER_HOME": str(data / "dagster")}
    server = None
    log = tmp / "serve.log"
    try:
        # -- setup -------------------------------------------------------------------------------
        t = time.perf_counter()
        refs = build_warehouse(warehouse, tmp, args.traces, args.labels)
        print(f"warehouse: {len(refs):,} traces in week {WEEK}, {args.labels:,} labels, "
              f"{warehouse.stat().st_size / 1e6:.1f} MB, built in {time.perf_counter() - t:.1f} s", flush=True)

        from flywheel.web import snapshot

        loads = []
        for _ in range(args.loads):
            t = time.perf_counter()
            snap = snapshot.load(warehouse)
            loads.append((time.perf_counter() - t) * 1000)
        assert len(snap.items) == len(refs), f"snapshot holds {len(snap.items)} traces, expected {len(refs)}"
        cohort = sorted({i["cohort"] for i in snap.items.values()})[0]
        del snap

        password, token = add_reviewer(data, env, "bench", admin=True)
        server, base, up = serve(data, env, log, ready=lambda health: health.get("traces") == len(refs))
        client = httpx.Client(base_url=base, timeout=30.0, follow_redirects=False)
        settled = wait_until_idle(server.pid, 60)
        print(f"server: answering /api/health with all traces after {up:.1f} s; idle (start-up work done) "
              f"after {settled:.1f} s more", flush=True)

        page = client.get("/login")
        csrf = CSRF.search(page.text)
        if page.status_code != 200 or not csrf:
            raise RuntimeError(f"GET /login answered {page.status_code} without a csrf_token")
        signed = client.post("/login", data={"name": "bench", "password": password, "csrf_token": csrf.group(1)})
        if signed.status_code != 303 or client.get("/queue", params={"week": WEEK}).status_code != 200:
            raise RuntimeError(f"sign-in failed: POST /login answered {signed.status_code}")

        # -- reads -------------------------------------------------------------------------------
        shuffled = random.Random(1).sample(refs, len(refs))
        trace_url = lambda i: f"/trace/{shuffled[i % len(shuffled)]}?week={WEEK}"  # noqa: E731
        routes = [
            ("GET /queue?week=", f"/queue?week={WEEK}"),
            (f"GET /queue?...&status=unreviewed&cohort={cohort}",
             f"/queue?week={WEEK}&status=unreviewed&cohort={cohort}"),
            ("GET /trace/<ref> (a different ref each)", trace_url),
            ("GET /taxonomy", "/taxonomy"),
            ("GET /evalset", "/evalset"),
            ("GET /residue", "/residue"),
            ("GET /agreement", "/agreement"),
            ("GET /api/health", "/api/health"),
        ]
        print(f"\nreads: {args.requests} sequential requests per route (or {args.budget:.0f} s), after {args.warmup} "
              f"warm-up, ms (target p95 < {TARGET_MS:.0f} ms)", flush=True)
        reads = measure_reads(client, routes, args.requests, args.warmup, args.budget)
        reads_met = report(reads, TARGET_MS)

        # -- writes ------------------------------------------------------------------------------
        bearer = {"Authorization": f"Bearer {token}"}
        api = httpx.Client(base_url=base, timeout=30.0, follow_redirects=False, headers=bearer)
        nexts, posts = [], []
        bad_next = bad_post = landed = 0
        for i in range(args.warmup + writes):
            ms_next, got = timed(api, "GET", f"/api/queue/next?week={WEEK}")
            if got.status_code != 200:
                bad_next += 1
                continue
            ref = got.json()["trace_ref"]
            ms_post, put = timed(api, "POST", "/api/labels", json={"trace_ref": ref, "bucket": "not_a_bug"})
            if i < args.warmup:
                continue
            nexts.append(ms_next)
            posts.append(ms_post)
            if put.status_code != 201:
                bad_post += 1
            else:
                landed += bool(put.json().get("landed"))
        print(f"\nAPI writes: {writes} GET /api/queue/next + POST /api/labels pairs after {args.warmup} warm-up, "
              "ms (no target)", flush=True)
        if nexts:
            report([{"name": "GET /api/queue/next?week= (bearer)", "times": nexts, "bad": bad_next},
                    {"name": "POST /api/labels (bearer), 201", "times": posts, "bad": bad_post}], None)
            print(f"  {landed} of {len(posts)} labels had landed in the warehouse when answered")
        else:
            print(f"  no trace served: {bad_next} answers were not 200")
        health = client.get("/api/health").json()
        print(f"  after: /api/health says {health.get('labels_waiting_to_land')} label(s) waiting to land")

        print(f"\nsnapshot.load of {len(refs):,} traces, in-process: "
              + ", ".join(f"{ms:.0f}" for ms in loads) + f" ms (median {statistics.median(loads):.0f} ms)")
        misses = [r["name"] for r in reads if pct(r["times"], 0.95) >= TARGET_MS or r["bad"]]
        print(f"\nreads target (p95 < {TARGET_MS:.0f} ms on every page and /api/health): "
              + ("PASS" if reads_met else "MISS (" + "; ".join(misses) + ")"))
    except (subprocess.CalledProcessError, RuntimeError, AssertionError, AttributeError, OSError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        print(f"setup failed: {exc}\n{detail}", file=sys.stderr)
        if log.exists():
            print(log.read_text()[-2000:], file=sys.stderr)
        return 1
    finally:
        stop(server)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
