"""Label suggestions and failure-mode clusters (issue #24), measured against baselines in the same run.

Part 1, suggestions (flywheel.core.labeling.suggest.Suggester) on the demo's hidden truth.

* Traffic: `write_demo` with the demo's defaults (27 weeks x 60 traces a day, seed 7), ingested into a
  temporary warehouse and drawn week by week by the real sampler (`draw_week`, default settings: 2%
  random, a quarter of the borderline-judge, rare-intent and long-conversation strata, every anomaly).
  So failures are over-represented the way the sampler makes them: about 19% of a week's draw (about 62
  traces) fails, against about 10% of traffic. No drift-focus stratum (no drift run), no incident.
* Each week's draw is put in review-queue order (anomalies, then strata, then random picks; the most
  doubtful judge score first: the ORDER BY of flywheel.core.labeling.queue.review_queue).
* Training labels, two regimes, each on weeks 1..K, for several K:
  - "demo reviewer": what flywheel/demo/reviewer.py labels: 8 traces a week from the top of the queue,
    skipping a plain non-bug while non-bugs are at least half the failures (so about two labels in
    three are failures). Not simulated: its skipping of known attacks (needs the eval set) and the
    siblings it accepts for a new mode. About 8 labels a week, so about 100 after 12 weeks.
  - "whole queue": every drawn trace labelled, about 60 a week: a few hundred labels after some weeks.
  A failure is labelled known_failure with its true code, anything else not_a_bug (the reviewer's rule).
* Test: every drawn trace of weeks K+1..27, whoever would have reviewed it (the pipeline writes a
  suggestion for every queued trace). The enterprise cohort and its new failure mode
  (enterprise_sla_ignored) arrive in week 11: for K <= 10 those failures have no training label, and
  the "unseen" column counts test failures whose code has fewer than MIN_EXAMPLES training labels.
* Features: `features(user_vectors, assistant_vectors)` of all-MiniLM-L6-v2 embeddings of the raw
  generated texts (user turns, assistant turns). The real pipeline embeds the scrubbed text; the demo's
  customer data only adds noise here (say so when quoting these figures). Beware: the demo's failing
  replies are one fixed template per failure code (flywheel/demo/vocabulary.py FAILED_REPLIES), so the
  assistant half nearly gives the answer away; the last table repeats the measurement with the
  assistant half zeroed (question only).
* Figures: top-1 accuracy of the best guess (min_confidence 0) on the bucket (failure or not) and on the
  exact (bucket, code); coverage (share of traces with a suggestion, not abstained) and accuracy of the
  suggestions made at DEFAULT_MIN_CONFIDENCE; keypresses. Baseline: the majority class, always
  suggesting the most frequent (bucket, code) of the training labels, no threshold.
* Keypress model of `flywheel review`: without a suggestion a not-a-bug costs 1 key; a known failure
  costs the bucket key (1) + the code pick (number + Enter: 2) + typing the expected behaviour + Enter +
  the criterion key (1) + typing the criterion value + Enter (none for `refusal`), with the demo's own
  texts (FAILURE_TRUTH: 96 to 231 keys). An accepted correct suggestion costs 1 key (`a`: the expected
  behaviour and criterion come from the most similar labelled trace of that code, which in the demo
  are the code's own); a wrong or abstained suggestion saves nothing (the reviewer labels as without).
  The adversarial and PII prompts cost the same on every path and are left out. A new failure mode
  (naming a code) is counted as a known failure: no suggestion can name a code it has not seen.
* Threshold sweep (0.5 ... 0.9), pooled over the K of a regime: coverage, accuracy of the suggestions
  made, the share of true failures given a right suggestion (the only traces where one saves keys), the
  wrong suggestions shown and how many of them call a failure "not a bug", keypresses; then the accuracy
  of the best guess per confidence band, for failure guesses and not-a-bug guesses apart: the evidence
  for suggestions.DEFAULT_MIN_CONFIDENCE. In this keypress model a wrong suggestion costs nothing, so a
  lower threshold never costs keys: what a threshold buys is fewer wrong suggestions on screen.

Part 2, clusters (flywheel.core.labeling.clusters.find_clusters) on real support queries, from
../shared/benchmarks/support_queries (never copied into the project; skipped with a line when absent):

* BANKING77 test split (3,080 queries, 77 intents) and Bitext (4,514 queries, 27 intents), at
  DEFAULT_DISTANCE: adjusted Rand index and homogeneity against the true intents, noise counted as one
  group (what a reviewer sees: one "unclustered" pile) and as singletons (each noise trace alone).
  Baseline: k-means (k-means++, 10 inits, seed 0) told the true number of intents, on the same vectors.
* Time of find_clusters (agglomerative, TF-IDF terms included) on 10,000 BANKING77 train queries, and
  separately of embedding them; each clustering runs in its own process so its peak memory (VmHWM; not
  ru_maxrss, which Linux carries over from the parent into a spawned child) is its own. k-means on the
  same vectors beside it, and the scores of both on those 10,000 (train) queries.
* --tune re-runs the sweep that chose DEFAULT_DISTANCE, on the train split only (never test): random
  subsamples of 3,000 train queries (seeds 0, 1, 2), distances 0.30 to 0.60, with k-means k=77 beside.

Embeddings are computed once per run and kept in memory (and a temporary folder for the timing
processes); nothing is cached in the repository. Seeds are fixed: a rerun prints the same figures,
except the times.

Usage: python benchmarks/assist.py [--quick] [--tune] [--skip-clusters] [--skip-suggestions]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "support_queries"
DEMO_WEEKS, DEMO_PER_DAY, DEMO_SEED = 27, 60, 7
REVIEWER_PER_WEEK = 8
TRAIN_WEEKS = (4, 8, 12, 16, 20, 24)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
BANDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)
TIMING_QUERIES = 10_000
TUNE_DISTANCES = (0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60)
TUNE_SIZE, TUNE_SEEDS = 3000, (0, 1, 2)


def _peak_mib() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a
    spawned child would report at least the parent's size at the time it was started."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(fn, *args):
    """Run fn in a fresh process, so its peak memory is its own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def encode(embedder, texts: list[str]) -> np.ndarray:
    """Vectors of texts, each distinct text embedded once."""
    unique = list(dict.fromkeys(texts))
    vectors = embedder.encode(unique) if unique else np.zeros((0, embedder.dim), dtype=np.float32)
    where = {t: i for i, t in enumerate(unique)}
    return np.asarray(vectors, dtype=np.float32)[[where[t] for t in texts]]


