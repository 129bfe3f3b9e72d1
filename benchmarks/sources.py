"""Traces from OpenTelemetry: OTLP JSON files through the intake, and the live OTLP/HTTP endpoint.

Two targets, each against a figure measured in this run:

1. OTLP JSON ingest. N spans (default 200,000) of GenAI traffic are generated here, deterministically,
   as the OpenTelemetry Collector's file exporter writes them: one {"resourceSpans": [...]} batch per
   line (--batch spans a line), hex ids, nanosecond timestamps as decimal strings. Each trace is an
   `invoke_agent` span around one `chat` LLM call (gen_ai.input.messages / gen_ai.output.messages as
   JSON strings of a support chat, enduser.id, app.cohort, gen_ai.conversation.id on most) and an
   `execute_tool` span: 3 spans a trace, the two that are not LLM calls counted as skipped by the
   reader. The same conversations are written as flywheel's own contract (JSON Lines), the baseline.
   Each is ingested with `ingest_paths` into a fresh warehouse, in its own process (OTLP with
   source_format="auto" and the repository's trace_mapping.yaml), --runs times alternating with the
   files in the page cache; the fastest run of each counts. Target: OTLP traces/s >= 0.5x the
   contract's traces/s. Also printed: the least any reader of these files must do (orjson parsing every
   line; DuckDB cutting every span out of its line, then parsing the spans' attributes), against the
   time the target leaves for the whole ingest; spans/s, the peak RSS of each ingest process
   (getrusage ru_maxrss of that process: the interpreter, DuckDB and all), and whether every trace
   landed (raw.traces rows == traces generated, skipped spans == the non-LLM spans).

2. The live endpoint. `flywheel serve` runs in its own process on loopback with an empty warehouse and
   a reviewer's token (`flywheel users add`); once it is idle (it loads the embedding model at start),
   four exporter processes, each a real OpenTelemetry SDK (TracerProvider + BatchSpanProcessor +
   OTLPSpanExporter over HTTP/protobuf), create --exporter-spans GenAI chat spans each as fast as they
   can, each span its own trace and conversation, then force_flush and shut down. A span counts as
   acknowledged when the export() call that carried it returned SUCCESS (the exporter reports failures
   only in its log). Wall time runs from the first span created in any exporter to the end of the last
   flush. Target: >= 2,000 acknowledged spans/s. Then the server is stopped, the endpoint's files
   (<data>/inbox/traces/otlp/*.jsonl) are ingested into the same data directory's warehouse, and
   exactly-once is checked: raw.traces holds every acknowledged span's conversation once, no trace id
   twice, and nothing more.

Usage: .venv/bin/python benchmarks/sources.py [--spans 200000] [--batch 256] [--spans-per-file 25000]
                                              [--runs 2] [--exporters 4] [--exporter-spans 10000]
                                              [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 0.5
TARGET_SPANS_PER_S = 2000.0
from served import add_reviewer, cpu_seconds, serve, stop, wait_until_idle  # noqa: E402 - benchmarks/ is the script's folder

BIN = Path(sys.executable).parent
START_NS = 1_772_409_600 * 10**9  # 2026-03-02T00:00:00Z, the first weekly partition

COHORTS = ["smb", "enterprise", "education", "startup"]
MODELS = ["gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "claude-sonnet-4-5"]
TOOLS = ["lookup_order", "search_kb", "reset_password", "create_ticket"]
OPENERS = [
    "Hi, I was charged twice for my subscription this month.",
    "Hello, the password reset link never arrives in my inbox.",
    "Our whole team is locked out of the workspace since this morning.",
    "The CSV export keeps timing out when I pick the whole year.",
    "Can you move the admin rights from my colleague to me?",
    "I want to cancel my plan but the button is greyed out.",
    "My invoice shows the wrong company address and VAT number.",
    "The mobile app crashes every time I open the reports tab.",
]
DETAILS = [
    "I already tried logging out and back in, and clearing the cache did nothing either.",
    "This is the third time I write about it and nobody has answered so far.",
    "We have a board meeting on Friday and I need the numbers before then.",
    "The order number is in the email I got last Tuesday, if that helps.",
    "It worked fine until the update last week, nothing changed on our side.",
    "Please tell me what I should do, I am not very technical.",
    "Is there a limit on the number of rows or users that I am hitting?",
    "Could you also check whether the same thing happened to my other account?",
]
REPLIES = [
    "Thanks for reaching out. I can see two charges on your account; the second one will be refunded "
    "within 5 business days under our pro-rata policy.",
    "Sorry about that. I sent a new reset link; it is valid for 24 hours, and please check the spam folder too.",
    "I understand this blocks your team. I have escalated it to our on-call engineers and will update you "
    "within the hour.",
    "Exports are capped at 100,000 rows per file. You can split the export by date range under Settings > Data.",
    "Ownership changes need the current owner to confirm. I have sent them a request by email.",
    "Cancellations are handled by the account owner. I can hand you over to a colleague who can help.",
    "I have corrected the address on the invoice; a new copy will arrive in your inbox shortly.",
    "Thanks for the report. Updating to the latest version of the app fixes the crash on the reports tab.",
]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_child(fn, *args):
    """Run one phase in a fresh process so its peak memory is its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def _parts(role: str, text: str) -> dict:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def _s(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict:
    return {"key": key, "value": {"intValue": str(value)}}


def _conversation(rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """(input messages as (role, text), the assistant's reply): 1 or 3 input turns, ~100-400 chars each."""
    first = f"{rng.choice(OPENERS)} {rng.choice(DETAILS)}"
    if rng.random() < 0.3:
        first += f" {rng.choice(DETAILS)}"
    inputs = [("user", first)]
    if rng.random() < 0.3:
        inputs += [("assistant", rng.choice(REPLIES)), ("user", f"{rng.choice(DETAILS)} {rng.choice(DETAILS)}")]
    return inputs, rng.choice(REPLIES)


def phase_generate(otlp_dir: str, contract_dir: str, spans: int, batch: int, per_file: int, seed: int) -> dict:
    """Write `spans` OTLP spans (3 a trace) as Collector files, and the same conversations as the contract."""
    t = time.perf_counter()
    rng = random.Random(seed)
    otlp, contract = Path(otlp_dir), Path(contract_dir)
    otlp.mkdir(parents=True, exist_ok=True)
    contract.mkdir(parents=True, exist_ok=True)
    traces = max(1, round(spans / 3))
    resource_attrs = [_s("service.name", "helpdesk-bot"), _s("deployment.environment", "production")]
    scope = {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"}
    written_spans = 0
    pending: list[dict] = []
    file_no = 0
    otlp_fh = contract_fh = None
    spans_in_file = 0

    def flush_line() -> None:
        nonlocal pending
        if pending:
            doc = {"resourceSpans": [{"resource": {"attributes": resource_attrs},
                                      "scopeSpans": [{"scope": scope, "spans": pending}]}]}
            otlp_fh.write(json.dumps(doc, separators=(",", ":")) + "\n")
            pending = []

    try:
        for n in range(traces):
            if otlp_fh is None or spans_in_file >= per_file:
                if otlp_fh is not None:
                    flush_line()
                    otlp_fh.close()
                    contract_fh.close()
                file_no += 1
                otlp_fh = open(otlp / f"otel-{file_no:03d}.jsonl", "w", encoding="utf-8")
                contract_fh = open(contract / f"traces-{file_no:03d}.jsonl", "w", encoding="utf-8")
                spans_in_file = 0
            trace_id = f"{rng.getrandbits(128):032x}"
            agent_id, chat_id, tool_id = (f"{rng.getrandbits(64):016x}" for _ in range(3))
            start = START_NS + n * 9_000_000_000 + rng.randrange(1_000_000_000)  # ~ one every 9 s: ~1 week
            chat_start = start + 2_000_000 + rng.randrange(5_000_000)
            chat_end = chat_start + 400_000_000 + rng.randrange(3_000_000_000)
            tool_start = chat_end + 1_000_000
            tool_end = tool_start + 20_000_000 + rng.randrange(200_000_000)
            end = tool_end + 1_000_000
            inputs, reply = _conversation(rng)
            user = f"cust-{rng.randrange(20_000):05d}"
            cohort = rng.choice(COHORTS)
            model = rng.choice(MODELS)
            conversation = f"conv-{seed}-{n:07d}" if rng.random() < 0.7 else None
            in_json = json.dumps([_parts(r, c) for r, c in inputs], ensure_ascii=False)
            out_json = json.dumps([{**_parts("assistant", reply), "finish_reason": "stop"}], ensure_ascii=False)
            chat_attrs = [_s("gen_ai.operation.name", "chat"), _s("gen_ai.provider.name", "openai"),
                          _s("gen_ai.request.model", model),
                          _s("gen_ai.response.model", model), _s("enduser.id", user), _s("app.cohort", cohort),
                          _i("gen_ai.usage.input_tokens", 40 + len(in_json) // 4),
                          _i("gen_ai.usage.output_tokens", 10 + len(reply) // 4),
                          _s("gen_ai.input.messages", in_json), _s("gen_ai.output.messages", out_json)]
            if conversation:
                chat_attrs.append(_s("gen_ai.conversation.id", conversation))
            tool = rng.choice(TOOLS)
            # An exporter sends spans as they end: the children first, then their parent.
            pending.append({"traceId": trace_id, "spanId": chat_id, "parentSpanId": agent_id,
                            "name": f"chat {model}", "kind": 3, "startTimeUnixNano": str(chat_start),
                            "endTimeUnixNano": str(chat_end), "attributes": chat_attrs, "status": {}})
            pending.append({"traceId": trace_id, "spanId": tool_id, "parentSpanId": agent_id,
                            "name": f"execute_tool {tool}", "kind": 1, "startTimeUnixNano": str(tool_start),
                            "endTimeUnixNano": str(tool_end),
                            "attributes": [_s("gen_ai.operation.name", "execute_tool"), _s("gen_ai.tool.name", tool)],
                            "status": {}})
            pending.append({"traceId": trace_id, "spanId": agent_id, "name": "invoke_agent helpdesk", "kind": 1,
                            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
                            "attributes": [_s("gen_ai.operation.name", "invoke_agent"),
                                           _s("gen_ai.agent.name", "helpdesk")],
                            "status": {"code": 1}})
            written_spans += 3
            spans_in_file += 3
            if len(pending) >= batch:  # a batch may end mid-trace, as an exporter's does
                overflow = pending[batch:]
                pending = pending[:batch]
                flush_line()
                pending = overflow
            record = {"trace_id": conversation or trace_id,
                      "timestamp": _iso(chat_start),
                      "messages": [{"role": r, "content": c} for r, c in inputs]
                      + [{"role": "assistant", "content": reply}],
                      "customer_id": user, "cohort": cohort, "model_version": model}
            contract_fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        flush_line()
    finally:
        for fh in (otlp_fh, contract_fh):
            if fh is not None:
                fh.close()
    return {"seconds": time.perf_counter() - t, "traces": traces, "spans": written_spans, "files": file_no,
            "otlp_bytes": sum(f.stat().st_size for f in otlp.glob("*.jsonl")),
            "contract_bytes": sum(f.stat().st_size for f in contract.glob("*.jsonl"))}


def _iso(ns: int) -> str:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(ns // 10**9, tz=dt.timezone.utc).replace(microsecond=(ns // 1000) % 10**6)
    return moment.isoformat().replace("+00:00", "Z")


def phase_floor(otlp_dir: str) -> dict:
    """Lower bounds of any reader of these files, to set the ratio against: the least work each way
    of reading them must do before mapping a single span. orjson: every line parsed into Python
    objects (the Python reader's first step). DuckDB: every span cut out of its batch line by the
    JSON extension (yyjson, on every core), then each span's attributes parsed into typed structs
    (what a reader in SQL needs before it can look an attribute up)."""
    import duckdb
    import orjson

    out = {}
    started = time.perf_counter()
    for path in sorted(Path(otlp_dir).glob("*.jsonl")):
        with open(path, "rb") as fh:
            for line in fh:
                orjson.loads(line)
    out["orjson_s"] = time.perf_counter() - started
    con = duckdb.connect()
    lines = (f"read_json_objects('{otlp_dir}/*.jsonl', format='newline_delimited', "
             "maximum_object_size=1000000000)")
    spans = f"(SELECT unnest(json_extract(json, '$.resourceSpans[*].scopeSpans[*].spans[*]')) AS s FROM {lines})"
    started = time.perf_counter()
    out["spans"] = con.execute(f"SELECT count(*) FROM {spans}").fetchone()[0]
    out["duckdb_spans_s"] = time.perf_counter() - started
    shape = '[{"key": "VARCHAR", "value": {"stringValue": "VARCHAR", "intValue": "VARCHAR"}}]'
    started = time.perf_counter()
    con.execute(f"SELECT sum(len(from_json(s->'attributes', '{shape}'))) FROM {spans}").fetchone()
    out["duckdb_attributes_s"] = time.perf_counter() - started
    return out


def phase_ingest(folder: str, db: str, otlp: bool) -> dict:
    """One ingest into `db` (a new warehouse, or the endpoint's), in a process of its own."""
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ingest_paths
    from flywheel.core.intake.sources.mapping import Mapping
    from flywheel.paths import REPO_REFERENCE

    import flywheel.core.intake.ingest as ingest_module

    # How long the mapping of another source to the contract takes, of the whole ingest (when the
    # intake still has its _read_sources step; the figure is left out otherwise).
    mapping_s = []
    read_sources = getattr(ingest_module, "_read_sources", None)
    if read_sources is not None:
        def timed(*a, **kw):
            started = time.perf_counter()
            try:
                return read_sources(*a, **kw)
            finally:
                mapping_s.append(time.perf_counter() - started)

        ingest_module._read_sources = timed
    for path in Path(folder).rglob("*.jsonl"):  # the same warm page cache for every run
        with open(path, "rb") as fh:
            while fh.read(8 * 1024 * 1024):
                pass
    with connect(db) as conn:
        t = time.perf_counter()
        if otlp:
            report = ingest_paths(conn, [folder], source_format="auto",
                                  mapping=Mapping.load(REPO_REFERENCE / "trace_mapping.yaml"))
        else:
            report = ingest_paths(conn, [folder])
        seconds = time.perf_counter() - t
        rows, distinct = conn.execute("SELECT count(*), count(DISTINCT trace_id) FROM raw.traces").fetchone()
        ids = [r[0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall()] if otlp else []
    return {"seconds": seconds, "ingested": report.ingested, "duplicates": report.duplicates,
            "quarantined": report.quarantined, "errors": report.errors[:3],
            "formats": sorted(set(report.formats.values())), "skipped": dict(report.skipped_spans),
            "mapping_s": sum(mapping_s) if mapping_s else None, "rows": rows, "distinct": distinct, "ids": ids,
            "peak_mib": _peak_mib()}


# -- the live endpoint ------------------------------------------------------------------------------

def exporter_worker(index: int, n: int, url: str, token: str, barrier, results) -> None:
    """One application exporting `n` GenAI chat spans (each its own trace) through the OTel SDK."""
    import logging

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.trace import SpanKind

    logging.basicConfig(level=logging.ERROR)

    class CountingExporter(OTLPSpanExporter):
        """Counts the spans of every export() that returned SUCCESS, and which conversations they were."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.acked_ids: list[str] = []
            self.failed = 0
            self.requests = 0
            self.export_s: list[float] = []
            self.last_ack = 0.0

        def export(self, spans):
            started = time.monotonic()
            result = super().export(spans)
            self.export_s.append(time.monotonic() - started)
            self.requests += 1
            if result is SpanExportResult.SUCCESS:
                self.acked_ids.extend(s.attributes["gen_ai.conversation.id"] for s in spans)
                self.last_ack = time.monotonic()
            else:
                self.failed += len(spans)
            return result

    exporter = CountingExporter(endpoint=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    provider = TracerProvider(resource=Resource.create({"service.name": f"helpdesk-bot-{index}"}))
    # A queue that holds every span: the benchmark measures the endpoint, not the SDK's drop policy.
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=max(n + 1, 2048),
                                                   max_export_batch_size=512))
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2", "2.1b0")
    rng = random.Random(1000 + index)
    pool = []
    for _ in range(64):
        inputs, reply = _conversation(rng)
        pool.append((json.dumps([_parts(r, c) for r, c in inputs], ensure_ascii=False),
                     json.dumps([{**_parts("assistant", reply), "finish_reason": "stop"}], ensure_ascii=False)))
    barrier.wait(timeout=120)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    first = time.monotonic()
    for i in range(n):
        in_json, out_json = pool[i % len(pool)]
        model = MODELS[i % len(MODELS)]
        with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT) as span:
            span.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.response.model": model, "gen_ai.conversation.id": f"live-{index}-{i:07d}",
                "enduser.id": f"cust-{(i * 7919 + index) % 20_000:05d}", "app.cohort": COHORTS[i % len(COHORTS)],
                "gen_ai.usage.input_tokens": 40 + len(in_json) // 4, "gen_ai.usage.output_tokens": 60,
                "gen_ai.input.messages": in_json, "gen_ai.output.messages": out_json,
            })
    created = time.monotonic()
    flushed_ok = provider.force_flush(timeout_millis=300_000)
    flushed = time.monotonic()
    provider.shutdown()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    results.put({"cpu": cpu, "index": index, "first": first, "created": created, "flushed": flushed,
                 "flush_ok": flushed_ok,
                 "last_ack": exporter.last_ack, "acked_ids": exporter.acked_ids, "failed": exporter.failed,
                 "requests": exporter.requests, "export_s": exporter.export_s})


def start_server(data: Path, env: dict, log: Path) -> tuple[subprocess.Popen, str, str, float, float]:
    """An empty warehouse, a reviewer's token, `flywheel serve` answering; (server, base, token, up s, idle s)."""
    from flywheel.core.common.db import connect

    with connect(data / "flywheel.duckdb"):
        pass
    _, token = add_reviewer(data, env, "bench-exporter")
    server, base, up = serve(data, env, log)
    try:
        idle = wait_until_idle(server.pid, 90)
    except BaseException:
        stop(server)
        raise
    return server, base, token, up, idle


def run_exporters(base: str, token: str, exporters: int, per: int) -> list[dict]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(exporters)
    results = ctx.Queue()
    procs = [ctx.Process(target=exporter_worker, args=(i, per, f"{base}/v1/traces", token, barrier, results),
                         daemon=True) for i in range(exporters)]
    out: list[dict] = []
    try:
        for p in procs:
            p.start()
        deadline = time.monotonic() + 600
        while len(out) < exporters:
            if time.monotonic() > deadline:
                raise RuntimeError("exporters did not finish within 600 s")
            try:
                out.append(results.get(timeout=1.0))
            except Exception:  # noqa: BLE001 - queue.Empty: check the processes are still alive
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"exporter process exited with {dead[0].exitcode}") from None
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
    return sorted(out, key=lambda r: r["index"])


def _p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000, help="OTLP spans to generate (3 a trace).")
    parser.add_argument("--batch", type=int, default=256, help="Spans per line of the OTLP files.")
    parser.add_argument("--spans-per-file", type=int, default=25_000, help="Spans per OTLP file (about).")
    parser.add_argument("--runs", type=int, default=2,
                        help="Runs of each file ingest, alternating; the fastest counts.")
    parser.add_argument("--exporters", type=int, default=4, help="Concurrent exporter processes.")
    parser.add_argument("--exporter-spans", type=int, default=10_000, help="Spans each exporter sends.")
    parser.add_argument("--skip-files", action="store_true", help="Only the live endpoint.")
    parser.add_argument("--skip-endpoint", action="store_true", help="Only the file ingest.")
    parser.add_argument("--keep", help="Work in this folder and keep it (default: a temporary folder).")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="flywheel-sources-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    server = None
    log = work / "serve.log"
    results: list[tuple[str, bool]] = []
    try:
        # -- 1. OTLP JSON files vs the contract ----------------------------------------------------
        if not args.skip_files:
            otlp_dir, contract_dir = work / "otlp", work / "contract"
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (whatever else runs skews the "
                  "figures)")
            print(f"generating ~{args.spans:,} OTLP spans ({args.batch} a line) and the same conversations as the "
                  f"contract in {work} ...", flush=True)
            gen = _in_child(phase_generate, str(otlp_dir), str(contract_dir), args.spans, args.batch,
                            args.spans_per_file, 1)
            print(f"  {gen['traces']:,} traces = {gen['spans']:,} spans in {gen['files']} files: OTLP "
                  f"{gen['otlp_bytes'] / 1e6:,.0f} MB, contract {gen['contract_bytes'] / 1e6:,.0f} MB, "
                  f"{gen['seconds']:.1f} s", flush=True)
            contract_runs, otlp_runs = [], []
            for attempt in range(args.runs):
                for runs, folder, name, is_otlp in ((contract_runs, contract_dir, "contract", False),
                                                    (otlp_runs, otlp_dir, "otlp", True)):
                    db = work / f"{name}.duckdb"
                    db.unlink(missing_ok=True)
                    Path(f"{db}.wal").unlink(missing_ok=True)
                    runs.append(_in_child(phase_ingest, str(folder), str(db), is_otlp))
            base_run = min(contract_runs, key=lambda r: r["seconds"])
            otlp_run = min(otlp_runs, key=lambda r: r["seconds"])
            base_tps = base_run["ingested"] / base_run["seconds"]
            otlp_tps = otlp_run["ingested"] / otlp_run["seconds"]
            ratio = otlp_tps / base_tps if base_tps else 0.0

            def times(rs):
                return ", ".join(f"{r['seconds']:.1f}" for r in rs)

            print(f"\nOTLP JSON file ingest vs the contract, {gen['traces']:,} traces (fastest of {args.runs} "
                  "run(s) each, each in its own process; peak = getrusage max RSS of that process)")
            print(f"  {'':<34} {'traces/s':>10} {'spans/s':>10} {'runs s':>10} {'peak MiB':>9}")
            print(f"  {'baseline  contract JSONL':<34} {base_tps:>10,.0f} {'':>10} {times(contract_runs):>10} "
                  f"{base_run['peak_mib']:>9,.0f}")
            print(f"  {'OTLP JSON (auto, trace_mapping)':<34} {otlp_tps:>10,.0f} "
                  f"{gen['spans'] / otlp_run['seconds']:>10,.0f} {times(otlp_runs):>10} {otlp_run['peak_mib']:>9,.0f}")
            ok_ratio = ratio >= TARGET_RATIO
            print(f"  ratio {ratio:.2f}x (target >= {TARGET_RATIO}x)  {verdict(ok_ratio)}")
            skipped = sum(otlp_run["skipped"].values())
            non_llm = gen["spans"] - gen["traces"]
            landed = (otlp_run["rows"] == gen["traces"] == otlp_run["distinct"] and otlp_run["quarantined"] == 0
                      and skipped == non_llm and base_run["rows"] == gen["traces"])
            print(f"  landed: OTLP raw.traces {otlp_run['rows']:,} ({otlp_run['distinct']:,} distinct) of "
                  f"{gen['traces']:,}, {otlp_run['quarantined']} quarantined, formats {otlp_run['formats']}; "
                  f"skipped spans {skipped:,} of {non_llm:,} non-LLM; contract raw.traces {base_run['rows']:,}  "
                  f"{verdict(landed)}")
            if otlp_run["mapping_s"] is not None:
                rest = otlp_run["seconds"] - otlp_run["mapping_s"]
                print(f"  of the OTLP ingest's {otlp_run['seconds']:.1f} s, {otlp_run['mapping_s']:.1f} s read the "
                      f"spans and mapped them to the contract (sources.reader.read), {rest:.1f} s loaded the "
                      "mapped records")
            floor = _in_child(phase_floor, str(otlp_dir))
            budget = gen["traces"] / (TARGET_RATIO * base_tps) if base_tps else 0.0
            print(f"  the target leaves {budget:.2f} s for the whole OTLP ingest; the least any reader must do, "
                  "before mapping a span or loading a row:")
            print(f"    orjson, every line into Python objects: {floor['orjson_s']:.2f} s")
            print(f"    DuckDB, the {floor['spans']:,} spans cut out of their lines: {floor['duckdb_spans_s']:.2f} s; "
                  f"with their attributes parsed: {floor['duckdb_attributes_s']:.2f} s")
            for reason, n in sorted(otlp_run["skipped"].items()):
                print(f"    skipped {n:>8,}  {reason}")
            if otlp_run["errors"] or base_run["errors"]:
                print(f"  errors: {otlp_run['errors'] or base_run['errors']}")
            results += [("OTLP ingest >= 0.5x contract traces/s", ok_ratio), ("every OTLP trace landed", landed)]
            if not args.keep:  # room on the disk for the endpoint's files
                shutil.rmtree(otlp_dir, ignore_errors=True)
                shutil.rmtree(contract_dir, ignore_errors=True)

        # -- 2. the live endpoint ----------------------------------------------------------------
        if not args.skip_endpoint:
            data = Path(tempfile.mkdtemp(prefix="data-", dir=work))  # a new one each run, even with --keep
            env = {**os.environ, "FLYWHEEL_DATA": str(data), "DAGSTER_HOME": str(data / "dagster")}
            server, base, token, up, idle = start_server(data, env, log)
            print(f"\nlive endpoint: flywheel serve on {base} answered /api/health after {up:.1f} s, idle after "
                  f"{idle:.1f} s more; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
            total = args.exporters * args.exporter_spans
            print(f"  {args.exporters} exporter processes (OTel SDK {_otel_version()}, BatchSpanProcessor, OTLP/HTTP "
                  f"protobuf) x {args.exporter_spans:,} chat spans, each its own trace ...", flush=True)
            server_cpu0 = cpu_seconds(server.pid)
            out = run_exporters(base, token, args.exporters, args.exporter_spans)
            server_cpu = cpu_seconds(server.pid) - server_cpu0
            stop(server)
            server = None
            first = min(r["first"] for r in out)
            created = max(r["created"] for r in out)
            flushed = max(r["flushed"] for r in out)
            acked_ids = [i for r in out for i in r["acked_ids"]]
            failed = sum(r["failed"] for r in out)
            wall = flushed - first
            sps = len(acked_ids) / wall if wall > 0 else 0.0
            print(f"  {'exporter':<9} {'acked':>8} {'failed':>7} {'requests':>9} {'created s':>10} {'flushed s':>10} "
                  f"{'CPU s':>6} {'in export() s':>14} {'per request ms (p50/max)':>25}")
            for r in out:
                print(f"  {r['index']:<9} {len(r['acked_ids']):>8,} {r['failed']:>7,} {r['requests']:>9,} "
                      f"{r['created'] - first:>10.2f} {r['flushed'] - first:>10.2f} {r['cpu']:>6.1f} "
                      f"{sum(r['export_s']):>14.2f} {_p50(r['export_s']) * 1000:>17.0f} / "
                      f"{max(r['export_s'], default=0) * 1000:>5.0f}"
                      + ("" if r["flush_ok"] else "  (force_flush timed out)"))
            ok_rate = sps >= TARGET_SPANS_PER_S and len(acked_ids) == total
            print(f"  {len(acked_ids):,} of {total:,} spans acknowledged in {wall:.2f} s (all created after "
                  f"{created - first:.2f} s): {sps:,.0f} spans/s (target >= {TARGET_SPANS_PER_S:,.0f}, every span "
                  f"acknowledged)  {verdict(ok_rate)}")
            client_cpu = sum(r["cpu"] for r in out)
            print(f"  CPU during the run: server {server_cpu:.1f} s, exporters {client_cpu:.1f} s, of "
                  f"{wall * (os.cpu_count() or 1):.1f} s on {os.cpu_count()} cores")
            inbox = data / "inbox" / "traces" / "otlp"
            files = sorted(inbox.glob("*.jsonl"))
            lines = 0
            for f in files:
                with open(f, "rb") as fh:
                    lines += sum(1 for _ in fh)
            size = sum(f.stat().st_size for f in files)
            got = _in_child(phase_ingest, str(inbox), str(data / "flywheel.duckdb"), True)
            ids = got.pop("ids")
            acked = set(acked_ids)
            stored = set(ids)
            once = (len(ids) == len(acked_ids) == len(acked) == got["distinct"] == len(stored)
                    and stored == acked and got["quarantined"] == 0)
            print(f"  endpoint files: {len(files)} file(s), {lines:,} batches, {size / 1e6:,.1f} MB; ingested in "
                  f"{got['seconds']:.1f} s ({got['ingested'] / got['seconds'] if got['seconds'] else 0:,.0f} traces/s, "
                  f"peak {got['peak_mib']:,.0f} MiB)")
            print(f"  exactly once: raw.traces {len(ids):,} rows, {got['distinct']:,} distinct ids, acknowledged "
                  f"{len(acked_ids):,} ({len(acked):,} distinct); not acknowledged but stored "
                  f"{len(stored - acked):,}, acknowledged but missing {len(acked - stored):,}, quarantined "
                  f"{got['quarantined']}, failed exports {failed:,} spans  {verdict(once)}")
            results += [(f"endpoint >= {TARGET_SPANS_PER_S:,.0f} spans/s", ok_rate),
                        ("every acknowledged span ingested exactly once", once)]

        print("\nsummary")
        for name, ok in results:
            print(f"  {verdict(ok)}  {name}")
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        print(f"setup failed: {exc}\n{detail}", file=sys.stderr)
        if log.exists():
            print(log.read_text()[-2000:], file=sys.stderr)
        return 1
    finally:
        stop(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _otel_version() -> str:
    try:
        from importlib.metadata import version

        return version("opentelemetry-sdk")
    except Exception:  # noqa: BLE001 - only for the printout
        return "?"


if __name__ == "__main__":
    sys.exit(main())
