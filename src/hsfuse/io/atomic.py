"""Atomic output: write to a temporary name in the target folder, then rename onto the target.

A failed or interrupted write never leaves a half-written file under the requested name, and never damages
an existing file there: the writer works on a temporary path in the same folder (same file-system, so
``os.replace`` is atomic) with the same suffix (format libraries choose their format by suffix), and only
on success is the temporary renamed onto the target. On any exception the temporary is deleted.

* :func:`atomic_output` for one file.
* :func:`atomic_outputs` for outputs made of several files (ENVI ``.hdr`` + ``.img``, the files of a simulation):
  the temporaries share one random token, so a ``.hdr``/``.img`` pair keeps a common stem. The group is replaced
  as one unit: existing targets are first renamed aside (``.name.<token>.old<suffix>``), then every temporary
  renamed in; an exception or Ctrl-C during the renames puts the old files back (and removes the new ones), so
  the outputs are all old or all new. A run killed outright (SIGKILL) cannot roll back: the next write of the
  same targets does it first (:func:`_recover`): a target found missing beside its ``.old`` copy gets the copy
  back, and left-over ``.tmp``/``.old`` files of the targets are removed.
* :func:`atomic_output_dir` for outputs that are a folder (a CAVE folder of PNGs): the folder is written
  under a temporary name and renamed; an existing folder is moved aside first and deleted only after the
  new one is in place.

Temporary names are hidden (``.name.<token>.tmp<suffix>``) and not pre-created (some writers refuse an
existing file).

Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_output(os.path.join(d, "a.npy"), overwrite=False) as tmp:
    ...     np.save(tmp, np.zeros(3))
    >>> os.listdir(d)
    ['a.npy']
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import HsfuseError, InputError, OutputExistsError

__all__ = ["check_output_path", "atomic_output", "atomic_outputs", "atomic_output_dir", "clean_interrupted_dirs"]


def _check_parent(path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: folder {parent} does not exist; create it first or choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: no write permission in folder {parent}; choose another output path")


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool, folder: bool = False) -> Path:
    """Pre-flight check of an output path; returns it as a :class:`~pathlib.Path`.

    Raises :class:`~hsfuse.errors.OutputExistsError` if it exists and ``overwrite`` is false, and
    :class:`~hsfuse.errors.InputError` if its folder is missing or not writable, or if it is a folder where a
    file is expected (``folder=False``) or the reverse.
    """
    p = Path(path)
    _check_parent(p)
    if p.exists() or p.is_symlink():
        if folder and not p.is_dir():
            raise InputError(f"cannot write folder {p}: a file of that name exists; remove it or choose another path")
        if not folder and p.is_dir():
            raise InputError(f"cannot write file {p}: it is a folder; choose a file name inside it")
        if not overwrite:
            raise OutputExistsError(f"{p} exists; pass overwrite=True / --overwrite to replace it")
    return p


def _temp_name(path: Path, token: str) -> Path:
    """``dir/.stem.<token>.tmp<suffix>``: hidden, same folder, same suffix, common stem per token."""
    return path.with_name(f".{path.stem}.{token}.tmp{path.suffix}")


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


@contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike[str]], *, overwrite: bool) -> Iterator[list[Path]]:
    """Yield temporary paths for several output files; on success rename each onto its target.

    ``paths`` are the final names; the yielded list holds one temporary per path, in the same order and
    folder, with the same suffix and one shared random token (so ``x.hdr``/``x.img`` become
    ``.x.<token>.tmp.hdr``/``.x.<token>.tmp.img``). If the block raises (anything, including
    ``KeyboardInterrupt``) every temporary is deleted and the targets are left as they were. If a target
    exists and ``overwrite`` is false, :class:`~hsfuse.errors.OutputExistsError` is raised before anything is
    written. A temporary the writer did not create is an error on success (the output would be incomplete).
    """
    targets = [Path(p) for p in paths]
    for t in targets:
        _check_parent(t)
    _recover(targets)
    targets = [check_output_path(p, overwrite=overwrite) for p in targets]
    if len({t.resolve() for t in targets}) != len(targets):
        raise InputError(f"output paths repeat: {[str(t) for t in targets]}")
    while True:
        token = secrets.token_hex(4)
        temps = [_temp_name(t, token) for t in targets]
        if not any(t.exists() for t in temps):
            break
    try:
        yield temps
        missing = [str(t) for t, tmp in zip(targets, temps) if not tmp.exists()]
        if missing:
            raise HsfuseError(f"writing failed: the writer did not produce {', '.join(missing)}")
        _replace_all(targets, temps, token)
    except PermissionError as exc:
        for tmp in temps:
            _remove(tmp)
        raise InputError(f"cannot write {targets[0]}: permission denied ({exc}); choose another output path") from exc
    except BaseException:
        for tmp in temps:
            _remove(tmp)
        raise


def _old_name(path: Path, token: str) -> Path:
    """``dir/.stem.<token>.old<suffix>``: where an existing target waits while the new group is renamed in."""
    return path.with_name(f".{path.stem}.{token}.old{path.suffix}")


def _replace_all(targets: list[Path], temps: list[Path], token: str) -> None:
    """Rename ``temps`` onto ``targets`` as one unit (module docstring): olds aside, news in, olds deleted; on any
    exception (Ctrl-C included) the news are removed and the olds put back before re-raising."""
    aside: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    try:
        for target in targets:
            if target.exists() or target.is_symlink():
                old = _old_name(target, token)
                os.replace(target, old)
                aside.append((target, old))
        for target, tmp in zip(targets, temps):
            os.replace(tmp, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            _remove(target)
        for target, old in aside:
            os.replace(old, target)
        raise
    for _, old in aside:
        _remove(old)


_LEFTOVER = re.compile(r"^\.(?P<stem>.+)\.(?P<token>[0-9a-f]{8})\.(?P<kind>tmp|old)(?P<suffix>\.[^.]*)?$")


def _recover(targets: Sequence[Path]) -> None:
    """Undo what a killed write of ``targets`` left: a missing target whose ``.old`` copy exists is restored from
    it; every other ``.tmp``/``.old`` leftover of these targets (same folder, stem and suffix) is removed. (Two
    processes writing the same target at the same moment are not supported: the second would remove the first's
    temporaries.)"""
    for target in targets:
        folder = target.parent
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            m = _LEFTOVER.match(entry.name)
            if not m or m["stem"] != target.stem or (m["suffix"] or "") != target.suffix:
                continue
            if m["kind"] == "old" and not (target.exists() or target.is_symlink()):
                os.replace(entry, target)
            else:
                _remove(entry)


@contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path for one output file; on success rename it onto ``path``.

    See :func:`atomic_outputs`; this is the one-file case.
    """
    with atomic_outputs([path], overwrite=overwrite) as temps:
        yield temps[0]