# ---------------------------------------------------------------------------------------------
# Part 1: suggestions
# ---------------------------------------------------------------------------------------------


def failure_keys(code: str) -> int:
    """Keypresses of labelling a failure of `code` by hand (the model in the docstring)."""
    from flywheel.demo.generator import FAILURE_TRUTH

    expected, criterion = FAILURE_TRUTH[code]
    kind, _, value = criterion.partition(":")
    keys = 1 + 2 + len(expected) + 1 + 1  # bucket, number + Enter, expected behaviour + Enter, criterion key
    if value:
        keys += len(value) + 1
    return keys


def manual_keys(truth: dict) -> int:
    return failure_keys(truth["failure_code"]) if truth["failure"] else 1


def demo_queue(tmp: Path, weeks: int, per_day: int):
    """The DemoSummary, and the demo's drawn traces week by week in review-queue order (week, trace, truth)."""
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ingest_paths
    from flywheel.core.sampling.sampler import draw_week
    from flywheel.demo.generator import DEFAULT_START, write_demo

    summary = write_demo(tmp / "demo", weeks=weeks, traces_per_day=per_day, seed=DEMO_SEED)
    truth = {}
    with open(summary.answers_file, encoding="utf-8") as fh:
        for line in fh:
            a = json.loads(line)
            truth[a["trace_id"]] = a
    messages = {}
    for path in summary.trace_files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                t = json.loads(line)
                messages[t["trace_id"]] = t["messages"]
    rows = []
    with connect(tmp / "warehouse.duckdb") as conn:
        ingest_paths(conn, [str(tmp / "demo" / "traces")])
        for week in range(weeks):
            start = dt.datetime.combine(DEFAULT_START + dt.timedelta(weeks=week), dt.time())
            sample = draw_week(conn, start, trace_ref=str).sample  # trace_ref = the raw id, in this temp warehouse
            drawn = []
            for r in sample.iter_rows(named=True):
                priority = 0 if "anomaly" in r["modes"] else 1 if "stratified" in r["modes"] else 2
                judge = r["judge_score"] if r["judge_score"] is not None else 0.5
                drawn.append(((priority, abs(judge - 0.5), r["timestamp"], r["trace_ref"]), r["trace_ref"]))
            for _, trace_id in sorted(drawn):
                rows.append({"week": week + 1, "trace_id": trace_id, "messages": messages[trace_id],
                             "truth": truth[trace_id]})
    return summary, rows


