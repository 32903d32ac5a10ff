"""Image-quality metrics with explicit conventions, named presets and no-reference indices.

* :mod:`~hsfuse.metrics.functional`: ``psnr``, ``ssim``, ``sam``, ``ergas``, ``rmse``, ``cc``, ``uiqi``, ``q2n``
  and preprocessing helpers; tensors ``(N, C, H, W)`` in, one float64 value per image out.
* :mod:`~hsfuse.metrics.presets`: :class:`MetricPreset`, the :data:`PRESETS` registry and :func:`evaluate`.
* :mod:`~hsfuse.metrics.no_reference`: ``d_lambda``, ``d_s``, ``qnr``, ``consistency`` for real pairs.
* :mod:`~hsfuse.metrics.realism`: :func:`realism_report` (synthetic vs real HSI datasets, ``H x W x B`` arrays),
  :class:`RealismReport`, ``nearest_angles``, ``abundance_validity``.
"""

from .functional import (
    MATLAB_EPS,
    cc,
    clip,
    crop_border,
    ergas,
    psnr,
    q2n,
    quantize_uint8,
    quantize_uint16,
    rmse,
    sam,
    ssim,
    uiqi,
)
from .no_reference import consistency, d_lambda, d_s, qnr
from .presets import METRIC_NAMES, PRESETS, MetricPreset, evaluate, get_preset
from .realism import RealismReport, abundance_validity, nearest_angles, realism_report

__all__ = [
    "MATLAB_EPS",
    "METRIC_NAMES",
    "PRESETS",
    "MetricPreset",
    "cc",
    "clip",
    "consistency",
    "crop_border",
    "d_lambda",
    "d_s",
    "ergas",
    "evaluate",
    "get_preset",
    "psnr",
    "q2n",
    "qnr",
    "quantize_uint8",
    "quantize_uint16",
    "rmse",
    "sam",
    "ssim",
    "uiqi",
    "RealismReport",
    "abundance_validity",
    "nearest_angles",
    "realism_report",
]
