"""Reports from result files: one model (``model.build``), rendered to md, csv, json and the terminal.

    report = build(results, warnings)            # once: selection, lines, parity, sweep, data-parallel
    write(report, "md", "REPORT.md")             # markdown.py, csv.py, json.py: one module per output
    print(terminal_table(report))                # terminal.py: the compact table
    bench.plots.plot(report, "plots/")           # every PNG, from the same model

``render``, ``write_report``, ``render_markdown``, ``render_csv`` and ``summarize`` take results
and build the model themselves: shorthands for callers that want one output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bench.report import csv, json, markdown, terminal
from bench.report.csv import CSV_FIELDS
from bench.report.markdown import HEADERS, cells
from bench.report.model import Group, Line, ParallelAccuracy, ParallelStep, Report, Row, build
from bench.results import GroupKey, Result, write_text_atomic

__all__ = ["CSV_FIELDS", "FORMATS", "HEADERS", "Group", "GroupKey", "Line", "ParallelAccuracy", "ParallelStep",
           "Report", "Row", "build", "cells", "render", "render_csv", "render_markdown", "summarize", "terminal_table",
           "text", "write", "write_report"]

_RENDERERS = {"md": markdown.render, "csv": csv.render, "json": json.render, "terminal": terminal.render}
FORMATS = tuple(_RENDERERS)


def text(report: Report, fmt_name: str = "md") -> str:
    """The report in one format (FORMATS)."""
    try:
        renderer = _RENDERERS[fmt_name]
    except KeyError:
        raise ValueError(f"unknown format {fmt_name!r}; choose one of {', '.join(FORMATS)}") from None
    return renderer(report)


def write(report: Report, fmt_name: str = "md", output: str | os.PathLike | None = None) -> str:
    """The report in one format; when ``output`` is given, also written there atomically. Returns the text."""
    rendered = text(report, fmt_name)
    if output is not None:
        write_text_atomic(Path(output), rendered)
    return rendered


def terminal_table(report: Report, width: int | None = None) -> str:
    """The compact table ``python -m bench run`` ends with; REPORT.md keeps the wide one."""
    return terminal.render(report, width)


# ------------------------------------------------------------------------ shorthands from results

def render(results: Sequence[Result], fmt_name: str = "md", warnings: Sequence[str] = (),
           margin: float | None = None) -> str:
    return text(build(results, warnings, margin), fmt_name)


def write_report(results: Sequence[Result], warnings: Sequence[str] = (), fmt_name: str = "md",
                 output: str | os.PathLike | None = None, margin: float | None = None) -> str:
    return write(build(results, warnings, margin), fmt_name, output)


def render_markdown(results: Sequence[Result], warnings: Sequence[str] = (), margin: float | None = None) -> str:
    return markdown.render(build(results, warnings, margin))


def render_csv(results: Sequence[Result]) -> str:
    return csv.render(build(results))


def summarize(results: Sequence[Result]) -> list[tuple[GroupKey, list[Line]]]:
    """Per comparison group, its lines (newest run only), fastest train step first."""
    return [(group.key, group.lines) for group in build(results).groups]
