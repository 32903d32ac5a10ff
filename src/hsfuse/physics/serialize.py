"""Save and load a (fixed) fusion observation as plain JSON, so a simulation's known operators can be
handed to ``hsfuse fuse --physics FILE`` and recorded next to every result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import FileFormatError
from .observation import FusionObservation
from .spatial import SpatialDegradation
from .spectral import SpectralResponse

__all__ = ["observation_to_dict", "observation_from_dict", "load_observation"]

_FORMAT = "hsfuse.physics/1"


def observation_to_dict(obs: FusionObservation) -> dict[str, Any]:
    """A JSON-serialisable description of ``obs`` (current PSF and SRF values, ratio, offset, boundary)."""
    return {
        "format": _FORMAT,
        "ratio": obs.spatial.ratio,
        "offset": obs.spatial.offset,
        "boundary": obs.spatial.boundary,
        "psf": obs.spatial.psf.detach().cpu().double().tolist(),
        "srf": obs.spectral.matrix.detach().cpu().double().tolist(),
        "srf_band_names": obs.spectral.band_names,
    }


def _checked_psf(value: Any) -> torch.Tensor:
    """The description's PSF as float64, refused unless it is a finite, non-negative kernel summing to one (what
    :func:`observation_to_dict` writes; an edited file must keep that)."""
    try:
        psf = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise FileFormatError("the physics description's psf is not an array of numbers") from None
    if psf.ndim not in (2, 3) or psf.numel() == 0:
        raise FileFormatError(f"the physics description's psf must be a (k, k) or (L, k, k) array, got shape "
                              f"{tuple(psf.shape)}")
    sums = psf.sum(dim=(-2, -1))
    if not bool(torch.isfinite(psf).all()) or bool((psf < 0).any()) or not bool(
            torch.allclose(sums, torch.ones_like(sums), atol=1e-6)):
        raise FileFormatError("the physics description's psf must be finite and non-negative and sum to 1 (a blur "
                              f"kernel; it sums to {float(sums.reshape(-1)[0]):.6g}): fix or regenerate the file "
                              "(hsfuse simulate writes it), or give the kernel with --psf")
    return psf


def observation_from_dict(d: dict[str, Any]) -> FusionObservation:
    """Inverse of :func:`observation_to_dict` (the SRF is stored already normalised)."""
    if d.get("format") != _FORMAT:
        raise FileFormatError(f"not an hsfuse physics description (expected format {_FORMAT!r})")
    try:
        psf = _checked_psf(d["psf"])
        spatial = SpatialDegradation(ratio=d["ratio"], psf=psf, offset=d["offset"], boundary=d["boundary"])
        spectral = SpectralResponse(torch.tensor(d["srf"], dtype=torch.float64), normalize="none",
                                    band_names=d.get("srf_band_names"))
    except KeyError as exc:
        raise FileFormatError(f"physics description lacks the field {exc.args[0]!r}") from None
    return FusionObservation(spatial, spectral)


def load_observation(path: str | Path) -> FusionObservation:
    """Read a physics JSON file written by ``hsfuse simulate``."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path} not found")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path} is not valid JSON ({exc})") from None
    return observation_from_dict(d)
