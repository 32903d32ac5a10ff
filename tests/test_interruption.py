"""Interruptions at every write step (issue 18, item 2): SIGINT and SIGKILL before each file-system step of a
command's writes, then the state checked (the old outputs or the complete new ones) and a rerun that must succeed
and leave nothing else behind.

A fault injector wraps the file-system calls hsfuse's writers make (``os.replace``/``rename``/``mkdir``/
``unlink``/``remove``, ``shutil.rmtree``, ``Path.touch``) and counts those that touch the output folder. A first,
clean run counts the steps and gives the complete new outputs. Then, for each step ``k``:

* **SIGINT**: a ``KeyboardInterrupt`` is raised just before step ``k``; hsfuse's handlers run, as they would on
  Ctrl-C.
* **SIGKILL**: the output folder is copied just before step ``k`` (the state a ``kill -9`` at that moment leaves)
  and the run is stopped; the copy then replaces whatever the handlers did, as no handler runs after a real kill.
  The state is judged as the next write of the same outputs finds it, after its first act
  (:func:`hsfuse.io.atomic.recover_targets`: an output renamed aside and not yet replaced comes back).

Outputs are compared by content (file bytes; zarr stores by their array values, since zarr's metadata may differ
between identical writes).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hsfuse.cli import main
from hsfuse.io.atomic import recover_folder_files, recover_targets


class Killed(BaseException):
    """The stand-in for SIGKILL: not an ``Exception`` and not a ``KeyboardInterrupt``, so nothing handles it."""


class Injector:
    """Counts file-system steps under ``root``; before step ``at`` interrupts as ``mode`` says. With ``internal``
    false, the steps zarr makes inside a store it writes (its own temporaries and renames, one per metadata file
    and chunk) are not counted: only hsfuse's (the slow run counts them all)."""

    def __init__(self, root: Path, at: int | None = None, mode: str = "sigint", snapshot: Path | None = None,
                 internal: bool = True):
        self.root, self.at, self.mode, self.snapshot = root.resolve(), at, mode, snapshot
        self.internal = internal
        self.count = 0
        self.fired = False
        self._inside = 0

    def _under_root(self, path) -> bool:
        try:
            resolved = Path(os.fspath(path)).resolve()
        except (TypeError, ValueError, OSError):
            return False
        if not resolved.is_relative_to(self.root):
            return False
        return self.internal or "store.zarr" not in resolved.relative_to(self.root).parts[:-1]

    def step(self, *paths) -> None:
        if self._inside or not any(self._under_root(p) for p in paths):
            return
        if self.fired:
            if self.mode == "sigkill":  # nothing more reaches the disk after a kill
                raise OSError("killed")
            return
        self.count += 1
        if self.count != self.at:
            return
        self.fired = True
        in_main = threading.current_thread() is threading.main_thread()
        if self.mode == "sigkill":
            shutil.copytree(self.root, self.snapshot, symlinks=True)
            if in_main:
                raise Killed
        elif in_main:
            raise KeyboardInterrupt
        # a step of a worker thread (the chunks): the signal goes to the main thread, as a real one does
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        if self.mode == "sigkill":
            raise OSError("killed")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def wrap_os(name: str, n_paths: int) -> None:
            real = getattr(os, name)

            def call(*args, **kwargs):
                if "dir_fd" not in kwargs:  # rmtree's fd-relative calls are inside an rmtree step
                    self.step(*args[:n_paths])
                return real(*args, **kwargs)

            monkeypatch.setattr(os, name, call)

        for name, n in (("replace", 2), ("rename", 2), ("mkdir", 1), ("unlink", 1), ("remove", 1), ("rmdir", 1)):
            wrap_os(name, n)
        real_rmtree, real_touch = shutil.rmtree, Path.touch

        def rmtree(path, *args, **kwargs):
            self.step(path)
            self._inside += 1
            try:
                return real_rmtree(path, *args, **kwargs)
            finally:
                self._inside -= 1

        def touch(path, *args, **kwargs):
            self.step(path)
            return real_touch(path, *args, **kwargs)

        monkeypatch.setattr(shutil, "rmtree", rmtree)
        monkeypatch.setattr(Path, "touch", touch)


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _workers_idle() -> None:
    """Wait until what an interrupted run left running is done: chunk tasks in dask's one-thread pool (a task
    queued behind them) and zarr's I/O coroutines, which go on in zarr's event-loop thread when the thread that
    awaited them is interrupted."""
    import asyncio

    import dask
    import zarr.core.sync

    dask.compute(dask.delayed(int)(0), scheduler="threads", num_workers=1)
    loop = zarr.core.sync.loop[0]
    deadline = time.monotonic() + 10
    while loop is not None and time.monotonic() < deadline:
        pending = asyncio.run_coroutine_threadsafe(_pending_tasks(), loop).result()
        if not pending:
            return
        time.sleep(0.01)


