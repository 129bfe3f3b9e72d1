"""The story in numbers, per station: printed by `flywheel demo run` and by `flywheel status`."""

from __future__ import annotations

from flywheel.settings import Paths


def drift_summary(paths: Paths) -> str:
    from flywheel.core import drift_station
    from flywheel.core.db import connect

    with connect(paths.warehouse) as conn:
        months = drift_station.history(conn)
    return ("Station 5 - drift per month (100 production traces against the current eval set)\n"
            + drift_station.history_markdown(months))


def evalset_summary(paths: Paths) -> str:
    from flywheel.core import evalset, markdown, regression
    from flywheel.core.db import connect

    with connect(paths.warehouse) as conn:
        history = evalset.versions(conn)
        rates = regression.pass_rates(conn)
    exports = sorted(p.name for p in paths.exports.glob("eval_set_v*.jsonl"))
    rate = {(r["eval_version"], r["slice"]): r for r in rates}

    def pct(version, slice_):
        r = rate.get((version, slice_))
        return f"{r['pass_rate']:.0%} (n={r['n']})" if r else "-"

    return (
        "Station 4 - eval set versions and the simulated model's pass rates\n"
        + markdown.table(["version", "rows added", "active", "adversarial share", "pass rate", "adversarial",
                          "shared rows: before -> now", "cause"],
                         [(v["version"], v["rows_added"], v["active_rows"], f"{v['adversarial_share']:.0%}",
                           pct(v["version"], "overall"), pct(v["version"], "adversarial"),
                           f"{pct(v['version'], 'shared with previous version: before')} -> "
                           f"{pct(v['version'], 'shared with previous version: now')}", v["cause"]) for v in history])
        + "\nA lower pass rate on a new version with the shared rows unchanged is a harder set, not a regression."
        + f"\nExports (written once each): {', '.join(exports)} in {paths.exports}"
    )


def label_summary(paths: Paths, labelled) -> str:
    from flywheel.core import markdown
    from flywheel.core.db import connect

    with connect(paths.warehouse, read_only=True) as conn:
        looked = conn.execute("SELECT count(*) FROM label.current_labels").fetchone()[0]
        queued = conn.execute("SELECT count(*) FROM scrub.anonymized_traces").fetchone()[0]
        codes = conn.execute(
            """SELECT taxonomy_code, count(*), any_value(t.created_from) FROM label.current_labels l
               JOIN label.taxonomy t ON t.code = l.taxonomy_code GROUP BY 1 ORDER BY 2 DESC"""
        ).fetchall()
        pii = conn.execute("SELECT count(*) FROM label.current_labels WHERE NOT pii_ok").fetchone()[0]
        buckets = dict(conn.execute("SELECT bucket, count(*) FROM label.current_labels GROUP BY 1").fetchall())
    share = buckets.get("not_a_bug", 0) / max(1, looked)
    siblings = labelled.get("sibling", 0)
    return (
        f"Station 3 - {looked} of {queued} scrubbed traces labelled (reviewer demo-simulated; "
        f"{sum(labelled.values())} in this run): " + ", ".join(f"{k} {v}" for k, v in sorted(buckets.items()))
        + f"; {share:.0%} of what was looked at is not a bug (the essay: about a third).\n"
        + markdown.table(["taxonomy code", "labels", "origin"],
                         [(c, n, "seed" if origin == "seed" else "new, found in review") for c, n, origin in codes])
        + (f"\nSiblings of the new failure mode accepted from the last 30 days (embedding search): {siblings}"
           if siblings else "")
        + f"\nLabels whose scrubbed text still held PII (sent to residue): {pii}"
    )


def scrub_summary(paths: Paths, results: list[dict] | None) -> str:
    from flywheel.core import markdown
    from flywheel.core.db import connect
    from flywheel.core.scrub.residue import summary

    with connect(paths.warehouse, read_only=True) as conn:
        rows = summary(conn)
        layers = conn.execute(
            """SELECT c.layer, sum(c.n) FROM scrub.scrub_report r, unnest(r.entity_counts) AS u(c) GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    if results is None:
        leak_line = "The PII canary leak check of each week is on scrub/anonymized_traces in the UI."
    else:
        failed = [r["week"] for r in results for name, passed in r["checks"] if name == "no_pii_canary_leak" and not passed]
        leak_line = ("PII canary leak check: passed every week (no demo PII value or vocabulary entry in any scrubbed "
                     "trace)." if not failed else f"PII canary leak check FAILED for weeks {', '.join(failed)}: see the UI.")
    return (
        "Station 2 - scrubbed before anyone reads them\n"
        + markdown.table(["entity class", "findings", "traces with findings", "misses reported"],
                         [(r["entity_type"], r["findings"], r["traces_with_findings"], r["misses_reported"]) for r in rows])
        + "\n\nFindings per layer: " + ", ".join(f"{layer} {n}" for layer, n in layers)
        + "\n" + leak_line
    )


def sample_summary(results: list[dict]) -> str:
    from flywheel.core import markdown

    rows = [
        (r["week"], r["traffic"], r["sampled"], r["per_mode"].get("random", 0), r["per_mode"].get("stratified", 0),
         r["per_mode"].get("anomaly", 0), f"{r['p_random_sees_rare_failure']:.0%}")
        for r in results
    ]
    header = ["week", "traffic", "sampled", "random", "stratified", "anomaly", "P(random sees 0.5% mode)"]
    total_traffic = sum(r["traffic"] for r in results)
    total_sampled = sum(r["sampled"] for r in results)
    return (
        "Station 1 - weekly samples\n" + markdown.table(header, rows)
        + f"\n\n{total_sampled} of {total_traffic} traces sampled. The last column is the essay's warning: a "
        "random slice alone rarely sees a failure mode at 0.5% prevalence; strata and anomalies are what find it."
    )

