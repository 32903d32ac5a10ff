"""The catalogue of fusion methods: an explicit ``name -> MethodSpec`` dict, filled in plain code.

Every method is called the same way, ``spec.function(y, physics, **options)`` with a
:class:`~hsfuse.types.FusionMeasurement` and a :class:`~hsfuse.physics.FusionObservation`, and returns the
fused HSI ``(N, L, H, W)`` on the input's device and dtype. Add a method by writing its function and one
entry below; nothing is discovered at import time. The supervised networks of :mod:`hsfuse.models` appear here
too (``needs_training=True``): their function loads a checkpoint given as ``weights=``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError
from ..models.inference import fuse_with_network
from ..models.catalog import MODELS
from ..physics import FusionObservation
from ..types import FusionMeasurement
from .bicubic import fuse_bicubic
from .gsa import fuse_gsa
from .sylvester import fuse_fuse
from .udaln import fuse_udaln

__all__ = ["MethodSpec", "METHODS", "get_method", "fuse"]


@dataclass(frozen=True)
class MethodSpec:
    """A fusion method and what it needs.

    Attributes:
        name: registry key.
        function: ``function(y, physics, **options) -> (N, L, H, W)``.
        description: one line for listings.
        needs_psf: the result depends on the PSF in ``physics`` being right (a guessed PSF degrades it).
        needs_srf: the result depends on the SRF in ``physics`` being right.
        reference: the paper (and code base) the implementation follows.
        needs_training: the method needs trained weights (deep models); classical methods do not.
        fits_per_image: the method optimises a model on each image pair (minutes on a CPU, e.g. UDALN); the
            demo and the default benchmark leave it out (name it explicitly to run it).
    """

    name: str
    function: Callable[..., torch.Tensor]
    description: str
    needs_psf: bool
    needs_srf: bool
    reference: str
    needs_training: bool = False
    fits_per_image: bool = False

    @property
    def direct(self) -> bool:
        """Runs in seconds with nothing prepared: no trained weights, no per-image fitting (demo, default bench)."""
        return not (self.needs_training or self.fits_per_image)


METHODS: dict[str, MethodSpec] = {
    "bicubic": MethodSpec(
        name="bicubic",
        function=fuse_bicubic,
        description="Keys-cubic upsampling of the HSI on the decimation grid (ignores the MSI): the floor",
        needs_psf=False,
        needs_srf=False,
        reference="R. Keys, 'Cubic convolution interpolation for digital image processing', IEEE TASSP 29(6), 1981",
    ),
    "gsa": MethodSpec(
        name="gsa",
        function=fuse_gsa,
        description="Gram-Schmidt Adaptive component substitution per MSI band on its most correlated HSI bands",
        needs_psf=False,
        needs_srf=False,
        reference="Aiazzi, Baronti, Selva, IEEE TGRS 45(10), 2007; HS-MS form of Yokoya, Grohnfeldt, Chanussot, "
        "IEEE GRSM 5(2), 2017 (HSMSFusionToolbox GSA_wrapper.m)",
    ),
    "fuse": MethodSpec(
        name="fuse",
        function=fuse_fuse,
        description="FUSE/R-FUSE: closed-form Sylvester solution in a PCA subspace (circular model, FFT)",
        needs_psf=True,
        needs_srf=True,
        reference="Wei, Dobigeon, Tourneret, IEEE TIP 24(11), 2015; R-FUSE, IEEE SPL 23(11), 2016",
    ),
    "udaln": MethodSpec(
        name="udaln",
        function=fuse_udaln,
        description="UDALN: unsupervised and blind; learns the PSF, the SRF and a spectral upsampling net from "
        "the pair itself (three stages; --schedule paper|fast)",
        needs_psf=False,
        needs_srf=False,
        reference="Li, Zheng, Yao, Gao, Hong, IEEE GRSL 19, 2022, art. 6007305 (JiaxinLiCAS/UDALN_GRSL)",
        fits_per_image=True,
    ),
}


def _network_function(name: str) -> Callable[..., torch.Tensor]:
    """The registry function of network ``name``: load a checkpoint of that network and fuse with it."""

    def fuse_network(y: FusionMeasurement, physics: FusionObservation | None, *, weights: str,
                     tile: int | str | None = "auto", overlap: int = 4, memory_gb: float = 4.0,
                     device: str | None = None, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        return fuse_with_network(y, physics, weights=weights, method=name, tile=tile, overlap=overlap,
                                 memory_gb=memory_gb, device=device, progress=progress)

    fuse_network.__name__ = fuse_network.__qualname__ = f"fuse_{name}"
    fuse_network.__doc__ = (f"Fuse with a trained {name} checkpoint (``weights``); see "
                            ":func:`hsfuse.models.inference.fuse_with_network` for the options.")
    return fuse_network


for _name, _model in MODELS.items():
    METHODS[_name] = MethodSpec(name=_name, function=_network_function(_name), description=_model.description,
                                needs_psf=False, needs_srf=False, reference=_model.reference, needs_training=True)


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered as ``name``, or :class:`InputError` listing the known names."""
    spec = METHODS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InputError(f"unknown fusion method {name!r}; choose one of: {', '.join(sorted(METHODS))}")
    return spec


def fuse(name: str, y: FusionMeasurement, physics: FusionObservation, **options: Any) -> torch.Tensor:
    """Run the method ``name`` on ``y`` with ``physics``; ``options`` are that method's keyword options.

    Example:
        >>> from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
        >>> obs = FusionObservation(SpatialDegradation(ratio=2), SpectralResponse(torch.ones(1, 4) / 4))
        >>> tuple(fuse("bicubic", obs.A(torch.rand(1, 4, 6, 8)), obs).shape)
        (1, 4, 6, 8)
    """
    spec = get_method(name)
    params = inspect.signature(spec.function).parameters
    allowed = [p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(
            f"method {name!r} has no option(s) {', '.join(unknown)}; its options are: "
            f"{', '.join(allowed) if allowed else '(none)'}"
        )
    return spec.function(y, physics, **options)
