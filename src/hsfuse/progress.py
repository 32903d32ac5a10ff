"""Progress reporting for long work, as a plain callback (no display code in the library).

Long-running library functions (tiled inference, UDALN's three stages, training loops, chunked fusion) take
``progress: ProgressFn | None``. They call it as ``progress(done, total)`` after each unit of work (a tile, an
iteration, a step, a chunk); a caller that also wants a short status text (``"stage 2  loss 0.013"``) gives a
callable that accepts an ``info`` keyword, and :func:`reporter` passes it along. The command line turns these
calls into a rich progress bar; a notebook user can pass ``tqdm``'s ``update`` or a ``print``.

Example:
    >>> seen = []
    >>> report = reporter(lambda done, total: seen.append((done, total)))
    >>> report(1, 3, info="loss 0.5")   # the plain two-argument callback gets (done, total) only
    >>> seen
    [(1, 3)]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol

__all__ = ["ProgressFn", "ProgressWithInfo", "Report", "reporter"]

#: ``callback(done, total)``: ``done`` of ``total`` units finished (``total`` fixed for one run)
ProgressFn = Callable[[int, int], None]


class ProgressWithInfo(Protocol):
    """A progress callback that also takes a one-line status text."""

    def __call__(self, done: int, total: int, *, info: str = "") -> None: ...


#: what :func:`reporter` returns: always callable as ``report(done, total, info=...)``
Report = Callable[..., None]


def _silent(done: int, total: int, *, info: str = "") -> None:
    return None


def reporter(progress: ProgressFn | ProgressWithInfo | None) -> Report:
    """``progress`` as a function callable with ``(done, total, info=...)``; ``None`` gives a no-op.

    The ``info`` text is passed only to callbacks whose signature has an ``info`` parameter (or ``**kwargs``);
    a plain ``callback(done, total)`` receives the counts alone.
    """
    if progress is None:
        return _silent
    if not callable(progress):
        raise TypeError(f"progress must be a callable (done, total) -> None or None, got {type(progress).__name__}; "
                        "progress=True is no longer accepted: pass a callback such as lambda done, total: ...")
    try:
        params = inspect.signature(progress).parameters.values()
        takes_info = any(p.name == "info" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    except (TypeError, ValueError):  # builtins without a signature
        takes_info = False
    if takes_info:
        return progress

    def report(done: int, total: int, *, info: str = "") -> None:
        progress(done, total)  # type: ignore[call-arg]

    return report