def reviewer_picks(rows: list[dict], per_week: int = REVIEWER_PER_WEEK) -> set[int]:
    """Indexes the demo reviewer labels: per week, from the top of the queue, flywheel/demo/reviewer.py's rule."""
    picked: set[int] = set()
    by_week: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_week.setdefault(r["week"], []).append(i)
    for idx in by_week.values():
        failures = not_bugs = 0
        for i in idx:
            t = rows[i]["truth"]
            if failures + not_bugs >= per_week:
                break
            if not t["failure"] and not_bugs >= (failures + 1) // 2:
                continue  # skimmed and skipped
            failures += t["failure"]
            not_bugs += not t["failure"]
            picked.add(i)
    return picked


def label_of(truth: dict) -> tuple[str, str | None]:
    return ("known_failure", truth["failure_code"]) if truth["failure"] else ("not_a_bug", None)


def evaluate(x: np.ndarray, rows: list[dict], train: list[int], test: list[int]) -> dict:
    """Fit on train, score on test: per test trace, the best guess, its confidence and the truth."""
    from flywheel.core.labeling.suggest import MIN_EXAMPLES, Suggester

    labels = [label_of(rows[i]["truth"]) for i in train]
    t = time.perf_counter()
    suggester = Suggester(x[train], [b for b, _ in labels], [c for _, c in labels], min_confidence=0.0, seed=0)
    fit_s = time.perf_counter() - t
    guesses = suggester.suggest(x[test])  # min_confidence 0: every best guess (abstains only without a model)
    made = {}
    for threshold in THRESHOLDS:  # the suggester's own abstention, threshold by threshold
        suggester.min_confidence = threshold
        made[threshold] = np.array([not s.abstained for s in suggester.suggest(x[test])])
    truths = [rows[i]["truth"] for i in test]
    gold = [label_of(t) for t in truths]
    bucket_right = np.array([g.bucket is not None and (g.bucket == "known_failure") == t["failure"]
                             for g, t in zip(guesses, truths)])
    exact_right = np.array([g.bucket is not None and (g.bucket, g.code) == lab for g, lab in zip(guesses, gold)])
    confidence = np.array([g.confidence for g in guesses])
    guessed_failure = np.array([g.bucket == "known_failure" for g in guesses])
    manual = np.array([manual_keys(t) for t in truths], dtype=float)
    code_counts = Counter(c for b, c in labels if c)
    unseen = sum(1 for t in truths if t["failure"] and code_counts[t["failure_code"]] < MIN_EXAMPLES)
    majority = Counter(labels).most_common(1)[0][0]
    majority_right = np.array([lab == majority for lab in gold])
    majority_bucket = np.array([(majority[0] == "known_failure") == t["failure"] for t in truths])
    return {
        "train": len(train), "train_failures": sum(b != "not_a_bug" for b, _ in labels), "test": len(test),
        "test_failures": sum(t["failure"] for t in truths), "unseen": unseen, "fit_s": fit_s,
        "bucket_right": bucket_right, "exact_right": exact_right, "confidence": confidence,
        "guessed_failure": guessed_failure, "made": made, "manual": manual,
        "failing": np.array([t["failure"] for t in truths]),
        "majority": majority, "majority_right": majority_right, "majority_bucket": majority_bucket,
    }


