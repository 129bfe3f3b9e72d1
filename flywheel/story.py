"""The essay's story in numbers, month by month, from the warehouse.

Two dashboards the essay says feel unrelated, side by side: production (traffic, the cohort mix, the
online judge's mean score, CSAT per cohort) and the eval suite (the first eval set's rows as run that
month, the latest version's pass rate, drift). Read by `flywheel status` and `make demo`.

It reads every station's tables, so it belongs to no station's package in `flywheel.core`; its readers
are on both sides (the CLI's status and demo summary, and the drift station's Dagster metadata), so it
sits at the top of the package beside `contracts` and `settings`, which both sides import too.
"""

from __future__ import annotations

import duckdb

from flywheel.core.drift import station as drift_station
from flywheel.core.evalset import versions as evalset
from flywheel.core.common import markdown
from flywheel.core.evalset import regression
from flywheel.core.common.db import table_exists


def months(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    """One dict per month of production traffic; None where a number does not exist yet."""
    regression.ensure_table(conn)
    evalset.ensure_tables(conn)
    drift_station.ensure_tables(conn)
    if not table_exists(conn, "raw", "traces"):
        return []
    cur = conn.execute(
        """WITH production AS (
             SELECT date_trunc('month', "timestamp")::DATE AS month, count(*) AS traffic,
                    count(DISTINCT "timestamp"::DATE) < 21 AS partial,  -- under three weeks of traffic
                    avg((cohort = 'enterprise')::INTEGER) AS enterprise_share, avg(judge_score) AS judge_mean,
                    avg(csat) FILTER (WHERE cohort = 'enterprise') AS csat_enterprise,
                    count(csat) FILTER (WHERE cohort = 'enterprise') AS csat_enterprise_n,
                    avg(csat) FILTER (WHERE cohort IS DISTINCT FROM 'enterprise') AS csat_other
             FROM raw.traces GROUP BY 1
           ), first_rows AS (
             SELECT row_id FROM eval.row_spans WHERE version_from <= 1 AND (version_to IS NULL OR version_to > 1)
           ), first_runs AS (  -- the first eval set's rows, each at its last run of the month
             SELECT date_trunc('month', run_at)::DATE AS month, passed FROM regression.results JOIN first_rows USING (row_id)
             QUALIFY row_number() OVER (PARTITION BY date_trunc('month', run_at), row_id ORDER BY run_at DESC) = 1
           ), first_set AS (
             SELECT month, avg(passed::INTEGER) AS first_pass_rate, count(*) AS first_n FROM first_runs GROUP BY 1
           ), latest_version AS (
             SELECT p.month, max(v.version) AS version FROM production p JOIN eval.versions v
               ON v.created_at < p.month + INTERVAL 1 MONTH GROUP BY 1
           ), latest_runs AS (
             SELECT lv.month, r.row_id, r.passed, e.adversarial FROM latest_version lv JOIN regression.results r
               ON r.eval_version = lv.version AND r.run_at < lv.month + INTERVAL 1 MONTH
             JOIN eval.row_spans s ON s.row_id = r.row_id AND s.version_from <= lv.version
               AND (s.version_to IS NULL OR s.version_to > lv.version)
             JOIN eval.eval_rows e ON e.row_id = r.row_id
             QUALIFY row_number() OVER (PARTITION BY lv.month, r.row_id ORDER BY r.run_at DESC) = 1
           ), latest_set AS (
             SELECT month, avg(passed::INTEGER) AS latest_pass_rate, count(*) AS latest_n,
                    avg(passed::INTEGER) FILTER (WHERE adversarial) AS latest_adversarial_pass_rate
             FROM latest_runs GROUP BY 1
           )
           SELECT p.*, f.first_pass_rate, f.first_n, lv.version AS latest_version, l.latest_pass_rate, l.latest_n,
                  l.latest_adversarial_pass_rate,
                  d.score AS drift_score, d.p_value AS drift_p, d.alert AS drift_alert
           FROM production p LEFT JOIN first_set f USING (month) LEFT JOIN latest_version lv USING (month)
           LEFT JOIN latest_set l USING (month) LEFT JOIN drift.scores d ON d.month = p.month
           ORDER BY p.month"""
    )
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def gate_passes(row: dict, threshold: float = regression.DEFAULT_THRESHOLD) -> bool | None:
    """The one gate on the month's latest version: overall and adversarial pass rates at the threshold."""
    if row["latest_pass_rate"] is None:
        return None
    adversarial = row["latest_adversarial_pass_rate"]
    return row["latest_pass_rate"] >= threshold and (adversarial is None or adversarial >= threshold)


def _gate(row: dict) -> str:
    verdict = gate_passes(row)
    return "-" if verdict is None else ("pass" if verdict else "FAIL")


def months_markdown(rows: list[dict]) -> str:
    return markdown.table(
        ["month", "traffic", "enterprise", "judge mean", "CSAT enterprise", "CSAT smb", "first eval set passes",
         "latest version passes", "gate", "drift (p)"],
        [(f"{r['month']:%Y-%m}" + (" (partial)" if r["partial"] else ""), r["traffic"], _pct(r["enterprise_share"]), _num(r["judge_mean"], ".2f"),
          _num(r["csat_enterprise"], ".2f") if r["csat_enterprise_n"] else "-", _num(r["csat_other"], ".2f"),
          f"{_pct(r['first_pass_rate'])} (n={r['first_n']})" if r["first_n"] else "-",
          f"v{r['latest_version']}: {_pct(r['latest_pass_rate'])} (n={r['latest_n']})" if r["latest_n"] else "-",
          _gate(r),
          "-" if r["drift_score"] is None else
          f"{r['drift_score']:.3f} ({'-' if r['drift_p'] is None else format(r['drift_p'], '.3f')})"
          + (" ALERT" if r["drift_alert"] else "")) for r in rows],
    )


def arc(rows: list[dict]) -> list[str]:
    """The essay's arc read off the numbers: each sentence says what the data shows, whichever way it
    goes."""
    out = []
    rows = [r for r in rows if not r["partial"]]  # under three weeks of traffic is no month to compare
    held = [r for r in rows if r["first_pass_rate"] is not None]
    enterprise = [r for r in rows if r["csat_enterprise_n"]]
    if len(held) >= 2:
        rates = [r["first_pass_rate"] for r in held]
        spread = max(rates[1:]) - min(rates[1:]) if len(rates) > 2 else 0.0
        then = ""
        if len(rates) > 2:
            if spread < 0.005:
                then = f", then held at {rates[1]:.0%} through {held[-1]['month']:%B}"
            else:
                verb = "held within" if spread <= 0.03 else "moved by"
                then = f", then {verb} {spread * 100:.0f} points through {held[-1]['month']:%B}"
        out.append(f"The first eval set went from {rates[0]:.0%} in {held[0]['month']:%B} to {rates[1]:.0%} in "
                   f"{held[1]['month']:%B}{then}.")
    if len(enterprise) >= 2:
        first, last = enterprise[0], enterprise[-1]
        judged = [r["judge_mean"] for r in enterprise]
        verb = "fell" if last["csat_enterprise"] < first["csat_enterprise"] else "did not fall"
        out.append(
            f"Enterprise CSAT {verb}: {first['csat_enterprise']:.2f} in {first['month']:%B} to "
            f"{last['csat_enterprise']:.2f} in {last['month']:%B}, while the online judge's mean stayed between "
            f"{min(judged):.2f} and {max(judged):.2f}."
        )
    gated = [(r["month"], gate_passes(r)) for r in rows if gate_passes(r) is not None]
    if gated:
        passed = [f"{m:%B}" for m, ok in gated if ok]
        failed = [f"{m:%B}" for m, ok in gated if not ok]
        out.append(f"The gate ({regression.DEFAULT_THRESHOLD:.0%} overall and adversarial, latest version) "
                   + "; ".join(part for part in (("passed in " + ", ".join(passed)) if passed else "",
                                                 ("failed in " + ", ".join(failed)) if failed else "") if part) + ".")
    scored = [r for r in rows if r["drift_score"] is not None]
    if len(scored) >= 2:
        peak = max(range(len(scored)), key=lambda i: scored[i]["drift_score"])
        low = min(scored[: peak + 1], key=lambda r: r["drift_score"])
        if peak > 0:
            out.append(f"The drift score rose from {low['drift_score']:.3f} in {low['month']:%B} to "
                       f"{scored[peak]['drift_score']:.3f} in {scored[peak]['month']:%B}.")
    alerts = [r for r in rows if r["drift_alert"]]
    if alerts:
        out.append("Drift alerted in " + ", ".join(f"{r['month']:%B} ({r['drift_score']:.3f}, p={r['drift_p']:.3f})"
                                                   for r in alerts) + ".")
    elif any(r["drift_score"] is not None for r in rows):
        out.append("Drift did not alert in any month.")
    return out


def version_drop(conn: duckdb.DuckDBPyConnection) -> str:
    """The essay's trap, on the latest build: did folding in new rows lower the pass rate, and did the
    rows both versions share hold? Compares the first version with the latest one and the latest with
    its predecessor."""
    rates = regression.pass_rates(conn)
    if not rates:
        return "Not enough versions with results to compare yet."
    model = max(rates, key=lambda r: (r["eval_version"], r["model_version"]))["model_version"]
    by = {(r["eval_version"], r["slice"]): r for r in rates if r["model_version"] == model}
    versions = sorted({v for v, s in by if s == "overall"})
    if len(versions) < 2:
        return "Not enough versions with results to compare yet."
    first, last = by[(versions[0], "overall")], by[(versions[-1], "overall")]
    now = by.get((versions[-1], "shared with previous version: now"))
    before = by.get((versions[-1], "shared with previous version: before"))
    shared = (f" On the {now['n']} rows v{versions[-1]} shares with v{versions[-2]}, {model} passes "
              f"{before['pass_rate']:.0%} before and {now['pass_rate']:.0%} now." if now and before else "")
    if last["pass_rate"] < first["pass_rate"]:
        return (f"Under {model}, v{versions[0]} passes {first['pass_rate']:.0%} and v{versions[-1]} passes "
                f"{last['pass_rate']:.0%}: the rows folded in since are harder, and that drop is correct."
                + shared)
    return (f"Under {model}, v{versions[-1]} passes {last['pass_rate']:.0%} against {first['pass_rate']:.0%} on "
            f"v{versions[0]}: the pass rate did not drop after the fold-ins, so the drift was in the eval set "
            "alone and the model handles the new traffic. Keep the new rows." + shared)