@contextmanager
def atomic_output_dir(
    path: str | os.PathLike[str],
    *,
    overwrite: bool,
    replaceable: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes ``path``.

    An existing folder at ``path`` is replaced only when ``overwrite`` is true AND every entry in it is
    accepted by ``replaceable`` (a predicate on each entry; default: none, i.e. only an empty folder is
    replaced). This keeps ``overwrite=True`` from ever deleting a folder of unrelated files. The old folder is
    renamed aside, the new one renamed in, and the old one deleted; if the second rename fails the old
    folder is put back.
    """
    target = check_output_path(path, overwrite=overwrite, folder=True)
    if target.is_dir():
        foreign = [e.name for e in sorted(target.iterdir()) if replaceable is None or not replaceable(e)]
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise OutputExistsError(
                f"refusing to replace folder {target}: it holds files this writer did not make ({shown}); "
                "remove them or choose another folder"
            )
    token = secrets.token_hex(4)
    tmp = target.with_name(f".{target.name}.{token}.tmp")
    try:
        tmp.mkdir()
    except PermissionError as exc:
        raise InputError(f"cannot write {target}: permission denied ({exc}); choose another output path") from exc
    try:
        yield tmp
        if target.is_dir():
            old = target.with_name(f".{target.name}.{token}.old")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


_DIR_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<token>[0-9a-f]{8})\.(?P<kind>tmp|old)$")


def clean_interrupted_dirs(folder: str | os.PathLike[str]) -> list[str]:
    """Tidy what killed :func:`atomic_output_dir` calls left in ``folder``; return the names handled.

    A temporary folder (``.name.<token>.tmp``) is half-written and is removed. A folder renamed aside
    (``.name.<token>.old``) is put back as ``name`` when its replacement never arrived (the kill fell between
    the two renames), and removed otherwise. Nothing else in ``folder`` is touched.
    """
    root = Path(folder)
    handled = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        m = _DIR_TEMP.match(entry.name)
        if m is None or not entry.is_dir():
            continue
        target = root / m["name"]
        if m["kind"] == "old" and not target.exists():
            os.replace(entry, target)
        else:
            _remove(entry)
        handled.append(entry.name)
    return handled
