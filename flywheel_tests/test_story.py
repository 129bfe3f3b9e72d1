"""The month-by-month story: the sentences say what the numbers show, whichever way they go."""

import datetime as dt

from flywheel import story


def month(m, *, first=0.9, latest=0.9, adversarial=1.0, csat=None, drift=None, p=None, alert=False, partial=False):
    return {"month": dt.date(2026, m, 1), "traffic": 1000, "partial": partial, "enterprise_share": 0.0,
            "judge_mean": 0.86, "csat_enterprise": csat, "csat_enterprise_n": 10 if csat else 0, "csat_other": 4.4,
            "first_pass_rate": first, "first_n": 50, "latest_version": m, "latest_pass_rate": latest, "latest_n": 60,
            "latest_adversarial_pass_rate": adversarial, "drift_score": drift, "drift_p": p, "drift_alert": alert}


def test_the_essays_arc_read_off_the_numbers():
    rows = [month(3, first=0.84, latest=0.84, drift=0.07), month(4, drift=0.06, p=0.3),
            month(5, csat=4.4, latest=0.88, drift=0.09, p=0.004, alert=True), month(6, csat=4.0, latest=0.8, drift=0.12, p=0.2),
            month(7, first=0.5, csat=3.0, partial=True)]
    said = " ".join(story.arc(rows))
    assert "went from 84% in March to 90% in April, then held at 90% through June" in said, "partial July left out"
    assert "Enterprise CSAT fell: 4.40 in May to 4.00 in June" in said
    assert "passed in April; failed in March, May, June" in said
    assert "rose from 0.060 in April to 0.120 in June" in said and "Drift alerted in May (0.090, p=0.004)" in said
    table = story.months_markdown(rows)
    assert "2026-07 (partial)" in table and "| FAIL |" in table and "0.090 (0.004) ALERT" in table


def test_the_other_way_round_is_said_too():
    rows = [month(5, csat=4.0, drift=0.1), month(6, csat=4.3, drift=0.09, p=0.6), month(7, csat=4.4, adversarial=0.5)]
    said = " ".join(story.arc(rows))
    assert "Enterprise CSAT did not fall" in said and "Drift did not alert in any month" in said
    assert "failed in July" in said and "rose from" not in said
