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

from flywheel.core.common.records import mapping_of

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
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            if "samples" in doc and "eval" in doc:
                return "inspect"
            if isinstance(doc.get("results"), dict) and "results" in doc["results"]:
                return "promptfoo"
        try:
            first = json.loads(text.lstrip().splitlines()[0]) if text.strip() else {}
        except (ValueError, RecursionError):
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
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        try:  # --output results.jsonl: one row a line, no envelope
            rows, when = [json.loads(line) for line in text.splitlines() if line.strip()], None
        except (ValueError, RecursionError) as exc:
            raise HarnessResultsError(f"{path}: not promptfoo output (results.json or .jsonl): "
                                      f"{exc if isinstance(exc, ValueError) else 'nested too deeply'}") from None
    rows = rows if isinstance(rows, list) else []
    if not any(isinstance(r, dict) and ("testCase" in r or "success" in r) for r in rows):
        raise HarnessResultsError(f"{path}: not promptfoo output: no result rows (write it with promptfoo eval "
                                  "--output results.json)")
    out = Converted()
    run_at = _iso(when) or _iso(dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc))
    for i, row in sorted(enumerate(rows), key=lambda item: _test_index(*item)):
        position = f"result {_test_index(i, row) + 1}"
        if not isinstance(row, dict):
            out.skipped.append({"position": position, "reason": "not a result object"})
            continue
        meta = {**mapping_of(row.get("metadata")), **mapping_of(mapping_of(row.get("testCase")).get("metadata"))}
        if meta.get("row_id") is None or meta.get("eval_version") is None:
            out.skipped.append({"position": position, "reason": "no row_id and eval_version in its metadata: not a test "
                                "exported by flywheel"})
            continue
        # failureReason 2 is an error (the provider or a grader failed); 1 is an assertion that failed,
        # which also carries its reason in `error`. Older promptfoo versions have no failureReason.
        if row.get("failureReason") == 2 or ("failureReason" not in row and not row.get("gradingResult")):
            error = (_text(row.get("error") or "error") or "error").strip().splitlines()[0][:160] or "error"
            out.skipped.append({"position": position, "reason": f"row {meta['row_id']}: promptfoo could not judge it "
                                f"({error})"})
            continue
        provider = row.get("provider")  # {id, label}; a plain id in older versions
        model = _text((provider.get("label") or provider.get("id")) if isinstance(provider, dict) else provider)
        if model is None and provider:
            out.skipped.append({"position": position, "reason": "its provider's name is not text"})
            continue
        model = model or "promptfoo"
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
    model = _text(mapping_of(log.get("eval")).get("model")) or "inspect"
    run_at = _iso(mapping_of(log.get("stats")).get("completed_at") or mapping_of(log.get("eval")).get("created"))
    if (log.get("status") or "success") != "success":
        raise HarnessResultsError(f"{path}: the Inspect run ended with status {log.get('status')!r}, not success: "
                                  "its results are not complete")
    for i, sample in enumerate(log.get("samples") if isinstance(log.get("samples"), list) else [], 1):
        if not isinstance(sample, dict):
            out.skipped.append({"position": f"sample {i}", "reason": "not a sample object"})
            continue
        position = f"sample {i} (id {_text(sample.get('id'))})"
        meta = mapping_of(sample.get("metadata"))
        if meta.get("row_id") is None or meta.get("eval_version") is None:
            out.skipped.append({"position": position, "reason": "no row_id and eval_version in its metadata"})
            continue
        score = mapping_of(sample.get("scores")).get(INSPECT_SCORER)
        value = score.get("value") if isinstance(score, dict) else None
        passed = _INSPECT_VALUES.get(value) if isinstance(value, (str, int, float)) else None
        if passed is None:
            out.skipped.append({"position": position, "reason": f"row {meta['row_id']}: not scored by {INSPECT_SCORER} "
                                "(a rubric without a grader, or an error)"})
            continue
        out.model_versions.add(model)
        out.records.append({"row_id": meta["row_id"], "eval_version": meta["eval_version"], "model_version": model,
                            "passed": passed, "score": 1.0 if passed else 0.0, "run_at": run_at})
        out.positions.append(position)
    return out


_INSPECT_VALUES = {"C": True, "I": False, True: True, False: False, 1: True, 0: False}  # 1.0 == 1 == True


def _text(value) -> str | None:
    """A value to print and store as a name: None when it is missing or cannot be written as UTF-8 (a
    lone surrogate from a \\u escape)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


def _test_index(position: int, row) -> int:
    """promptfoo's testIdx of a row (its place in the file when it has none, or not a number)."""
    index = row.get("testIdx") if isinstance(row, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else position


def _inspect_log(path: Path) -> dict:
    """An Inspect log: `--log-format json`, or the `.eval` archive (a zip of JSON members, compressed
    with zstandard in current versions)."""
    if not zipfile.is_zipfile(path):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise HarnessResultsError(f"{path}: not an Inspect log: {exc}") from None
        except RecursionError:
            raise HarnessResultsError(f"{path}: not an Inspect log: nested too deeply") from None
    with zipfile.ZipFile(path) as archive:
        def member(name: str):
            info = archive.getinfo(name)
            try:
                raw = archive.open(info).read() if info.compress_type != 93 else _zstd(archive, info)
                return json.loads(raw)
            except HarnessResultsError:
                raise
            except Exception as exc:  # noqa: BLE001 - zip, zstandard and JSON each raise their own
                raise HarnessResultsError(f"{path}: {name} in the .eval archive cannot be read "
                                          f"({type(exc).__name__})") from None

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
