"""What every command module shares: argument types, output conventions, rich tables and progress bars.

The library reports progress through plain callbacks (:mod:`hsfuse.progress`); :class:`ProgressBar` is the one
place that turns them into a rich bar. Messages go to stderr, results (tables, JSON) to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._checks import check_weight, parse_positive_int
from ..errors import InputError

__all__ = ["EXIT_USAGE", "console", "say_printer", "print_table", "ProgressBar", "positive_int", "band_list",
           "add_read_options", "add_quiet", "method_keyed"]

EXIT_USAGE = 2


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # tables piped to a file or read by CI are not cut to 80 columns
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


def say_printer(quiet: bool) -> Callable[[str], None]:
    """One-line status messages on stderr (``hsfuse: ...``), or nothing with ``--quiet``."""
    if quiet:
        return lambda _msg: None
    err = console(stderr=True)
    return lambda msg: err.print(f"[dim]hsfuse:[/dim] {msg}")


def print_table(rows: list[dict[str, Any]], title: str, columns: Sequence[str] | None = None) -> None:
    from rich.table import Table

    if not rows:
        return
    cols = list(columns or rows[0])
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="left" if c in ("method", "scene", "sensor", "metric", "name", "type", "default",
                                                    "help", "description", "options", "needs") else "right")
    for row in rows:
        table.add_row(*["" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                        for v in (row.get(c, "") for c in cols)])
    console().print(table)


class ProgressBar:
    """A rich progress bar fed by the library's ``callback(done, total, info=...)``; off when ``quiet``.

    Used as a context manager: ``with ProgressBar("tiles", quiet=q) as progress: f(..., progress=progress)``
    (``progress`` is ``None`` when quiet, so the library skips the calls).
    """

    def __init__(self, label: str, *, quiet: bool) -> None:
        self.label = label
        self.quiet = quiet
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> ProgressBar | None:
        return None if self.quiet else self

    def __call__(self, done: int, total: int, *, info: str = "") -> None:
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                console=console(stderr=True), transient=True)
            self.task = self.bar.add_task(self.label, total=total, info="")
            self.bar.start()
        self.bar.update(self.task, completed=done, total=total, info=info)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the ratio and every count)."""
    try:
        return parse_positive_int(text, "value")
    except InputError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer") from None


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (thresholds, weights)."""
    try:
        return check_weight(float(text), "value", allow_zero=False)
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number > 0") from None


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (regularisation weights)."""
    try:
        return check_weight(float(text), "value", allow_zero=True)
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number >= 0") from None


def band_list(text: str) -> list[str]:
    """argparse type: comma-separated band names."""
    return [b for b in text.split(",") if b]


def add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layout", choices=["auto", "hwb", "bhw"], default="auto",
                   help="axis order of .mat/.npy arrays: H x W x bands (hwb) or bands x H x W (bhw); default auto")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages or bars")


def method_keyed(items: Sequence[str], what: str) -> dict[str, list[str]]:
    """``METHOD:REST`` texts (``--option fuse:lam=0.01``, ``--weights dbin=run/``) grouped by method."""
    out: dict[str, list[str]] = {}
    for item in items:
        method, sep, rest = item.partition(":")
        if not sep or not method or not rest:
            raise InputError(f"{what} {item!r} must look like METHOD:KEY=VALUE")
        out.setdefault(method, []).append(rest)
    return out
