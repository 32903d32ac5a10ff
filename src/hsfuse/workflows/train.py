"""``hsfuse train``: a supervised fusion network trained on reference HSIs from files (Wald simulation on the fly).

:func:`train_from_files` loads the scenes, splits off validation data, builds the SRFs of the degradation family,
picks the patch size and runs :func:`hsfuse.training.loop.train`; it returns its :class:`TrainResult`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.patches import DegradationFamily, PatchSampler, load_training_scenes, split_rows, validation_pairs
from ..data.simulation import SIMULATION_PRESETS
from ..errors import InputError
from ..models.catalog import get_model_spec
from ..physics.specs import SrfSpec, resolve_srf
from ..progress import ProgressFn
from ..training import distributed
from ..training.loop import TrainOptions, TrainResult, train

__all__ = ["train_from_files", "read_config"]


def read_config(config: str | dict[str, Any]) -> str | dict[str, Any]:
    """A configuration name (``paper``, ``tiny``) as is, or the options in a ``.json`` file."""
    if isinstance(config, str) and config.endswith(".json"):
        try:
            return json.loads(Path(config).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the network configuration {config}: {exc}") from None
    return config


def train_from_files(data: Sequence[str], output: str | os.PathLike[str], *, method: str, srf: SrfSpec, ratio: int,
                     bands: Sequence[str] | None = None, srf_family: Sequence[SrfSpec] = (),
                     psf_fwhm_range: tuple[float, float] | None = None, preset: str = "hsfuse",
                     snr_hsi_db: float | None = None, snr_msi_db: float | None = None,
                     config: str | dict[str, Any] = "paper", steps: int = 1000, batch_size: int | None = None,
                     patch_size: int | None = None, lr: float | None = None, val: Sequence[str] = (),
                     val_fraction: float | None = None, val_every: int = 200, ckpt_every: int = 200,
                     augment: bool = True, variable: str | None = None, device: str = "cpu", amp: bool = False,
                     seed: int = 0, ema: float = 0.0, resume: bool = False, init_from: str | None = None,
                     progress: ProgressFn | None = None,
                     say: Callable[[str], None] = lambda _m: None) -> TrainResult:
    """Train ``method`` on the reference HSIs in ``data`` (files, folders or ``synthetic:N``) into run folder
    ``output``; see ``hsfuse train --help`` for every option and :func:`hsfuse.training.loop.train` for the loop."""
    spec = get_model_spec(method)
    config = read_config(config)
    if val and val_fraction:
        raise InputError("give either held-out scenes (--val) or a held-out fraction of rows (--val-fraction), not both")
    scenes = load_training_scenes(list(data), variable=variable)
    held: list = []
    if val:
        held = load_training_scenes(list(val), variable=variable)
    elif val_fraction:
        pairs = [split_rows(c, bottom_fraction=val_fraction, multiple=ratio) for c in scenes]
        scenes, held = [p[0] for p in pairs], [p[1] for p in pairs]
    first = scenes[0]

    def matrix_of(spec_: SrfSpec) -> tuple[torch.Tensor, list[str]]:
        m, n = resolve_srf(spec_, hsi_bands=first.bands, wavelengths=first.wavelengths, fwhm=first.fwhm, bands=bands)
        return torch.as_tensor(m, dtype=torch.float64), n

    nominal, names = matrix_of(srf)
    family_srfs = [nominal] + [matrix_of(s)[0] for s in srf_family]
    noise = {k: v for k, v in {"snr_hsi_db": snr_hsi_db, "snr_msi_db": snr_msi_db}.items() if v is not None}
    family = DegradationFamily(ratio=ratio, srfs=tuple(family_srfs),
                               preset=dataclasses.replace(SIMULATION_PRESETS[preset], **noise),
                               psf_fwhm_range=tuple(psf_fwhm_range) if psf_fwhm_range else None)
    smallest = min(min(c.shape[:2]) for c in scenes)
    patch = patch_size or min(max(ratio, round(spec.recipe.patch_size / ratio) * ratio), (smallest // ratio) * ratio)
    sampler = PatchSampler(scenes, family, patch_size=patch, augment=augment, seed=seed)
    options = TrainOptions(method=method, config=config, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                           val_every=val_every, ckpt_every=ckpt_every, amp=amp, device=device, init_from=init_from,
                           **({"ema": ema} if ema else {}))
    description = {"wavelengths_nm": None if first.wavelengths is None else [float(v) for v in first.wavelengths],
                   "msi_band_names": names,
                   "description": {"train": [str(s) for s in data], "val": [str(s) for s in val],
                                   "val_fraction": val_fraction, "srf": str(srf), "bands": list(bands) if bands else None,
                                   "preset": preset}}
    say(f"training {method} ({config if isinstance(config, str) else 'custom'} config) on {len(scenes)} scene(s), "
        f"{first.bands} bands, {family.msi_bands} MSI bands, ratio {ratio}, patches {patch}px, {steps} steps -> "
        f"{output}")
    try:
        return train(options, sampler, run_dir=output, validation=validation_pairs(held, family) if held else (),
                     data=description, resume=resume, progress=progress)
    finally:
        distributed.cleanup()
