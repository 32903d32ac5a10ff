"""Observation operators from what a user has: strings, files, arrays. One code path for Python and the CLI.

* :func:`resolve_psf`: ``None`` (a Gaussian of FWHM ``r``), ``"gaussian:fwhm=F[,size=K]"`` /
  ``"gaussian:sigma=S[,size=K]"`` (pixels; default size ``2r + 1``), a kernel file (``.npy``, ``.csv``, ``.txt``)
  or a ``k x k`` array/tensor; always normalised to sum to one.
* :func:`resolve_srf`: a sensor name (``hsfuse srf list``), a response CSV (``wavelength_nm`` + one column per
  band), an ``(m, L)`` matrix as ``.npy`` file or array/tensor (``(L, m)`` is transposed), or a
  :class:`~hsfuse.physics.srf_library.SensorResponse`; tabulated curves are placed on the HSI's band centres
  (which must then be known).
* :func:`build_observation`: the :class:`~hsfuse.physics.FusionObservation` of a pair from those specs, or from a
  ``physics.json`` (``hsfuse simulate``/``hsfuse estimate``), with every inconsistency reported as one
  :class:`~hsfuse.errors.InputError` that names the fix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._checks import check_ratio
from ..errors import FileFormatError, InputError
from .learnable import support_from_srf
from .observation import FusionObservation
from .serialize import load_observation
from .spatial import Boundary, SpatialDegradation, gaussian_psf
from .spectral import SpectralResponse
from .srf_library import SensorResponse, srf_matrix

__all__ = ["PsfSpec", "SrfSpec", "resolve_psf", "resolve_srf", "resolve_support", "build_observation"]

#: what :func:`resolve_psf` accepts
PsfSpec = str | os.PathLike[str] | np.ndarray | torch.Tensor | None
#: what :func:`resolve_srf` accepts
SrfSpec = str | os.PathLike[str] | np.ndarray | torch.Tensor | SensorResponse


def _gaussian_from_text(spec: str, *, ratio: int) -> torch.Tensor:
    options: dict[str, float] = {}
    _, _, rest = spec.partition(":")
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in ("fwhm", "sigma", "size"):
            raise InputError(f"PSF option {item!r} not understood; use gaussian:fwhm=F or gaussian:sigma=S[,size=K]")
        try:
            options[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"PSF option {item!r}: {value!r} is not a number") from None
    size = options.pop("size", float(2 * ratio + 1))
    if size != int(size) or size < 1:
        raise InputError(f"PSF size must be a positive integer, got {size:g}")
    if "fwhm" in options and "sigma" in options:
        raise InputError("give the Gaussian PSF's fwhm or its sigma, not both")
    if not options:
        options["fwhm"] = float(ratio)
    return gaussian_psf(int(size), **options)


def _read_matrix(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{what} file {path} not found")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"cannot read the {what} from {path}: {exc}") from None


def resolve_psf(spec: PsfSpec, *, ratio: int) -> torch.Tensor:
    """The ``(k, k)`` float64 PSF (sums to one) described by ``spec`` for ratio ``ratio`` (module docstring).

    Example:
        >>> tuple(resolve_psf("gaussian:sigma=1,size=5", ratio=4).shape)
        (5, 5)
    """
    r = check_ratio(ratio)
    if spec is None:
        return gaussian_psf(2 * r + 1, fwhm=float(r))
    if isinstance(spec, str) and spec.startswith("gaussian"):
        return _gaussian_from_text(spec, ratio=r)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"PSF {str(spec)!r} is neither 'gaussian:...' nor an existing kernel file "
                             "(.npy/.csv/.txt)")
        kernel = _read_matrix(path, "PSF kernel")
        where = f"the PSF in {path}"
    else:
        kernel = spec.detach().cpu().numpy() if isinstance(spec, torch.Tensor) else np.asarray(spec)
        where = "the PSF"
    try:
        kernel = np.asarray(kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a square array of numbers") from None
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise InputError(f"{where} must be a square k x k kernel, got shape {kernel.shape}")
    if not np.all(np.isfinite(kernel)) or np.any(kernel < 0) or kernel.sum() <= 0:
        raise InputError(f"{where} must be finite and non-negative with a positive sum (a blur kernel)")
    return torch.from_numpy(kernel / kernel.sum())


def resolve_srf(spec: SrfSpec, *, hsi_bands: int, wavelengths: Any = None, fwhm: Any = None,
                bands: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """The ``(m, L)`` SRF matrix (unnormalised, as tabulated or given) and its band names.

    ``bands`` selects sensor bands by name (tabulated sensors only); without it, bands outside the HSI's range are
    dropped with a warning. A matrix (file or array) must have ``L = hsi_bands`` columns (or rows).
    """
    if isinstance(spec, (str, os.PathLike)) and str(spec).endswith(".npy"):
        matrix = _read_matrix(Path(spec), "SRF matrix")
        where = f"the SRF matrix in {spec}"
    elif isinstance(spec, (np.ndarray, torch.Tensor)):
        matrix = spec.detach().cpu().numpy() if isinstance(spec, torch.Tensor) else spec
        where = "the SRF matrix"
    else:
        if not isinstance(spec, (str, os.PathLike, SensorResponse)):
            raise InputError(f"srf must be a sensor name, a CSV or .npy file, an (m, L) matrix or a SensorResponse, "
                             f"got {type(spec).__name__}")
        if wavelengths is None:
            raise InputError("the HSI has no band wavelengths, so a sensor response cannot be placed on its bands: "
                             "give the SRF as an (m x L) matrix (.npy file or array), or read the HSI from a format "
                             "that stores wavelengths (ENVI, GeoTIFF with wavelength tags, .npz with wavelengths_nm)")
        spec = spec if isinstance(spec, SensorResponse) else str(spec)
        return srf_matrix(spec, wavelengths, hsi_fwhm=fwhm, bands=list(bands) if bands else None,
                          normalize="none", drop_uncovered=not bands)
    if bands:
        raise InputError("bands= selects bands of a named sensor or response CSV, not of a matrix; slice the matrix "
                         "instead")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or hsi_bands not in matrix.shape:
        raise InputError(f"{where} has shape {matrix.shape}; it needs (m, {hsi_bands}): one row per MSI band, one "
                         f"column per HSI band")
    matrix = matrix if matrix.shape[1] == hsi_bands else matrix.T
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"{where} contains NaN or infinity")
    return matrix, [f"band{i + 1}" for i in range(matrix.shape[0])]


def resolve_support(spec: SrfSpec | None, *, hsi_bands: int, msi_bands: int, wavelengths: Any = None,
                    fwhm: Any = None, bands: Sequence[str] | None = None) -> torch.Tensor | None:
    """``(m, L)`` boolean: the HSI bands where each MSI band of a nominal sensor responds (>= 1 % of its peak),
    or ``None`` without a spec. Used by blind methods to restrict what they learn."""
    if spec is None:
        if bands:
            raise InputError(f"bands={list(bands)} selects bands of a support sensor, but none is given; give the "
                             "sensor too (CLI: --support SENSOR)")
        return None
    matrix, _ = resolve_srf(spec, hsi_bands=hsi_bands, wavelengths=wavelengths, fwhm=fwhm, bands=bands)
    if matrix.shape[0] != msi_bands:
        raise InputError(f"the support sensor gives {matrix.shape[0]} bands but the MSI has {msi_bands}; select "
                         "them with bands=[...] (CLI: --bands)")
    return support_from_srf(torch.as_tensor(matrix, dtype=torch.float64), threshold=0.01)


def build_observation(*, hsi_bands: int, msi_bands: int, ratio: int, wavelengths: Any = None, fwhm: Any = None,
                      srf: SrfSpec | None = None, psf: PsfSpec = None, physics: str | os.PathLike[str] |
                      FusionObservation | None = None, bands: Sequence[str] | None = None,
                      srf_normalize: Literal["sum", "none"] = "sum", offset: int | None = None,
                      boundary: Boundary = "circular", needs_srf: bool = True) -> FusionObservation:
    """The fusion observation of a pair with ``hsi_bands`` / ``msi_bands`` bands at ``ratio``.

    ``physics`` (a ``physics.json`` path or an observation) gives every operator and excludes ``srf``, ``psf``,
    ``offset``; otherwise the PSF comes from ``psf`` (:func:`resolve_psf`) and the SRF from ``srf``
    (:func:`resolve_srf`, rows normalised per ``srf_normalize``). Without ``srf``, a method that does not use the
    SRF (``needs_srf=False``) gets a uniform placeholder (rows of ``1/L``) so that the operator is complete; one
    that needs it gets an :class:`InputError`.
    """
    r = check_ratio(ratio)
    if physics is not None:
        given = [n for n, v in (("srf", srf), ("psf", psf), ("offset", offset), ("bands", bands or None))
                 if v is not None]
        if given:
            raise InputError(f"physics gives every operator; do not also pass {', '.join(given)}")
        obs = physics if isinstance(physics, FusionObservation) else load_observation(physics)
        if obs.ratio != r:
            raise InputError(f"the physics has ratio {obs.ratio} but the images have ratio {r}")
        if obs.spectral.hsi_bands != hsi_bands:
            raise InputError(f"the physics' SRF has {obs.spectral.hsi_bands} columns (HSI bands) but the HSI has "
                             f"{hsi_bands} bands; use the physics made for this HSI")
        if obs.spectral.msi_bands != msi_bands:
            raise InputError(f"the physics' SRF has {obs.spectral.msi_bands} rows (MSI bands) but the MSI has "
                             f"{msi_bands} bands; use the physics made for this MSI")
        return obs
    if srf is None and bands:
        raise InputError(f"bands={list(bands)} selects bands of the SRF's sensor, but no SRF is given; give the "
                         "sensor too (srf=NAME; CLI: --srf NAME --bands ...)")
    if srf is None:
        if needs_srf:
            raise InputError("this method needs the MSI's spectral response: pass srf= (a sensor name, see "
                             "'hsfuse srf list', a response CSV or an (m, L) matrix; CLI: --srf) or physics= (a "
                             "physics.json from 'hsfuse simulate' or 'hsfuse estimate'; CLI: --physics)")
        matrix: Any = torch.full((msi_bands, hsi_bands), 1.0 / hsi_bands, dtype=torch.float64)
        names = None
        normalize: Literal["sum", "none"] = "none"
    else:
        matrix, names = resolve_srf(srf, hsi_bands=hsi_bands, wavelengths=wavelengths, fwhm=fwhm, bands=bands)
        normalize = srf_normalize
        if matrix.shape[0] != msi_bands:
            raise InputError(f"the SRF has {matrix.shape[0]} bands ({', '.join(names)}) but the MSI has {msi_bands}; "
                             "select the sensor bands present in the MSI with bands=[...] (CLI: --bands)")
    return FusionObservation(
        SpatialDegradation(ratio=r, psf=resolve_psf(psf, ratio=r), offset=offset, boundary=boundary),
        SpectralResponse(torch.as_tensor(matrix, dtype=torch.float64), normalize=normalize, band_names=names),
    )
