"""Incidents: a window of production to look at again, now.

An incident is a file in <data>/inbox/incidents/ (written by `flywheel incident open` or dropped there by
an on-call tool): an id, a time window, optionally the cohort and intent it hit, a note. The sampler
reads them for every week that overlaps a window: traces of the window matching the incident are
over-sampled and tagged `incident:<id>`, and anomalies are taken at 100% as always. The file is the
source of truth, so a rerun of the week samples the same traces.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

WEEK = dt.timedelta(days=7)


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
        t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise IncidentError(f'"{field}" is not an ISO 8601 timestamp: {value!r}') from None
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def parse(record: dict, source: str = "incident") -> Incident:
    if not isinstance(record, dict):
        raise IncidentError(f"{source}: not a JSON object")
    for f in ("incident_id", "start", "end"):
        if not record.get(f):
            raise IncidentError(f'{source}: missing "{f}"')
    start, end = _when(record["start"], "start"), _when(record["end"], "end")
    if end <= start:
        raise IncidentError(f"{source}: the window ends before it starts")
    return Incident(str(record["incident_id"]), start, end, record.get("cohort") or None, record.get("intent") or None,
                    record.get("note") or None)


def new_incident(start: str, end: str, cohort: str | None = None, intent: str | None = None,
                 note: str | None = None) -> Incident:
    draft = {"start": start, "end": end, "cohort": cohort, "intent": intent}
    digest = hashlib.sha256(json.dumps(draft, sort_keys=True).encode()).hexdigest()[:8]
    s = _when(start, "start")
    return parse({**draft, "note": note, "incident_id": f"inc-{s:%Y%m%d}-{digest}"})


def write(incident: Incident, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{incident.incident_id}.json"
    path.write_text(json.dumps(incident.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def read_all(folder: Path) -> tuple[list[Incident], list[str]]:
    """Every valid incident in the folder, and a message for each file that is not one."""
    found, problems = [], []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).exists() else []:
        try:
            found.append(parse(json.loads(path.read_text(encoding="utf-8")), str(path)))
        except (json.JSONDecodeError, IncidentError) as exc:
            problems.append(f"{path}: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc))
    return found, problems


def overlapping(incidents: list[Incident], week_start: dt.datetime) -> list[Incident]:
    return [i for i in incidents if i.start < week_start + WEEK and i.end > week_start]
