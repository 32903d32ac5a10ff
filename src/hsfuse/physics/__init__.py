"""The observation model as operators with a forward map ``A`` and its adjoint ``A_adjoint``.

Layout: tensors are ``(N, C, H, W)``. See :mod:`hsfuse.physics.spatial`, :mod:`hsfuse.physics.spectral`,
:mod:`hsfuse.physics.noise`, :mod:`hsfuse.physics.observation` and :mod:`hsfuse.physics.learnable`.
"""

from .learnable import LearnableSpatialDegradation, LearnableSpectralResponse, support_from_srf
from .noise import add_noise, estimate_noise_sigma, noise_sigma
from .observation import FusionObservation
from .spatial import (
    SpatialDegradation,
    blur,
    blur_adjoint,
    decimate,
    decimate_adjoint,
    fwhm_to_sigma,
    gaussian_psf,
    psf_to_otf,
)
from .spectral import SpectralResponse, apply_srf, apply_srf_adjoint, normalize_srf

__all__ = [
    "FusionObservation",
    "LearnableSpatialDegradation",
    "LearnableSpectralResponse",
    "SpatialDegradation",
    "SpectralResponse",
    "add_noise",
    "estimate_noise_sigma",
    "apply_srf",
    "apply_srf_adjoint",
    "blur",
    "blur_adjoint",
    "decimate",
    "decimate_adjoint",
    "fwhm_to_sigma",
    "gaussian_psf",
    "noise_sigma",
    "normalize_srf",
    "psf_to_otf",
    "support_from_srf",
]