def fail_hit(r: dict, made: np.ndarray) -> float:
    """Share of the true failures given a right suggestion: the only ones where a suggestion saves keys."""
    failing = r["failing"]
    return float((made & r["exact_right"])[failing].mean()) if failing.any() else float("nan")


def keys_with(r: dict, made: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.where(made & right, 1.0, r["manual"])


def suggestion_part(args, embedder) -> None:
    from flywheel.core.drift.embeddings import user_text
    from flywheel.core.labeling.suggest import features
    from flywheel.core.labeling.suggestions import DEFAULT_MIN_CONFIDENCE

    per_day = DEMO_PER_DAY // 2 if args.quick else DEMO_PER_DAY
    print(f"SUGGESTIONS on the demo's hidden truth ({DEMO_WEEKS} weeks x {per_day} traces/day, seed {DEMO_SEED})")
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flywheel-assist-") as tmp:
        summary, rows = demo_queue(Path(tmp), DEMO_WEEKS, per_day)
    gen_s = time.perf_counter() - t
    failing = sum(r["truth"]["failure"] for r in rows)
    print(f"  {summary.traces:,} traces generated ({summary.failures / summary.traces:.1%} failures), "
          f"{len(rows):,} drawn by the sampler ({len(rows) / DEMO_WEEKS:.0f} a week, "
          f"{failing / len(rows):.1%} failures), {gen_s:.1f} s")
    t = time.perf_counter()
    users = encode(embedder, [user_text(r["messages"], ("user",)) for r in rows])
    replies = encode(embedder, [user_text(r["messages"], ("assistant",)) for r in rows])
    x = features(users, replies)
    x_question = features(users, np.zeros_like(replies))
    print(f"  embedded user and assistant turns of the drawn traces in {time.perf_counter() - t:.1f} s")
    picks = reviewer_picks(rows)
    codes = sorted({r["truth"]["failure_code"] for r in rows if r["truth"]["failure"]})
    print("  keys to label by hand: not a bug 1, " + ", ".join(f"{c} {failure_keys(c)}" for c in codes))

    regimes = {"demo reviewer": lambda i: i in picks, "whole queue": lambda i: True}
    results: dict[str, list[tuple[int, dict]]] = {}
    ablation: dict[str, list[dict]] = {}
    for name, labelled in regimes.items():
        results[name], ablation[name] = [], []
        for k in TRAIN_WEEKS:
            train = [i for i, r in enumerate(rows) if r["week"] <= k and labelled(i)]
            test = [i for i, r in enumerate(rows) if r["week"] > k]
            if not test:
                continue
            results[name].append((k, evaluate(x, rows, train, test)))
            ablation[name].append(evaluate(x_question, rows, train, test))

    t0 = DEFAULT_MIN_CONFIDENCE
    print(f"\n  trained on weeks 1..K, tested on every drawn trace of weeks K+1..{DEMO_WEEKS}; suggester at "
          f"DEFAULT_MIN_CONFIDENCE = {t0}, majority = always the most frequent training label")
    head = (f"  {'K':>3} {'labels':>6} {'fail':>5} {'test':>5} {'fail':>5} {'unseen':>6} | "
            f"{'top-1 bucket':>13} {'top-1 exact':>12} | {'coverage':>8} {'right':>6} {'fail hit':>8} | "
            f"{'keys/trace: none':>16} {'majority':>8} {'suggest':>8} {'saved':>6}")
    for name, runs in results.items():
        what = f"{REVIEWER_PER_WEEK} labels a week" if name == "demo reviewer" else "every drawn trace labelled"
        print(f"\n  {name} ({what})")
        print(head)
        print(f"  {'':>3} {'':>6} {'':>5} {'':>5} {'':>5} {'':>6} | {'ours / major.':>13} {'ours / major.':>12} | "
              f"{'@' + str(t0):>8} {'@' + str(t0):>6} {'@' + str(t0):>8} |")
        for k, r in runs:
            made = r["made"][t0]
            ours = keys_with(r, made, r["exact_right"]).mean()
            major = keys_with(r, np.ones_like(made), r["majority_right"]).mean()
            none = r["manual"].mean()
            right = r["exact_right"][made].mean() if made.any() else float("nan")
            print(f"  {k:>3} {r['train']:>6} {r['train_failures']:>5} {r['test']:>5} {r['test_failures']:>5} "
                  f"{r['unseen']:>6} | {r['bucket_right'].mean():>6.3f}/{r['majority_bucket'].mean():.3f} "
                  f"{r['exact_right'].mean():>5.3f}/{r['majority_right'].mean():.3f} | "
                  f"{made.mean():>8.3f} {right:>6.3f} "
                  f"{fail_hit(r, made):>8.3f} | "
                  f"{none:>16.2f} {major:>8.2f} {ours:>8.2f} {1 - ours / none:>6.0%}")
        majorities = Counter(f"{r['majority'][0]}{'/' + r['majority'][1] if r['majority'][1] else ''}" for _, r in runs)
        print(f"  majority label: {', '.join(f'{m} ({n}x)' for m, n in majorities.items())}; "
              f"fit {max(r['fit_s'] for _, r in runs):.1f} s at most")

    print(f"\n  threshold sweep, pooled over K = {', '.join(str(k) for k, _ in next(iter(results.values())))} "
          "(coverage: share of traces given a suggestion; right: of those suggested;\n"
          "  failures hit: share of the true failures given a right suggestion, the only ones that save keys;\n"
          "  of which no bug: wrong suggestions that call a true failure not a bug, per 100 traces)")
    for name, runs in results.items():
        pool = {key: np.concatenate([r[key] for _, r in runs])
                for key in ("exact_right", "confidence", "manual", "failing", "guessed_failure")}
        none = pool["manual"].mean()
        print(f"  {name:<19}" + "".join(f" | >= {t:.1f}" for t in THRESHOLDS))
        made_at = {t: np.concatenate([r["made"][t] for _, r in runs]) for t in THRESHOLDS}
        cells = {
            "coverage": [f"{made_at[t].mean():.3f}" for t in THRESHOLDS],
            "right": [f"{pool['exact_right'][made_at[t]].mean():.3f}" if made_at[t].any() else "  -  "
                      for t in THRESHOLDS],
            "failures hit": [f"{(made_at[t] & pool['exact_right'])[pool['failing']].mean():.3f}" for t in THRESHOLDS],
            "wrong shown /100": [f"{100 * (made_at[t] & ~pool['exact_right']).mean():.1f}" for t in THRESHOLDS],
            " of which no bug": [f"{100 * (made_at[t] & ~pool['guessed_failure'] & pool['failing']).mean():.1f}"
                                 for t in THRESHOLDS],
            "keys/trace": [f"{np.where(made_at[t] & pool['exact_right'], 1.0, pool['manual']).mean():.2f}"
                           for t in THRESHOLDS],
        }
        for label, values in cells.items():
            print(f"    {label:<17}" + "".join(f" | {v:>6}" for v in values))
        print(f"    (keys/trace without suggestions {none:.2f}; with a right suggestion on every trace 1.00)")
        conf, right = pool["confidence"], pool["exact_right"]
        print("    best guess by confidence band: n, share right")
        for what, mask in (("all", np.ones_like(right)), ("'failure <code>'", pool["guessed_failure"]),
                           ("'not a bug'", ~pool["guessed_failure"])):
            bands = []
            for lo, hi in zip(BANDS, BANDS[1:]):
                inside = mask & (conf >= lo) & (conf < hi)
                bands.append(f"{inside.sum():>4} {right[inside].mean():.2f}" if inside.any() else f"{0:>4}   - ")
            print(f"      {what:<17}" + "".join(f" | {b}" for b in bands))
        print(f"      {'':<17}" + "".join(f" | [{lo:.1f},{min(hi, 1):.1f}{')' if hi < 1 else ']'}"
                                          for lo, hi in zip(BANDS, BANDS[1:])))

    print("\n  question only (assistant half of the features zeroed): how much the templated replies give away")
    print(f"  {'':<14} {'K':>3} | {'top-1 exact':>11} (with reply) | "
          f"{'coverage':>8} {'right':>6} {'fail hit':>8} @{t0}")
    for name, runs in results.items():
        for (k, full), q in zip(runs, ablation[name]):
            made = q["made"][t0]
            right = q["exact_right"][made].mean() if made.any() else float("nan")
            print(f"  {name:<14} {k:>3} | {q['exact_right'].mean():>11.3f} ({full['exact_right'].mean():.3f})     | "
                  f"{made.mean():>8.3f} {right:>6.3f} {fail_hit(q, made):>8.3f}")


# ---------------------------------------------------------------------------------------------
# Part 2: clusters
# ---------------------------------------------------------------------------------------------


def read_csv(path: Path, text: str, label: str) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r[text] for r in rows], [r[label] for r in rows]