async def _pending_tasks() -> int:
    import asyncio

    return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _content(path: Path) -> object:
    """What an output holds: file bytes; a zarr store's array values; a missing path is ``None``."""
    if not path.exists():
        return None
    if path.suffix == ".zarr":
        import zarr

        group = zarr.open_group(str(path), mode="r")
        return {name: np.asarray(arr[...]).tobytes() for name, arr in sorted(group.arrays())}
    if path.is_dir():
        return {p.name: _content(p) for p in sorted(path.iterdir())}
    return path.read_bytes()


def _interrupt_at_every_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, argv: list[str],
                             outputs: list[str], make_old: Callable[[Path], None] | None,
                             rerun: Callable[[Path], list[str]] = lambda root: [], modes=("sigint", "sigkill"),
                             internal: bool = True, recover: Callable[[Path], None] | None = None) -> int:
    """Run ``argv`` (``{out}`` = the output folder) interrupted before each of its write steps, in each mode.

    ``outputs``: the names (under the folder) the command writes; ``make_old``: writes previous outputs to be
    replaced (``None``: none exist); ``rerun(root)``: extra arguments for the rerun (e.g. ``--resume``);
    ``internal``: count zarr's steps inside a store too; ``recover(root)``: the first act of the command's next
    write, which tidies what a kill left (default :func:`recover_targets` of the outputs). After each interruption
    the outputs must be all old or all new; after the rerun all new, with nothing else in the folder. Returns the
    number of steps."""
    root, cache = tmp_path / "out", tmp_path / "old"
    cache.mkdir()
    if make_old is not None:
        make_old(cache)

    def fresh() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(cache, root, symlinks=True)

    def args() -> list[str]:
        return [a.replace("{out}", str(root)) for a in argv]

    fresh()
    old = {name: _content(root / name) for name in outputs}
    counter = Injector(root, internal=internal)
    with monkeypatch.context() as m:
        counter.install(m)
        assert _run(args()) == 0
    new = {name: _content(root / name) for name in outputs}
    final = _listing(root)
    assert all(v is not None for v in new.values()) and new != old
    steps = counter.count
    assert steps >= 2, steps
    for mode in modes:
        for k in range(1, steps + 1):
            fresh()
            snapshot = tmp_path / f"kill-{mode}-{k}"
            inject = Injector(root, at=k, mode=mode, snapshot=snapshot, internal=internal)
            with monkeypatch.context() as m:
                inject.install(m)
                try:
                    try:
                        code = _run(args())
                    except Killed:
                        code = "killed"
                    _workers_idle()
                    time.sleep(0.05)  # a signal sent by a worker thread at the very end lands here
                except KeyboardInterrupt:
                    code = "ended first"
            assert inject.fired, (mode, k)
            # Ctrl-C: exit 130 whatever the step, unless the run had ended before the signal (sent by a worker
            # thread) reached it; after a kill nothing runs, so its exit status means nothing here
            assert mode == "sigkill" or code in (130, 0, "ended first"), (mode, k, code)
            if mode == "sigkill":  # what the kill left, without the handlers' work ...
                while root.exists():  # (a zarr I/O thread may still be finishing a file there)
                    shutil.rmtree(root, ignore_errors=True)
                shutil.move(snapshot, root)
                # ... as the next write of these outputs finds it: a kill between "old aside" and "new in" leaves
                # an output beside its .old copy, which that write puts back first (hsfuse.io.atomic)
                if recover is None:
                    recover_targets([root / name for name in outputs])
                else:
                    recover(root)
            state = {name: _content(root / name) for name in outputs}
            assert state in (old, new), f"{mode} before step {k}: the outputs are neither the old nor the new ones"
            assert _run(args() + rerun(root)) == 0, (mode, k)
            assert {name: _content(root / name) for name in outputs} == new, (mode, k)
            assert _listing(root) == final, (mode, k, _listing(root))
    return steps


@pytest.fixture
def pair(tmp_path):
    g = np.random.default_rng(0)
    wl = np.arange(400, 710, 10, dtype=np.float64)
    folder = tmp_path / "in"
    folder.mkdir()
    np.savez(folder / "h.npz", cube=g.random((16, 16, 31)).astype(np.float32), wavelengths=wl)
    np.savez(folder / "m.npz", cube=g.random((64, 64, 3)).astype(np.float32))
    np.savez(folder / "ref.npz", cube=g.random((16, 16, 31)).astype(np.float32), wavelengths=wl)
    return folder


def _fuse(pair: Path, output: str, *extra: str) -> list[str]:
    return ["fuse", "--hsi", str(pair / "h.npz"), "--msi", str(pair / "m.npz"), "--method", "glp", "--srf",
            "nikon_d700_dhsis", "--ratio", "4", "-o", output, "-q", *extra]


def test_fuse_into_an_envi_pair_interrupted_at_every_step(pair, tmp_path, monkeypatch):
    def old(root):
        (root / "f.hdr").write_text("ENVI\nold header\n")
        (root / "f.img").write_bytes(b"old data")

    steps = _interrupt_at_every_step(tmp_path, monkeypatch, argv=_fuse(pair, "{out}/f.hdr", "--overwrite"),
                                     outputs=["f.hdr", "f.img"], make_old=old)
    assert steps >= 4  # two temporaries in, two olds aside, two news in, two olds deleted


