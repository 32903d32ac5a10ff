"""``hsfuse evaluate``: score a fused result against a reference, or without one (QNR-style and consistency).

* :func:`evaluate_reference`: the metrics of a preset (:mod:`hsfuse.metrics.presets`) between a reference and an
  estimate, with the preset's data-scale assumption checked first.
* :func:`evaluate_no_reference`: for a real pair with no reference: QNR, D_lambda, D_s (Alparone et al. 2008) and
  consistency (the estimate degraded by the operators, compared with both inputs), computed as ``hsfuse pair``
  computes them (both images scaled by their maxima, no-data pixels excluded). The operators come from
  ``physics``/``srf``/``psf`` when given, else they are estimated from the pair with HySure's least squares.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..estimation.operators import EstimatedOperators
from ..io import read_cube
from ..metrics.presets import evaluate, get_preset
from ..physics.spatial import Boundary
from ..physics.specs import PsfSpec, SrfSpec, build_observation
from ..types import Cube
from .real_pair import default_q_block, estimate_operators, no_reference_scores, prepare_pair

__all__ = ["evaluate_reference", "evaluate_no_reference"]


def evaluate_reference(reference: str | os.PathLike[str] | Cube, estimate: str | os.PathLike[str] | Cube, *,
                       preset: str = "hsfuse", ratio: int | None = None, data_range: float | None = None,
                       reference_variable: str | None = None, estimate_variable: str | None = None,
                       layout: str = "auto") -> dict[str, float]:
    """The metrics of ``preset`` (lower-case names) of ``estimate`` against ``reference`` (files or cubes)."""
    ref = reference if isinstance(reference, Cube) else read_cube(reference, variable=reference_variable, layout=layout)
    est = estimate if isinstance(estimate, Cube) else read_cube(estimate, variable=estimate_variable, layout=layout)
    if ref.shape != est.shape:
        raise InputError(f"reference {ref.shape} and estimate {est.shape} differ in shape (H x W x bands)")
    spec = get_preset(preset)
    # The data scale the preset assumes: [0, 1] before im2uint8 quantisation, else its fixed PSNR peak.
    scale = 1.0 if spec.quantize == "uint8" else spec.psnr_data_range
    peak = float(np.nanmax(ref.data))
    if data_range is None and isinstance(scale, float) and peak > 1.01 * scale:
        raise InputError(f"the reference reaches {peak:g}, above the data range {scale:g} that preset {preset!r} "
                         f"assumes; pass --data-range {peak:g} (or the sensor's full scale), or normalise the cubes "
                         "first")
    scores = evaluate(ref.to_tensor(dtype=torch.float64), est.to_tensor(dtype=torch.float64), preset=preset,
                      ratio=ratio, data_range=data_range)
    return {k.lower(): float(v) for k, v in scores.items()}


def evaluate_no_reference(hsi: str | os.PathLike[str] | Cube, msi: str | os.PathLike[str] | Cube,
                          estimate: str | os.PathLike[str] | Cube, *, physics: str | os.PathLike[str] | None = None,
                          srf: SrfSpec | None = None, psf: PsfSpec = None, bands: Sequence[str] | None = None,
                          offset: int | None = None, boundary: Boundary = "circular", q_block: int | None = None,
                          hsi_variable: str | None = None, msi_variable: str | None = None,
                          estimate_variable: str | None = None, layout: str = "auto") -> dict[str, Any]:
    """No-reference scores of ``estimate`` (``H x W x L``, in the HSI's units) for the pair ``hsi``, ``msi``.

    Returns ``qnr``, ``d_lambda``, ``d_s``, ``hsi_psnr``/``hsi_sam`` and ``msi_psnr``/``msi_sam`` (consistency),
    plus ``operators`` (``"given"`` or ``"hysure"``), ``q_block`` and ``masked_pixels``.
    """
    def read(x: Any, variable: str | None) -> Cube:
        return x if isinstance(x, Cube) else read_cube(x, variable=variable, layout=layout)

    h, m, est = read(hsi, hsi_variable), read(msi, msi_variable), read(estimate, estimate_variable)
    if est.shape != (m.shape[0], m.shape[1], h.bands):
        raise InputError(f"the estimate is {est.shape[0]}x{est.shape[1]}x{est.bands} but the pair needs "
                         f"{m.shape[0]}x{m.shape[1]}x{h.bands} (the MSI's size, the HSI's bands)")
    prepared = prepare_pair(h, m)
    r, y, valid = prepared.ratio, prepared.y, prepared.valid
    if physics is not None or srf is not None:
        obs = build_observation(hsi_bands=h.bands, msi_bands=m.bands, ratio=r, wavelengths=h.wavelengths,
                                fwhm=h.fwhm, srf=srf, psf=psf, physics=physics, bands=bands, srf_normalize="none",
                                offset=offset, boundary=boundary)
        gain = prepared.hsi_scale / prepared.msi_scale  # the SRF maps HSI units to MSI units; here both are scaled
        ops = EstimatedOperators(psf=obs.spatial.psf.detach().double(), srf=obs.spectral.matrix.detach().double() * gain,
                                 ratio=r, offset=obs.spatial.offset, method="given")
    else:
        if psf is not None:
            raise InputError("psf= without srf= or physics=: give the SRF too, or neither (both are then estimated)")
        ops = estimate_operators(y, estimator="hysure", valid=valid)
    block = q_block or default_q_block(m.shape[0], m.shape[1], r)
    fused = est.to_tensor(dtype=torch.float64) / prepared.hsi_scale
    scores = no_reference_scores(fused, y, ops, valid, q_block=block)
    return {**scores, "operators": ops.method, "q_block": block,
            "masked_pixels": 0 if valid is None else int((~valid).sum())}
