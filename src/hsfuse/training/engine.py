"""A resumable optimisation loop for any network: checkpoints, RNG state, pointers, history, progress.

:func:`hsfuse.training.loop.train` (the fusion networks) and the synthesis stages (the unmixing network and the
abundance diffusion model, :mod:`hsfuse.synthesis`) all run on :func:`run_step_loop`, so they share one set of
run-folder conventions and resume guarantees::

    run.json                                 options and data description (checked on resume)
    checkpoints/step_0000100/{model.safetensors, model.json, state.pt}   (+ averaged.safetensors, see below)
    last.json                                atomically repointed after each checkpoint
    best.json                                the checkpoint an ``after_step`` hook marked best (if any)
    history.jsonl                            see "History" below

``step_fn(step)`` does one optimiser step and returns the values to log (``{"loss": ...}``); it must draw
its randomness from the global torch RNG or from generators derived from ``step`` so that a run killed at any
moment and resumed from ``last.json`` reproduces the uninterrupted run (weights, optimiser moments, step counter,
RNG state and the caller's ``extra_state`` come from the checkpoint). A run that keeps a weight average (an
exponential moving average, ``torch.optim.swa_utils.AveragedModel``, updated by ``step_fn``) passes it as
``averaged``: its state is saved as ``averaged.safetensors`` in each checkpoint and restored on resume.

Checkpoints are written every ``ckpt_every`` steps, at the last step, and at any step an ``after_step`` hook
asks for one (:class:`StepOutcome`); ``keep_last`` of them are kept, plus the one ``best.json`` points at.

History: ``history.jsonl`` has one JSON line per *logged* step: every ``log_every``-th step, the last step, and
any step whose ``after_step`` hook reported values (e.g. validation metrics). A line holds ``step`` (steps
done), ``seconds`` (since this process started the loop), the means of ``step_fn``'s values over the steps
since the previous line, and the hook's values merged in. A resumed run first drops the lines after its
checkpoint, so the file reads as if the run had never stopped.

Distributed runs (``dist``, :mod:`hsfuse.training.distributed`): the main process checks the run folder and
writes ``run.json``, checkpoints, pointers and history; the others resume from the ``last.json`` it left, run
the same steps, and wait at a barrier after each checkpoint. Hooks other than ``on_start`` and ``on_close``
run on the main process only; a checkpoint an ``after_step`` hook asks for is announced to every process.

Progress goes to a plain callback (:mod:`hsfuse.progress`): ``progress(done, total, info="loss 0.0123  lr
0.0001")`` after every step (on the main process), the ``info`` text being the means of the last history line.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import check_positive_int
from ..errors import FileFormatError, InputError
from ..io.atomic import clean_interrupted_dirs
from ..models.checkpoint import (CARD_NAME, WEIGHTS_NAME, cpu_state_dict, remove_pointer_temporaries,
                                 resolve_checkpoint, save_weights_folder, write_pointer)
from ..progress import ProgressFn, ProgressWithInfo, Report, reporter
from . import distributed
from .distributed import DistInfo

__all__ = ["StepLoopOptions", "StepOutcome", "StepLoopResult", "run_step_loop", "check_run_dir", "rng_state",
           "set_rng_state", "load_training_state", "read_checkpoint_card", "load_weights", "AVERAGED_NAME",
           "HISTORY_NAME", "save_averaged", "load_averaged"]

#: the weight average's file in a checkpoint folder (``averaged.state_dict()``, keys ``module.*`` and
#: ``n_averaged``)
AVERAGED_NAME = "averaged.safetensors"
#: the run's history file (module docstring)
HISTORY_NAME = "history.jsonl"
_STATE_NAME = "state.pt"
_RESERVED_STATE = ("optimizer", "rng", "step")


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch, NumPy, Python, CUDA)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_run_dir(run_dir: Path, description: dict[str, Any], *, resume: bool, keys: Sequence[str],
                  command: str) -> Path | None:
    """Check the run folder (missing parent folders are created later, like ``mkdir -p``); return the
    checkpoint to resume from (or ``None``).

    An existing run is refused unless ``resume``; its ``run.json`` must agree with ``description`` on ``keys``.
    ``command`` names the command that makes such runs, for the messages. A run to resume is first tidied of
    what a kill during a write left: half-written checkpoint folders
    (:func:`hsfuse.io.atomic.clean_interrupted_dirs`) and temporaries of the ``last.json``/``best.json`` pointers.
    """
    meta = run_dir / "run.json"
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"run folder {run_dir} is a file; choose another -o")
    if meta.is_file():
        if not resume:
            raise InputError(f"{run_dir} already holds a training run; pass --resume to continue it or choose "
                             "another -o")
        try:
            old = json.loads(meta.read_text())
        except ValueError as exc:
            raise FileFormatError(f"{meta} is corrupt ({exc}); restore it or start a new run with another -o") from None
        description = json.loads(json.dumps(description, default=str))  # tuples -> lists, as stored
        diff = [k for k in keys if old.get(k) != description.get(k)]
        if diff:
            raise InputError(f"{run_dir} holds a run with different {', '.join(diff)}; resume it with the same "
                             "options or choose another -o")
        if (run_dir / "checkpoints").is_dir():
            clean_interrupted_dirs(run_dir / "checkpoints")
        remove_pointer_temporaries(run_dir)
        return resolve_checkpoint(run_dir, prefer="last") if (run_dir / "last.json").is_file() else None
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise InputError(f"run folder {run_dir} exists and is not an hsfuse run (made by {command}); choose an empty "
                         "or new folder")
    for parent in run_dir.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"cannot create run folder {run_dir}: {parent} is a file")
    return None


def read_checkpoint_card(path: str | os.PathLike[str], *, kind: str, what: str,
                         command: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder that ``path`` names (a run folder: its last checkpoint) and its JSON card, which
    must be of ``kind`` (``what`` and ``command`` word the refusal)."""
    folder = resolve_checkpoint(path, prefer="last")
    try:
        card = json.loads((folder / CARD_NAME).read_text())
    except ValueError as exc:
        raise FileFormatError(f"{folder / CARD_NAME} is corrupt ({exc})") from None
    if card.get("kind") != kind:
        raise InputError(f"{folder} is not {what} checkpoint (kind {card.get('kind', 'fusion network')!r}); pass a "
                         f"run folder made by '{command}'")
    return folder, card


