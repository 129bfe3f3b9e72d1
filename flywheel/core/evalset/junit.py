"""The gate as CI systems read it: JUnit XML, one test case per eval row, so a pull request's checks
list the failing rows by id, taxonomy code and criterion (never the conversation itself)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb

from flywheel.core.evalset import versions as evalset


def row_results(conn: duckdb.DuckDBPyConnection, version: int, model_version: str) -> list[tuple]:
    """(row_id, taxonomy_code, adversarial, criterion_type, criterion_value, passed or None) for every
    row of the version, with the model's latest result on it."""
    return conn.execute(
        f"""WITH gate_rows AS ({evalset.ROWS_AT_SQL})
            SELECT g.row_id, g.taxonomy_code, g.adversarial, g.criterion_type, g.criterion_value, r.passed
            FROM gate_rows g
            LEFT JOIN (SELECT * FROM regression.results WHERE eval_version = $version AND model_version = $model
                       QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY run_at DESC) = 1) r USING (row_id)
            ORDER BY g.row_id""",
        {"version": version, "model": model_version}).fetchall()


def write(path: str | Path, verdict, rows: list[tuple]) -> None:
    suite = ET.Element("testsuite", name=f"flywheel eval set v{verdict.eval_version}",
                       tests=str(len(rows)), failures=str(sum(1 for *_, p in rows if p is False)),
                       skipped=str(sum(1 for *_, p in rows if p is None)), errors="0")
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="model_version",
                  value=str(verdict.model_version))
    for row_id, code, adversarial, kind, value, passed in rows:
        group = ("adversarial." if adversarial else "") + (code or "uncoded")
        case = ET.SubElement(suite, "testcase", name=row_id, classname=f"flywheel.v{verdict.eval_version}.{group}")
        criterion = kind + (f":{value}" if value else "")
        if passed is None:
            ET.SubElement(case, "skipped", message=f"no result of model {verdict.model_version} on this row")
        elif not passed:
            ET.SubElement(case, "failure", message=f"did not meet {criterion[:200]}", type="criterion")
    suites = ET.Element("testsuites", name="flywheel gate")
    suites.append(suite)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
