"""FLYWHEEL_NOW: the loop's idea of the current time, as the demo's replay uses it."""

import datetime as dt

import pytest

from flywheel.core.common import clock
from flywheel.core.evalset import versions as evalset
from flywheel.core.evalset import regression
from flywheel.core.labeling import labels

MAY = dt.datetime(2026, 5, 4, 6, 0)


def test_wall_clock_by_default(monkeypatch):
    monkeypatch.delenv(clock.ENV, raising=False)
    assert abs((clock.now() - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds()) < 5


def test_pinned_time_is_used_and_restored(monkeypatch):
    monkeypatch.delenv(clock.ENV, raising=False)
    with clock.pinned_at(MAY):
        assert clock.now() == MAY
        assert labels.Label("ref", "not_a_bug", "me").reviewed_at == MAY
    assert clock.now().year >= 2026 and clock.ENV not in __import__("os").environ


def test_offset_times_become_naive_utc(monkeypatch):
    monkeypatch.setenv(clock.ENV, "2026-05-04T08:00:00+02:00")
    assert clock.now() == MAY


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(clock.ENV, "next tuesday")
    with pytest.raises(ValueError, match="FLYWHEEL_NOW"):
        clock.now()


def test_versions_and_runs_are_stamped_with_the_pinned_time(conn):
    row = evalset.Row([{"role": "user", "content": "Can I get a refund?"}], "Quotes the 30-day window.", "contains",
                      "30 days", "wrong_refund_policy", False, None, MAY.date(), "test")
    with clock.pinned_at(MAY):
        evalset.add_version(conn, [row], "test")
        regression.run_regression(conn, lambda messages: "Within 30 days, pro rata.", model_version="m")
    assert conn.execute("SELECT created_at FROM eval.versions").fetchone()[0] == MAY
    assert conn.execute("SELECT run_at, passed FROM regression.results").fetchone() == (MAY, True)
