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


def observation_from_dict(d: dict[str, Any]) -> FusionObservation:
    """Inverse of :func:`observation_to_dict` (the SRF is stored already normalised)."""
    if d.get("format") != _FORMAT:
        raise FileFormatError(f"not an hsfuse physics description (expected format {_FORMAT!r})")
    try:
        spatial = SpatialDegradation(ratio=d["ratio"], psf=torch.tensor(d["psf"], dtype=torch.float64),
                                     offset=d["offset"], boundary=d["boundary"])
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
