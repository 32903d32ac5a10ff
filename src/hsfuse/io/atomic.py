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
  the outputs are all old or all new. Before the renames a journal ``.hsfuse.<token>.group.json`` lists the group
  (deleted last). A run killed outright (SIGKILL) cannot roll back itself: the next write of any of the same
  targets does it first (:func:`_recover`): with a journal whose group did not fully arrive, every target gets its
  ``.old`` copy back (a new file that had no old one is removed); with one that did, the olds are deleted; then
  left-over ``.tmp``/``.old`` files of the targets are removed. :func:`recover_targets` does just this.
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

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import HsfuseError, InputError, OutputExistsError

__all__ = ["check_output_path", "atomic_output", "atomic_outputs", "atomic_output_dir", "atomic_folder_files",
           "clean_interrupted_dirs", "recover_targets", "recover_folder_files", "move_into_place"]


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


def _journal(folder: Path, token: str) -> Path:
    """The journal of the group renamed with ``token`` (module docstring): ``folder/.hsfuse.<token>.group.json``."""
    return folder / f".hsfuse.{token}.group.json"


def _replace_all(targets: list[Path], temps: list[Path], token: str, *, temporaries: bool = True) -> None:
    """Rename ``temps`` onto ``targets`` as one unit (module docstring): journal written, olds aside, news in, olds
    deleted, journal deleted; on any exception (Ctrl-C included) the news are removed and the olds put back before
    re-raising. ``temporaries=False``: the sources are not temporaries (a finished store in a partial folder): a
    roll-back leaves them where they were."""
    folder = targets[0].parent
    journal = _journal(folder, token)
    record = {"targets": [os.path.relpath(t, folder) for t in targets],
              "sources": [os.path.relpath(t, folder) for t in temps],
              "olds": [os.path.relpath(_old_name(t, token), folder) for t in targets], "temporaries": temporaries}
    journal.write_text(json.dumps(record))
    aside: list[tuple[Path, Path]] = []
    placed: list[tuple[Path, Path]] = []
    try:
        for target in targets:
            if target.exists() or target.is_symlink():
                old = _old_name(target, token)
                os.replace(target, old)
                aside.append((target, old))
        for target, tmp in zip(targets, temps):
            os.replace(tmp, target)
            placed.append((target, tmp))
    except BaseException:
        for target, tmp in placed:
            if temporaries:
                _remove(target)
            else:
                os.replace(target, tmp)
        for target, old in aside:
            os.replace(old, target)
        _remove(journal)
        raise
    for _, old in aside:
        _remove(old)
    _remove(journal)


def _finish_journals(targets: Sequence[Path]) -> None:
    """Complete the group renames a kill interrupted, for every journal naming one of ``targets``: if a source
    is still unmoved the group did not fully arrive, so every target goes back to its ``.old`` copy (or away, if
    it had none and its new file arrived); otherwise the olds are deleted. A torn journal (killed while it was
    written, before any rename) is deleted."""
    wanted = {t.resolve() for t in targets}
    for folder in {t.parent for t in targets}:
        for journal in sorted(folder.glob(".hsfuse.*.group.json")) if folder.is_dir() else []:
            try:
                record = json.loads(journal.read_text())
                group = [(folder / t, folder / s, folder / o)
                         for t, s, o in zip(record["targets"], record["sources"], record["olds"], strict=True)]
                temporaries = bool(record.get("temporaries", True))
            except (ValueError, KeyError, TypeError):
                _remove(journal)
                continue
            if not any(t.resolve() in wanted for t, _, _ in group):
                continue
            if any(s.exists() for _, s, _ in group):  # not all arrived: roll back
                for target, source, old in group:
                    if not source.exists() and temporaries:  # its new file arrived: away with it
                        _remove(target)
                    elif not source.exists():  # a source that is not a temporary goes back where it was
                        os.replace(target, source)
                    if old.exists() or old.is_symlink():
                        os.replace(old, target)
                    if temporaries:
                        _remove(source)
            else:
                for _, _, old in group:
                    _remove(old)
            _remove(journal)


_LEFTOVER = re.compile(r"^\.(?P<stem>.+)\.(?P<token>[0-9a-f]{8})\.(?P<kind>tmp|old)(?P<suffix>\.[^.]*)?$")


def _recover(targets: Sequence[Path]) -> None:
    """Undo what a killed write of ``targets`` left: a missing target whose ``.old`` copy exists is restored from
    it; every other ``.tmp``/``.old`` leftover of these targets (same folder, stem and suffix) is removed. (Two
    processes writing the same target at the same moment are not supported: the second would remove the first's
    temporaries.)"""
    _finish_journals(targets)
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


def recover_targets(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Public form of :func:`_recover`: restore or remove what killed writes of ``paths`` left beside them."""
    _recover([Path(p) for p in paths])


def move_into_place(sources: Sequence[str | os.PathLike[str]], targets: Sequence[str | os.PathLike[str]], *,
                    temporaries: bool = False) -> None:
    """Rename finished ``sources`` (files or folders, on the targets' file system) onto ``targets`` as one unit,
    replacing what is there (the caller checked ``overwrite``): leftovers of killed writes of the targets are
    handled first (:func:`_recover`), then olds aside, news in, olds deleted; an exception puts the olds back and
    the sources where they were (``temporaries=True``: deletes them)."""
    targets = [Path(t) for t in targets]
    _recover(targets)
    _replace_all(targets, [Path(s) for s in sources], secrets.token_hex(4), temporaries=temporaries)


def _recover_staging(folder: Path) -> None:
    """Remove the staging folders (``.name.<token>.tmp``) killed writes of ``folder`` left beside it."""
    for entry in folder.parent.iterdir() if folder.parent.is_dir() else []:
        m = _DIR_TEMP.match(entry.name)
        if m is not None and m["name"] == folder.name and m["kind"] == "tmp" and entry.is_dir():
            _remove(entry)


def recover_folder_files(folder: str | os.PathLike[str], names: Sequence[str]) -> None:
    """Undo or finish what killed :func:`atomic_folder_files` writes of ``names`` in ``folder`` left: first the
    journalled group renames (their sources may lie in a staging folder), then the staging folders beside it."""
    out = Path(folder)
    if out.is_dir():
        _recover([out / n for n in names])
    _recover_staging(out)


@contextmanager
def atomic_folder_files(folder: str | os.PathLike[str], names: Sequence[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging folder for the files ``names`` of ``folder``; on success they appear there as one
    unit, on failure (or Ctrl-C) nothing changes.

    A missing ``folder`` (parents included) is made by renaming the staging folder onto it: it appears whole or
    not at all. An existing one keeps its other files; ``names`` in it are replaced as one group
    (:func:`move_into_place`). The staging folder is the hidden sibling ``.folder.<token>.tmp``; those killed
    runs left, and what a killed group rename left in ``folder``, are tidied first. Existing ``names`` need
    ``overwrite`` (checked before anything is written).
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError(f"cannot write folder {out}: a file of that name exists; remove it or choose another path")
    targets = [out / n for n in names]
    recover_folder_files(out, names)
    if out.is_dir():
        for t in targets:
            check_output_path(t, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    _check_parent(out)
    staging = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    staging.mkdir()
    try:
        yield staging
        missing = [n for n in names if not (staging / n).exists()]
        if missing:
            raise HsfuseError(f"writing failed: the writer did not produce {', '.join(missing)}")
        if out.is_dir():
            move_into_place([staging / n for n in names], targets, temporaries=True)
        else:
            os.replace(staging, out)
    finally:
        _remove(staging)


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
