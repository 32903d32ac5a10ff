"""Stage 1 of "Unmixing Before Fusion": learn RGB -> abundances and the endmembers from real HSIs.

Training data: real hyperspectral scenes ``Y`` (each scaled to a maximum of 1, as
:func:`hsfuse.data.patches.load_training_scenes` does), their RGB ``X = R Y`` simulated through a camera's
spectral response ``R`` ``(3, C)`` (or three selected bands: ``R`` picks them), each RGB image scaled to a
maximum of 1. The network (:class:`hsfuse.models.unmixing.UnmixingNet`) learns ``Y ~ E softmax(f(X))`` with the
paper's loss; applied to any RGB image (scaled the same way) it gives abundance maps, and its decoder ``E`` is
the endmember matrix used to synthesise new HSIs.

Schedule (paper): Adam, lr ``2e-4``, batch 16, 40 epochs with the lr x0.1 after 30 (here: after 75 % of the
steps). The endmembers start from pixels picked by ATGP (:func:`initial_endmembers`) unless ``init="random"``
(the paper's default initialisation); with few, small training scenes the data-driven start avoids endmembers
that no pixel resembles.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._checks import check_finite, check_positive_int
from ..errors import InputError
from ..models.base import config_from_dict
from ..models.unmixing import UNMIXING_CONFIGS, UnmixingConfig, UnmixingNet, unmixing_loss
from ..physics.srf_library import srf_matrix
from ..physics.transfer import Transfer, to_linear
from ..progress import ProgressFn, ProgressWithInfo
from ..training.engine import StepLoopOptions, StepLoopResult, load_weights, read_checkpoint_card, run_step_loop
from ..types import Cube

__all__ = [
    "UnmixingTrainOptions",
    "RGBResponse",
    "rgb_response",
    "simulate_rgb",
    "scale_rgb",
    "initial_endmembers",
    "train_unmixing",
    "UnmixingModel",
    "load_unmixing",
    "infer_abundances",
    "match_endmembers",
]

UNMIXING_KIND = "hsfuse-unmixing"


@dataclass(frozen=True)
class RGBResponse:
    """How the training RGB is made from an HSI: ``X = R Y`` with ``R`` ``(c, C)``, or (``bands``) the selected
    bands ``X = Y[..., bands]`` of a scene with any band count; ``source`` describes it."""

    matrix: np.ndarray | None
    source: str
    bands: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"matrix": None if self.matrix is None else np.asarray(self.matrix).tolist(), "source": self.source,
                "bands": None if self.bands is None else list(self.bands)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RGBResponse:
        """Rebuild from :meth:`to_dict` (a model card's ``response``)."""
        bands = values.get("bands")
        matrix = values.get("matrix")
        if bands is None and matrix is None:
            raise InputError("the RGB response record has neither a matrix nor band indices")
        return cls(None if matrix is None else np.asarray(matrix, dtype=np.float64), str(values.get("source", "?")),
                   None if bands is None else tuple(int(b) for b in bands))


def rgb_response(wavelengths_nm: Any, *, sensor: str | None = "canon_eos_5d_mark_ii",
                 bands: Sequence[int] | None = None) -> RGBResponse:
    """The camera response on an HSI's bands (rows sum to one), or a band selection ``bands`` (``(r, g, b)``
    indices, the fork's "pseudo-RGB"; needs no wavelengths)."""
    if bands is not None:
        idx = tuple(int(b) for b in bands)
        if not idx or min(idx) < 0:
            raise InputError(f"band indices must be non-negative and at least one, got {list(idx)}")
        if wavelengths_nm is None:
            return RGBResponse(None, f"bands {list(idx)}", idx)
        n = int(np.asarray(wavelengths_nm).size)
        if max(idx) >= n:
            raise InputError(f"band indices {list(idx)} out of range for {n} bands")
        m = np.zeros((len(idx), n))
        m[np.arange(len(idx)), idx] = 1.0
        return RGBResponse(m, f"bands {list(idx)}", idx)
    if sensor is None:
        raise InputError("give a camera sensor name or band indices for the training RGB")
    if wavelengths_nm is None:
        raise InputError("the training scenes have no wavelengths, so a camera response cannot be placed on their "
                         "bands; give band indices instead (--rgb-bands R G B)")
    matrix, _ = srf_matrix(sensor, np.asarray(wavelengths_nm, dtype=np.float64), normalize="sum")
    return RGBResponse(matrix, f"sensor {sensor}")


def scale_rgb(rgb: np.ndarray) -> np.ndarray:
    """Scale an image ``(H, W, c)`` to a maximum of 1 (integers first become floats); the convention for
    both the simulated training RGB and any RGB the network is applied to."""
    x = np.asarray(rgb, dtype=np.float32)
    peak = float(x.max()) if x.size else 0.0
    if not np.isfinite(x).all() or peak <= 0:
        raise InputError("an RGB image is empty, all zero, or holds NaN/inf; it cannot be scaled")
    return x / peak


def simulate_rgb(hsi: np.ndarray, response: RGBResponse) -> np.ndarray:
    """``X = R Y`` (or the selected bands) for ``Y`` ``(H, W, C)``, scaled by :func:`scale_rgb`."""
    y = np.asarray(hsi, dtype=np.float32)
    if response.matrix is None:
        assert response.bands is not None
        if max(response.bands) >= y.shape[-1]:
            raise InputError(f"band indices {list(response.bands)} out of range for a {y.shape[-1]}-band scene")
        return scale_rgb(y[..., list(response.bands)])
    m = np.asarray(response.matrix, dtype=np.float32)
    if y.shape[-1] != m.shape[1]:
        raise InputError(f"the RGB response is for {m.shape[1]} bands but the scene has {y.shape[-1]}")
    return scale_rgb(y @ m.T)


def initial_endmembers(pixels: np.ndarray, k: int) -> np.ndarray:
    """``k`` pixels picked by ATGP (Ren and Chang, IEEE TAES 2003): the pixel of largest norm, then repeatedly
    the pixel of largest norm after projecting out the span of those already picked. ``(P, C) -> (C, k)``."""
    x = np.asarray(pixels, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < k:
        raise InputError(f"need at least {k} pixels (P, C) to pick {k} endmembers, got shape {x.shape}")
    picked: list[int] = []
    residual = x.copy()
    for _ in range(k):
        norms = np.einsum("pc,pc->p", residual, residual)
        norms[picked] = -1.0
        picked.append(int(np.argmax(norms)))
        basis, _ = np.linalg.qr(x[picked].T)
        residual = x - (x @ basis) @ basis.T
    return x[picked].T.astype(np.float32)


@dataclass(frozen=True)
class UnmixingTrainOptions:
    """Options of :func:`train_unmixing`.

    Attributes:
        config: ``"paper"``, ``"small"`` or ``"tiny"`` (:data:`hsfuse.models.unmixing.UNMIXING_CONFIGS`).
        endmembers: ``K`` (default: the config's, 5 for the paper).
        steps, batch_size, patch_size: optimiser steps, patches per step, patch side (clipped to the scenes).
        lr: Adam learning rate; x0.1 after ``decay_at`` of the steps (paper: epoch 30 of 40).
        sad_weight, smooth_weight: the paper's 0.1 and 0.015.
        init: ``"atgp"`` (endmembers from pixels) or ``"random"``.
        seed, device, ckpt_every, log_every.
    """

    config: str = "small"
    endmembers: int | None = None
    steps: int = 2000
    batch_size: int = 16
    patch_size: int = 64
    lr: float = 2e-4
    decay_at: float = 0.75
    sad_weight: float = 0.1
    smooth_weight: float = 0.015
    init: Literal["atgp", "random"] = "atgp"
    seed: int = 0
    device: str = "cpu"
    ckpt_every: int = 500
    log_every: int = 20

    def __post_init__(self) -> None:
        if self.config not in UNMIXING_CONFIGS:
            raise InputError(f"unknown unmixing config {self.config!r}; choose one of {', '.join(UNMIXING_CONFIGS)}")
        if self.init not in ("atgp", "random"):
            raise InputError(f"init must be 'atgp' or 'random', got {self.init!r}")
        for name in ("steps", "batch_size", "patch_size", "ckpt_every", "log_every"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))
        if self.endmembers is not None:
            object.__setattr__(self, "endmembers", check_positive_int(self.endmembers, "endmembers"))
        object.__setattr__(self, "seed", check_positive_int(self.seed, "seed", minimum=0))
        if not (self.lr > 0) or not 0 < self.decay_at <= 1:
            raise InputError(f"need lr > 0 and 0 < decay_at <= 1, got {self.lr}, {self.decay_at}")

    def net_config(self) -> Any:
        base = UNMIXING_CONFIGS[self.config]
        return base if self.endmembers is None else replace(base, endmembers=int(self.endmembers))


def _patch_batch(hsis: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], *, step: int, seed: int, batch: int,
                 size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches for one step, a pure function of ``(seed, step)``: scene chosen in proportion to its area."""
    rng = np.random.default_rng([seed, step])
    areas = np.array([h.shape[0] * h.shape[1] for h in hsis], dtype=np.float64)
    xs, ys = [], []
    for _ in range(batch):
        i = int(rng.choice(len(hsis), p=areas / areas.sum()))
        H, W = hsis[i].shape[:2]
        top = int(rng.integers(0, H - size + 1))
        left = int(rng.integers(0, W - size + 1))
        xs.append(rgbs[i][top:top + size, left:left + size])
        ys.append(hsis[i][top:top + size, left:left + size])
    to = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to(xs), to(ys)


def train_unmixing(scenes: Sequence[Cube], *, response: RGBResponse, run_dir: str | os.PathLike[str],
                   options: UnmixingTrainOptions = UnmixingTrainOptions(), resume: bool = True,
                   progress: ProgressFn | ProgressWithInfo | None = None,
                   stop_after: int | None = None) -> StepLoopResult:
    """Train the unmixing network on ``scenes`` (max-scaled HSIs of one band layout) and their simulated RGB.

    Checkpoints, ``last.json`` and ``history.jsonl`` (loss and its three terms, the engine's rule) go to
    ``run_dir``; a killed run resumes where it stopped (:mod:`hsfuse.training.engine`). ``progress(done, total)``
    is called after every step (with ``info="loss ..."`` when it takes that keyword); ``stop_after``: stop
    (as if killed) after that many steps, for tests.
    """
    if not scenes:
        raise InputError("no training scenes given")
    bands = {c.bands for c in scenes}
    if len(bands) != 1:
        raise InputError(f"training scenes have different band counts {sorted(bands)}; use scenes of one sensor")
    hsis = [np.asarray(c.data, dtype=np.float32) for c in scenes]
    for c, h in zip(scenes, hsis):
        check_finite(h, f"training scene {c.attrs.get('source', c.attrs.get('scene', '?'))}")
    rgbs = [simulate_rgb(h, response) for h in hsis]
    size = min(options.patch_size, *(min(h.shape[:2]) for h in hsis))
    config = options.net_config()
    torch.manual_seed(options.seed)
    init = None
    if options.init == "atgp":
        pixels = np.concatenate([h.reshape(-1, h.shape[-1]) for h in hsis])
        init = torch.from_numpy(initial_endmembers(pixels, config.endmembers))
    C = hsis[0].shape[-1]
    net = UnmixingNet(in_bands=rgbs[0].shape[-1], hsi_bands=C, config=config, endmembers=init).to(options.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr)
    wavelengths = scenes[0].wavelengths
    description = {"kind": UNMIXING_KIND, "options": asdict(options), "config": asdict(config), "patch_size": size,
                   "hsi_bands": C, "response": response.source,
                   "scenes": [str(c.attrs.get("scene", c.attrs.get("source", "?"))) for c in scenes]}
    decay_step = int(round(options.decay_at * options.steps))

    def step_fn(step: int) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = options.lr * (0.1 if step >= decay_step else 1.0)
        x, y = _patch_batch(hsis, rgbs, step=step, seed=options.seed, batch=options.batch_size, size=size)
        x, y = x.to(options.device), y.to(options.device)
        _, recon = net(x)
        loss, terms = unmixing_loss(recon, y, net.endmembers, sad_weight=options.sad_weight,
                                    smooth_weight=options.smooth_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        net.project_()
        return {"loss": loss.item(), **terms}

    def card(step: int) -> str:
        return json.dumps({"kind": UNMIXING_KIND, "config": asdict(config), "in_bands": net.in_bands,
                           "hsi_bands": C, "wavelengths_nm": None if wavelengths is None else wavelengths.tolist(),
                           "response": response.to_dict(), "rgb_scaling": "max",
                           "training": {"step": step, "options": asdict(options), "scenes": description["scenes"]}},
                          indent=2)

    return run_step_loop(run_dir=run_dir, description=description, keys=("kind", "options", "hsi_bands", "response"),
                         command="hsfuse synth train-unmixing", module=net, optimizer=optimizer, step_fn=step_fn,
                         card=card, method="unmixing",
                         options=StepLoopOptions(steps=options.steps, ckpt_every=options.ckpt_every,
                                                 log_every=options.log_every),
                         device=options.device, resume=resume, progress=progress, stop_after=stop_after)


@dataclass
class UnmixingModel:
    """A trained unmixing network with its card (wavelengths, RGB response, training record)."""

    net: UnmixingNet
    card: dict[str, Any]
    path: Path

    @property
    def endmembers(self) -> np.ndarray:
        """``(C, K)`` in the training scenes' units (each scene scaled to a maximum of 1)."""
        return self.net.endmembers.detach().cpu().numpy().copy()

    @property
    def wavelengths_nm(self) -> np.ndarray | None:
        wl = self.card.get("wavelengths_nm")
        return None if wl is None else np.asarray(wl, dtype=np.float64)


def load_unmixing(path: str | os.PathLike[str], *, device: str = "cpu") -> UnmixingModel:
    """Load a checkpoint folder or run folder written by :func:`train_unmixing` (the last checkpoint)."""
    folder, card = read_checkpoint_card(path, kind=UNMIXING_KIND, what="an unmixing",
                                        command="hsfuse synth train-unmixing")
    config = config_from_dict(UnmixingConfig, card["config"])
    net = load_weights(UnmixingNet(in_bands=int(card["in_bands"]), hsi_bands=int(card["hsi_bands"]), config=config),
                       folder)
    return UnmixingModel(net=net.to(device).eval(), card=card, path=folder)


@torch.no_grad()
def infer_abundances(model: UnmixingModel, rgb: np.ndarray, *, transfer: Transfer = "linear",
                     device: str = "cpu") -> np.ndarray:
    """Abundance maps ``(H, W, K)`` of an image ``(H, W, c)``.

    The network was trained on RGB simulated linearly from radiance; ``transfer="srgb"`` first decodes a
    gamma-encoded photograph (:func:`hsfuse.physics.transfer.to_linear`). The image is then scaled by
    :func:`scale_rgb` (its own maximum: the same pixel in two tiles of one photo can be scaled differently,
    so infer whole images where memory allows).
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] != model.net.in_bands:
        raise InputError(f"the unmixing network takes (H, W, {model.net.in_bands}) images, got shape {arr.shape}; "
                         "convert grey images to RGB and drop alpha channels")
    x = torch.from_numpy(scale_rgb(to_linear(arr, transfer))).permute(2, 0, 1)[None].to(device)
    return model.net.to(device).abundances(x)[0].permute(1, 2, 0).cpu().numpy()


def match_endmembers(learned: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Pair each reference endmember with a distinct learned one minimising the total spectral angle.

    ``learned`` ``(C, K)``, ``reference`` ``(C, Kr)``, ``K >= Kr``; Hungarian assignment
    (:func:`scipy.optimize.linear_sum_assignment`) on the angle matrix. Angles are scale-free, so reference
    endmembers known only up to a scale (Samson's) compare fairly. Returns ``pairs`` (reference index ->
    learned index), per-pair ``sad_deg`` and their ``mean_sad_deg``.
    """
    from scipy.optimize import linear_sum_assignment

    e, r = np.asarray(learned, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if e.ndim != 2 or r.ndim != 2 or e.shape[0] != r.shape[0]:
        raise InputError(f"endmember matrices must be (bands, K) with the same bands, got {e.shape} and {r.shape}")
    if e.shape[1] < r.shape[1]:
        raise InputError(f"{e.shape[1]} learned endmembers cannot be matched to {r.shape[1]} reference ones; "
                         "train with at least as many endmembers")
    en = e / np.maximum(np.linalg.norm(e, axis=0, keepdims=True), 1e-12)
    rn = r / np.maximum(np.linalg.norm(r, axis=0, keepdims=True), 1e-12)
    angles = np.degrees(np.arccos(np.clip(rn.T @ en, -1.0, 1.0)))  # (Kr, K)
    rows, cols = linear_sum_assignment(angles)
    sad = angles[rows, cols]
    return {"pairs": {int(i): int(j) for i, j in zip(rows, cols)}, "sad_deg": [float(v) for v in sad],
            "mean_sad_deg": float(sad.mean())}
