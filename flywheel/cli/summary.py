"""The story in numbers, per station: printed by `flywheel demo run` and by `flywheel status`."""

from __future__ import annotations

from flywheel.paths import Paths

MAX_NAMES = 5  # reviewers named in the labels line; the rest are counted


def _version_spans(versions: list[int]) -> str:
    """[1, 2, 3, 5] -> 'v1-v3, v5'."""
    spans: list[list[int]] = []
    for v in sorted(versions):
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)


def pass_rates_heading(models_by_version: dict[int, str]) -> str:
    """Which model's pass rates the versions table shows, by the names found: "the simulated model"
    only when every one is a build of the demo's simulated model."""
    from flywheel.demo.model import BUILDS  # light: the demo's model is keyword rules

    models: dict[str, list[int]] = {}
    for version, model in sorted(models_by_version.items()):
        models.setdefault(model, []).append(version)
    if not models:
        return "Station 4 - eval set versions (no regression results yet, so no pass rates)"
    if set(models) <= {b.version for b in BUILDS}:
        return "Station 4 - eval set versions and the simulated model's pass rates"
    if len(models) == 1:
        return f"Station 4 - eval set versions and the pass rates of model {next(iter(models))}"
    return ("Station 4 - eval set versions and pass rates of models "
            + ", ".join(f"{model} ({_version_spans(versions)})" for model, versions in models.items()))


def reviewers_words(reviewers: list[str]) -> str:
    """The reviewers whose labels are in force, by name, most labels first."""
    if not reviewers:
        return "no reviewer yet"
    named = ", ".join(reviewers[:MAX_NAMES])
    more = f" and {len(reviewers) - MAX_NAMES} more" if len(reviewers) > MAX_NAMES else ""
    return ("reviewer " if len(reviewers) == 1 else "reviewers ") + named + more


MAX_QUARANTINE_LINES = 10


def intake_summary(paths: Paths) -> str:
    """What was loaded, from which files, and what was quarantined, by file and line (the reasons
    never quote a record)."""
    from flywheel.cli.common import quarantined_line
    from flywheel.core.common.db import connect

    with connect(paths.warehouse, read_only=True) as conn:
        files, loaded, duplicates = conn.execute(
            "SELECT count(*), coalesce(sum(ingested), 0), coalesce(sum(duplicates), 0) FROM raw.ingested_files"
        ).fetchone()
        held = conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0]
        newest = conn.execute(
            f"""SELECT source_file, line, reason FROM raw.quarantine
                ORDER BY quarantined_at DESC, source_file, line LIMIT {MAX_QUARANTINE_LINES}""").fetchall()
    text = (f"Intake - {loaded} traces loaded from {files} file(s), {duplicates} duplicates; "
            f"{held} record(s) in quarantine" + (", the latest:" if held else "."))
    for file, line, reason in newest:
        text += f"\n  {quarantined_line(file, line, reason)}"
    if held > len(newest):
        text += f"\n  ... and {held - len(newest)} more in raw.quarantine."
    return text


def drift_summary(paths: Paths) -> str:
    from flywheel.core.drift import station as drift_station
    from flywheel.core.common.db import connect

    with connect(paths.warehouse) as conn:
        months = drift_station.history(conn)
    return ("Station 5 - drift per month (100 production traces against the current eval set)\n"
            + drift_station.history_markdown(months))


