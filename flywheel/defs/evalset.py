"""Station 4 (so far): reviewed failures fold into the versioned eval set, each version exported once."""

import dagster as dg

from flywheel.core.evalset import versions as evalset
from flywheel.core.common import markdown
from flywheel.defs.labeling import LABELS, SUGGESTIONS
from flywheel.resources.warehouse import Warehouse

GROUP = "station_4_evalset"
EVAL_ROWS = dg.AssetKey(["eval", "eval_rows"])
VERSIONS = dg.AssetKey(["eval", "versions"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(EVAL_ROWS, deps=[LABELS], group_name=GROUP, kinds={"duckdb"},
                     description="Every eval row ever added (never deleted): input, expected behaviour, typed pass "
                     "criterion, taxonomy code, adversarial tag, source trace ref (keyed hash), date, and the "
                     "versions it belongs to (eval.row_spans), so any version can be rebuilt."),
        dg.AssetSpec(VERSIONS, deps=[EVAL_ROWS], group_name=GROUP, kinds={"duckdb"},
                     description="One row per eval set version: when, why, rows added, active count, adversarial "
                     "share. Each version is exported once to <data>/exports/eval_set_v<N>.jsonl."),
    ],
    pool="duckdb",
)
def fold_in(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """Reviewed failure labels with a clean scrub become rows; one version per fold-in that adds any."""
    with warehouse.connect() as conn:
        version = evalset.fold_in(conn) if _has_labels(conn) else None
        written = evalset.export_versions(conn, warehouse.paths.exports)
        history = evalset.versions(conn)
        active = evalset.rows_at(conn).height if history else 0
    context.log.info(f"fold-in: {'version ' + str(version) if version else 'nothing new, no version'}")
    yield dg.MaterializeResult(asset_key=EVAL_ROWS, metadata={
        "dagster/row_count": active, "new_version": version or 0,
        "exports_written": dg.MetadataValue.md("\n".join(f"- {p.name}" for p in written) or "none"),
    })
    yield dg.MaterializeResult(asset_key=VERSIONS, metadata={
        "dagster/row_count": len(history),
        "versions": dg.MetadataValue.md(markdown.table(
            ["version", "added", "active", "adversarial share", "cause"],
            [(v["version"], v["rows_added"], v["active_rows"], f"{v['adversarial_share']:.0%}", v["cause"]) for v in history],
        )),
    })


def _has_labels(conn) -> bool:
    from flywheel.core.common.db import table_exists

    return table_exists(conn, "label", "labels") and table_exists(conn, "scrub", "anonymized_traces")


# New labels also retrain the suggestions for what is still in the queue.
fold_in_job = dg.define_asset_job("fold_in_job", selection=dg.AssetSelection.assets(EVAL_ROWS, VERSIONS, SUGGESTIONS),
                                  description="Fold reviewed failures into a new eval set version; retrain the "
                                  "label suggestions on the labels now in force.")
