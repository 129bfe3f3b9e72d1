"""What /assets/regression/pass_rates shows: the table per eval version and model version, the chart of
pass rate against eval version (an inline SVG image), and a gate check that is red without failing the
run. The browser proof is in test_ui.py."""

import datetime as dt
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import dagster as dg
import pytest

from flywheel.core.evalset import pass_rate_view as view
from flywheel.core.evalset import regression
from flywheel.core.evalset import versions as evalset
from flywheel_tests.test_evalset import write_csv

SVG = "{http://www.w3.org/2000/svg}"
GATED, OTHER = "build-2 (simulated)", "build-1"


def slice_rows(version: int, model: str, overall: tuple[int, float], adversarial=None, shared=None) -> list[dict]:
    """Rows as `regression.pass_rates()` returns them; shared is (n, before, now)."""
    def row(slice_: str, n: int, rate: float) -> dict:
        return {"eval_version": version, "model_version": model, "slice": slice_, "n": n, "pass_rate": rate}

    rows = [row("overall", *overall), row("code:billing", 1, 0.0)]  # a code slice the page leaves out
    if adversarial:
        rows.append(row("adversarial", *adversarial))
    if shared:
        n, before, now = shared
        rows += [row(view.SHARED_BEFORE, n, before), row(view.SHARED_NOW, n, now)]
    return rows


def history(versions: int, other_until: int = 5) -> list[dict]:
    """The demo's shape: the gated build on every version, getting worse on a harder set, its
    adversarial slice at 100% but for a dip; another build on the first versions only."""
    rows = [r for v in range(1, versions + 1)
            for r in slice_rows(v, GATED, (40 + v, 0.95 - v * 0.007), (4, 0.75 if v == 3 else 1.0),
                                (39 + v, 0.9, 0.9) if v > 1 else None)]
    return rows + [r for v in range(1, min(versions, other_until) + 1) for r in slice_rows(v, OTHER, (40 + v, 0.85))]


def test_per_version_is_one_record_per_version_and_model_newest_first():
    rows = slice_rows(1, GATED, (50, 0.9), (4, 1.0)) + slice_rows(2, GATED, (55, 0.8), (5, 0.8), (50, 0.9, 0.88))
    records = view.per_version(rows, threshold=0.9)
    assert [(r["eval_version"], r["model_version"]) for r in records] == [(2, GATED), (1, GATED)]
    assert records[0] == {"eval_version": 2, "model_version": GATED, "n": 55, "pass_rate": 0.8, "adversarial_n": 5,
                          "adversarial_pass_rate": 0.8, "shared_n": 50, "shared_pass_rate_before": 0.9,
                          "shared_pass_rate_now": 0.88, "meets_gate": False}
    assert records[1]["shared_n"] is None and records[1]["meets_gate"] is True, "v1 shares nothing with a v0"


@pytest.mark.parametrize("overall,adversarial,expected", [
    (0.9, 0.9, True), (0.9, None, True), (0.89, 1.0, False), (1.0, 0.5, False), (None, None, None),
])
def test_meets_gate_is_the_gates_rule_without_an_asterisk(overall, adversarial, expected):
    assert view.meets_gate({"pass_rate": overall, "adversarial_pass_rate": adversarial}, 0.9) is expected


def test_the_chart_draws_each_line_the_gate_and_the_version_range():
    records = view.per_version(history(6), threshold=0.9)
    svg = ET.fromstring(view.chart_svg(records, threshold=0.9))
    strokes = [p.get("stroke") for p in svg.iter(f"{SVG}path")]
    assert strokes == [view.GATE_COLOUR, view.OTHER_COLOUR, view.ADVERSARIAL_COLOUR, view.GATED_COLOUR], "gate below"
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert {"100%", "90%", "v1", "v6", "other builds"} <= set(texts)
    assert "build-2: overall, adversarial" in texts, "the legend names the gated build, without the parenthesis"


def test_a_straight_run_is_one_path_step_and_a_single_version_a_dot():
    assert view._path([(30, 6), (40, 6), (50, 6), (60, 8)], "teal") == "<path d='M30,6l20,0,10,2' stroke='teal'/>"
    assert view._path([(30, 40)], "teal").startswith("<circle cx='30' cy='40'")
    one = ET.fromstring(view.chart_svg(view.per_version(slice_rows(1, GATED, (50, 0.9)), 0.9), 0.9))
    assert ["".join(t.itertext()) for t in one.iter(f"{SVG}text")].count("v1") == 1