def evalset_summary(paths: Paths) -> str:
    from flywheel.core.evalset import versions as evalset
    from flywheel.core.common import markdown
    from flywheel.core.evalset import regression
    from flywheel.core.common.db import connect

    with connect(paths.warehouse) as conn:
        history = evalset.versions(conn)
        rates = regression.pass_rates(conn)
    exported = sorted(int(p.stem.removeprefix("eval_set_v")) for p in paths.exports.glob("eval_set_v*.jsonl")
                      if p.stem.removeprefix("eval_set_v").isdigit())
    rate = {(r["eval_version"], r["slice"]): r for r in rates}
    shown = {version: r["model_version"] for (version, slice_), r in rate.items() if slice_ == "overall"}

    def pct(version, slice_):
        r = rate.get((version, slice_))
        return f"{r['pass_rate']:.0%} (n={r['n']})" if r else "-"

    return (
        pass_rates_heading({v["version"]: shown[v["version"]] for v in history if v["version"] in shown}) + "\n"
        + markdown.table(["version", "rows added", "active", "adversarial share", "pass rate", "adversarial",
                          "shared rows: before -> now", "cause"],
                         [(v["version"], v["rows_added"], v["active_rows"], f"{v['adversarial_share']:.0%}",
                           pct(v["version"], "overall"), pct(v["version"], "adversarial"),
                           f"{pct(v['version'], 'shared with previous version: before')} -> "
                           f"{pct(v['version'], 'shared with previous version: now')}", v["cause"]) for v in history])
        + "\nA lower pass rate on a new version with the shared rows unchanged is a harder set, not a regression."
        + (f"\nExports (written once each, never rewritten): eval_set_v<N>.jsonl for {len(exported)} versions "
           f"(v{exported[0]}-v{exported[-1]}) in {paths.exports}" if exported else "\nNo exports yet.")
    )


def label_summary(paths: Paths, labelled) -> str:
    from flywheel.core.common import markdown
    from flywheel.core.common.db import connect

    with connect(paths.warehouse, read_only=True) as conn:
        looked = conn.execute("SELECT count(*) FROM label.current_labels").fetchone()[0]
        queued = conn.execute("SELECT count(*) FROM scrub.anonymized_traces").fetchone()[0]
        codes = conn.execute(
            """SELECT taxonomy_code, count(*), any_value(t.created_from) FROM label.current_labels l
               JOIN label.taxonomy t ON t.code = l.taxonomy_code GROUP BY 1 ORDER BY 2 DESC"""
        ).fetchall()
        pii = conn.execute("SELECT count(*) FROM label.current_labels WHERE NOT pii_ok").fetchone()[0]
        buckets = dict(conn.execute("SELECT bucket, count(*) FROM label.current_labels GROUP BY 1").fetchall())
        reviewers = [r for (r,) in conn.execute(
            "SELECT reviewer FROM label.current_labels GROUP BY 1 ORDER BY count(*) DESC, reviewer").fetchall()]
        from flywheel.core.labeling.suggestions import acceptance

        suggested = acceptance(conn)
    share = buckets.get("not_a_bug", 0) / max(1, looked)
    siblings = labelled.get("sibling", 0)
    return (
        f"Station 3 - {looked} of {queued} scrubbed traces labelled ({reviewers_words(reviewers)}; "
        f"{sum(labelled.values())} in this run)"
        + (": " + ", ".join(f"{k} {v}" for k, v in sorted(buckets.items()))
           + f"; {share:.0%} of what was looked at is not a bug (the essay: about a third).\n" if looked else ".\n")
        + markdown.table(["taxonomy code", "labels", "origin"],
                         [(c, n, "seed" if origin == "seed" else "new, found in review") for c, n, origin in codes])
        + (f"\nSiblings of the new failure mode accepted from the last 30 days (embedding search): {siblings}"
           if siblings else "")
        + (f"\nSuggestions (scikit-learn, trained on the labels before): {suggested['suggested']} of {looked} labels "
           f"had one on screen (the others: too few labels yet, or under 50% sure); the reviewer's verdict "
           f"matched it {suggested['accepted']} times ({suggested['accepted'] / suggested['suggested']:.0%})."
           if suggested["suggested"] else "")
        + f"\nLabels whose scrubbed text still held PII (sent to residue): {pii}"
    )


