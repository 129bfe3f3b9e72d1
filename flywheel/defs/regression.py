"""Station 4 (cont.): regression results, pass rates per version, the gate, monthly retirement."""

import dagster as dg

from flywheel.core.evalset import versions as evalset
from flywheel.core.common import markdown
from flywheel.core.evalset import regression
from flywheel.core.evalset import retirement
from flywheel.defs.evalset import EVAL_ROWS, GROUP, VERSIONS
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import partitions_start

RESULTS = dg.AssetKey(["regression", "results"])
PASS_RATES = dg.AssetKey(["regression", "pass_rates"])
ADVERSARIAL_SHARE = (0.05, 0.10)  # the essay's workable cadence: 5-10% of active rows
GATE_THRESHOLD = regression.DEFAULT_THRESHOLD

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=partitions_start()[:8] + "01")

results = dg.AssetSpec(
    RESULTS, deps=[EVAL_ROWS], group_name=GROUP, kinds={"duckdb"},
    description="One verdict per row, eval version and model version: from `flywheel results import` or the built-in "
    "runner `flywheel regress` (which also runs archived rows).",
)


@dg.asset(
    key=PASS_RATES, deps=[RESULTS, VERSIONS], group_name=GROUP, kinds={"duckdb"}, pool="duckdb",
    check_specs=[dg.AssetCheckSpec("gate_passes", asset=PASS_RATES, blocking=True,
                                   description=f"Overall and adversarial pass rates of the latest version are at least "
                                   f"{GATE_THRESHOLD:.0%}: the same gate as `flywheel gate`, no asterisk on adversarial rows.")],
    description="Pass rate and n per eval version and model version: overall, adversarial slice, per taxonomy code, and "
    "on the rows a version shares with the previous one, so a harder set is not read as a regression.",
)
def pass_rates(warehouse: Warehouse):
    with warehouse.connect() as conn:
        rows = regression.pass_rates(conn)
        verdict = regression.gate(conn, threshold=GATE_THRESHOLD, adversarial_threshold=GATE_THRESHOLD)
    headline = [r for r in rows if not r["slice"].startswith("code:")]
    overall = [r for r in rows if r["slice"] == "overall"]
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "pass_rates": dg.MetadataValue.md(markdown.table(
            ["version", "model", "slice", "n", "pass rate"],
            [(r["eval_version"], r["model_version"], r["slice"], r["n"], f"{r['pass_rate']:.1%}") for r in headline],
        ) if headline else "_no results yet_"),
        "pass_rate_per_version": dg.MetadataValue.md(markdown.bars(
            [(f"v{r['eval_version']} {r['model_version'].removesuffix(' (simulated)')}", float(r["pass_rate"])) for r in overall])),
        # A float per materialization: the UI plots it over time on the asset's page.
        "latest_version_pass_rate": dg.MetadataValue.float(float(overall[-1]["pass_rate"]) if overall else 0.0),
    })
    yield dg.AssetCheckResult(
        check_name="gate_passes", passed=verdict.exit_code != regression.EXIT_FAIL,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"verdict": "; ".join(verdict.reasons) or ("no results" if verdict.n == 0 else "passed"),
                  "overall": verdict.pass_rate or 0.0, "adversarial": verdict.adversarial_pass_rate or 0.0},
    )


@dg.asset_check(asset=EVAL_ROWS, description="Adversarial rows are 5-10% of the active eval set (the essay's cadence).")
def adversarial_share(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as conn:
        rows = evalset.rows_at(conn)
    share = float(rows["adversarial"].mean()) if rows.height else 0.0
    low, high = ADVERSARIAL_SHARE
    return dg.AssetCheckResult(passed=low <= share <= high, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"adversarial_share": share, "active_rows": rows.height})


@dg.asset(
    key=["eval", "retirement"], deps=[RESULTS], partitions_def=monthly_partitions, group_name=GROUP,
    kinds={"duckdb"}, pool="duckdb",
    check_specs=[dg.AssetCheckSpec("no_retired_row_comeback", asset=dg.AssetKey(["eval", "retirement"]),
                                   description="An archived row that fails again is a regression worth knowing about: "
                                   "it is reinstated, and this check fails to say so.")],
    description="Monthly, once the month has ended: rows the model has stopped failing (a failed run before, then "
    "results in this month and the one before with no failure) retire to the archive, never deleted; archived rows "
    "that failed again come back. One version for both.",
)
def monthly_retirement(context: dg.AssetExecutionContext, warehouse: Warehouse):
    month = context.partition_time_window.start.date()
    with warehouse.connect() as conn:
        outcome = retirement.run_month(conn, month)
    yield dg.MaterializeResult(metadata={
        "new_version": outcome["version"] or 0, "retired": len(outcome["retired"]), "reinstated": len(outcome["reinstated"]),
    })
    yield dg.AssetCheckResult(
        check_name="no_retired_row_comeback", passed=not outcome["reinstated"], severity=dg.AssetCheckSeverity.ERROR,
        metadata={"reinstated_rows": dg.MetadataValue.md("\n".join(f"- {r}" for r in outcome["reinstated"]) or "none")},
    )


pass_rates_job = dg.define_asset_job("pass_rates_job", selection=dg.AssetSelection.assets(PASS_RATES),
                                     description="Recompute pass rates per version and check the gate.")