def test_simulate_folder_interrupted_at_every_step(pair, tmp_path, monkeypatch):
    argv = ["simulate", str(pair / "ref.npz"), "--srf", "nikon_d700_dhsis", "--ratio", "4", "--format", "hdr",
            "-o", "{out}/sim"]
    files = [f"{n}.{e}" for n in ("hsi", "msi", "reference") for e in ("hdr", "img")] + ["physics.json"]
    _interrupt_at_every_step(tmp_path, monkeypatch, argv=argv, outputs=["sim"], make_old=None,
                             recover=lambda root: recover_folder_files(root / "sim", files))


def test_simulate_over_an_existing_folder_interrupted_at_every_step(pair, tmp_path, monkeypatch):
    """The files of a previous simulation are replaced as one group; a file of the user's stays."""
    argv = ["simulate", str(pair / "ref.npz"), "--srf", "nikon_d700_dhsis", "--ratio", "4", "--format", "hdr",
            "-o", "{out}/sim", "--overwrite", "--snr-hsi", "30", "--seed", "1"]

    def old(root):
        assert _run(["simulate", str(pair / "ref.npz"), "--srf", "nikon_d700_dhsis", "--ratio", "4", "--format",
                     "hdr", "-o", str(root / "sim")]) == 0
        (root / "sim" / "notes.txt").write_text("the user's own file")

    files = [f"{n}.{e}" for n in ("hsi", "msi", "reference") for e in ("hdr", "img")] + ["physics.json"]
    _interrupt_at_every_step(tmp_path, monkeypatch, argv=argv, outputs=[f"sim/{f}" for f in files + ["notes.txt"]],
                             make_old=old, recover=lambda root: recover_folder_files(root / "sim", files))


def _resume_if_partial(name: str) -> Callable[[Path], list[str]]:
    return lambda root: ["--resume"] if (root / f".{name}.partial").exists() else []


@pytest.mark.parametrize("internal", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["hsfuse", "all"])
@pytest.mark.parametrize("name", ["r.zarr", "r.tif"])
def test_chunked_output_interrupted_at_every_step(pair, tmp_path, monkeypatch, name, internal):
    """hsfuse's steps in CI; with ``-m slow`` zarr's own steps inside the store too (about 75 per run)."""
    def old(root):
        assert _run(_fuse(pair, str(root / name), "--chunk", "32", "--option", "synthesis=select")) == 0

    # one worker thread: the steps come in the same order in every run
    argv = _fuse(pair, "{out}/" + name, "--chunk", "32", "--threads", "1", "--overwrite")
    steps = _interrupt_at_every_step(tmp_path, monkeypatch, argv=argv,
                                     outputs=[name], make_old=old, rerun=_resume_if_partial(name), internal=internal)
    assert steps >= 8  # partial folder, state, run record, markers of the 4 chunks, the final rename


def test_training_interrupted_at_every_checkpoint_step_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """A training run (checkpoint folders, last/best pointers, run record, history) interrupted before each of
    its write steps: what is left is a resumable run whose last checkpoint, if any, loads; resuming it ends with
    the weights of the uninterrupted run and no leftovers."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from test_training import OPTS, _sampler, _weights

    from hsfuse.models.checkpoint import read_card
    from hsfuse.training.loop import TrainOptions, train

    opts = TrainOptions(**{**OPTS, "steps": 4, "ckpt_every": 2, "val_every": 2})
    clean = tmp_path / "clean"
    train(opts, _sampler(), run_dir=clean)
    expected = _weights(clean)
    listing = [p for p in _listing(clean) if not p.startswith("tb/")]  # event file names carry a time stamp
    counter = Injector(clean.parent / "count")
    (clean.parent / "count").mkdir()
    with monkeypatch.context() as m:
        counter.install(m)
        train(opts, _sampler(), run_dir=clean.parent / "count" / "run")
    steps = counter.count
    assert steps >= 10, steps
    for mode in ("sigint", "sigkill"):
        for k in range(1, steps + 1):
            root = tmp_path / f"{mode}-{k}"
            root.mkdir()
            inject = Injector(root, at=k, mode=mode, snapshot=tmp_path / f"{mode}-{k}-snapshot")
            with monkeypatch.context() as m:
                inject.install(m)
                with pytest.raises((KeyboardInterrupt, Killed)):
                    train(opts, _sampler(), run_dir=root / "run")
            if mode == "sigkill":
                shutil.rmtree(root)
                shutil.move(inject.snapshot, root)
            run = root / "run"
            if (run / "last.json").is_file():  # the checkpoint a pointer names is whole
                card, folder = read_card(run)
                assert (folder / "model.safetensors").is_file() and card.training["step"] in (2, 4), (mode, k)
            resumed = train(opts, _sampler(), run_dir=run, resume=True)
            assert resumed.steps_done == 4, (mode, k)
            got = _weights(run)
            assert all(torch.equal(expected[n], got[n]) for n in expected), (mode, k)
            assert [p for p in _listing(run) if not p.startswith("tb/")] == listing, (mode, k)
            shutil.rmtree(root)