def scrub_summary(paths: Paths, results: list[dict] | None) -> str:
    from flywheel.core.common import markdown
    from flywheel.core.common.db import connect
    from flywheel.core.scrub import keep_terms
    from flywheel.core.scrub.residue import summary

    with connect(paths.warehouse, read_only=True) as conn:
        rows = summary(conn)
        layers = conn.execute(
            """SELECT c.layer, sum(c.n) FROM scrub.scrub_report r, unnest(r.entity_counts) AS u(c) GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        waiting = keep_terms.waiting(conn)
    if results is None:
        leak_line = "The PII canary leak check of each week is on scrub/anonymized_traces in the UI."
    else:
        failed = [r["week"] for r in results for name, passed in r["checks"] if name == "no_pii_canary_leak" and not passed]
        leak_line = ("PII canary leak check: passed every week (no demo PII value or vocabulary entry in any scrubbed "
                     "trace)." if not failed else f"PII canary leak check FAILED for weeks {', '.join(failed)}: see the UI.")
    return (
        "Station 2 - scrubbed before anyone reads them; residue per PII class (misses reviewers reported)\n"
        + markdown.table(["entity class", "findings", "traces with findings", "misses reported (residue)", "miss rate"],
                         [(r["entity_type"], r["findings"], r["traces_with_findings"], r["misses_reported"],
                           f"{r['miss_rate']:.2%}") for r in rows])
        + "\n\nFindings per layer: " + ", ".join(f"{layer} {n}" for layer, n in layers)
        + "\n" + leak_line
        + (f"\nKeep terms waiting for an admin: {waiting['mined']} word(s) the weekly scrub hid for many customers, "
           f"{waiting['marked']} placeholder(s) reviewers marked as no personal data: flywheel keep-terms."
           if waiting["mined"] or waiting["marked"] else "")
    )


def sample_summary(results: list[dict]) -> str:
    """Per week, or per month when there are more than eight weeks (the demo's six months)."""
    from flywheel.core.common import markdown

    by_month = len(results) > 8
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["week"][:7] if by_month else r["week"], []).append(r)

    def total(rs, key, mode=None):
        return sum((r["per_mode"].get(mode, 0) if mode else r[key]) for r in rs)

    rows = [
        (label, total(rs, "traffic"), total(rs, "sampled"), total(rs, None, "random"), total(rs, None, "stratified"),
         total(rs, None, "anomaly"), f"{rs[-1]['p_random_sees_rare_failure']:.0%}")
        for label, rs in groups.items()
    ]
    header = ["month (weeks starting in it)" if by_month else "week", "traffic", "sampled", "random", "stratified",
              "anomaly", "P(random sees 0.5% mode)"]
    total_traffic = sum(r["traffic"] for r in results)
    total_sampled = sum(r["sampled"] for r in results)
    return (
        "Station 1 - samples\n" + markdown.table(header, rows)
        + f"\n\n{total_sampled} of {total_traffic} traces sampled. The last column is the essay's warning: a "
        "random slice alone rarely sees a failure mode at 0.5% prevalence (per week); strata and anomalies are what "
        "find it."
    )


def story_summary(paths: Paths) -> str:
    """The two dashboards side by side, month by month, and what they say together."""
    from flywheel import story
    from flywheel.core.common.db import connect

    with connect(paths.warehouse) as conn:
        months = story.months(conn)
        drop = story.version_drop(conn)
    lines = "\n".join(f"- {s}" for s in [*story.arc(months), drop])
    return ("The story, month by month: production on the left, the eval suite on the right\n"
            + story.months_markdown(months) + "\n" + lines
            + "\n(First eval set: the rows of version 1, each at its last run in the month, by the build in "
            "production then.)")


UI_PAGES = (
    ("Global asset lineage: the five stations and what feeds what", "/asset-groups"),
    ("Pass rate against eval version (chart and table) and the gate check", "/assets/regression/pass_rates"),
    ("Drift per month with p-values; the essay's trap", "/assets/drift/scores"),
    ("This week's review queue, adversarial candidates first", "/assets/label/review_queue"),
    ("Scrub report and the PII canary leak check", "/assets/scrub/anonymized_traces"),
    ("Every run the loop made, with its tags (incident runs carry flywheel/incident)", "/runs"),
)


def ui_summary(base: str = "http://127.0.0.1:3000") -> str:
    return "Open in the UI (make ui):\n" + "\n".join(f"- {what}: {base}{path}" for what, path in UI_PAGES)