def score(truth: list[str], assigned: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_rand_score, homogeneity_score

    noise = assigned < 0
    singletons = assigned.copy()
    singletons[noise] = assigned.max(initial=0) + 1 + np.arange(noise.sum())
    return {"ari": adjusted_rand_score(truth, assigned), "ari_single": adjusted_rand_score(truth, singletons),
            "hom": homogeneity_score(truth, assigned), "hom_single": homogeneity_score(truth, singletons),
            "noise": float(noise.mean()), "clusters": len(set(assigned[~noise].tolist()))}


def run_clusters(vectors: np.ndarray, texts: list[str], distance: float | None = None) -> tuple[np.ndarray, float]:
    from flywheel.core.labeling.clusters import DEFAULT_DISTANCE, find_clusters

    t = time.perf_counter()
    clustering = find_clusters(vectors, texts, distance=DEFAULT_DISTANCE if distance is None else distance)
    return clustering.assignments(len(vectors)), time.perf_counter() - t


def run_kmeans(vectors: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    from sklearn.cluster import KMeans

    t = time.perf_counter()
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vectors)
    return labels, time.perf_counter() - t


def timed_child(kind: str, vectors_file: str, texts_file: str, k: int) -> dict:
    """In its own process: load the vectors, cluster them once, report time and peak memory."""
    vectors = np.load(vectors_file)
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    import sklearn.cluster  # noqa: F401 - imported before the baseline reading, as find_clusters would

    from flywheel.core.labeling import clusters  # noqa: F401

    before = _peak_mib()
    if kind == "agglomerative":
        assigned, seconds = run_clusters(vectors, texts)
    else:
        assigned, seconds = run_kmeans(vectors, k)
    return {"seconds": seconds, "peak_mib": _peak_mib(), "before_mib": before, "assigned": assigned}


def print_scores(name: str, s: dict, seconds: float) -> None:
    print(f"    {name:<34} {s['clusters']:>8} {s['noise']:>6.1%} | {s['ari']:>6.3f} {s['ari_single']:>6.3f} | "
          f"{s['hom']:>6.3f} {s['hom_single']:>6.3f} | {seconds:>6.1f} s")


def cluster_part(args, embedder) -> None:
    from flywheel.core.labeling.clusters import DEFAULT_DISTANCE, DEFAULT_MIN_SIZE

    print(f"\nCLUSTERS on real support queries ({SHARED})")
    if not (SHARED / "train.csv").exists() or not (SHARED / "test.csv").exists():
        print(f"  SKIP: benchmark data not found at {SHARED} (third-party data that lives beside the repository, "
              "see ../shared/benchmarks/README.md); the suggestion figures above do not need it")
        return
    rng = np.random.default_rng(0)
    datasets = [("BANKING77 test", *read_csv(SHARED / "test.csv", "text", "category"))]
    bitext = SHARED / "bitext_customer_support.csv"
    if bitext.exists():
        datasets.append(("Bitext", *read_csv(bitext, "instruction", "intent")))
    else:
        print(f"  (no {bitext.name}: Bitext skipped)")
    train_texts, train_intents = read_csv(SHARED / "train.csv", "text", "category")
    n_time = 2000 if args.quick else min(TIMING_QUERIES, len(train_texts))
    if args.quick:  # a random 1,000 of each evaluation set
        picked = [sorted(rng.choice(len(t), 1000, replace=False)) for _, t, _ in datasets]
        datasets = [(n, [t[i] for i in idx], [y[i] for i in idx]) for (n, t, y), idx in zip(datasets, picked)]

    t = time.perf_counter()
    timing_idx = (sorted(int(i) for i in rng.choice(len(train_texts), n_time, replace=False))
                  if n_time < len(train_texts) else list(range(n_time)))
    timing_texts = [train_texts[i] for i in timing_idx]
    timing_vectors = np.asarray(embedder.encode(timing_texts), dtype=np.float32)
    embed_s = time.perf_counter() - t

    print(f"  find_clusters: agglomerative, average linkage, cosine, cut at DEFAULT_DISTANCE = {DEFAULT_DISTANCE}, "
          f"min_size {DEFAULT_MIN_SIZE}; baseline k-means told the true number of intents")
    print(f"    ARI and homogeneity: noise as one group / noise as singletons (k-means has no noise)")
    print(f"    {'':<34} {'clusters':>8} {'noise':>6} | {'ARI':>6} {'(sgl)':>6} | {'homog':>6} {'(sgl)':>6} |   time")
    for name, texts, intents in datasets:
        k = len(set(intents))
        vectors = np.asarray(embedder.encode(texts), dtype=np.float32)
        print(f"  {name}: {len(texts):,} queries, {k} intents")
        assigned, seconds = run_clusters(vectors, texts)
        print_scores(f"find_clusters (distance {DEFAULT_DISTANCE})", score(intents, assigned), seconds)
        assigned, seconds = run_kmeans(vectors, k)
        print_scores(f"baseline k-means, k = {k}", score(intents, assigned), seconds)

    with tempfile.TemporaryDirectory(prefix="flywheel-assist-") as tmp:
        vectors_file, texts_file = str(Path(tmp) / "vectors.npy"), str(Path(tmp) / "texts.json")
        np.save(vectors_file, timing_vectors)
        Path(texts_file).write_text(json.dumps(timing_texts), encoding="utf-8")
        timing_intents = [train_intents[i] for i in timing_idx]
        k = len(set(timing_intents))
        ours = _child(timed_child, "agglomerative", vectors_file, texts_file, k)
        base = _child(timed_child, "kmeans", vectors_file, texts_file, k)
    print(f"\n  time for {n_time:,} BANKING77 train queries (each clustering in its own process; peak memory = its "
          "VmHWM, the part before clustering is the interpreter, numpy, scikit-learn, flywheel and the vectors)")
    print(f"    {'embedding (all-MiniLM-L6-v2, CPU)':<42} {embed_s:>6.1f} s  ({n_time / embed_s:,.0f} texts/s)")
    for name, r in ((f"find_clusters (distance {DEFAULT_DISTANCE}, terms incl.)", ours),
                    (f"baseline k-means, k = {k}, 10 inits", base)):
        sc = score(timing_intents, r["assigned"])
        print(f"    {name:<42} {r['seconds']:>6.1f} s  peak {r['peak_mib']:,.0f} MiB ({r['before_mib']:,.0f} before); "
              f"{sc['clusters']} clusters, {sc['noise']:.1%} noise, ARI {sc['ari']:.3f} / {sc['ari_single']:.3f}, "
              f"homog {sc['hom']:.3f}")
    print("    (these ARIs are on the train split, where DEFAULT_DISTANCE was tuned on 3,000-query subsamples)")

    if args.tune:
        tune(args, embedder, train_texts, train_intents, timing_idx, timing_vectors)


def tune(args, embedder, texts: list[str], intents: list[str], have_idx: list[int], have_vectors: np.ndarray) -> None:
    """The sweep behind DEFAULT_DISTANCE, on random subsamples of the train split."""
    size = 1000 if args.quick else TUNE_SIZE
    print(f"\n  --tune: BANKING77 train split only, random subsamples of {size:,} queries (seeds "
          f"{', '.join(map(str, TUNE_SEEDS))}); mean (min-max) over the subsamples")
    known = {i: v for i, v in zip(have_idx, have_vectors)}
    subsamples = [sorted(int(i) for i in np.random.default_rng(seed).choice(len(texts), size, replace=False))
                  for seed in TUNE_SEEDS]
    missing = sorted({i for idx in subsamples for i in idx} - set(known))
    if missing:
        for i, v in zip(missing, embedder.encode([texts[i] for i in missing])):
            known[i] = np.asarray(v, dtype=np.float32)
    rows: dict[str, list[dict]] = {}
    for idx in subsamples:
        vectors = np.stack([known[i] for i in idx])
        sub_texts, sub_intents = [texts[i] for i in idx], [intents[i] for i in idx]
        for d in TUNE_DISTANCES:
            rows.setdefault(f"distance {d:.2f}", []).append(score(sub_intents, run_clusters(vectors, sub_texts, d)[0]))
        k = len(set(sub_intents))
        rows.setdefault(f"k-means, k = {k}", []).append(score(sub_intents, run_kmeans(vectors, k)[0]))

    def cell(values: list[float], fmt: str = ".3f") -> str:
        return f"{np.mean(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"

    print(f"    {'':<16} {'clusters':>8} {'noise':>6} | {'ARI':>19} {'ARI (sgl)':>19} | {'homog':>19}")
    for name, scores in rows.items():
        clusters, noise = np.mean([s["clusters"] for s in scores]), np.mean([s["noise"] for s in scores])
        print(f"    {name:<16} {clusters:>8.0f} {noise:>6.1%} | "
              f"{cell([s['ari'] for s in scores]):>19} {cell([s['ari_single'] for s in scores]):>19} | "
              f"{cell([s['hom'] for s in scores]):>19}")
    swept = {n: s for n, s in rows.items() if n.startswith("distance")}
    for key, label in (("ari", "ARI, noise as one group"), ("ari_single", "ARI, noise as singletons")):
        best = max(swept, key=lambda n: np.mean([s[key] for s in swept[n]]))
        print(f"    best by {label}: {best}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller run: demo at 30 traces/day, 1,000 queries per cluster set, 2,000 for the timing")
    parser.add_argument("--tune", action="store_true", help="re-run the DEFAULT_DISTANCE sweep on the train split")
    parser.add_argument("--skip-suggestions", action="store_true")
    parser.add_argument("--skip-clusters", action="store_true")
    args = parser.parse_args()

    from flywheel.resources.embedder import load_embedder

    started = time.perf_counter()
    embedder = load_embedder()
    embedder.encode(["warm up"])
    if not args.skip_suggestions:
        suggestion_part(args, embedder)
    if not args.skip_clusters:
        cluster_part(args, embedder)
    print(f"\ntotal {time.perf_counter() - started:.0f} s, peak memory of this process {_peak_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
