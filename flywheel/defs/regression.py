"""Station 4 (cont.): regression results, pass rates per version, the gate, monthly retirement."""

import dagster as dg

from flywheel.core.evalset import versions as evalset
from flywheel.core.evalset import pass_rate_view, regression
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


# The gate check is red when the gate fails, but it does not block: a failing gate is news about the
# model (often a harder eval set), not a broken pipeline, so the run that computed the pass rates
# succeeds and the run list keeps FAILURE for runs that really broke. CI blocks with `flywheel gate`.
GATE_CHECK = dg.AssetCheckSpec(
    "gate_passes", asset=PASS_RATES, blocking=False,
    description=f"Overall and adversarial pass rates of the latest version are at least {GATE_THRESHOLD:.0%}: the "
    "same gate as `flywheel gate`, no asterisk on adversarial rows. Red (severity ERROR) when it fails, without "
    "failing the run that computed the rates: CI blocks on the exit code of `flywheel gate`.",
)

# Short column names that may wrap, and the gate early: the table sits in the value column of the
# asset page's metadata section, and a wide table scrolls its last columns out of sight.
PER_VERSION_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("version", "int", description="Eval set version."),
    dg.TableColumn("model", "string", description="Model version the results are for."),
    dg.TableColumn("gate", "string", description=f"pass when overall and adversarial pass rates are at least "
                   f"{GATE_THRESHOLD:.0%}, as `flywheel gate` judges."),
    dg.TableColumn("n", "int", description="Rows of the version with a result for the model (latest result per row)."),
    dg.TableColumn("pass rate", "string", description="Share of those rows passed."),
    dg.TableColumn("adv n", "int", description="Adversarial rows among them."),
    dg.TableColumn("adv pass rate", "string", description="Share of the adversarial rows passed."),
    dg.TableColumn("shared n", "int", description="Rows this version shares with the previous one, scored in both."),
    dg.TableColumn("shared before", "string", description="Pass rate on the shared rows in the previous version."),
    dg.TableColumn("shared now", "string", description="Pass rate on the shared rows in this version: a drop here "
                   "is a regression, a drop in the pass rate alone is a harder set."),
])


@dg.asset(
    key=PASS_RATES, deps=[RESULTS, VERSIONS], group_name=GROUP, kinds={"duckdb"}, pool="duckdb",
    check_specs=[GATE_CHECK],
    description="Pass rate and n per eval version and model version: overall, adversarial slice, per taxonomy code, and "
    "on the rows a version shares with the previous one, so a harder set is not read as a regression.",
)
def pass_rates(warehouse: Warehouse):
    with warehouse.connect() as conn:
        rows = regression.pass_rates(conn)
        verdict = regression.gate(conn, threshold=GATE_THRESHOLD, adversarial_threshold=GATE_THRESHOLD)
    records = pass_rate_view.per_version(rows, GATE_THRESHOLD)
    yield dg.MaterializeResult(metadata=pass_rates_metadata(rows, records))
    yield dg.AssetCheckResult(
        check_name="gate_passes", passed=verdict.exit_code != regression.EXIT_FAIL,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"verdict": "; ".join(verdict.reasons) or ("no results" if verdict.n == 0 else "passed"),
                  "eval_version": verdict.eval_version, "model_version": verdict.model_version or "-",
                  "overall": verdict.pass_rate or 0.0, "adversarial": verdict.adversarial_pass_rate or 0.0},
    )


def pass_rates_metadata(rows: list[dict], records: list[dict]) -> dict:
    """In the order the asset page lists them: the plot against eval version, the table per version,
    then the numbers Dagster plots against time (the Plots toggle of the same section)."""
    latest = _latest_gated(records)
    return {
        "pass_rate_vs_eval_version": dg.MetadataValue.md(pass_rate_view.chart_markdown(records, GATE_THRESHOLD)),
        "pass_rate_per_version": dg.MetadataValue.table(
            [dg.TableRecord(_table_row(r)) for r in records], schema=PER_VERSION_SCHEMA),
        "latest_version_pass_rate": dg.MetadataValue.float(latest["pass_rate"] if latest else 0.0),
        "latest_adv_pass_rate": dg.MetadataValue.float(
            (latest["adversarial_pass_rate"] or 0.0) if latest else 0.0),
        "latest_eval_version": dg.MetadataValue.int(latest["eval_version"] if latest else 0),
        "dagster/row_count": len(rows),
    }


def _latest_gated(records: list[dict]) -> dict | None:
    model = pass_rate_view.gated_model(records)
    return next((r for r in records if r["model_version"] == model), None)  # records are newest version first


def _table_row(record: dict) -> dict:
    def pct(rate: float | None) -> str | None:
        return None if rate is None else f"{rate:.1%}"

    return {
        "version": record["eval_version"], "model": record["model_version"],
        "gate": {True: "pass", False: "FAIL", None: None}[record["meets_gate"]],
        "n": record["n"], "pass rate": pct(record["pass_rate"]),
        "adv n": record["adversarial_n"], "adv pass rate": pct(record["adversarial_pass_rate"]),
        "shared n": record["shared_n"], "shared before": pct(record["shared_pass_rate_before"]),
        "shared now": pct(record["shared_pass_rate_now"]),
    }


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
