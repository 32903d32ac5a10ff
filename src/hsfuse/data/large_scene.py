"""A realistic synthetic scene of any size, as a closed form of the pixel coordinates, and its HSI/MSI pair.

The reference is the linear mixing model with shading, evaluated pixel by pixel from global coordinates::

    Z(y, x, lambda) = sum_k M_k(y, x) e_k(lambda),    M_k = s(y, x) a_k(y, x)

so any window ``[y0, y1) x [x0, x1)`` (even outside the scene: the formula is defined on every integer pixel)
is computed on its own, and two windows agree bit for bit where they overlap (every step is an element-wise
NumPy operation in a fixed order; no BLAS, FFT or reduction whose rounding could depend on the window).

Spatial model (everything drawn from ``seed``; frequencies in cycles per HR pixel)
------------------------------------------------------------------------------------
* A *field* is a seeded sum of random cosines ``g(y, x) = sum_j c_j cos(2 pi (u_j x + v_j y) + phi_j)`` with
  periods stratified log-uniformly between a longest and a shortest period, random directions and phases,
  ``c_j`` proportional to ``period_j ** slope`` and scaled to unit variance. It is evaluated separably
  (``cos(a + b) = cos a cos b - sin a sin b`` of per-row and per-column factors) and its gradient in closed form.
* Land cover: ``a_land = softmax_k(l_k)`` over the vegetation and soil materials with logits
  ``l_k = 2 (F_k + sum_m W_km T_m) + beta_k step(natural boundary) + zone(agri) sum_p beta_kp step(parcel p)``:
  ``F_k`` one coarse field per material (16 cosines, periods from the scene size down to 24 px), ``T_m`` two
  shared fine textures (20 cosines each, 64 px down to 3 px), a curvy natural boundary (the zero set of a
  smooth field) and, inside an agricultural zone, three families of straight, gently warped parcel edges.
  ``step(d) = 1 / (1 + exp(-d / eps))`` of a signed distance ``d`` in pixels (first order: ``g / |grad g|``)
  is a sharp, anti-aliased edge whose 10-90 % width is ``edge_px``.
* Layers painted over it, each ``a <- (1 - m) a + m a_layer`` (so the abundances stay non-negative and sum to
  one): a town (soft zone) of buildings on a rotated lattice with roofs of the built materials; farm tracks
  (1 px, soil) in the agricultural zone; lakes (a low-frequency field above a threshold, about
  ``water_fraction`` of the area) and rivers (5 px bands along the zero set of another field), whose water
  mixes the water materials through a turbidity field; roads (2 px bands along a zero set, bridges over water).
* Shading ``s = shading_min + (1 - shading_min) / (1 + exp(-1.5 g_s))`` in ``(shading_min, 1)``, ``g_s`` a
  field of 24 cosines from the scene size down to 3 px (illumination, topography, canopy shadows).

Spectra: real measured reflectances, never extrapolated
-------------------------------------------------------
Each material (:data:`MATERIALS`) is a measured spectrum integrated against a Gaussian band of the requested
FWHM around each band centre (the piecewise-linear interpolant of the samples, the Gaussian renormalised to
the measured support). Every band centre must lie inside every used spectrum's measured range (the Jasper
Ridge table has water-vapour gaps above 1000 nm, which are not bridged).

* ``"vnir"`` (default, :data:`VNIR_MATERIALS`): the four Jasper Ridge endmembers (tree, water, dirt, road;
  AVIRIS, Zhu 2017, measured 408.5-2452 nm) and four real within-class variants from the same scene: for each
  class, the mean spectrum of the pure pixels (abundance >= 0.9) in the top quartile of spectral angle to the
  endmember (e.g. ``tree_b`` is 6.9 degrees from ``tree``). Default grid 410-1000 nm (200 bands, FWHM = spacing
  2.96 nm), which every Sentinel-2 band B2-B8A lies inside.
* ``"visible"`` (:data:`VISIBLE_MATERIALS`): the four Jasper endmembers and four ColorChecker patches (N. Ohta,
  via colour-science: foliage, dark skin, red, blue) measured 380-780 nm only; use it with band centres inside
  410-780 nm (e.g. ``wavelength_range_nm=(410, 780)``) and an MSI inside that range (Sentinel-2 B1-B6, an RGB
  camera). ColorChecker spectra are not extended beyond 780 nm: no measurement says what they do there, and
  Sentinel-2 B7, B8 and B8A lie beyond it, so the default set does without them.

The pair (:func:`large_pair`) is lazy: dask-backed xarray DataArrays, nothing computed until asked. Per chunk
``(i, j)`` one shared task evaluates ``M`` on the chunk's HR window plus the PSF halo, and one task per product
derives from it the LR HSI chunk ``S(B * Z)`` (a *valid* convolution of the infinite scene: the halo comes from
the closed form, so there is no boundary effect at all), the MSI chunk ``R Z`` and, on request, the reference
chunk. Since blur and decimation act on space and ``R`` on wavelength, the LR HSI is computed as
``sum_k e_k S(B * M_k)`` and the MSI as ``(R E^T) M``: the same numbers as ``S(B * Z)`` and ``R Z`` up to
float rounding, from ``K`` maps instead of ``B`` bands.

Example:
    >>> scene = LargeScene(height=64, width=48, seed=1)
    >>> reference_window(scene, 0, 8, 0, 4).shape
    (200, 8, 4)
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from .._checks import check_positive_int, check_ratio
from ..errors import InputError
from ..progress import ProgressFn, reporter
from .paths import shared_file

__all__ = [
    "MATERIALS",
    "MATERIAL_SETS",
    "VNIR_MATERIALS",
    "VISIBLE_MATERIALS",
    "DEFAULT_WAVELENGTH_RANGE_NM",
    "Material",
    "LargeScene",
    "scene_spectra",
    "abundance_window",
    "reference_window",
    "large_pair",
    "write_large_pair",
]

_F32 = np.float32
_TWO_PI = 2.0 * math.pi
_TEN_NINETY = 2.0 * math.log(9.0)  # 10-90 % width of a logistic step, in units of its scale

DEFAULT_WAVELENGTH_RANGE_NM: tuple[float, float] = (410.0, 1000.0)


# --------------------------------------------------------------------------------------------------------
# Materials: measured spectra with a role in the layout
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """A measured reflectance spectrum and its role in the layout.

    Attributes:
        name: key in :data:`MATERIALS`.
        role: ``"vegetation"``, ``"soil"``, ``"water"`` or ``"built"`` (where the layout puts it).
        source: where the measurement comes from.
    """

    name: str
    role: str
    source: str


_JASPER = "Jasper Ridge (AVIRIS, 198 bands 408.5-2452 nm with water-vapour gaps; Zhu 2017, arXiv:1708.05125)"
_OHTA = "ColorChecker patch measured by N. Ohta (1997), 380-780 nm at 5 nm, via colour-science"

#: Every material the scene can use: name -> :class:`Material`.
MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("tree", "vegetation", f"endmember 'tree' of {_JASPER}"),
        Material("water", "water", f"endmember 'water' of {_JASPER}"),
        Material("dirt", "soil", f"endmember 'dirt' of {_JASPER}"),
        Material("road", "built", f"endmember 'road' of {_JASPER}"),
        Material("tree_b", "vegetation", f"mean of the pure 'tree' pixels (abundance >= 0.9) in the top quartile "
                 f"of spectral angle to the endmember, {_JASPER}"),
        Material("water_b", "water", f"mean of the pure 'water' pixels in the top quartile of spectral angle to "
                 f"the endmember, {_JASPER}"),
        Material("dirt_b", "soil", f"mean of the pure 'dirt' pixels in the top quartile of spectral angle to the "
                 f"endmember, {_JASPER}"),
        Material("road_b", "built", f"mean of the pure 'road' pixels in the top quartile of spectral angle to the "
                 f"endmember, {_JASPER}"),
        Material("cc_foliage", "vegetation", f"'foliage': {_OHTA}"),
        Material("cc_dark_skin", "soil", f"'dark skin': {_OHTA}"),
        Material("cc_red", "built", f"'red': {_OHTA}"),
        Material("cc_blue", "built", f"'blue': {_OHTA}"),
    )
}
_CC_PATCH = {"cc_foliage": "foliage", "cc_dark_skin": "dark skin", "cc_red": "red", "cc_blue": "blue"}

#: Measured over 408.5-1000 nm and beyond (real AVIRIS reflectances): the default.
VNIR_MATERIALS: tuple[str, ...] = ("tree", "tree_b", "dirt", "dirt_b", "water", "water_b", "road", "road_b")
#: Jasper Ridge endmembers and ColorChecker patches: band centres must lie inside 408.5-780 nm.
VISIBLE_MATERIALS: tuple[str, ...] = ("tree", "cc_foliage", "dirt", "cc_dark_skin", "water", "road", "cc_red",
                                      "cc_blue")
MATERIAL_SETS: dict[str, tuple[str, ...]] = {"vnir": VNIR_MATERIALS, "visible": VISIBLE_MATERIALS}


@functools.lru_cache(maxsize=1)
def _jasper_tables() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Jasper Ridge spectra: name -> (wavelengths nm, reflectance), endmembers and pure-pixel variants."""
    with np.load(shared_file("derived", "jasper_ridge.npz")) as z:
        wl = np.asarray(z["wavelengths_nm"], dtype=np.float64)
        ends = np.asarray(z["endmembers"], dtype=np.float64).T  # (4, L)
        names = [str(n) for n in z["endmember_names"]]
        pixels = z["cube"].reshape(-1, wl.size).astype(np.float64) / float(z["scale"])
        abund = np.asarray(z["abundances"], dtype=np.float64).reshape(-1, len(names))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, name in enumerate(names):
        out[name] = (wl, ends[k])
        pure = pixels[abund[:, k] >= 0.9]
        cos = pure @ ends[k] / (np.linalg.norm(pure, axis=1) * np.linalg.norm(ends[k]))
        angle = np.arccos(np.clip(cos, -1.0, 1.0))
        out[f"{name}_b"] = (wl, pure[angle >= np.quantile(angle, 0.75)].mean(axis=0))
    return out


