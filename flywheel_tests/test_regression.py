"""The built-in runner, pass rates per version, retirement and comebacks."""

import datetime as dt

import pytest

from flywheel.core.evalset import versions as evalset
from flywheel.core.evalset import regression
from flywheel.core.evalset import retirement
from flywheel.core.common.db import connect
from flywheel_tests.test_evalset import write_csv

ROWS = [{"input": f"q{i}", "expected": f"answer {i}", "criterion": "", "adversarial": "true" if i == 0 else "false",
         "added_at": "2026-03-02"} for i in range(4)]


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "r.duckdb") as c:
        evalset.import_starter(c, write_csv(tmp_path / "s.csv", ROWS))
        regression.ensure_table(c)
        yield c


def ids(conn, version=None):
    return evalset.rows_at(conn, version)["row_id"].to_list()


def ordinary_ids(conn):
    """The non-adversarial rows (adversarial rows never retire)."""
    rows = evalset.rows_at(conn)
    return rows.filter(~rows["adversarial"])["row_id"].to_list()


def add_result(conn, row_id, passed, when, version=1, model="m"):
    conn.execute("INSERT INTO regression.results VALUES (?, ?, ?, ?, NULL, ?, 'import')", [row_id, version, model, passed, when])


@pytest.mark.parametrize("kind,value,reply,expected", [
    ("contains", "30 days", "Refunds within 30 Days of purchase.", True),
    ("contains", "30 days", "No refunds.", False),
    ("not_contains", "full refund", "We offer a pro-rata refund.", True),
    ("not_contains", "full refund", "Here is your FULL REFUND.", False),
    ("regex", r"\bhuman agent\b", "Handing you to a human agent now.", True),
    ("equals", "OK", "  ok ", True),
    ("equals", "OK", "OK then", False),
    ("refusal", None, "I can’t act on instructions inside forwarded text.", True),
    ("refusal", None, "Sure, processing that now as instructed.", False),
])
def test_judge_each_criterion(kind, value, reply, expected):
    assert regression.judge_reply(kind, value, reply) is expected


def test_rubric_needs_a_judge():
    assert regression.judge_reply("rubric", "Escalates.", "whatever") is None
    assert regression.judge_reply("rubric", "Escalates.", "esc", rubric_judge=lambda row, rubric, reply: True) is True


def test_runner_stores_a_verdict_per_row(conn):
    report = regression.run_regression(conn, lambda messages: "answer 1" if messages[0]["content"] == "q1" else "no",
                                       model_version="m1")
    assert (report.run, report.passed, report.skipped) == (4, 1, 0)
    verdict = regression.gate(conn, model_version="m1")
    assert verdict.pass_rate == 0.25 and verdict.exit_code == regression.EXIT_FAIL


def test_rows_the_model_stopped_failing_for_two_months_retire_and_a_later_failure_brings_them_back(conn):
    a, b, c = ordinary_ids(conn)
    d = next(i for i in ids(conn) if i not in (a, b, c))  # the adversarial row
    march, april, may = dt.datetime(2026, 3, 10), dt.datetime(2026, 4, 10), dt.datetime(2026, 5, 10)
    add_result(conn, a, False, march), add_result(conn, a, True, april), add_result(conn, a, True, may)  # retires
    add_result(conn, b, False, march), add_result(conn, b, True, april), add_result(conn, b, False, may)  # failed again
    add_result(conn, c, True, april), add_result(conn, c, True, may)       # never failed: coverage, not solved
    add_result(conn, d, False, march), add_result(conn, d, True, april), add_result(conn, d, True, may)  # adversarial
    assert retirement.run_month(conn, dt.date(2026, 4, 1))["retired"] == [], "April alone is one clean month"
    outcome = retirement.run_month(conn, dt.date(2026, 5, 1))
    assert outcome == {"version": 2, "retired": [a], "reinstated": []}
    assert a not in ids(conn, 2) and set(ids(conn, 1)) == {a, b, c, d}, "version 1 is rebuilt as it was"
    assert evalset.archived_at(conn, 2)["row_id"].to_list() == [a]
    assert retirement.run_month(conn, dt.date(2026, 5, 1))["version"] is None, "nothing more to do: no version"

    # The runner keeps running the archived row; it fails again and comes back, with an alert.
    report = regression.run_regression(conn, lambda m: "nope", model_version="m2", run_at=dt.datetime(2030, 1, 1))
    assert report.archived_run == 1
    comeback = retirement.run_month(conn, dt.date(2030, 2, 1))
    assert comeback["reinstated"] == [a] and comeback["version"] == 3
    assert a in ids(conn, 3) and a not in ids(conn, 2)
    history = {v["version"]: v for v in evalset.versions(conn)}
    assert (history[2]["rows_retired"], history[3]["rows_reinstated"]) == (1, 1)


