"""The ``hsfuse`` command line: one module per command group, each parsing arguments, calling one library function
per command (:mod:`hsfuse.workflows`, :mod:`hsfuse.bench`) and printing.

Modules: :mod:`.fusion` (demo, fuse, methods, evaluate, bench), :mod:`.data` (info, simulate, srf),
:mod:`.training` (train), :mod:`.blind` (estimate, pair), :mod:`.synth` (synth ...); :mod:`._common` holds the
argument types, tables and the progress bar. Errors caused by the input print one line (``error: ...``) and exit
with status 2; outputs are written to a temporary file and renamed, and existing outputs are refused unless
``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from . import blind, data, fusion, synth, training
from ._common import EXIT_USAGE

__all__ = ["main", "build_parser"]


def _version() -> str:
    from .. import __version__

    return __version__


class _Parser(argparse.ArgumentParser):
    """argparse with one-line refusals: ``hsfuse CMD: error: ... (see 'hsfuse CMD --help')`` and exit 2, instead of
    the whole usage block before the error line. Subcommands inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hsfuse", description="Hyperspectral + multispectral image fusion.")
    parser.add_argument("--version", action="version", version=f"hsfuse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (fusion, data, training, blind, synth):
        module.register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that outputs are rolled back as for Ctrl-C."""


#: what an interruption leaves (true of every writer: atomic files and folders, simulations written as one unit)
INTERRUPTED = ("outputs are as they were (nothing half-written is kept; a large-scene run keeps its partial "
               "output for --resume)")


@contextmanager
def _command_environment(command: str) -> Iterator[None]:
    """For one command: warnings print as one ``hsfuse CMD: warning: ...`` line each (no source paths), and
    SIGTERM becomes :class:`Terminated` (the main thread only; restored afterwards)."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        print(f"hsfuse {command}: warning: {message}", file=sys.stderr)

    def terminate(signum, frame) -> None:  # noqa: ANN001
        raise Terminated()

    previous_show = warnings.showwarning
    warnings.showwarning = show
    main_thread = threading.current_thread() is threading.main_thread()
    previous_term = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        yield
    finally:
        warnings.showwarning = previous_show
        if main_thread:
            signal.signal(signal.SIGTERM, previous_term)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hsfuse`` console command; returns the exit status."""
    from ..errors import HsfuseError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _command_environment(args.command):
            return int(args.func(args) or 0)
    except HsfuseError as exc:
        print(f"hsfuse {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, MemoryError) as exc:
        print(f"hsfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hsfuse {args.command}: interrupted; {INTERRUPTED}", file=sys.stderr)
        return 130
    except Terminated:
        print(f"hsfuse {args.command}: terminated (SIGTERM); {INTERRUPTED}", file=sys.stderr)
        return 143
    except Exception as exc:  # a bug: keep the message short unless asked for the traceback
        if os.environ.get("HSFUSE_DEBUG"):
            raise
        print(f"hsfuse {args.command}: unexpected error ({type(exc).__name__}: {exc}). This is a bug in hsfuse; "
              "rerun with HSFUSE_DEBUG=1 for the traceback and report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