def load_weights(module: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """Load ``folder/model.safetensors`` into ``module``; return it."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    return module


def save_averaged(averaged: torch.nn.Module, path: Path) -> None:
    """Write a weight average's ``state_dict`` (e.g. an ``AveragedModel``) to ``path`` (safetensors)."""
    from safetensors.torch import save_file

    save_file(cpu_state_dict(averaged), str(path))


def load_averaged(folder: Path) -> dict[str, torch.Tensor]:
    """The averaged weights of checkpoint ``folder`` as a state dict of the averaged network itself (the
    ``module.`` prefix of ``AveragedModel`` removed, its counter dropped)."""
    return {k[len("module."):]: v for k, v in _read_averaged(folder, device="cpu").items() if k.startswith("module.")}


def _read_averaged(folder: Path, *, device: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = folder / AVERAGED_NAME
    if not path.is_file():
        raise FileFormatError(f"{folder} holds no averaged weights ({AVERAGED_NAME}): it was saved by a run without "
                              "a weight average, so it cannot give or resume one")
    return load_file(str(path), device=str(device))


def load_training_state(folder: Path, module: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                        device: str, averaged: torch.nn.Module | None = None) -> dict[str, Any]:
    """Load weights, optimiser and RNG state (and ``averaged``'s state when given) from checkpoint ``folder``;
    return the saved state dict."""
    load_weights(module, folder)
    if averaged is not None:
        averaged.load_state_dict(_read_averaged(folder, device=device))
    state = torch.load(folder / "state.pt", map_location=device, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return state


@dataclass(frozen=True)
class StepLoopOptions:
    """How long to run and how often to log and checkpoint (in steps); ``keep_last`` step checkpoints are kept
    besides the best one."""

    steps: int
    ckpt_every: int = 500
    log_every: int = 10
    keep_last: int = 2

    def __post_init__(self) -> None:
        for name in ("steps", "ckpt_every", "log_every", "keep_last"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))

    def is_checkpoint_step(self, done: int) -> bool:
        """Whether the schedule checkpoints after ``done`` steps (every ``ckpt_every`` and the last)."""
        return done % self.ckpt_every == 0 or done == self.steps

    def is_log_step(self, done: int) -> bool:
        """Whether the schedule writes a history line after ``done`` steps (every ``log_every`` and the last)."""
        return done % self.log_every == 0 or done == self.steps


@dataclass(frozen=True)
class StepOutcome:
    """What an ``after_step`` hook reports about the step just done.

    Attributes:
        values: merged into that step's history line (which is then written even off the ``log_every``
            schedule), e.g. validation metrics.
        checkpoint: write a checkpoint at this step even off the ``ckpt_every`` schedule.
        best: mark this step's checkpoint as the best (implies ``checkpoint``): ``best.json`` is repointed at it
            with ``{"step": step, **best}``, and keep_last pruning never deletes it.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    checkpoint: bool = False
    best: Mapping[str, Any] | None = None

    @property
    def wants_checkpoint(self) -> bool:
        return self.checkpoint or self.best is not None


@dataclass
class StepLoopResult:
    """What a run produced: its folder, steps done, the last and best checkpoints, the seconds this call spent
    in the loop and the history (all lines of ``history.jsonl``; empty on non-main processes)."""

    run_dir: Path
    steps_done: int
    last: Path | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    best: Path | None = None


def _open_run(run: Path, description: dict[str, Any], *, resume: bool, keys: Sequence[str], command: str,
              dist: DistInfo) -> Path | None:
    """Check (main process), create and describe the run folder; the checkpoint to resume from, on every rank."""
    resume_from = None
    problem: Exception | None = None
    if dist.is_main:
        try:
            resume_from = check_run_dir(run, description, resume=resume, keys=keys, command=command)
            run.mkdir(parents=True, exist_ok=True)
            (run / "checkpoints").mkdir(exist_ok=True)
            if not (run / "run.json").is_file():
                (run / "run.json").write_text(json.dumps(description, indent=2, default=str))
        except Exception as exc:  # every rank must stop, not only the main one
            problem = exc
    if distributed.broadcast_flag(dist, problem is not None):
        raise problem if problem is not None else InputError(f"the main process refused run folder {run}")
    if not dist.is_main and (run / "last.json").is_file():
        resume_from = resolve_checkpoint(run, prefer="last")
    return resume_from


def _read_history(path: Path, done: int) -> list[dict[str, Any]]:
    """The history lines up to step ``done``; later ones (written after the resumed checkpoint) are dropped
    from the file too, as is a line cut short by a kill (it is always one written after the last checkpoint)."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row["step"] <= done:
            kept.append(row)
    if len(kept) != len(lines):
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    return kept


def _pointer_target(run: Path, name: str) -> Path | None:
    """The checkpoint folder that pointer ``name`` (``best.json``) names, or ``None`` (absent or unreadable)."""
    pointer = run / name
    if not pointer.is_file():
        return None
    try:
        target = run / json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError):
        return None
    return target if target.is_dir() else None


def _check_finite(values: Mapping[str, float], *, step: int, last: Path | None) -> None:
    bad = [k for k, v in values.items() if not math.isfinite(float(v))]
    if bad:
        raise InputError(f"training diverged at step {step} ({', '.join(bad)} not finite); lower the learning rate "
                         f"or check the data; the last good checkpoint is {last}")


class _Means:
    """Running sums of the step values since the last history line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def pop(self) -> dict[str, float]:
        means = {k: v / self.count for k, v in self.sums.items()} if self.count else {}
        self.sums, self.count = {}, 0
        return means


@dataclass
class _Checkpointer:
    """Writes a step's checkpoint folder, repoints ``last.json``/``best.json`` and prunes old checkpoints."""

    run: Path
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    card: Callable[[int], str]
    method: str
    keep_last: int
    averaged: torch.nn.Module | None
    extra_state: Callable[[], dict[str, Any]] | None

    def folder(self, step: int) -> Path:
        return self.run / "checkpoints" / f"step_{step:07d}"

    def state(self, step: int) -> dict[str, Any]:
        extra = dict(self.extra_state()) if self.extra_state is not None else {}
        clash = sorted(set(extra) & set(_RESERVED_STATE))
        if clash:
            raise ValueError(f"extra_state may not set {', '.join(clash)} (the engine's own state entries)")
        return {**extra, "optimizer": self.optimizer.state_dict(), "rng": rng_state(), "step": step}

    def save(self, step: int, *, best: Mapping[str, Any] | None) -> Path:
        folder = self.folder(step)
        state = self.state(step)
        files: dict[str, Callable[[Path], None]] = {_STATE_NAME: lambda p: torch.save(state, p)}
        if self.averaged is not None:
            averaged = self.averaged
            files[AVERAGED_NAME] = lambda p: save_averaged(averaged, p)
        save_weights_folder(self.module, self.card(step), folder, method=self.method, overwrite=True, extra=files)
        write_pointer(self.run, "last.json", folder, {"step": step})
        if best is not None:
            write_pointer(self.run, "best.json", folder, {"step": step, **best})
        self.prune()
        return folder

    def prune(self) -> None:
        """Delete step checkpoints beyond the newest ``keep_last``, never the one ``best.json`` names."""
        keep = _pointer_target(self.run, "best.json")
        steps = sorted(p for p in (self.run / "checkpoints").iterdir() if p.name.startswith("step_"))
        for old in steps[:-self.keep_last]:
            if keep is None or old.name != keep.name:
                shutil.rmtree(old, ignore_errors=True)


def _append_history(run: Path, history: list[dict[str, Any]], row: dict[str, Any]) -> None:
    history.append(row)
    with open(run / HISTORY_NAME, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _info(means: Mapping[str, float]) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in means.items())


def run_step_loop(*, run_dir: str | os.PathLike[str], description: dict[str, Any], keys: Sequence[str],
                  command: str, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  step_fn: Callable[[int], Mapping[str, float]], card: Callable[[int], str], method: str,
                  options: StepLoopOptions, device: str = "cpu", resume: bool = True,
                  progress: ProgressFn | ProgressWithInfo | None = None, stop_after: int | None = None,
                  averaged: torch.nn.Module | None = None,
                  extra_state: Callable[[], dict[str, Any]] | None = None,
                  on_start: Callable[[dict[str, Any] | None], None] | None = None,
                  after_step: Callable[[int], StepOutcome | None] | None = None,
                  on_log: Callable[[dict[str, Any]], None] | None = None,
                  on_close: Callable[[], None] | None = None,
                  dist: DistInfo | None = None) -> StepLoopResult:
    """Run ``step_fn`` for ``options.steps`` steps with checkpoints and resume (module docstring).

    Args:
        run_dir: the run folder (created; an existing run with the same ``keys`` in ``run.json`` is resumed).
        description: what ``run.json`` stores; ``keys`` must agree on resume.
        command: the command that makes these runs (for messages).
        module, optimizer: what is checkpointed (the module's ``state_dict`` as safetensors).
        step_fn: one optimiser step; returns values to log (finite, else the run stops with a clear error).
        card: JSON text of the checkpoint's ``model.json`` at a step.
        method: stored in the safetensors metadata.
        progress: ``progress(done, total, info=...)`` after each step (:func:`hsfuse.progress.reporter`).
        stop_after: stop (as if killed) once this many steps are done, without a final checkpoint; for tests.
        averaged: a weight average of ``module`` that ``step_fn`` updates; checkpointed and resumed with it.
        extra_state: further entries of each checkpoint's ``state.pt`` (e.g. a ``GradScaler``'s state), taken
            when the checkpoint is written; not ``optimizer``, ``rng`` or ``step``.
        on_start: called on every process before the first step, with the resumed checkpoint's ``state.pt``
            dictionary (``extra_state``'s entries included; weights, optimiser, RNG and ``averaged`` already
            restored) or ``None`` for a new run.
        after_step: called on the main process with the number of steps done after each step (e.g. to
            validate); a :class:`StepOutcome` adds values to the history and can force and mark a checkpoint.
        on_log: called on the main process with each history line once it is written (e.g. TensorBoard).
        on_close: called on every process when the loop ends, also on an error (e.g. to flush a logger).
        dist: this process's place in a distributed job (default: a single process).
    """
    dist = dist or DistInfo()
    report: Report = reporter(progress if dist.is_main else None)
    run = Path(run_dir)
    resume_from = _open_run(run, description, resume=resume, keys=keys, command=command, dist=dist)
    state = None
    done = 0
    if resume_from is not None:
        state = load_training_state(resume_from, module, optimizer, device=device, averaged=averaged)
        done = int(state["step"])
        if done > options.steps:
            raise InputError(f"{run} has already run {done} steps, more than the {options.steps} asked for; pass "
                             f"--steps {done} or more to resume it")
    writer = _Checkpointer(run=run, module=module, optimizer=optimizer, card=card, method=method,
                           keep_last=options.keep_last, averaged=averaged, extra_state=extra_state)
    history = _read_history(run / HISTORY_NAME, done) if dist.is_main else []
    announce = dist.enabled and after_step is not None
    t0 = time.perf_counter()
    last = resume_from
    means = _Means()
    info = ""
    try:
        if on_start is not None:
            on_start(state)
        report(done, options.steps, info=info)
        module.train()
        for step in range(done, options.steps):
            if stop_after is not None and step >= stop_after:
                break
            values = step_fn(step)
            _check_finite(values, step=step, last=last)
            done = step + 1
            means.add(values)
            outcome = (after_step(done) if after_step is not None and dist.is_main else None) or StepOutcome()
            if dist.is_main and (options.is_log_step(done) or outcome.values):
                logged = means.pop()
                info = _info(logged)
                row = {"step": done, "seconds": round(time.perf_counter() - t0, 3), **logged, **outcome.values}
                _append_history(run, history, row)
                if on_log is not None:
                    on_log(row)
            report(done, options.steps, info=info)
            forced = outcome.wants_checkpoint
            if announce:
                forced = distributed.broadcast_flag(dist, forced)
            if options.is_checkpoint_step(done) or forced:
                last = writer.save(done, best=outcome.best) if dist.is_main else writer.folder(done)
                distributed.barrier(dist)
    finally:
        if on_close is not None:
            on_close()
    return StepLoopResult(run_dir=run, steps_done=done, last=last, seconds=time.perf_counter() - t0,
                          history=history, best=_pointer_target(run, "best.json"))