def _material_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in _CC_PATCH:
        from .synthetic import spectral_library

        lib = spectral_library("colorchecker_ohta")
        return lib.wavelengths, lib.spectra[lib.material_names.index(_CC_PATCH[name])]
    return _jasper_tables()[name]


def _measured_runs(wl: np.ndarray) -> list[tuple[float, float]]:
    """Intervals of the table without gaps (a step over 1.5 x the median step is a gap: removed bands)."""
    step = np.diff(wl)
    cut = np.nonzero(step > 1.5 * np.median(step))[0]
    starts = np.concatenate([[0], cut + 1])
    ends = np.concatenate([cut, [wl.size - 1]])
    return [(float(wl[s]), float(wl[e])) for s, e in zip(starts, ends)]


def _resample_spectrum(name: str, centres: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    """Band values of material ``name``: its measured spectrum seen through Gaussian bands (see module doc)."""
    from ..physics.srf_library import resample_response

    wl, values = _material_table(name)
    runs = _measured_runs(wl)
    inside = np.zeros(centres.size, dtype=bool)
    for lo, hi in runs:
        inside |= (centres >= lo - 1e-9) & (centres <= hi + 1e-9)
    if not inside.all():
        bad = centres[~inside]
        measured = ", ".join(f"{lo:.1f}-{hi:.1f}" for lo, hi in runs)
        raise InputError(
            f"material {name!r} is measured only over {measured} nm but band centres {bad[0]:.1f}"
            f"{'' if bad.size == 1 else f' ... {bad[-1]:.1f}'} nm ({bad.size} band(s)) lie outside; choose band "
            f"centres inside that range or other materials ({', '.join(MATERIAL_SETS)} sets: "
            f"{', '.join(f'{k}={v}' for k, v in MATERIAL_SETS.items())})")
    table = np.stack([values, np.ones_like(values)], axis=1)
    band = resample_response(wl, table, centres, hsi_fwhm=fwhm, method="gaussian", normalize="none")
    return band[0] / band[1]


# --------------------------------------------------------------------------------------------------------
# The scene description
# --------------------------------------------------------------------------------------------------------


def _as_float_tuple(values: Any, name: str) -> tuple[float, ...]:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a sequence of numbers in nm, got {values!r}") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be a non-empty sequence of finite numbers in nm")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class LargeScene:
    """A synthetic scene of any size, defined in closed form (module docstring); frozen and hashable.

    Args:
        height, width: HR size in pixels (the MSI grid); the formula itself extends beyond it.
        bands: number of band centres evenly spaced over ``wavelength_range_nm`` (ignored when
            ``wavelengths_nm`` is given).
        wavelength_range_nm: first and last band centre (default 410-1000 nm, where every default spectrum is
            measured).
        wavelengths_nm: explicit band centres (nm, strictly increasing); default from ``bands`` and the range.
        fwhm_nm: one FWHM for all bands or one per band (nm); default the band spacing (the smaller distance
            to a neighbouring centre).
        materials: material names (:data:`MATERIALS`) or a set name (``"vnir"``, ``"visible"``); their number
            is ``K``.
        seed: non-negative integer; everything (layout, textures, shading) is deterministic in it.
        shading_min: lower bound of the shading, in ``[0, 1)``.
        water_fraction: approximate fraction of the area covered by lakes, in ``[0, 0.9]``.
        edge_px: 10-90 % width of the sharp region edges, in HR pixels.

    After construction ``wavelengths_nm`` and ``fwhm_nm`` hold one float per band, ``bands`` their number and
    ``materials`` the tuple of names.
    """

    height: int = 1024
    width: int = 1024
    bands: int = 200
    wavelength_range_nm: tuple[float, float] = DEFAULT_WAVELENGTH_RANGE_NM
    wavelengths_nm: tuple[float, ...] | None = None
    fwhm_nm: tuple[float, ...] | float | None = None
    materials: tuple[str, ...] | str = VNIR_MATERIALS
    seed: int = 0
    shading_min: float = 0.6
    water_fraction: float = 0.1
    edge_px: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "height", check_positive_int(self.height, "height", minimum=4))
        set_(self, "width", check_positive_int(self.width, "width", minimum=4))
        set_(self, "seed", check_positive_int(self.seed, "seed", minimum=0))
        if self.wavelengths_nm is None:
            bands = check_positive_int(self.bands, "bands", minimum=2)
            lo, hi = _as_float_tuple(self.wavelength_range_nm, "wavelength_range_nm")
            if not hi > lo:
                raise InputError(f"wavelength_range_nm must be (first, last) with last > first, got {(lo, hi)}")
            set_(self, "wavelength_range_nm", (lo, hi))
            centres = np.linspace(lo, hi, bands)
        else:
            centres = np.asarray(_as_float_tuple(self.wavelengths_nm, "wavelengths_nm"))
            if centres.size < 2 and self.fwhm_nm is None:
                raise InputError("a single band has no spacing: give fwhm_nm")
            if centres.size > 1 and np.any(np.diff(centres) <= 0):
                raise InputError("wavelengths_nm must be strictly increasing band centres in nm")
            set_(self, "wavelength_range_nm", (float(centres[0]), float(centres[-1])))
        if self.fwhm_nm is None:
            gaps = np.diff(centres)
            fwhm = np.minimum(np.concatenate([[gaps[0]], gaps]), np.concatenate([gaps, [gaps[-1]]]))
        else:
            fwhm = np.asarray(_as_float_tuple(self.fwhm_nm, "fwhm_nm"))
            if fwhm.size == 1:
                fwhm = np.full(centres.size, fwhm[0])
            if fwhm.size != centres.size or np.any(fwhm <= 0):
                raise InputError(f"fwhm_nm must be one positive width or {centres.size} (one per band), in nm")
        set_(self, "wavelengths_nm", tuple(float(v) for v in centres))
        set_(self, "fwhm_nm", tuple(float(v) for v in fwhm))
        set_(self, "bands", int(centres.size))
        mats = MATERIAL_SETS.get(self.materials, None) if isinstance(self.materials, str) else None
        if isinstance(self.materials, str) and mats is None:
            raise InputError(f"unknown material set {self.materials!r}; choose one of {sorted(MATERIAL_SETS)} or "
                             f"give material names from {sorted(MATERIALS)}")
        mats = tuple(str(m) for m in (mats if mats is not None else self.materials))
        unknown = [m for m in mats if m not in MATERIALS]
        if unknown:
            raise InputError(f"unknown material(s) {unknown}; choose from {sorted(MATERIALS)}")
        if len(mats) < 2 or len(set(mats)) != len(mats):
            raise InputError(f"materials must name at least two distinct materials, got {mats}")
        set_(self, "materials", mats)
        for name, value, lo, hi in (("shading_min", self.shading_min, 0.0, 0.999),
                                    ("water_fraction", self.water_fraction, 0.0, 0.9),
                                    ("edge_px", self.edge_px, 0.05, 1e6)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
                raise InputError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
            set_(self, name, float(value))

    @property
    def n_materials(self) -> int:
        """``K``, the number of materials (endmembers)."""
        return len(self.materials)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(bands, height, width)`` of the reference."""
        return (self.bands, self.height, self.width)


# --------------------------------------------------------------------------------------------------------
# Random cosine fields
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Field:
    """``g = sum_j amp_j cos(2 pi (u_j x + v_j y) + phase_j)``, unit variance; ``grad_rms`` = rms of |grad g|."""

    u: np.ndarray
    v: np.ndarray
    phase: np.ndarray
    amp: np.ndarray
    grad_rms: float


def _draw_field(rng: np.random.Generator, terms: int, longest: float, shortest: float, slope: float) -> _Field:
    longest = max(float(longest), float(shortest))
    t = (np.arange(terms) + rng.uniform(size=terms)) / terms
    period = longest * (shortest / longest) ** t
    theta = rng.uniform(0.0, math.pi, size=terms)
    phase = rng.uniform(0.0, _TWO_PI, size=terms)
    amp = period**slope
    amp = amp * math.sqrt(2.0 / float(np.sum(amp**2)))
    grad_rms = math.sqrt(float(np.sum(0.5 * amp**2 * (_TWO_PI / period) ** 2)))
    return _Field(np.cos(theta) / period, np.sin(theta) / period, phase, amp, grad_rms)


def _angles(freq: np.ndarray, coords: np.ndarray, phase: np.ndarray | None = None) -> np.ndarray:
    """``2 pi frac(freq * coord) (+ phase)``, ``(J, n)`` float64, exact per element whatever the window."""
    ang = _TWO_PI * (np.multiply.outer(freq, coords) % 1.0)
    if phase is not None:
        ang += phase[:, None]
    return ang


class _FieldGrid:
    """Per-row and per-column factors of one field on a window; 2-D values are made block by block."""

    def __init__(self, f: _Field, ys: np.ndarray, xs: np.ndarray, *, grad: bool = False) -> None:
        ax, ay = _angles(f.u, xs), _angles(f.v, ys, f.phase)
        cx, sx = np.cos(ax).astype(_F32), np.sin(ax).astype(_F32)
        self.cy, self.sy = np.cos(ay).astype(_F32), np.sin(ay).astype(_F32)
        amp = f.amp.astype(_F32)[:, None]
        self.acx, self.asx = amp * cx, amp * sx
        self.grad = grad
        self.floor = _F32(0.05 * f.grad_rms)
        if grad:
            # d/dx cos(A + B) = -2 pi u [sin A cos B + cos A sin B]   (A: column part, B: row part + phase)
            gu = (-_TWO_PI * f.u * f.amp).astype(_F32)[:, None]
            gv = (-_TWO_PI * f.v * f.amp).astype(_F32)[:, None]
            self.gux, self.gus = gu * sx, gu * cx
            self.gvx, self.gvs = gv * sx, gv * cx

    @staticmethod
    def _accumulate(out: np.ndarray, tmp: np.ndarray, rows_a: np.ndarray, cols_a: np.ndarray,
                    rows_b: np.ndarray, cols_b: np.ndarray, sign: float) -> np.ndarray:
        """``out = sum_j rows_a[j] (x) cols_a[j] + sign * rows_b[j] (x) cols_b[j]``, always in the order j."""
        out[...] = 0.0
        for j in range(rows_a.shape[0]):
            np.multiply(rows_a[j][:, None], cols_a[j][None, :], out=tmp)
            np.add(out, tmp, out=out)
            np.multiply(rows_b[j][:, None], cols_b[j][None, :], out=tmp)
            if sign > 0:
                np.add(out, tmp, out=out)
            else:
                np.subtract(out, tmp, out=out)
        return out

    def value(self, r0: int, r1: int, tmp: np.ndarray) -> np.ndarray:
        out = np.empty_like(tmp)
        return self._accumulate(out, tmp, self.cy[:, r0:r1], self.acx, self.sy[:, r0:r1], self.asx, -1.0)

    def distance(self, r0: int, r1: int, tmp: np.ndarray, level: float = 0.0) -> np.ndarray:
        """Signed distance in pixels to the level set ``g = level``, to first order: ``(g - level) / |grad g|``."""
        g = self.value(r0, r1, tmp)
        gx = self._accumulate(np.empty_like(tmp), tmp, self.cy[:, r0:r1], self.gux, self.sy[:, r0:r1], self.gus, 1.0)
        gy = self._accumulate(np.empty_like(tmp), tmp, self.cy[:, r0:r1], self.gvx, self.sy[:, r0:r1], self.gvs, 1.0)
        norm = np.sqrt(gx * gx + gy * gy)
        np.maximum(norm, self.floor, out=norm)
        if level:
            g -= _F32(level)
        return g / norm


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic ``1 / (1 + exp(-z))`` as ``0.5 + 0.5 tanh(z / 2)`` (no overflow), float32."""
    out = np.tanh(z * _F32(0.5))
    out *= _F32(0.5)
    out += _F32(0.5)
    return out


def _softmax_into(logits: Sequence[np.ndarray], idx: Sequence[int], out: np.ndarray) -> None:
    """``out[idx[i]] = softmax_i(logits)``; ``out`` rows not in ``idx`` are set to 0. Loops in a fixed order."""
    out[...] = 0.0
    top = logits[0].copy()
    for lg in logits[1:]:
        np.maximum(top, lg, out=top)
    total = np.zeros_like(top)
    for i, lg in zip(idx, logits):
        out[i] = np.exp(lg - top)
        total += out[i]
    for i in idx:
        out[i] /= total


def _ordinal_logits(z: np.ndarray, n: int, kappa: float) -> list[np.ndarray]:
    """Logits splitting the values of ``z`` (about unit variance) into ``n`` ordered bins of ``(-1.5, 1.5)``.

    ``l_i = kappa (i (z - c0) - w i (i - 1) / 2)`` with ``w = 3 / n`` and ``c0 = w - 1.5``: ``l_i > l_(i-1)``
    exactly when ``z > -1.5 + w i``, so the softmax picks material ``i`` on the ``i``-th bin, smoothly.
    """
    w = 3.0 / n
    c0 = w - 1.5
    return [_F32(kappa * i) * (z - _F32(c0)) - _F32(kappa * w * i * (i - 1) / 2.0) for i in range(n)]


def _paint(a: np.ndarray, mask: np.ndarray, layer: np.ndarray, idx: Sequence[int]) -> None:
    """``a <- (1 - mask) a + mask layer`` (``layer`` zero outside ``idx``), in place."""
    keep = _F32(1.0) - mask
    for k in range(a.shape[0]):
        a[k] *= keep
    for k in idx:
        a[k] += mask * layer[k]


# --------------------------------------------------------------------------------------------------------
# The plan: every random parameter of a scene, drawn once
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Plan:
    scene: LargeScene
    spectra: np.ndarray  # (K, B) float64
    land: tuple[int, ...]
    water: tuple[int, ...]
    built: tuple[int, ...]
    soil: tuple[int, ...]
    fields: dict[str, _Field]
    land_coarse: tuple[_Field, ...]
    textures: tuple[_Field, ...]
    params: dict[str, Any] = field(default_factory=dict)


def _roles(materials: tuple[str, ...], *roles: str) -> tuple[int, ...]:
    return tuple(i for i, m in enumerate(materials) if MATERIALS[m].role in roles)


@functools.lru_cache(maxsize=32)
def _plan(scene: LargeScene) -> _Plan:
    centres, fwhm = np.asarray(scene.wavelengths_nm), np.asarray(scene.fwhm_nm)
    spectra = np.stack([_resample_spectrum(m, centres, fwhm) for m in scene.materials])
    spectra.setflags(write=False)
    mats = scene.materials
    land = _roles(mats, "vegetation", "soil") or tuple(range(len(mats)))
    water, built, soil = _roles(mats, "water"), _roles(mats, "built"), _roles(mats, "soil")
    size = float(max(scene.height, scene.width))
    rng = np.random.default_rng([scene.seed, 0x5CE7E])  # the layout does not depend on the bands
    draw = functools.partial(_draw_field, rng)
    nl = len(land)
    land_coarse = tuple(draw(16, size, 24.0, 0.5) for _ in range(nl))
    textures = tuple(draw(20, 64.0, 3.0, 0.0) for _ in range(2))
    fields = {
        "natural": draw(10, size, size / 8.0, 1.0),
        "agri": draw(6, size, size / 4.0, 1.0),
        "warp": draw(4, size, size / 2.0, 1.0),
        "town": draw(6, size, size / 4.0, 1.0),
        "roof": draw(8, 64.0, 8.0, 0.0),
        "lake": draw(12, size, size / 16.0, 1.0),
        "river": draw(8, size, size / 8.0, 1.0),
        "turbidity": draw(6, size / 2.0, 16.0, 0.5),
        "tracks": draw(8, 512.0, 96.0, 1.0),
        "roads": draw(8, size, size / 6.0, 1.0),
        "shading": draw(24, size, 3.0, 0.5),
    }
    stripes = []
    for _ in range(3):
        theta, period = rng.uniform(0.0, math.pi), rng.uniform(40.0, 160.0)
        stripes.append((math.cos(theta) / period, math.sin(theta) / period, rng.uniform(0.0, _TWO_PI), period))
    lattice_theta = rng.uniform(0.0, math.pi / 2.0)
    px, py = rng.uniform(6.0, 10.0, size=2)
    lattice = ((math.cos(lattice_theta) / px, math.sin(lattice_theta) / px, rng.uniform(0.0, _TWO_PI), px),
               (-math.sin(lattice_theta) / py, math.cos(lattice_theta) / py, rng.uniform(0.0, _TWO_PI), py))
    params = {
        "tex_weights": rng.normal(0.0, 0.6, size=(nl, 2)),
        "natural_beta": rng.normal(0.0, 2.5, size=nl),
        "parcel_beta": rng.normal(0.0, 3.0, size=(nl, 3)),
        "stripes": tuple(stripes),
        "lattice": lattice,
        "lake_level": NormalDist().inv_cdf(1.0 - scene.water_fraction) if scene.water_fraction > 0 else None,
        "eps": scene.edge_px / _TEN_NINETY,
    }
    return _Plan(scene, spectra, land, water, built, soil, fields, land_coarse, textures, params)


def _single_cosine(u: float, v: float, phase: float, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column angle parts of ``2 pi (u x + v y) + phase`` (float64), to be added per pixel."""
    return (_angles(np.array([v]), ys, np.array([phase]))[0], _angles(np.array([u]), xs)[0])


def _components(plan: _Plan, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Abundances ``(K, h, w)`` and shading ``(h, w)``, float32, at the pixels ``ys x xs`` (global indices)."""
    ys = np.asarray(ys, dtype=np.float64)
    xs = np.asarray(xs, dtype=np.float64)
    h, w = ys.size, xs.size
    p, f, sc = plan.params, plan.fields, plan.scene
    K = plan.spectra.shape[0]
    eps = _F32(p["eps"])
    grids = {name: _FieldGrid(fld, ys, xs, grad=name in ("natural", "river", "tracks", "roads", "lake"))
             for name, fld in f.items()}
    coarse = [_FieldGrid(fld, ys, xs) for fld in plan.land_coarse]
    tex = [_FieldGrid(fld, ys, xs) for fld in plan.textures]
    stripes = [_single_cosine(u, v, ph, ys, xs) for u, v, ph, _ in p["stripes"]]
    lattice = [_single_cosine(u, v, ph, ys, xs) for u, v, ph, _ in p["lattice"]]
    tw = p["tex_weights"].astype(_F32)
    nat_beta = p["natural_beta"].astype(_F32)
    parcel_beta = p["parcel_beta"].astype(_F32)

    abund = np.empty((K, h, w), dtype=_F32)
    shading = np.empty((h, w), dtype=_F32)
    rows = max(8, 16384 // max(w, 1))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        tmp = np.empty((r1 - r0, w), dtype=_F32)
        a = abund[:, r0:r1]
        layer = np.zeros_like(a)

        # land cover: softmax of coarse fields + shared textures + sharp natural and parcel edges
        t_vals = [g.value(r0, r1, tmp) for g in tex]
        step_nat = _sigmoid(grids["natural"].distance(r0, r1, tmp) / eps)
        agri = _sigmoid((grids["agri"].value(r0, r1, tmp) - _F32(0.3)) / _F32(0.15))
        warp = grids["warp"].value(r0, r1, tmp)
        parcel = []
        for (ang_y, ang_x), (_, _, _, period) in zip(stripes, p["stripes"]):
            q = np.cos((ang_y[r0:r1, None] + ang_x[None, :]).astype(_F32) + warp)
            parcel.append(_sigmoid(q * _F32(period / _TWO_PI) / eps))
        logits = []
        for i, g in enumerate(coarse):
            lg = g.value(r0, r1, tmp)
            for m, tv in enumerate(t_vals):
                lg += tw[i, m] * tv
            lg *= _F32(2.0)
            lg += nat_beta[i] * step_nat
            par = np.zeros_like(lg)
            for pi, st in enumerate(parcel):
                par += parcel_beta[i, pi] * st
            lg += agri * par
            logits.append(lg)
        _softmax_into(logits, plan.land, a)

        # town: buildings on a rotated lattice inside a soft zone, roofs of the built materials
        if plan.built:
            zone = _sigmoid((grids["town"].value(r0, r1, tmp) - _F32(1.4)) / _F32(0.1))
            roof = np.ones_like(zone)
            c = 0.2
            for (ang_y, ang_x), (_, _, _, period) in zip(lattice, p["lattice"]):
                q = np.cos((ang_y[r0:r1, None] + ang_x[None, :]).astype(_F32))
                roof *= _sigmoid((q - _F32(c)) * _F32(period / (_TWO_PI * math.sqrt(1 - c * c))) / eps)
            roof *= zone
            _softmax_into(_ordinal_logits(grids["roof"].value(r0, r1, tmp), len(plan.built), 4.0), plan.built,
                          layer)
            _paint(a, roof, layer, plan.built)

        # farm tracks: 1 px lines of soil in the agricultural zone
        if plan.soil:
            d = np.abs(grids["tracks"].distance(r0, r1, tmp))
            track = _sigmoid((_F32(0.5) - d) / eps) * agri
            layer[...] = 0.0
            layer[plan.soil[-1]] = 1.0
            _paint(a, track, layer, plan.soil[-1:])

        # lakes and rivers, water of the water materials mixed by turbidity
        if plan.water:
            river = _sigmoid((_F32(2.5) - np.abs(grids["river"].distance(r0, r1, tmp))) / eps)
            if p["lake_level"] is not None:
                lake = _sigmoid(grids["lake"].distance(r0, r1, tmp, p["lake_level"]) / eps)
                wet = _F32(1.0) - (_F32(1.0) - lake) * (_F32(1.0) - river)
            else:
                wet = river
            _softmax_into(_ordinal_logits(grids["turbidity"].value(r0, r1, tmp), len(plan.water), 2.0), plan.water,
                          layer)
            _paint(a, wet, layer, plan.water)

        # roads: 2 px bands along a zero set, of the first built material (bridges over water)
        if plan.built:
            road = _sigmoid((_F32(1.0) - np.abs(grids["roads"].distance(r0, r1, tmp))) / eps)
            layer[...] = 0.0
            layer[plan.built[0]] = 1.0
            _paint(a, road, layer, plan.built[:1])

        s = _sigmoid(grids["shading"].value(r0, r1, tmp) * _F32(1.5))
        s *= _F32(1.0 - sc.shading_min)
        s += _F32(sc.shading_min)
        shading[r0:r1] = s
    return abund, shading


def _mixture(plan: _Plan, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``M_k = s a_k``: ``(K, h, w)`` float32."""
    a, s = _components(plan, ys, xs)
    a *= s[None]
    return a


def _mix_exact(m: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    """``Z[b] = sum_k M_k e_k[b]`` in float32, element-wise in the order k (the same bits for every window)."""
    e = spectra.astype(_F32)
    K, h, w = m.shape
    B = e.shape[1]
    out = np.empty((B, h, w), dtype=_F32)
    rows = max(1, 4096 // max(w, 1))
    tmp = np.empty((B, min(rows, h), w), dtype=_F32)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        o, t = out[:, r0:r1], tmp[:, : r1 - r0]
        np.multiply(e[0][:, None, None], m[0, None, r0:r1], out=o)
        for k in range(1, K):
            np.multiply(e[k][:, None, None], m[k, None, r0:r1], out=t)
            np.add(o, t, out=o)
    return out


# --------------------------------------------------------------------------------------------------------
# Public window functions
# --------------------------------------------------------------------------------------------------------


def _check_window(y0: int, y1: int, x0: int, x1: int) -> tuple[int, int, int, int]:
    vals = []
    for name, v in (("y0", y0), ("y1", y1), ("x0", x0), ("x1", x1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise InputError(f"{name} must be an integer pixel index, got {v!r}")
        vals.append(int(v))
    if vals[1] <= vals[0] or vals[3] <= vals[2]:
        raise InputError(f"empty window: need y0 < y1 and x0 < x1, got y {vals[0]}:{vals[1]}, x {vals[2]}:{vals[3]}")
    return vals[0], vals[1], vals[2], vals[3]


def scene_spectra(scene: LargeScene) -> tuple[np.ndarray, tuple[str, ...]]:
    """The endmembers ``e_k`` on the scene's bands: ``(K, B)`` float64 reflectances, and the material names."""
    return _plan(scene).spectra, scene.materials


def abundance_window(scene: LargeScene, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    """Abundances ``(K, y1-y0, x1-x0)`` (non-negative, summing to one) and shading ``(y1-y0, x1-x0)``, float32.

    The window may extend beyond the scene (negative indices included): the formula is defined everywhere.
    """
    y0, y1, x0, x1 = _check_window(y0, y1, x0, x1)
    return _components(_plan(scene), np.arange(y0, y1), np.arange(x0, x1))


def reference_window(scene: LargeScene, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The reference ``Z`` on rows ``y0:y1`` and columns ``x0:x1``: ``(B, y1-y0, x1-x0)`` float32.

    ``Z[b] = sum_k (s a_k) e_k[b]``, computed element-wise in a fixed order, so overlapping windows agree bit
    for bit. The window may extend beyond the scene (the halo of a blur, for instance).
    """
    y0, y1, x0, x1 = _check_window(y0, y1, x0, x1)
    plan = _plan(scene)
    return _mix_exact(_mixture(plan, np.arange(y0, y1), np.arange(x0, x1)), plan.spectra)


# --------------------------------------------------------------------------------------------------------
# The lazy pair
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _PairPlan:
    scene: LargeScene
    ratio: int
    chunk: int
    psf: np.ndarray  # (k, k) float64, convolution kernel (centre k // 2)
    offset: int
    srf: np.ndarray  # (m, B) float64, rows sum to one
    band_names: tuple[str, ...]
    snr_db: tuple[float | None, float | None]
    noise_seed: int
    token: str

    def __repr__(self) -> str:  # short: it is embedded in every task of the graph
        return f"_PairPlan(token={self.token!r}, ratio={self.ratio}, chunk={self.chunk}, bands={self.band_names})"

    @property
    def halo(self) -> tuple[int, int]:
        """HR rows needed before / after an LR chunk's footprint: ``k - 1 - c - offset`` and ``c + 1 - r + offset``."""
        k = self.psf.shape[0]
        c = k // 2
        return (k - 1 - c) - self.offset, c + 1 - self.ratio + self.offset

    def hr_span(self, i: int, size: int) -> tuple[int, int]:
        start = i * self.chunk
        return start, min(size, start + self.chunk)

    def window(self, i: int, size: int) -> tuple[int, int, int, int]:
        """``(window start, window end, product start, product end)`` along one axis, HR pixels."""
        a, b = self.hr_span(i, size)
        before, after = self.halo
        return min(a, a - before), max(b, b + after), a, b


def _footprint_block(pp: _PairPlan, block_id: tuple[int, int, int] | None = None) -> np.ndarray:
    _, i, j = block_id  # type: ignore[misc]
    ya, yb, _, _ = pp.window(i, pp.scene.height)
    xa, xb, _, _ = pp.window(j, pp.scene.width)
    return _mixture(_plan(pp.scene), np.arange(ya, yb), np.arange(xa, xb))


def _inner(pp: _PairPlan, m: np.ndarray, i: int, j: int) -> np.ndarray:
    ya, _, y0, y1 = pp.window(i, pp.scene.height)
    xa, _, x0, x1 = pp.window(j, pp.scene.width)
    return m[:, y0 - ya: y1 - ya, x0 - xa: x1 - xa]


_NOISE_LOCK = threading.Lock()
_NOISE_SIGMA: dict[str, tuple[float, float]] = {}


def _blur_decimate_window(m: np.ndarray, psf: np.ndarray, ratio: int, rows: int, cols: int) -> np.ndarray:
    """Valid strided convolution: ``out[:, p, q] = sum_{t,u} psf[k-1-t, k-1-u] m[:, r p + t, r q + u]`` (float64)."""
    k = psf.shape[0]
    flipped = psf[::-1, ::-1]
    out = np.zeros((m.shape[0], rows, cols), dtype=np.float64)
    for t in range(k):
        for u in range(k):
            out += flipped[t, u] * m[:, t: t + ratio * (rows - 1) + 1: ratio, u: u + ratio * (cols - 1) + 1: ratio]
    return out


def _noise_sigmas(pp: _PairPlan) -> tuple[float, float]:
    """Noise std of the HSI and MSI for ``pp.snr_db`` (``SNR = 10 log10(mean(x^2) / sigma^2)`` per image).

    ``mean(x^2)`` is measured on a regular grid of up to 64 x 64 LR pixels of the noise-free LR HSI (exact
    values, each from its own halo window) and on all the HR pixels of those windows for the MSI.
    """
    with _NOISE_LOCK:
        if pp.token in _NOISE_SIGMA:
            return _NOISE_SIGMA[pp.token]
        sc, r, k = pp.scene, pp.ratio, pp.psf.shape[0]
        before = k - 1 - k // 2
        picks = []
        for size in (sc.height // r, sc.width // r):
            idx = np.unique(np.linspace(0, size - 1, min(64, size)).round().astype(int))
            picks.append(idx)
        taps = np.arange(k)
        ys = (r * picks[0][:, None] + pp.offset - before + taps[None, :]).ravel()
        xs = (r * picks[1][:, None] + pp.offset - before + taps[None, :]).ravel()
        plan = _plan(sc)
        m = _mixture(plan, ys, xs).astype(np.float64)
        K = m.shape[0]
        blocks = m.reshape(K, picks[0].size, k, picks[1].size, k)
        lr = np.einsum("tu,kitju->kij", pp.psf[::-1, ::-1], blocks)
        hsi = np.tensordot(plan.spectra, lr, axes=(0, 0))
        msi = np.tensordot(pp.srf @ plan.spectra.T, m, axes=(1, 0))
        out = []
        for x, snr in zip((hsi, msi), pp.snr_db):
            out.append(0.0 if snr is None else math.sqrt(float(np.mean(x * x)) / 10.0 ** (float(snr) / 10.0)))
        _NOISE_SIGMA[pp.token] = (out[0], out[1])
        return out[0], out[1]


def _add_noise(pp: _PairPlan, x: np.ndarray, branch: int, i: int, j: int) -> np.ndarray:
    if pp.snr_db[branch] is None:
        return x
    sigma = _noise_sigmas(pp)[branch]
    rng = np.random.default_rng([pp.noise_seed, branch, i, j])
    return x + sigma * rng.standard_normal(x.shape)


_PROGRESS_LOCK = threading.Lock()
_PROGRESS: dict[str, list[int]] = {}  # pair token -> [chunks done], while write_large_pair reports progress


def _tick(pp: _PairPlan) -> None:
    """Count one finished product chunk for :func:`write_large_pair` (no-op when nobody is listening)."""
    with _PROGRESS_LOCK:
        counter = _PROGRESS.get(pp.token)
        if counter is not None:
            counter[0] += 1


def _hsi_block(m: np.ndarray, pp: _PairPlan, block_id: tuple[int, int, int] | None = None) -> np.ndarray:
    _, i, j = block_id  # type: ignore[misc]
    r = pp.ratio
    ya, _, y0, y1 = pp.window(i, pp.scene.height)
    xa, _, x0, x1 = pp.window(j, pp.scene.width)
    before, _ = pp.halo
    # LR pixel p of this chunk uses window rows r p + t, t in [0, k), starting at y0 - before
    m = m[:, y0 - before - ya:, x0 - before - xa:]
    lr = _blur_decimate_window(m, pp.psf, r, (y1 - y0) // r, (x1 - x0) // r)
    spectra = _plan(pp.scene).spectra
    hsi = np.tensordot(spectra, lr, axes=(0, 0))  # (B, n, m)
    out = _add_noise(pp, hsi, 0, i, j).astype(_F32)
    _tick(pp)
    return out


def _msi_block(m: np.ndarray, pp: _PairPlan, block_id: tuple[int, int, int] | None = None) -> np.ndarray:
    _, i, j = block_id  # type: ignore[misc]
    inner = _inner(pp, m, i, j).astype(np.float64)
    weights = pp.srf @ _plan(pp.scene).spectra.T  # (m, K)
    msi = np.tensordot(weights, inner, axes=(1, 0))
    out = _add_noise(pp, msi, 1, i, j).astype(_F32)
    _tick(pp)
    return out


def _reference_block(m: np.ndarray, pp: _PairPlan, block_id: tuple[int, int, int] | None = None) -> np.ndarray:
    _, i, j = block_id  # type: ignore[misc]
    out = _mix_exact(_inner(pp, m, i, j), _plan(pp.scene).spectra)
    _tick(pp)
    return out


def _chunks(size: int, step: int) -> tuple[int, ...]:
    full, rest = divmod(size, step)
    return (step,) * full + ((rest,) if rest else ())


def _fwhm_of_curves(wl: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """Full width at half maximum of each response column (first to last half-maximum crossing, interpolated)."""
    out = np.empty(resp.shape[1])
    for b in range(resp.shape[1]):
        f = resp[:, b] / resp[:, b].max()
        above = np.nonzero(f >= 0.5)[0]
        lo, hi = above[0], above[-1]
        left = wl[lo] if lo == 0 else np.interp(0.5, [f[lo - 1], f[lo]], [wl[lo - 1], wl[lo]])
        right = wl[hi] if hi == wl.size - 1 else np.interp(0.5, [f[hi + 1], f[hi]], [wl[hi + 1], wl[hi]])
        out[b] = right - left
    return out


def large_pair(
    scene: LargeScene,
    *,
    ratio: int = 4,
    msi: str = "sentinel2a",
    msi_bands: Sequence[str] | None = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A"),
    chunk: int = 512,
    psf_fwhm: float | None = None,
    psf_size: int | None = None,
    snr_db: float | tuple[float | None, float | None] | None = None,
    seed: int | None = None,
    crs: str = "EPSG:32633",
    origin_m: tuple[float, float] = (300000.0, 5100000.0),
    msi_gsd_m: float = 10.0,
) -> tuple[Any, Any, Any]:
    """The simulated pair of ``scene``, lazily: ``(hsi_lr, msi_hr, reference)`` dask-backed xarray DataArrays.

    * ``reference``: ``Z`` ``(B, H, W)`` float32, chunks ``(B, chunk, chunk)``.
    * ``hsi_lr``: ``S(B * Z)`` ``(B, H/r, W/r)`` float32, chunks ``(B, chunk/r, chunk/r)``: Gaussian PSF of FWHM
      ``psf_fwhm`` (default ``r``) pixels on a ``psf_size`` (default ``2r + 1``) square support, convolution
      with kernel centre ``k // 2``, decimation keeping rows/columns ``(r-1)//2 + r i`` (hsfuse's conventions,
      :mod:`hsfuse.physics.spatial`). Each LR chunk is a *valid* convolution of the infinite scene: its halo
      of HR pixels comes from the closed form, so there is no boundary artefact anywhere.
    * ``msi_hr``: ``R Z`` ``(m, H, W)`` float32, chunks ``(m, chunk, chunk)``, ``R`` the sensor's SRF resampled
      on the HSI bands by :func:`hsfuse.physics.srf_library.srf_matrix` (``interp``, rows summing to one).

    Dims ``("band", "y", "x")``; coordinate ``band`` = wavelengths in nm (float64; for the MSI the SRF-weighted
    mean wavelength of each band), ``fwhm`` on the band dim (nm; for the MSI the width at half maximum of the
    sensor's curve), ``band_name`` on the MSI, ``x``/``y`` pixel-centre coordinates in metres, and
    ``attrs["wavelength_units"] = "nm"``. Georeferencing (rioxarray ``write_crs``/``write_transform``): ``crs``,
    MSI (and reference) pixels of ``msi_gsd_m`` with the top-left corner at ``origin_m``, HSI pixels of ``r``
    times that, placed as :func:`hsfuse.data.simulation.simulate` places them (each LR pixel centred on the
    centre of its PSF).

    Optional Gaussian noise: ``snr_db`` (one value for both images, or ``(hsi, msi)``; ``None`` = none), with
    ``SNR = 10 log10(mean(x^2) / sigma^2)`` per image, ``mean(x^2)`` measured on a 64 x 64 grid of pixels; the
    noise of chunk ``(i, j)`` is drawn from ``default_rng([seed, branch, i, j])`` (``seed`` default the scene's),
    so it is deterministic and independent of the order chunks are computed in.

    Graph: per chunk one shared task evaluates ``s a_k`` on the chunk's HR window plus halo, and one task per
    product (HSI, MSI, reference) derives its chunk from it: each array's graph has two tasks per chunk, and
    computing several products together shares the first. Nothing is computed here. ``attrs`` record the
    generation settings and ``pair_id``, a hash of them.

    Example:
        >>> hsi, msi, ref = large_pair(LargeScene(height=64, width=64), chunk=32)
        >>> hsi.shape, msi.shape, hsi.chunks
        ((200, 16, 16), (8, 64, 64), ((200,), (8, 8), (8, 8)))
    """
    import dask.array as da
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr
    from affine import Affine

    from ..physics.spatial import gaussian_psf
    from ..physics.srf_library import get_sensor, srf_matrix

    if not isinstance(scene, LargeScene):
        raise InputError(f"scene must be a LargeScene, got {type(scene).__name__}")
    r = check_ratio(ratio)
    chunk = check_positive_int(chunk, "chunk")
    if chunk % r:
        raise InputError(f"chunk={chunk} must be a multiple of the ratio {r} (LR chunks are chunk / ratio)")
    if scene.height % r or scene.width % r:
        raise InputError(f"the scene's {scene.height}x{scene.width} pixels are not a multiple of the ratio {r}")
    fwhm_px = float(r if psf_fwhm is None else psf_fwhm)
    if not (math.isfinite(fwhm_px) and fwhm_px > 0):
        raise InputError(f"psf_fwhm must be a positive number of HR pixels, got {psf_fwhm!r}")
    k = check_positive_int(2 * r + 1 if psf_size is None else psf_size, "psf_size")
    psf = gaussian_psf(k, fwhm=fwhm_px).numpy().astype(np.float64)
    offset = (r - 1) // 2
    if isinstance(snr_db, (tuple, list)):
        if len(snr_db) != 2:
            raise InputError(f"snr_db must be a number, None or (hsi_db, msi_db), got {snr_db!r}")
        snrs = tuple(snr_db)
    else:
        snrs = (snr_db, snr_db)
    for s in snrs:
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s)):
            raise InputError(f"snr_db values must be finite numbers of dB or None, got {snr_db!r}")
    noise_seed = scene.seed if seed is None else check_positive_int(seed, "seed", minimum=0)
    wl = np.asarray(scene.wavelengths_nm)
    fwhm = np.asarray(scene.fwhm_nm)
    srf, names = srf_matrix(msi, wl, hsi_fwhm=fwhm, bands=None if msi_bands is None else list(msi_bands))
    sensor = get_sensor(msi)
    sensor = sensor.select(names)
    msi_fwhm = _fwhm_of_curves(sensor.wavelengths_nm, sensor.responses)
    msi_centres = srf @ wl

    key = repr((scene, r, chunk, fwhm_px, k, offset, srf.round(15).tobytes().hex(), tuple(names), snrs, noise_seed))
    token = hashlib.sha1(key.encode()).hexdigest()[:16]
    pp = _PairPlan(scene, r, chunk, psf, offset, srf, tuple(names), (snrs[0], snrs[1]), noise_seed, token)

    H, W, B, K = scene.height, scene.width, scene.bands, scene.n_materials
    nby, nbx = -(-H // chunk), -(-W // chunk)
    fp_rows = tuple(pp.window(i, H)[1] - pp.window(i, H)[0] for i in range(nby))
    fp_cols = tuple(pp.window(j, W)[1] - pp.window(j, W)[0] for j in range(nbx))
    hr_rows, hr_cols = _chunks(H, chunk), _chunks(W, chunk)
    lr_rows, lr_cols = tuple(c // r for c in hr_rows), tuple(c // r for c in hr_cols)
    meta = np.empty((0, 0, 0), dtype=_F32)
    footprint = da.map_blocks(_footprint_block, pp, chunks=((K,), fp_rows, fp_cols), dtype=_F32, meta=meta,
                              name=f"large-scene-footprint-{token}")
    hsi = footprint.map_blocks(_hsi_block, pp, chunks=((B,), lr_rows, lr_cols), dtype=_F32, meta=meta,
                               name=f"large-scene-hsi-{token}")
    msi_arr = footprint.map_blocks(_msi_block, pp, chunks=((len(names),), hr_rows, hr_cols), dtype=_F32,
                                   meta=meta, name=f"large-scene-msi-{token}")
    ref = footprint.map_blocks(_reference_block, pp, chunks=((B,), hr_rows, hr_cols), dtype=_F32, meta=meta,
                               name=f"large-scene-reference-{token}")

    x0, y0 = float(origin_m[0]), float(origin_m[1])
    g = float(msi_gsd_m)
    hr_transform = Affine(g, 0.0, x0, 0.0, -g, y0)
    o = offset + (k // 2 - (k - 1) / 2.0) + 0.5 - r / 2.0  # LR pixel (0, 0) corner, in HR pixels
    lr_transform = Affine(g * r, 0.0, x0 + g * o, 0.0, -g * r, y0 - g * o)
    attrs = {
        "wavelength_units": "nm",
        "generator": "hsfuse.data.large_scene",
        "scene_seed": scene.seed,
        "materials": list(scene.materials),
        "ratio": r,
        "psf": f"gaussian fwhm={fwhm_px:g} px size={k} centre={k // 2}",
        "decimation_offset": offset,
        "msi_sensor": str(msi),
        "snr_db": [-1.0 if s is None else float(s) for s in snrs],
        "noise_seed": noise_seed,
        "pair_id": token,
    }

    def wrap(data: Any, transform: Any, rows: int, cols: int, centres: np.ndarray, widths: np.ndarray,
             what: str, extra: dict[str, Any]) -> Any:
        coords = {
            "band": ("band", centres.astype(np.float64), {"units": "nm", "long_name": "band centre wavelength"}),
            "fwhm": ("band", widths.astype(np.float64), {"units": "nm", "long_name": "full width at half maximum"}),
            "y": ("y", transform.f + transform.e * (np.arange(rows) + 0.5), {"units": "m"}),
            "x": ("x", transform.c + transform.a * (np.arange(cols) + 0.5), {"units": "m"}),
            **extra,
        }
        arr = xr.DataArray(data, dims=("band", "y", "x"), coords=coords, name=what,
                           attrs={**attrs, "long_name": what})
        return arr.rio.write_crs(crs).rio.write_transform(transform)

    hsi_x = wrap(hsi, lr_transform, H // r, W // r, wl, fwhm, "hsi", {})
    msi_x = wrap(msi_arr, hr_transform, H, W, msi_centres, msi_fwhm, "msi",
                 {"band_name": ("band", np.asarray(names, dtype=str))})
    ref_x = wrap(ref, hr_transform, H, W, wl, fwhm, "reference", {})
    return hsi_x, msi_x, ref_x


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def _is_zarr_store(folder: Path) -> Callable[[Path], bool]:
    is_store = (folder / "zarr.json").exists() or (folder / ".zgroup").exists()
    return lambda entry: is_store


def write_large_pair(
    folder: str | os.PathLike[str],
    scene: LargeScene,
    *,
    with_reference: bool = False,
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    num_workers: int | None = None,
    **large_pair_kwargs: Any,
) -> dict[str, Path]:
    """Write the pair of ``scene`` as ``hsi.zarr``, ``msi.zarr`` (and ``reference.zarr``) in ``folder``.

    One dask computation writes every store chunk by chunk (``to_zarr``; zarr chunks = the dask chunks; the
    footprint task of a chunk is shared by its products), so memory stays bounded by a few chunks per worker
    whatever the scene size. Each store is written under a temporary name and renamed when complete
    (:func:`hsfuse.io.atomic.atomic_output_dir`); an existing store is replaced only with ``overwrite=True``.
    ``progress(done, total)`` is called (from the calling thread) as product chunks finish, ``total`` being the
    number of chunks of all the products written. ``large_pair_kwargs`` go to :func:`large_pair`;
    ``num_workers`` to dask's threaded scheduler (default: one per core).

    Stores are zarr format 3 without consolidated metadata (open them with ``xarray.open_zarr(path,
    consolidated=False)``, ``decode_coords="all"`` to get ``spatial_ref`` back as a coordinate); ``band_name`` is
    stored as variable-length strings.

    Returns:
        ``{"hsi": path, "msi": path[, "reference": path]}``.
    """
    import dask
    from dask.callbacks import Callback

    from ..io.atomic import atomic_output_dir

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; create it first")
    hsi, msi, ref = large_pair(scene, **large_pair_kwargs)
    products = {"hsi": hsi, "msi": msi}
    if with_reference:
        products["reference"] = ref
    total = sum(arr.data.npartitions for arr in products.values())
    token = hsi.attrs["pair_id"]
    report = reporter(progress)

    class _Report(Callback):
        shown = 0

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            with _PROGRESS_LOCK:
                done = min(_PROGRESS.get(token, [0])[0], total)
            if done > self.shown:
                self.shown = done
                report(done, total)

    paths: dict[str, Path] = {}
    with ExitStack() as stack:
        writes = []
        for what, arr in products.items():
            target = root / f"{what}.zarr"
            tmp = stack.enter_context(atomic_output_dir(target, overwrite=overwrite,
                                                        replaceable=_is_zarr_store(target)))
            ds = arr.to_dataset(name=what)
            if "band_name" in ds.coords:
                ds = ds.assign_coords(band_name=("band", np.asarray(ds["band_name"].values, dtype=object)))
            writes.append(ds.to_zarr(tmp, mode="w", compute=False, consolidated=False))
            paths[what] = target
        with _PROGRESS_LOCK:
            if token in _PROGRESS:
                raise InputError("this pair is already being written by another call; wait for it to finish")
            _PROGRESS[token] = [0]
        try:
            with _Report():
                dask.compute(*writes, scheduler="threads", num_workers=num_workers)
            report(total, total)
        finally:
            with _PROGRESS_LOCK:
                _PROGRESS.pop(token, None)
    return paths
