"""Incidents: a window of production to look at again, now.

An incident is a file in <data>/inbox/incidents/ (written by `flywheel incident open` or dropped there by
an on-call tool): an id, a time window, optionally the cohort and intent it hit, a note. The sampler
reads them for every week that overlaps a window: traces of the window matching the incident are
over-sampled and tagged `incident:<id>`, and anomalies are taken at 100% as always. The file is the
source of truth, so a rerun of the week samples the same traces. A file that is not a valid incident
(not UTF-8, not JSON, a JSON list, a field missing, a window outside 2000-2099 or longer than 92 days)
is reported and skipped by every reader: it never stops the sensor or the weekly sample.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from flywheel.core.common.records import RecordsError, json_kind, json_problem, parse_timestamp, read_text

WEEK = dt.timedelta(days=7)
# An incident is days, not a season: every week of the window becomes a run of the weekly loop.
MAX_WINDOW = dt.timedelta(days=92)
MAX_FILE_BYTES = 64 * 1024  # an incident is a few fields; anything bigger is not one
MAX_ID_CHARS = 100
ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_ID_CHARS - 1}}}")


class IncidentError(ValueError):
    pass


@dataclass(frozen=True)
class Incident:
    incident_id: str
    start: dt.datetime
    end: dt.datetime
    cohort: str | None = None
    intent: str | None = None
    note: str | None = None

    def weeks(self) -> list[dt.datetime]:
        """Mondays of the weeks the window touches."""
        monday = dt.datetime.combine((self.start - dt.timedelta(days=self.start.weekday())).date(), dt.time())
        out = []
        while monday < self.end:
            out.append(monday)
            monday += WEEK
        return out

    def to_json(self) -> dict:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d


def _when(value, field: str) -> dt.datetime:
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise IncidentError(f'"{field}" is {exc}') from None


def _text(record: dict, name: str, source: str) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IncidentError(f'{source}: "{name}" must be text')
    return value.strip() or None


def parse(record, source: str = "incident") -> Incident:
    """An incident from its JSON object, or an IncidentError naming the field and the problem (never
    its value). The window must lie within the years flywheel accepts and span at most MAX_WINDOW:
    the sensor turns every week of it into a run."""
    if not isinstance(record, dict):
        raise IncidentError(f"{source}: {json_kind(record)} where a JSON object belongs")
    for f in ("incident_id", "start", "end"):
        if record.get(f) in (None, ""):
            raise IncidentError(f'{source}: missing "{f}"')
    incident_id = record["incident_id"]
    if isinstance(incident_id, bool) or not isinstance(incident_id, (str, int)) or not ID.fullmatch(str(incident_id)):
        raise IncidentError(f'{source}: "incident_id" must be 1-{MAX_ID_CHARS} characters: letters, digits, . _ : -')
    try:
        start, end = _when(record["start"], "start"), _when(record["end"], "end")
    except IncidentError as exc:
        raise IncidentError(f"{source}: {exc}") from None
    if end <= start:
        raise IncidentError(f"{source}: the window ends before it starts")
    if end - start > MAX_WINDOW:
        raise IncidentError(f"{source}: the window is longer than {MAX_WINDOW.days} days; an incident is a "
                            "window to look at again, not a backfill (flywheel run --week DAY)")
    return Incident(str(incident_id), start, end, _text(record, "cohort", source), _text(record, "intent", source),
                    _text(record, "note", source))


def new_incident(start: str, end: str, cohort: str | None = None, intent: str | None = None,
                 note: str | None = None) -> Incident:
    """An incident from the command line, validated exactly as a file in the inbox is, before anything
    is written."""
    s, e = _when(start, "--from"), _when(end, "--to")
    draft = {"start": start, "end": end, "cohort": cohort, "intent": intent}
    digest = hashlib.sha256(json.dumps(draft, sort_keys=True).encode()).hexdigest()[:8]
    return parse({"start": s.isoformat(), "end": e.isoformat(), "cohort": cohort, "intent": intent, "note": note,
                  "incident_id": f"inc-{s:%Y%m%d}-{digest}"}, "--from/--to")


def write(incident: Incident, folder: Path) -> Path:
    """The incident as <folder>/<id>.json, written whole: the sensor never reads half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{incident.incident_id}.json"
    tmp = folder / f".{incident.incident_id}.json.tmp"
    tmp.write_text(json.dumps(incident.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_file(path: Path) -> Incident:
    """One incident file, or an IncidentError naming the file and, where there is one, the line and
    column of the problem."""
    try:
        text = read_text(path, max_bytes=MAX_FILE_BYTES)
    except RecordsError as exc:
        raise IncidentError(str(exc)) from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:
        where = f"line {exc.lineno}, " if isinstance(exc, json.JSONDecodeError) else ""
        raise IncidentError(f"{path}: {where}{json_problem(exc)}") from None
    return parse(record, str(path))


def read_all(folder: Path) -> tuple[list[Incident], list[str]]:
    """Every valid incident in the folder, and a one-line problem for each file that is not one. Never
    raises for a file's content: one bad file must not stop the sensor or the weekly sample."""
    found, problems, ids = [], [], {}
    folder = Path(folder)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            incident = read_file(path)
        except IncidentError as exc:
            problems.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever else a file does, it is one file's problem
            problems.append(f"{path}: could not be read ({type(exc).__name__})")
            continue
        if incident.incident_id in ids:
            problems.append(f'{path}: "incident_id" is already used by {ids[incident.incident_id].name}')
            continue
        ids[incident.incident_id] = path
        found.append(incident)
    return found, problems


def overlapping(incidents: list[Incident], week_start: dt.datetime) -> list[Incident]:
    return [i for i in incidents if i.start < week_start + WEEK and i.end > week_start]
