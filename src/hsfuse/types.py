"""Core data types: :class:`Cube` (an image with its band wavelengths and georeferencing) and
:class:`FusionMeasurement` (the low-resolution HSI and high-resolution MSI as tensors).

Layout convention
-----------------
* :class:`Cube` holds NumPy data in the file layout ``H x W x B`` (rows, columns, bands).
* Tensors used by physics, methods and metrics are ``(N, B, H, W)`` (batch, bands, rows, columns).
* :meth:`Cube.to_tensor` and :meth:`Cube.from_tensor` are the one place where the two meet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import InputError

__all__ = ["GeoInfo", "Cube", "FusionMeasurement"]


@dataclass(frozen=True)
class GeoInfo:
    """Georeferencing of a raster.

    Attributes:
        crs: coordinate reference system as WKT or an authority string such as ``"EPSG:32615"``.
        transform: affine pixel-to-map transform as the six coefficients ``(a, b, c, d, e, f)`` of
            ``x = a*col + b*row + c``, ``y = d*col + e*row + f`` (rasterio's ``Affine`` order,
            pixel corner convention).
    """

    crs: str | None = None
    transform: tuple[float, float, float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.transform is not None:
            t = tuple(float(v) for v in self.transform)
            if len(t) != 6:
                raise InputError(f"GeoInfo.transform needs 6 affine coefficients (a, b, c, d, e, f), got {len(t)}")
            object.__setattr__(self, "transform", t)

    def scaled(self, factor: float) -> GeoInfo:
        """The same georeferencing for a grid whose pixels are ``factor`` times larger (same origin)."""
        if self.transform is None:
            return self
        a, b, c, d, e, f = self.transform
        return GeoInfo(self.crs, (a * factor, b * factor, c, d * factor, e * factor, f))


@dataclass
class Cube:
    """An image cube with its spectral and spatial metadata.

    Attributes:
        data: array of shape ``(H, W, B)``; any real dtype (readers keep the file's dtype).
        wavelengths: band centres in nanometres, shape ``(B,)``, or ``None`` when unknown.
        fwhm: band full widths at half maximum in nanometres, shape ``(B,)``, or ``None``.
        geo: georeferencing (CRS and affine transform), or ``None`` for plain images.
        nodata: value marking missing pixels, or ``None``.
        units: physical units of the values (e.g. ``"reflectance"``), or ``None``.
        band_names: one name per band, or ``None``.
        attrs: free-form provenance (source file, variable name, scale factor, ...). Never used for
            computation.

    Example:
        >>> import numpy as np
        >>> c = Cube(np.zeros((4, 5, 3), np.float32), wavelengths=np.array([450.0, 550.0, 650.0]))
        >>> c.shape, c.bands, tuple(c.to_tensor().shape)
        ((4, 5, 3), 3, (1, 3, 4, 5))
    """

    data: np.ndarray
    wavelengths: np.ndarray | None = None
    fwhm: np.ndarray | None = None
    geo: GeoInfo | None = None
    nodata: float | None = None
    units: str | None = None
    band_names: list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim == 2:
            data = data[:, :, None]
        if data.ndim != 3:
            raise InputError(f"Cube data must be H x W x B (3-D), got shape {data.shape}")
        if data.size == 0:
            raise InputError(f"Cube data is empty (shape {data.shape})")
        if not (np.issubdtype(data.dtype, np.number) and not np.issubdtype(data.dtype, np.complexfloating)):
            raise InputError(f"Cube data must be real numbers, got dtype {data.dtype}")
        self.data = data
        bands = data.shape[2]
        for name in ("wavelengths", "fwhm"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if arr.shape[0] != bands:
                raise InputError(f"Cube has {bands} bands but {arr.shape[0]} {name}; give one value per band")
            if not np.all(np.isfinite(arr)):
                raise InputError(f"Cube {name} contain NaN or inf")
            setattr(self, name, arr)
        if self.wavelengths is not None and bands > 1 and np.any(np.diff(self.wavelengths) <= 0):
            raise InputError("Cube wavelengths must be strictly increasing (nm, one per band)")
        if self.band_names is not None:
            self.band_names = [str(n) for n in self.band_names]
            if len(self.band_names) != bands:
                raise InputError(f"Cube has {bands} bands but {len(self.band_names)} band names")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, B)``."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def bands(self) -> int:
        return int(self.data.shape[2])

    def replace(self, **changes: Any) -> Cube:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def valid_mask(self) -> np.ndarray:
        """``(H, W)`` boolean mask of pixels that are finite and not ``nodata`` in every band."""
        ok = np.all(np.isfinite(self.data), axis=2) if np.issubdtype(self.data.dtype, np.floating) else None
        if ok is None:
            ok = np.ones(self.data.shape[:2], dtype=bool)
        if self.nodata is not None:
            ok &= ~np.all(self.data == self.nodata, axis=2)
        return ok

    def to_tensor(self, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> torch.Tensor:
        """The data as a ``(1, B, H, W)`` tensor (values unchanged, cast to ``dtype``)."""
        arr = np.ascontiguousarray(np.moveaxis(self.data, 2, 0))
        return torch.from_numpy(arr.astype(np.float64 if dtype == torch.float64 else np.float32, copy=False)).to(
            device=device, dtype=dtype
        )[None]

    @classmethod
    def from_tensor(cls, tensor: torch.Tensor, *, like: Cube | None = None, **fields: Any) -> Cube:
        """Build a cube from a ``(1, B, H, W)`` or ``(B, H, W)`` tensor.

        ``like`` supplies metadata (wavelengths, georeferencing, ...) to inherit; ``fields`` override it.
        Wavelength/FWHM/band-name fields of ``like`` are only inherited when the band count matches.
        """
        t = tensor.detach()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise InputError(f"from_tensor takes one image (1, B, H, W), got batch of {t.shape[0]}")
            t = t[0]
        if t.ndim != 3:
            raise InputError(f"from_tensor takes (1, B, H, W) or (B, H, W), got {tuple(tensor.shape)}")
        data = np.moveaxis(t.cpu().numpy(), 0, 2)
        base: dict[str, Any] = {}
        if like is not None:
            base = dict(geo=like.geo, nodata=like.nodata, units=like.units, attrs=dict(like.attrs))
            if like.bands == data.shape[2]:
                base.update(wavelengths=like.wavelengths, fwhm=like.fwhm, band_names=like.band_names)
        base.update(fields)
        return cls(data, **base)


@dataclass(frozen=True)
class FusionMeasurement:
    """The two observations of one scene, as tensors.

    Attributes:
        hsi: low-resolution hyperspectral image ``Y_h``, shape ``(N, L, h, w)``.
        msi: high-resolution multispectral image ``Y_m``, shape ``(N, m, H, W)`` with ``H = r*h``, ``W = r*w``.
    """

    hsi: torch.Tensor
    msi: torch.Tensor

    def ratio(self) -> int:
        """The integer resolution ratio ``r = H / h = W / w``; raises :class:`InputError` if inconsistent."""
        return infer_ratio(tuple(self.hsi.shape[-2:]), tuple(self.msi.shape[-2:]))


def infer_ratio(hsi_hw: tuple[int, int], msi_hw: tuple[int, int]) -> int:
    """The integer ratio between an MSI grid and an HSI grid, or :class:`InputError` when there is none.

    The message is the sentence of :func:`hsfuse._checks.check_pair` (the tensor-level pair check).
    """
    (h, w), (H, W) = hsi_hw, msi_hw
    if h <= 0 or w <= 0 or H % h or W % w or H // h != W // w:
        raise InputError(f"HSI {h}x{w} and MSI {H}x{W} are not related by one integer ratio in both directions; "
                         "crop the images so that MSI = ratio x HSI in height and width")
    return H // h
