"""The report as JSON: the comparison tables' lines, every benchmark (flat, plus its history), parity, the
files skipped. Marked as a report (``REPORT_MARKER``) so that loading a results folder skips it."""

from __future__ import annotations

from dataclasses import asdict

from bench import parity
from bench.report.model import Report
from bench.results import REPORT_MARKER, json_text


def document(report: Report) -> dict:
    return {
        REPORT_MARKER: 1,
        "groups": [{"key": group.key._asdict(), "label": group.key.label,
                    "lines": [asdict(line) for line in group.lines]} for group in report.groups],
        "rows": [{**row.fields, "history": row.history} for row in report.rows],
        "parity": parity.to_json(report.parity),
        "warnings": list(report.warnings),
    }


def render(report: Report) -> str:
    return json_text(document(report))
