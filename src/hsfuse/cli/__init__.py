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
import sys
from collections.abc import Sequence

from . import blind, data, fusion, synth, training
from ._common import EXIT_USAGE

__all__ = ["main", "build_parser"]


def _version() -> str:
    from .. import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hsfuse", description="Hyperspectral + multispectral image fusion.")
    parser.add_argument("--version", action="version", version=f"hsfuse {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (fusion, data, training, blind, synth):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hsfuse`` console command; returns the exit status."""
    from ..errors import HsfuseError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HsfuseError as exc:
        print(f"hsfuse {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, MemoryError) as exc:
        print(f"hsfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hsfuse {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: keep the message short unless asked for the traceback
        if os.environ.get("HSFUSE_DEBUG"):
            raise
        print(f"hsfuse {args.command}: unexpected error ({type(exc).__name__}: {exc}). This is a bug in hsfuse; "
              "rerun with HSFUSE_DEBUG=1 for the traceback and report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
