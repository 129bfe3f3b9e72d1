"""`flywheel regress --target module:function`: the target is found beside you, as with `python -m`,
and a target that raises stops the run with one line naming the row, storing nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.core.common.db import connect
from flywheel.core.evalset import regression
from flywheel.core.evalset import versions as evalset
from flywheel_tests.test_evalset import write_csv
from flywheel_tests.test_regression import ROWS

MYBOT = '''
def echo(messages):
    """Answers the rows right, except q2, where it fails with a message over two lines."""
    asked = messages[-1]["content"]
    if asked == "q2":
        raise ValueError("boom\\nsecond line")
    return "answer " + asked.removeprefix("q")


def silent(messages):
    return None if messages[-1]["content"] == "q3" else "answer " + messages[-1]["content"].removeprefix("q")


def number(messages):
    return 42


def judge(row, rubric, reply):
    raise KeyError("score")
'''


@pytest.fixture
def beside_you(tmp_path, monkeypatch):
    """A folder holding mybot.py, as the current directory, not on the import path; undone after."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mybot.py").write_text(MYBOT)
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p and Path(p).resolve() != folder.resolve()])
    monkeypatch.delitem(sys.modules, "mybot", raising=False)
    yield folder
    sys.modules.pop("mybot", None)


@pytest.fixture
def warehouse(tmp_path):
    """A data directory whose eval set has four rows, q0-q3, each passed by `answer <i>`."""
    data = tmp_path / "data"
    data.mkdir()
    with connect(data / "flywheel.duckdb") as conn:
        evalset.import_starter(conn, write_csv(tmp_path / "starter.csv", ROWS))
        regression.ensure_table(conn)
    return data


def _row_id(data: Path, question: str) -> str:
    with connect(data / "flywheel.duckdb") as conn:
        rows = evalset.rows_at(conn)
    return next(r["row_id"] for r in rows.iter_rows(named=True) if r["input"][-1]["content"] == question)


def _results(data: Path) -> int:
    with connect(data / "flywheel.duckdb", read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM regression.results").fetchone()[0]


def test_a_target_beside_you_is_found_and_the_folder_goes_on_the_path_once(beside_you):
    fn = regression.load_callable("mybot:silent")
    assert fn([{"role": "user", "content": "q1"}]) == "answer 1"
    assert sys.path[0] == os.getcwd()
    regression.load_callable("mybot:number")
    assert sys.path.count(os.getcwd()) == 1


@pytest.mark.parametrize("already", ["", "."])
def test_the_folder_is_not_added_when_the_path_already_has_it(beside_you, monkeypatch, already):
    monkeypatch.setattr(sys, "path", [already, *sys.path])
    before = list(sys.path)
    assert regression.load_callable("mybot:silent")
    assert sys.path == before


@pytest.mark.parametrize("spec,said", [
    ("nobot:echo", "'nobot:echo': No module named 'nobot'"),
    ("mybot:nothing", "'mybot:nothing': module 'mybot' has no attribute 'nothing'"),
    ("mybot", "'mybot': expected module:function"),
])
def test_a_target_that_cannot_be_loaded_is_named(beside_you, spec, said):
    with pytest.raises(regression.ResultsError) as caught:
        regression.load_callable(spec)
    assert str(caught.value) == said


def test_a_module_that_fails_on_import_is_one_line(beside_you):
    (beside_you / "brokenbot.py").write_text("raise RuntimeError('no API key\\nset MYBOT_KEY')\n")
    with pytest.raises(regression.ResultsError) as caught:
        regression.load_callable("brokenbot:echo")
    sys.modules.pop("brokenbot", None)
    assert str(caught.value) == "'brokenbot:echo': importing brokenbot raised RuntimeError: no API key set MYBOT_KEY"


def test_a_target_that_raises_names_the_row_and_stores_nothing(beside_you, warehouse):
    with connect(warehouse / "flywheel.duckdb") as conn:
        first = regression.run_regression(conn, regression.load_callable("mybot:silent"), model_version="m1")
        assert (first.run, first.passed) == (4, 3)  # q3 got no reply: stored as a failure
    assert _results(warehouse) == 4
    with connect(warehouse / "flywheel.duckdb") as conn, pytest.raises(regression.ResultsError) as caught:
        regression.run_regression(conn, regression.load_callable("mybot:echo"), model_version="m2")
    assert str(caught.value) == f"target mybot:echo raised ValueError on row {_row_id(warehouse, 'q2')}: boom second line"
    assert _results(warehouse) == 4, "the failed run left nothing; the earlier run is untouched"


@pytest.mark.parametrize("target,judge,said", [
    ("mybot:number", None, "target mybot:number returned int on row {row}, expected the reply as a string"),
    ("mybot:silent", "mybot:judge", "judge mybot:judge raised KeyError on row {row}: 'score'"),
])
def test_a_wrong_reply_or_a_judge_that_raises_is_one_line_too(beside_you, warehouse, target, judge, said):
    with connect(warehouse / "flywheel.duckdb") as conn:
        conn.execute("UPDATE eval.eval_rows SET criterion_type = 'rubric', criterion_value = 'Answers.'")
        rows = evalset.rows_at(conn)
    first = rows["row_id"][0]
    with connect(warehouse / "flywheel.duckdb") as conn, pytest.raises(regression.ResultsError) as caught:
        regression.run_regression(conn, regression.load_callable(target), model_version="m",
                                  rubric_judge=regression.load_callable(judge) if judge else None)
    assert str(caught.value) == said.format(row=first)
    assert _results(warehouse) == 0


def test_regress_from_the_folder_holding_the_target(beside_you, warehouse):
    """The console script, as a user runs it: its sys.path starts at the script's folder, not here."""
    script = Path(sys.executable).with_name("flywheel")
    if not script.exists():
        pytest.skip("no flywheel console script beside this Python")
    env = {**os.environ, "FLYWHEEL_DATA": str(warehouse), "DAGSTER_HOME": str(warehouse / "dagster")}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(script), "regress", "--target", "mybot:silent", "--model-version", "m1"],
                          cwd=beside_you, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3/4 passed" in done.stdout
    failed = subprocess.run([str(script), "regress", "--target", "mybot:echo", "--model-version", "m2"],
                            cwd=beside_you, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip() == f"Error: target mybot:echo raised ValueError on row {_row_id(warehouse, 'q2')}: boom second line"
    assert _results(warehouse) == 4


def test_regress_cli_in_process_gives_the_same_one_line_error(beside_you, warehouse):
    from flywheel.cli import main

    result = CliRunner().invoke(main, ["regress", "--target", "mybot:echo", "--data-dir", str(warehouse)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == f"Error: target mybot:echo raised ValueError on row {_row_id(warehouse, 'q2')}: boom second line"
    assert _results(warehouse) == 0


def test_a_criterion_that_cannot_be_checked_names_the_row(beside_you, warehouse):
    with connect(warehouse / "flywheel.duckdb") as conn:
        conn.execute("UPDATE eval.eval_rows SET criterion_type = 'regex', criterion_value = '('")
        first = evalset.rows_at(conn)["row_id"][0]
        with pytest.raises(regression.ResultsError) as caught:
            regression.run_regression(conn, regression.load_callable("mybot:silent"), model_version="m")
    assert str(caught.value).startswith(f"row {first}: cannot check its regex criterion: missing )")
    assert _results(warehouse) == 0