@pytest.mark.parametrize("versions", [1, 8, 30, 120])
def test_the_chart_link_stays_inline_and_keeps_the_newest_versions(versions):
    records = view.per_version(history(versions), threshold=0.9)
    text = view.chart_markdown(records, threshold=0.9)
    assert len(text) < view.INLINE_MARKDOWN_LIMIT, "shorter than this, Dagster renders it without a click"
    alt, _, destination = text.removeprefix("![").removesuffix(")").partition("](")
    assert alt.endswith(f"-v{versions}") and destination.startswith("data:image/svg+xml,")
    assert " " not in destination and "#" not in destination, "a bare Markdown link destination"
    svg = ET.fromstring(unquote(destination.removeprefix("data:image/svg+xml,")))
    first = int(alt.rsplit(" v", 1)[1].split("-")[0])
    assert f"v{first}" in ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    if versions <= 30:
        assert first == 1, "six months of weekly versions fit whole"


def test_no_results_is_said_not_drawn():
    assert view.chart_markdown([], threshold=0.9) == "_no results to plot yet_"


ROWS = [{"input": f"q{i}", "expected": f"answer {i}", "criterion": "", "adversarial": "true" if i == 0 else "false",
         "added_at": "2026-03-02"} for i in range(10)]


def test_a_failing_gate_is_red_but_the_run_succeeds_with_table_and_chart(data_dir, tmp_path):
    from flywheel.defs.regression import PER_VERSION_SCHEMA, pass_rates
    from flywheel.resources.warehouse import Warehouse

    warehouse = Warehouse(data_dir=str(data_dir))
    with warehouse.connect() as conn:
        evalset.import_starter(conn, write_csv(tmp_path / "s.csv", ROWS))
        regression.ensure_table(conn)
        rows = evalset.rows_at(conn).sort("adversarial", descending=True)  # the adversarial row first: it passes
        for i, row_id in enumerate(rows["row_id"]):  # 8 of 10 pass: under the 90% gate
            conn.execute("INSERT INTO regression.results VALUES (?, 1, 'm', ?, NULL, ?, 'import')",
                         [row_id, i not in (1, 2), dt.datetime(2026, 3, 10)])
    result = dg.materialize([pass_rates], resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success, "a failing gate does not fail the run that computed the pass rates"
    [check] = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["verdict"].value == "overall pass rate 80.0% is below 90%"
    meta = result.asset_materializations_for_node("regression__pass_rates")[0].metadata
    table = meta["pass_rate_per_version"]
    assert isinstance(table, dg.TableMetadataValue) and table.schema == PER_VERSION_SCHEMA
    [record] = [r.data for r in table.records]
    assert record["version"] == 1 and record["model"] == "m" and record["gate"] == "FAIL"
    assert record["n"] == 10 and record["pass rate"] == "80.0%" and record["adv pass rate"] == "100.0%"
    chart = meta["pass_rate_vs_eval_version"].value
    assert chart.startswith("![pass rate by eval version v1-v1](data:image/svg+xml,") and len(chart) < 1000
    assert meta["latest_version_pass_rate"].value == pytest.approx(0.8), "the number Dagster plots over time"
    assert meta["latest_eval_version"].value == 1


def test_pass_rates_are_a_read_that_the_review_apps_read_only_snapshot_can_make(tmp_path):
    """The review app reads its snapshot on a read-only connection; pass_rates() created its tables
    first, which DuckDB refuses there even when they exist, so after the first weekly run (which makes
    regression.results) the app never loaded a snapshot: an empty queue, every label refused."""
    import duckdb

    from flywheel.web.snapshot import load

    path = tmp_path / "flywheel.duckdb"
    with duckdb.connect(str(path)) as conn:  # what a first weekly run leaves: the tables, no result yet
        regression.ensure_table(conn)
        evalset.ensure_tables(conn)
        conn.execute("INSERT INTO eval.versions (version, created_at) VALUES (1, TIMESTAMP '2026-03-09')")
    snapshot = load(path)
    assert [v["version"] for v in snapshot.versions] == [1] and snapshot.pass_rates == view.per_version([], 0.9)
    with duckdb.connect(str(path), read_only=True) as conn:
        assert regression.pass_rates(conn) == []