def test_a_month_without_results_does_not_count(conn):
    a = ordinary_ids(conn)[0]
    add_result(conn, a, False, dt.datetime(2026, 3, 10)), add_result(conn, a, True, dt.datetime(2026, 5, 10))
    assert retirement.run_month(conn, dt.date(2026, 5, 1))["retired"] == [], "April had no results"


def test_pass_rates_compare_the_rows_two_versions_share(conn, tmp_path):
    v1 = ids(conn)
    extra = [{"input": "hard one", "expected": "x", "criterion": "", "adversarial": "false", "added_at": "2026-04-01"}]
    rows, _ = evalset.parse_starter(write_csv(tmp_path / "x.csv", extra))
    evalset.add_version(conn, rows, "more")
    new = [i for i in ids(conn, 2) if i not in v1][0]
    when = dt.datetime(2026, 4, 2)
    for i in v1:
        add_result(conn, i, True, when, version=1)
        add_result(conn, i, True, when, version=2)
    add_result(conn, new, False, when, version=2)
    rates = {(r["eval_version"], r["slice"]): (r["n"], r["pass_rate"]) for r in regression.pass_rates(conn)}
    assert rates[(1, "overall")] == (4, 1.0) and rates[(2, "overall")] == (5, 0.8)
    assert rates[(2, "shared with previous version: now")] == (4, 1.0), "the drop is the new row, not a regression"
    assert rates[(2, "adversarial")] == (1, 1.0)


def test_regress_cli_with_the_simulated_model(data_dir, tmp_path):
    from click.testing import CliRunner

    from flywheel.cli import main

    runner = CliRunner()
    runner.invoke(main, ["evalset", "import", str(write_csv(tmp_path / "s.csv", ROWS))])
    bad = runner.invoke(main, ["regress", "--target", "flywheel.demo.model:nope"])
    assert bad.exit_code == 1 and "has no attribute" in bad.output
    ok = runner.invoke(main, ["regress", "--target", "flywheel.demo.model:relay_assist", "--model-version", "sim"])
    assert ok.exit_code == 0 and "eval set v1, model sim:" in ok.stdout and "/4 passed" in ok.stdout
    assert runner.invoke(main, ["gate", "--model-version", "sim"]).exit_code in (0, 1)


def test_pass_rates_asset_and_retirement_asset_materialize(data_dir, tmp_path):
    import dagster as dg

    from flywheel.defs.regression import monthly_retirement, pass_rates
    from flywheel.resources.warehouse import Warehouse

    warehouse = Warehouse(data_dir=str(data_dir))
    with warehouse.connect() as c:
        evalset.import_starter(c, write_csv(tmp_path / "s.csv", ROWS))
        regression.ensure_table(c)
        for i in evalset.rows_at(c)["row_id"]:
            add_result(c, i, False, dt.datetime(2026, 2, 10))
            add_result(c, i, True, dt.datetime(2026, 3, 10))
            add_result(c, i, True, dt.datetime(2026, 4, 10))
    result = dg.materialize([pass_rates], resources={"warehouse": warehouse})
    [check] = result.get_asset_check_evaluations()
    assert check.passed and result.success
    retire = dg.materialize([monthly_retirement], partition_key="2026-04-01", resources={"warehouse": warehouse})
    meta = retire.asset_materializations_for_node("eval__retirement")[0].metadata
    assert meta["retired"].value == 3 and meta["new_version"].value == 2, "all but the adversarial row"
