"""benchmarks/prose.py: its scoring on a document whose numbers are worked out by hand, and a run of the
script on a two-document file in TAB's format (written from the corpus README's field table), with the
real scrubber. The corpus itself is not shipped; the script skips when it is absent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _prose():
    spec = importlib.util.spec_from_file_location("prose_benchmark", REPO / "benchmarks" / "prose.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec.loader.exec_module(module)
    return module


def _mention(start, end, text, kind, identifier="DIRECT"):
    return {"entity_type": kind, "start_offset": start, "end_offset": end, "span_text": text[start:end],
            "identifier_type": identifier, "entity_mention_id": f"m{start}", "entity_id": f"e{start}",
            "edit_type": "check", "confidential_status": "NOT_CONFIDENTIAL"}


TEXT = "The applicant, Mr Cengiz Polat, was heard by the Court in Istanbul (no. 36110/97)."


def _doc(doc_id="001-1"):
    name, court, city, code = (TEXT.index(x) for x in ("Cengiz Polat", "Court", "Istanbul", "36110/97"))
    mentions = [_mention(name, name + 12, TEXT, "PERSON"), _mention(court, court + 5, TEXT, "ORG", "NO_MASK"),
                _mention(city, city + 8, TEXT, "LOC", "QUASI"), _mention(code, code + 8, TEXT, "CODE")]
    return {"doc_id": doc_id, "dataset_type": "dev", "text": TEXT, "task": "", "meta": {}, "quality_checked": True,
            "annotations": {"annotator1": {"entity_mentions": mentions},
                            "annotator2": {"entity_mentions": mentions[:1]}}}  # a second reading counts once


def test_scores_personal_share_and_strict_recall_per_class():
    prose = _prose()
    text = TEXT
    spans = [(text.index("Cengiz"), text.index("Cengiz") + 6, "PERSON"),  # half the name: a leak
             (text.index("Court"), text.index("Court") + 5, "ORGANIZATION"),  # not personal data
             (text.index("Istanbul"), text.index("Istanbul") + 8, "LOCATION")]
    s = prose.score([_doc()], [spans])
    assert s["recall"]["PERSON"] == (0.0, 1) and s["recall"]["LOC"] == (1.0, 1) and s["recall"]["CODE"] == (0.0, 1)
    assert "ORG" not in s["recall"]  # NO_MASK mentions are not personal data to catch
    assert s["redacted_chars"] == 6 + 5 + 8
    assert abs(s["personal_share"] - 14 / 19) < 1e-9
    assert s["precision"]["ORG"] == (0.0, 5) and s["precision"]["PERSON"] == (1.0, 6)


def test_the_script_runs_on_a_file_in_tabs_format_and_skips_without_one(tmp_path):
    data = tmp_path / "echr_dev.json"
    data.write_text(json.dumps([_doc("001-1"), _doc("001-2")]))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "prose.py"), "--data", str(data), "--no-vanilla"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 dev documents" in done.stdout and "personal share of what is redacted" in done.stdout
    assert "recall per class (strict)   PERSON 1.00 (n=2)" in done.stdout  # the real scrubber catches the name
    assert "CODE 1.00" in done.stdout  # and the application number
    skipped = subprocess.run([sys.executable, str(REPO / "benchmarks" / "prose.py"), "--data", str(tmp_path / "none.json")],
                             capture_output=True, text=True, timeout=60)
    assert skipped.returncode == 0 and "SKIP: no TAB corpus" in skipped.stdout
