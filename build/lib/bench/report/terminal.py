"""The report as a compact table for the terminal: per group, the columns a person reads first.

REPORT.md's table has 21 columns and wraps into an unreadable block in a terminal; this one keeps
the backend, the train and predict medians, accuracy, speed against the fastest and the LSTM
kernel (as pytest-benchmark and asv print compact tables). Drawn with rich where it is installed
(the "report" extra), else as plain aligned columns.
"""

from __future__ import annotations

import io
import shutil

from bench.report.model import Group, Line, Report
from bench.tables import MISSING, fmt, fmt_ms, speed_text, table

HEADERS = ("Backend", "Train ms/step", "Predict ms/batch", "Accuracy", "Speed vs fastest", "LSTM kernel")
RIGHT = {"Train ms/step", "Predict ms/batch", "Accuracy"}  # numbers line up on their last digit
WRAP = {"Backend", "Accuracy", "LSTM kernel"}
TWO_LINES = {"Train ms/step", "Predict ms/batch", "Speed vs fastest"}  # headers as wide as their numbers
DEFAULT_WIDTH = 100  # where the terminal's width is unknown (output redirected)


def render(report: Report, width: int | None = None, plain: bool = False) -> str:
    """One compact table per group, and a line naming the report's other sections.

    ``width``: columns to fit (default: the terminal's); ``plain``: aligned text even where rich is installed.
    """
    if report.empty:
        return "No results.\n"
    tables = [(group.key.label, [cells(line, group) for line in group.lines]) for group in report.groups]
    text = _tables(tables, width or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns, plain) if tables else ""
    more = [name for name, present in (("accuracy parity across seeds", report.several_seeds),
                                       ("sweep scaling", report.sweep),
                                       ("data-parallel scaling", report.parallel_steps or report.parallel_accuracy),
                                       ("skipped files", report.warnings)) if present]
    if more:
        text += ("\n" if text else "") + f"Also in the full report: {', '.join(more)}.\n"
    return text


def cells(line: Line, group: Group) -> list[str]:
    """The compact cells of one line, in HEADERS order."""
    return [_name(line, group), fmt_ms(line.train_median_ms), fmt_ms(line.predict_median_ms), accuracy_text(line),
            speed_text(line.speed_ratio), line.lstm_kernel or MISSING]


def accuracy_text(line: Line) -> str:
    """Final val_accuracy: '0.812', '0.800 (5 seeds)' (their mean), 'failed', or '—' without an accuracy run."""
    if line.accuracy_status and line.accuracy_status != "ok":
        return "failed"
    text = fmt(line.final_val_accuracy, ".3f")
    return f"{text} ({line.accuracy_seeds} seeds)" if line.accuracy_seeds > 1 else text


def _name(line: Line, group: Group) -> str:
    # Without REPORT.md's Keras and Device columns, name them where they tell the group's lines apart.
    return ", ".join([line.label, *group.distinguishing(line)])


def _tables(tables: list[tuple[str, list[list[str]]]], width: int, plain: bool) -> str:
    if not plain:
        try:
            return _rich(tables, width)
        except ImportError:  # the "report" extra is not installed
            pass
    return "\n\n".join(f"{title}\n\n{table(HEADERS, rows, style='plain')}" for title, rows in tables) + "\n"


def _rich(tables: list[tuple[str, list[list[str]]]], width: int) -> str:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = io.StringIO()
    # No colour codes: the text is also written to logs and files, where escape codes would be noise.
    console = Console(file=out, width=width, color_system=None, force_terminal=False, highlight=False)
    for i, (title, rows) in enumerate(tables):
        if i:
            console.print()
        shown = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header in HEADERS:
            # Numbers never wrap; names and notes do where the terminal is narrow (fold: nothing is cut off).
            wrap = header in WRAP
            shown.add_column(header.replace(" ", "\n", 1) if header in TWO_LINES else header, no_wrap=not wrap,
                             overflow="fold" if wrap else "ellipsis", justify="right" if header in RIGHT else "left")
        for row in rows:
            shown.add_row(*map(Text, row))  # Text: "[cudnn_off]" is a variant, not rich markup
        console.print(shown)
    text = "\n".join(line.rstrip() for line in out.getvalue().splitlines())
    return text.strip("\n") + "\n"
