"""Results from the harnesses back into flywheel: promptfoo's output (`promptfoo eval --output
results.json`, or `.jsonl`) and Inspect AI's eval logs (JSON, or the `.eval` archive), matched to
`row_id` and `eval_version` through the metadata every exported row carries.

Each result becomes a line of the regression result contract and goes through the same import as a
flywheel results file (flywheel.core.evalset.regression.import_results: whole file or nothing, stored
once). A result that names no row, and one the harness could not judge (promptfoo's error rows,
Inspect's unscored samples, a rubric without a grader), is reported by its position, never dropped
silently.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("auto", "flywheel", "promptfoo", "inspect")
INSPECT_SCORER = "flywheel_criterion"


class HarnessResultsError(ValueError):
    pass


@dataclass
class Converted:
    records: list[dict] = field(default_factory=list)  # the regression result contract
    positions: list[str] = field(default_factory=list)  # where each record came from, for error messages
    skipped: list[dict] = field(default_factory=list)  # {"position", "reason"}: not matched or not judged
    model_versions: set[str] = field(default_factory=set)

    def relabel(self, model_version: str) -> None:
        for record in self.records:
            record["model_version"] = model_version
        self.model_versions = {model_version} if self.records else set()


def detect(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "inspect"
    text = path.read_text(encoding="utf-8", errors="replace")
    head = text.lstrip()[:1]
    if head == "{":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            if "samples" in doc and "eval" in doc:
                return "inspect"
            if isinstance(doc.get("results"), dict) and "results" in doc["results"]:
                return "promptfoo"
        try:
            first = json.loads(text.lstrip().splitlines()[0]) if text.strip() else {}
        except ValueError:
            first = None  # not JSON on its first line: the results import says where and why
        if isinstance(first, dict) and "testCase" in first and "success" in first:
            return "promptfoo"
    return "flywheel"


def convert(path: Path, fmt: str) -> Converted:
    if fmt == "promptfoo":
        return _promptfoo(path)
    if fmt == "inspect":
        return _inspect(path)
    raise HarnessResultsError(f"unknown results format {fmt!r}")


def _promptfoo(path: Path) -> Converted:
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        rows, when = doc["results"]["results"], doc["results"].get("timestamp")
    except (ValueError, KeyError, TypeError):
        try:  # --output results.jsonl: one row a line, no envelope
            rows, when = [json.loads(line) for line in text.splitlines() if line.strip()], None
        except ValueError as exc:
            raise HarnessResultsError(f"{path}: not promptfoo output (results.json or .jsonl): {exc}") from None
    if not any(isinstance(r, dict) and ("testCase" in r or "success" in r) for r in rows):
        raise HarnessResultsError(f"{path}: not promptfoo output: no result rows (write it with promptfoo eval "
                                  "--output results.json)")
    out = Converted()
    run_at = _iso(when) or _iso(dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc))
    for i, row in sorted(enumerate(rows), key=lambda item: (item[1].get("testIdx", item[0]) if isinstance(item[1], dict)
                                                            else item[0])):
        position = f"result {row.get('testIdx', i) + 1 if isinstance(row, dict) else i + 1}"
        if not isinstance(row, dict):
            out.skipped.append({"position": position, "reason": "not a result object"})
            continue
        meta = {**(row.get("metadata") or {}), **((row.get("testCase") or {}).get("metadata") or {})}
        if meta.get("row_id") is None or meta.get("eval_version") is None:
            out.skipped.append({"position": position, "reason": "no row_id and eval_version in its metadata: not a test "
                                "exported by flywheel"})
            continue
        # failureReason 2 is an error (the provider or a grader failed); 1 is an assertion that failed,
        # which also carries its reason in `error`. Older promptfoo versions have no failureReason.
        if row.get("failureReason") == 2 or ("failureReason" not in row and not row.get("gradingResult")):
            error = str(row.get("error") or "error").splitlines()[0][:160]
            out.skipped.append({"position": position, "reason": f"row {meta['row_id']}: promptfoo could not judge it "
                                f"({error})"})
            continue
        provider = row.get("provider") or {}
        model = provider.get("label") or provider.get("id") or "promptfoo"
        out.model_versions.add(model)
        out.records.append({"row_id": meta["row_id"], "eval_version": meta["eval_version"], "model_version": model,
                            "passed": bool(row.get("success")), "score": row.get("score"), "run_at": run_at})
        out.positions.append(position)
    return out


def _inspect(path: Path) -> Converted:
    log = _inspect_log(path)
    if not isinstance(log, dict) or "eval" not in log:
        raise HarnessResultsError(f"{path}: not an Inspect eval log (no \"eval\"; write it with --log-format json)")
    out = Converted()
    model = (log.get("eval") or {}).get("model") or "inspect"
    run_at = _iso((log.get("stats") or {}).get("completed_at") or (log.get("eval") or {}).get("created"))
    if (log.get("status") or "success") != "success":
        raise HarnessResultsError(f"{path}: the Inspect run ended with status {log.get('status')!r}, not success: "
                                  "its results are not complete")
    for i, sample in enumerate(log.get("samples") or [], 1):
        position = f"sample {i} (id {sample.get('id')})"
        meta = sample.get("metadata") or {}
        if meta.get("row_id") is None or meta.get("eval_version") is None:
            out.skipped.append({"position": position, "reason": "no row_id and eval_version in its metadata"})
            continue
        score = (sample.get("scores") or {}).get(INSPECT_SCORER)
        value = score.get("value") if isinstance(score, dict) else None
        passed = {"C": True, "I": False, True: True, False: False, 1: True, 0: False, 1.0: True, 0.0: False}.get(value)
        if passed is None:
            out.skipped.append({"position": position, "reason": f"row {meta['row_id']}: not scored by {INSPECT_SCORER} "
                                "(a rubric without a grader, or an error)"})
            continue
        out.model_versions.add(model)
        out.records.append({"row_id": meta["row_id"], "eval_version": meta["eval_version"], "model_version": model,
                            "passed": passed, "score": 1.0 if passed else 0.0, "run_at": run_at})
        out.positions.append(position)
    return out


def _inspect_log(path: Path) -> dict:
    """An Inspect log: `--log-format json`, or the `.eval` archive (a zip of JSON members, compressed
    with zstandard in current versions)."""
    if not zipfile.is_zipfile(path):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise HarnessResultsError(f"{path}: not an Inspect log: {exc}") from None
    with zipfile.ZipFile(path) as archive:
        def member(name: str):
            info = archive.getinfo(name)
            raw = archive.open(info).read() if info.compress_type != 93 else _zstd(archive, info)
            return json.loads(raw)

        names = archive.namelist()
        header = member("header.json") if "header.json" in names else {}
        samples = [member(n) for n in sorted(names) if n.startswith("samples/") and n.endswith(".json")]
    return {**header, "samples": samples}


def _zstd(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise HarnessResultsError("this .eval log is compressed with zstandard, which is not installed: run "
                                  "inspect with --log-format json, or pip install zstandard") from None
    with open(archive.filename, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        data = fh.read(info.compress_size)
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=max(info.file_size, 1))


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ")


def import_converted(conn, converted: Converted):
    """Store converted results through the one results import; rejected lines named by their position."""
    from flywheel.core.evalset import regression

    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / "results.jsonl"
        staged.write_text("".join(json.dumps(r) + "\n" for r in converted.records), encoding="utf-8")
        report = (regression.import_results(conn, staged) if converted.records else regression.ImportReport())
    for problem in report.rejected:
        line = problem.get("line")
        if isinstance(line, int) and 1 <= line <= len(converted.positions):
            problem["line"] = converted.positions[line - 1]
    return report
