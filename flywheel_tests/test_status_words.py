"""`flywheel status` names the reviewers and model versions it finds; "simulated" is said only of
the demo's own (its reviewer and its model's builds), whose wording `make demo` keeps byte for byte."""

import pytest
from click.testing import CliRunner

from flywheel.cli import main, summary
from flywheel.core.common.db import connect
from flywheel.core.evalset import regression
from flywheel.core.evalset import versions as evalset
from flywheel.core.labeling import labels
from flywheel.demo.model import BUILDS
from flywheel_tests.test_evalset import write_csv
from flywheel_tests.test_regression import ROWS
from flywheel_tests.test_review import _scrubbed_warehouse

DEMO_REVIEWER = "demo-simulated"  # flywheel.demo.reviewer.REVIEWER (that module loads Polars and the generator)


def _warehouse(data_dir, tmp_path, reviewers, models):
    """Two scrubbed traces labelled by `reviewers`, a four-row eval set, and a run per model version
    (the second model on a second eval version, so each version's rates come from one model)."""
    db = data_dir / "flywheel.duckdb"
    _scrubbed_warehouse(db)
    with connect(db) as conn:
        for ref, reviewer in zip(("t_anom", "t_rand"), reviewers):
            labels.record(conn, labels.Label(ref, "not_a_bug", reviewer))
        evalset.import_starter(conn, write_csv(tmp_path / "starter.csv", ROWS))
        for i, model in enumerate(models):
            if i:
                rows, _ = evalset.parse_starter(write_csv(tmp_path / f"more{i}.csv", [
                    {**ROWS[0], "input": f"extra {i}", "expected": f"extra answer {i}"}]))
                evalset.add_version(conn, rows, "more rows")
            regression.run_regression(conn, lambda messages: "answer 1", model_version=model)


def _status(data_dir) -> str:
    result = CliRunner().invoke(main, ["status", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_names_who_reviewed_and_which_model_ran_without_saying_simulated(data_dir, tmp_path):
    _warehouse(data_dir, tmp_path, ["ana", "bob"], ["support-bot-7"])
    said = _status(data_dir)
    assert "2 of 2 scrubbed traces labelled (reviewers ana, bob; " in said
    assert "Station 4 - eval set versions and the pass rates of model support-bot-7\n" in said
    assert "simulated" not in said and "demo-" not in said


def test_one_reviewer_and_two_models_are_named_with_the_versions_they_ran(data_dir, tmp_path):
    _warehouse(data_dir, tmp_path, ["ana", "ana"], ["bot-a", "bot-b"])
    said = _status(data_dir)
    assert "(reviewer ana; " in said
    assert "Station 4 - eval set versions and pass rates of models bot-a (v1), bot-b (v2)\n" in said
    assert "simulated" not in said


def test_the_demos_own_reviewer_and_builds_keep_the_demo_words(data_dir, tmp_path):
    _warehouse(data_dir, tmp_path, [DEMO_REVIEWER, DEMO_REVIEWER], [BUILDS[0].version, BUILDS[-1].version])
    said = _status(data_dir)
    assert "scrubbed traces labelled (reviewer demo-simulated; 0 in this run)" in said
    assert "Station 4 - eval set versions and the simulated model's pass rates\n" in said


def test_a_real_model_beside_the_demos_is_named_and_only_the_demo_build_says_simulated(data_dir, tmp_path):
    _warehouse(data_dir, tmp_path, [DEMO_REVIEWER, "ana"], [BUILDS[-1].version, "support-bot-7"])
    said = _status(data_dir)
    assert "(reviewers ana, demo-simulated; " in said or "(reviewers demo-simulated, ana; " in said
    assert (f"Station 4 - eval set versions and pass rates of models {BUILDS[-1].version} (v1), support-bot-7 (v2)\n"
            in said)


def test_a_warehouse_without_results_says_so():
    assert summary.pass_rates_heading({}) == "Station 4 - eval set versions (no regression results yet, so no pass rates)"


@pytest.mark.parametrize("names,words", [
    ([], "no reviewer yet"),
    (["ana"], "reviewer ana"),
    (["ana", "bob", "cy", "di", "ed", "flo", "gus"], "reviewers ana, bob, cy, di, ed and 2 more"),
])
def test_reviewer_words(names, words):
    assert summary.reviewers_words(names) == words


def test_version_spans():
    assert summary._version_spans([5, 1, 2, 3, 7, 8]) == "v1-v3, v5, v7-v8"


def test_the_demo_reviewer_name_here_is_the_demos():
    from flywheel.demo.reviewer import REVIEWER

    assert REVIEWER == DEMO_REVIEWER
