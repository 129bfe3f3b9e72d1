"""Harness results with a wrong kind anywhere: promptfoo's output and Inspect's logs are hand-edited,
come from other versions, or are simply the wrong file. `flywheel results import` must answer each with
its import or one clean error line, never a traceback. Seeded (see test_sources_hostile.py for the
mutations); a failure names its format and seed."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel_tests.test_harness import _warehouse_with_rows
from flywheel_tests.test_sources_hostile import _mutated

MUTATIONS = 40  # files per format, each imported as auto and as its own format


def _promptfoo(ids: list[str]) -> dict:
    def row(i, rid, success, reason=0):
        return {"testIdx": i, "success": success, "failureReason": reason, "score": 1.0 if success else 0.0,
                "error": "assertion failed", "provider": {"id": "file://provider.py", "label": "bot-7"},
                "metadata": {"suite": "regression"}, "testCase": {"metadata": {"row_id": rid, "eval_version": 1}}}

    return {"evalId": "e", "results": {"version": 3, "timestamp": "2026-11-30T10:00:00.000Z",
                                       "results": [row(0, ids[0], True), row(1, ids[1], False, 1),
                                                   row(2, ids[2], False, 2)]}}


def _inspect(ids: list[str]) -> dict:
    def sample(rid, value):
        return {"id": rid, "metadata": {"row_id": rid, "eval_version": 1},
                "scores": {"flywheel_criterion": {"value": value}}}

    return {"version": 2, "status": "success", "eval": {"model": "local/bot", "created": "2026-11-30T10:00:00+00:00"},
            "stats": {"completed_at": "2026-11-30T10:01:00+00:00"}, "samples": [sample(ids[0], "C"), sample(ids[1], "I")]}


@pytest.mark.parametrize("harness", ["promptfoo", "inspect"])
def test_a_wrong_kind_anywhere_in_a_results_file_is_one_clean_answer(data_dir, harness):
    ids = _warehouse_with_rows(data_dir)
    seed = _promptfoo(ids) if harness == "promptfoo" else _inspect(ids)
    runner = CliRunner()
    for n in range(MUTATIONS):
        path = data_dir / f"{harness}-{n}.json"
        path.write_text(json.dumps(_mutated(seed, random.Random(f"{harness}-{n}")), allow_nan=True))
        for fmt in ("auto", harness):
            result = runner.invoke(main, ["results", "import", "--format", fmt, str(path)])
            said = f"{harness} seed {n} --format {fmt}: {result.output}"
            assert result.exception is None or isinstance(result.exception, SystemExit), said
            assert result.exit_code in (0, 1, 2) and "Traceback" not in result.output, said
            assert "bug in flywheel" not in result.output, said
