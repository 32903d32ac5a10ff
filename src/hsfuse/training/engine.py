"""A resumable optimisation loop for any network: checkpoints, RNG state, pointers, history, progress.

:func:`hsfuse.training.loop.train` (the fusion networks) and the synthesis stages (the unmixing network and the
abundance diffusion model, :mod:`hsfuse.synthesis`) share the run-folder conventions implemented here::

    run.json                                 options and data description (checked on resume)
    checkpoints/step_0000100/{model.safetensors, model.json, state.pt}   (+ averaged.safetensors, see below)
    last.json                                atomically repointed after each checkpoint
    history.jsonl                            one line per logged step (running means of the step's values)

``step_fn(step)`` does one optimiser step and returns the values to log (``{"loss": ...}``); it must draw
its randomness from the global torch RNG or from generators derived from ``step`` so that a run killed at any
moment and resumed from ``last.json`` reproduces the uninterrupted run (weights, optimiser moments, step counter
and RNG state come from the checkpoint). A run that keeps a weight average (an exponential moving average,
``torch.optim.swa_utils.AveragedModel``, updated by ``step_fn``) passes it as ``averaged``: its state is saved
as ``averaged.safetensors`` in each checkpoint and restored on resume.
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

from ..errors import FileFormatError, InputError
from ..io.atomic import clean_interrupted_dirs
from ..models.checkpoint import (CARD_NAME, WEIGHTS_NAME, cpu_state_dict, remove_pointer_temporaries,
                                 resolve_checkpoint, save_weights_folder, write_pointer)

__all__ = ["StepLoopOptions", "StepLoopResult", "run_step_loop", "check_run_dir", "rng_state", "set_rng_state",
           "progress_bar", "load_training_state", "read_checkpoint_card", "load_weights", "AVERAGED_NAME",
           "save_averaged", "load_averaged"]

#: the weight average's file in a checkpoint folder (``averaged.state_dict()``, keys ``module.*`` and
#: ``n_averaged``)
AVERAGED_NAME = "averaged.safetensors"


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


def progress_bar(label: str, *, total: int, done: int) -> tuple[Any, Any]:
    """A started rich progress bar ``(bar, task)`` with an ``info`` text field."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), transient=False)
    task = bar.add_task(label, total=total, completed=done, info="")
    bar.start()
    return bar, task


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
        old = json.loads(meta.read_text())
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
    """How long to run and how often to log/checkpoint (steps); ``label`` heads the progress bar."""

    steps: int
    ckpt_every: int = 500
    log_every: int = 10
    keep_last: int = 2
    label: str = "train"

    def __post_init__(self) -> None:
        for name in ("steps", "ckpt_every", "log_every", "keep_last"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")


@dataclass
class StepLoopResult:
    """What a run produced: its folder, steps done, the last checkpoint and the logged history."""

    run_dir: Path
    steps_done: int
    last: Path | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def run_step_loop(*, run_dir: str | os.PathLike[str], description: dict[str, Any], keys: Sequence[str],
                  command: str, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  step_fn: Callable[[int], Mapping[str, float]], card: Callable[[int], str], method: str,
                  options: StepLoopOptions, device: str = "cpu", resume: bool = True, progress: bool = True,
                  stop_after: int | None = None, averaged: torch.nn.Module | None = None) -> StepLoopResult:
    """Run ``step_fn`` for ``options.steps`` steps with checkpoints and resume (module docstring).

    Args:
        run_dir: the run folder (created; an existing run with the same ``keys`` in ``run.json`` is resumed).
        description: what ``run.json`` stores; ``keys`` must agree on resume.
        command: the command that makes these runs (for messages).
        module, optimizer: what is checkpointed (the module's ``state_dict`` as safetensors).
        step_fn: one optimiser step; returns values to log (finite, else the run stops with a clear error).
        card: JSON text of the checkpoint's ``model.json`` at a step.
        method: stored in the safetensors metadata.
        stop_after: stop (as if killed) once this many steps are done, without a final checkpoint; for tests.
        averaged: a weight average of ``module`` that ``step_fn`` updates; checkpointed and resumed with it.
    """
    run = Path(run_dir)
    resume_from = check_run_dir(run, description, resume=resume, keys=keys, command=command)
    run.mkdir(parents=True, exist_ok=True)
    (run / "checkpoints").mkdir(exist_ok=True)
    if not (run / "run.json").is_file():
        (run / "run.json").write_text(json.dumps(description, indent=2, default=str))
    done = 0
    if resume_from is not None:
        done = int(load_training_state(resume_from, module, optimizer, device=device, averaged=averaged)["step"])
        if done > options.steps:
            raise InputError(f"{run} has already run {done} steps, more than the {options.steps} asked for; pass "
                             f"--steps {done} or more to resume it")
    history_path = run / "history.jsonl"
    history: list[dict[str, Any]] = []
    if history_path.is_file():
        history = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
        history = [h for h in history if h["step"] <= done]
        history_path.write_text("".join(json.dumps(h) + "\n" for h in history))

    def checkpoint(step: int) -> Path:
        folder = run / "checkpoints" / f"step_{step:07d}"
        state = {"optimizer": optimizer.state_dict(), "rng": rng_state(), "step": step}
        extra: dict[str, Callable[[Path], None]] = {"state.pt": lambda p: torch.save(state, p)}
        if averaged is not None:
            extra[AVERAGED_NAME] = lambda p: save_averaged(averaged, p)
        save_weights_folder(module, card(step), folder, method=method, overwrite=True, extra=extra)
        write_pointer(run, "last.json", folder, {"step": step})
        steps = sorted(p for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))
        for old in steps[:-options.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    bar = task = None
    if progress:
        bar, task = progress_bar(options.label, total=options.steps, done=done)
    t0 = time.perf_counter()
    last = resume_from
    sums: dict[str, float] = {}
    count = 0
    try:
        module.train()
        for step in range(done, options.steps):
            if stop_after is not None and step >= stop_after:
                break
            values = step_fn(step)
            bad = [k for k, v in values.items() if not math.isfinite(float(v))]
            if bad:
                raise InputError(f"training diverged at step {step} ({', '.join(bad)} not finite); lower the "
                                 f"learning rate or check the data; the last good checkpoint is {last}")
            done = step + 1
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            if done % options.log_every == 0 or done == options.steps:
                row = {"step": done, "seconds": round(time.perf_counter() - t0, 3),
                       **{k: v / count for k, v in sums.items()}}
                history.append(row)
                with open(history_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                if bar is not None:
                    bar.update(task, completed=done,
                               info="  ".join(f"{k} {v / count:.4g}" for k, v in sums.items()))
                sums, count = {}, 0
            if done % options.ckpt_every == 0 or done == options.steps:
                last = checkpoint(done)
    finally:
        if bar is not None:
            bar.stop()
    return StepLoopResult(run_dir=run, steps_done=done, last=last, seconds=time.perf_counter() - t0,
                          history=history)
