"""Synthetic hyperspectral scenes built from real reflectance spectra, with no downloaded data.

Every scene follows the linear mixing model with a per-pixel shading factor::

    Z(x, lambda) = s(x) * sum_k a_k(x) e_k(lambda),    a_k(x) >= 0,  sum_k a_k(x) = 1,  0 < s(x) <= 1

* ``e_k``: measured reflectance spectra of real materials shipped by ``colour-science`` (the
  ColorChecker patches measured by N. Ohta, by default), linearly interpolated onto the requested
  wavelengths (CAVE-like 400:10:700 nm, 31 bands, by default).
* ``a_k``: abundance maps drawn from a spatial layout (piecewise-constant regions with anti-aliased
  edges, textures, smooth mixtures, or a composite of the three); they sum to one at every pixel.
* ``s``: a smooth illumination field (mild, ``1 - illumination_variation <= s <= 1``) times, in textured
  areas, a fine brightness texture.

Because the spectra, abundances and shading are returned separately by :func:`synthetic_components`,
a pure pixel (``a_k = 1``) is exactly ``s(x) * e_k``: tests and unmixing methods can check against the
known ground truth. Everything is deterministic given ``seed`` (NumPy ``default_rng``).

Layout: :class:`~hsfuse.types.Cube` data ``H x W x B`` float32 reflectance in ``[0, 1]``.

Example:
    >>> from hsfuse.data.synthetic import synthetic_scene
    >>> cube = synthetic_scene(height=32, width=32, seed=1)
    >>> cube.shape, float(cube.wavelengths[0]), float(cube.wavelengths[-1])
    ((32, 32, 31), 400.0, 700.0)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._checks import check_positive_int
from ..errors import InputError, MissingDependencyError
from ..types import Cube

__all__ = [
    "LIBRARIES",
    "LAYOUTS",
    "SCENES",
    "SpectralLibrary",
    "SceneComponents",
    "spectral_library",
    "synthetic_components",
    "synthetic_scene",
    "scene_names",
    "named_scene",
]

LayoutName = Literal["regions", "textures", "mixture", "composite"]
LibraryName = Literal["colorchecker_ohta", "colorchecker_babel", "cie_tcs"]

LAYOUTS: tuple[str, ...] = ("regions", "textures", "mixture", "composite")

#: Reflectance libraries shipped by colour-science: name -> (where it lives in colour, citation).
LIBRARIES: dict[str, tuple[str, str]] = {
    "colorchecker_ohta": (
        "colour.SDS_COLOURCHECKERS['ColorChecker N Ohta']",
        "X-Rite/Macbeth ColorChecker, 24 patches measured by N. Ohta, 380-780 nm at 5 nm "
        "(Ohta, 'The Basis of Color Reproduction Engineering', Corona-sha, 1997; via colour-science)",
    ),
    "colorchecker_babel": (
        "colour.SDS_COLOURCHECKERS['BabelColor Average']",
        "ColorChecker, 24 patches, average of 30 charts by D. Pascale (BabelColor, 'RGB coordinates of "
        "the Macbeth ColorChecker', 2006), 380-730 nm at 10 nm (via colour-science)",
    ),
    "cie_tcs": (
        "colour.quality.datasets.SDS_TCS['CIE 1995']",
        "CIE 13.3-1995 colour rendering test colour samples TCS01-TCS14 (Munsell samples), 360-830 nm at "
        "5 nm (via colour-science)",
    ),
}

DEFAULT_WAVELENGTHS = np.arange(400.0, 701.0, 10.0)


# --------------------------------------------------------------------------------------------------------
# Spectral library
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpectralLibrary:
    """Tabulated reflectance spectra of named materials.

    Attributes:
        name: key in :data:`LIBRARIES`.
        wavelengths: ``(n,)`` tabulation wavelengths in nm, strictly increasing.
        spectra: ``(K, n)`` reflectances in ``[0, 1]``, one row per material.
        material_names: ``K`` names.
        source: citation of the measurements.
    """

    name: str
    wavelengths: np.ndarray
    spectra: np.ndarray
    material_names: tuple[str, ...]
    source: str

    def resample(self, wavelengths_nm: Any) -> np.ndarray:
        """Spectra linearly interpolated onto ``wavelengths_nm``: ``(K, L)`` float64.

        ``e_k(lambda) = interp(lambda; wavelengths, spectra[k])`` (``numpy.interp``). Raises
        :class:`InputError` for wavelengths outside the tabulated range (no extrapolation).
        """
        wl = _check_wavelengths(wavelengths_nm, self)
        return np.stack([np.interp(wl, self.wavelengths, s) for s in self.spectra])


@functools.lru_cache(maxsize=None)
def _load_library(name: str) -> SpectralLibrary:
    try:
        import colour
    except ImportError as exc:  # pragma: no cover - colour-science is a declared dependency
        raise MissingDependencyError(
            "synthetic scenes take their spectra from colour-science; install it with "
            "`pip install colour-science`"
        ) from exc
    if name == "colorchecker_ohta":
        sds = colour.SDS_COLOURCHECKERS["ColorChecker N Ohta"]
    elif name == "colorchecker_babel":
        sds = colour.SDS_COLOURCHECKERS["BabelColor Average"]
    else:  # cie_tcs
        from colour.quality.datasets import SDS_TCS

        sds = SDS_TCS["CIE 1995"]
    names = tuple(str(k) for k in sds.keys())
    first = sds[names[0]]
    wl = np.asarray(first.wavelengths, dtype=np.float64)
    rows = []
    for key in names:
        sd = sds[key]
        if not np.array_equal(np.asarray(sd.wavelengths, dtype=np.float64), wl):  # pragma: no cover
            raise InputError(f"library {name!r}: spectra are not tabulated on one wavelength grid")
        rows.append(np.asarray(sd.values, dtype=np.float64))
    spectra = np.stack(rows)
    wl.setflags(write=False)
    spectra.setflags(write=False)
    return SpectralLibrary(name, wl, spectra, names, LIBRARIES[name][1])


def spectral_library(name: LibraryName = "colorchecker_ohta") -> SpectralLibrary:
    """Real reflectance spectra shipped by ``colour-science``, as a :class:`SpectralLibrary`.

    Libraries (see :data:`LIBRARIES` for citations): ``"colorchecker_ohta"`` (24 ColorChecker patches,
    N. Ohta 1997, 380-780 nm / 5 nm; the default), ``"colorchecker_babel"`` (BabelColor average,
    380-730 nm / 10 nm), ``"cie_tcs"`` (CIE 13.3-1995 test colour samples, 360-830 nm / 5 nm).
    The first call imports colour-science (a few seconds); results are cached and read-only.

    Example:
        >>> lib = spectral_library()
        >>> lib.spectra.shape, lib.material_names[3]
        ((24, 81), 'foliage')
    """
    if name not in LIBRARIES:
        raise InputError(f"unknown spectral library {name!r}; choose one of {sorted(LIBRARIES)}")
    return _load_library(name)


# --------------------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------------------


def _check_wavelengths(wavelengths_nm: Any, lib: SpectralLibrary) -> np.ndarray:
    try:
        wl = np.asarray(wavelengths_nm, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"wavelengths_nm must be a 1-D sequence of numbers in nm, got {wavelengths_nm!r}") from None
    if wl.size == 0:
        raise InputError("wavelengths_nm is empty; give at least one band centre in nm")
    if not np.all(np.isfinite(wl)):
        raise InputError("wavelengths_nm contains NaN or inf")
    if wl.size > 1 and np.any(np.diff(wl) <= 0):
        raise InputError("wavelengths_nm must be strictly increasing (band centres in nm)")
    lo, hi = float(lib.wavelengths[0]), float(lib.wavelengths[-1])
    if wl[0] < lo or wl[-1] > hi:
        raise InputError(
            f"wavelengths_nm spans {wl[0]:g}-{wl[-1]:g} nm but library {lib.name!r} covers only {lo:g}-{hi:g} nm; "
            f"request band centres inside that range (or pick another library: {sorted(LIBRARIES)})"
        )
    return wl


# --------------------------------------------------------------------------------------------------------
# Spatial building blocks (all float64, (H, W) or (count, H, W))
# --------------------------------------------------------------------------------------------------------


def _smooth_fields(rng: np.random.Generator, count: int, height: int, width: int, sigma_px: float) -> np.ndarray:
    """``count`` periodic Gaussian random fields, zero mean and unit standard deviation each.

    White noise filtered with a Gaussian of standard deviation ``sigma_px`` pixels, in the Fourier domain
    (transfer function ``exp(-2 pi^2 sigma^2 |f|^2)``), so the cost does not grow with ``sigma_px``.
    """
    noise = rng.standard_normal((count, height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    transfer = np.exp(-2.0 * np.pi**2 * sigma_px**2 * (fy**2 + fx**2))
    fields = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(height, width))
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    std = fields.std(axis=(1, 2), keepdims=True)
    return fields / np.where(std > 0, std, 1.0)


def _softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _voronoi_weights(rng: np.random.Generator, n_cells: int, height: int, width: int) -> np.ndarray:
    """Soft Voronoi partition ``(n_cells, H, W)`` with one-pixel anti-aliased edges, summing to one.

    Pixel ``p`` with nearest sites ``s1``, ``s2`` is at distance ``t = (|p-s2|^2 - |p-s1|^2) / (2|s2-s1|)``
    from their bisector; cell 1 gets weight ``clip(0.5 + t, 0.5, 1)`` (box-filtered edge), cell 2 the rest.
    """
    sites = rng.uniform((0.0, 0.0), (height, width), size=(n_cells, 2))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    d2 = (yy[None] - sites[:, 0, None, None]) ** 2 + (xx[None] - sites[:, 1, None, None]) ** 2
    order = np.argpartition(d2, 1, axis=0)[:2] if n_cells > 1 else np.zeros((2, height, width), dtype=np.intp)
    i1, i2 = order[0], order[1]
    d1 = np.take_along_axis(d2, i1[None], 0)[0]
    d2b = np.take_along_axis(d2, i2[None], 0)[0]
    swap = d2b < d1
    i1, i2 = np.where(swap, i2, i1), np.where(swap, i1, i2)
    d1, d2b = np.minimum(d1, d2b), np.maximum(d1, d2b)
    sep = np.linalg.norm(sites[i1] - sites[i2], axis=-1)
    t = np.where(sep > 0, (d2b - d1) / (2.0 * np.where(sep > 0, sep, 1.0)), np.inf)
    w1 = np.clip(0.5 + t, 0.5, 1.0)
    weights = np.zeros((n_cells, height, width))
    rows, cols = np.mgrid[0:height, 0:width]
    weights[i1, rows, cols] += w1
    weights[i2, rows, cols] += 1.0 - w1
    return weights


def _ellipse_coverage(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Coverage ``(H, W)`` in ``[0, 1]`` of one random rotated ellipse, anti-aliased over one pixel.

    Signed distance approximated to first order: ``d = g / |grad g|`` with ``g = (u/a)^2 + (v/b)^2 - 1``.
    """
    size = min(height, width)
    cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
    a, b = rng.uniform(0.05, 0.16, size=2) * size + 1.5
    theta = rng.uniform(0.0, np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    g = (u / a) ** 2 + (v / b) ** 2 - 1.0
    grad = 2.0 * np.hypot(u / a**2, v / b**2)
    d = g / np.maximum(grad, 1e-12)
    return np.clip(0.5 - d, 0.0, 1.0)


def _paste_objects(rng: np.random.Generator, abund: np.ndarray, n_objects: int) -> np.ndarray:
    """Paint ``n_objects`` pure-material ellipses over abundances ``(K, H, W)``: ``a <- (1-c) a + c e_k``."""
    k_total, height, width = abund.shape
    for _ in range(n_objects):
        cover = _ellipse_coverage(rng, height, width)
        k = int(rng.integers(k_total))
        abund *= 1.0 - cover
        abund[k] += cover
    return abund


def _layout_regions(rng: np.random.Generator, k: int, height: int, width: int) -> np.ndarray:
    """Piecewise-constant materials: a soft Voronoi partition plus a few ellipses; ``(K, H, W)``."""
    n_cells = 2 * k
    weights = _voronoi_weights(rng, n_cells, height, width)
    material = np.concatenate([rng.permutation(k), rng.integers(0, k, size=n_cells - k)])
    abund = np.zeros((k, height, width))
    np.add.at(abund, material, weights)
    return _paste_objects(rng, abund, max(2, k // 3))


def _texture(rng: np.random.Generator, kind: int, height: int, width: int) -> np.ndarray:
    """One texture map in ``[0, 1]``: 0 = fine grain, 1 = blotches, 2 = wavy stripes."""
    if kind == 0:
        field = _smooth_fields(rng, 1, height, width, 0.8)[0]
        return 1.0 / (1.0 + np.exp(-2.0 * field))
    if kind == 1:
        field = _smooth_fields(rng, 1, height, width, 2.5)[0]
        return 1.0 / (1.0 + np.exp(-4.0 * field))
    period = rng.uniform(4.0, 9.0)
    theta = rng.uniform(0.0, np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    wobble = 1.5 * _smooth_fields(rng, 1, height, width, 6.0)[0]
    phase = 2.0 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + wobble
    return 0.5 + 0.5 * np.sin(phase)


def _layout_textures(rng: np.random.Generator, k: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Zones each mixing two materials through a texture; returns abundances and brightness ``(H, W)``."""
    n_zones = max(2, (k + 1) // 2)
    weights = _voronoi_weights(rng, n_zones, height, width)
    abund = np.zeros((k, height, width))
    for z in range(n_zones):
        k1, k2 = rng.choice(k, size=2, replace=False)
        tex = _texture(rng, int(rng.integers(3)), height, width)
        abund[k1] += weights[z] * tex
        abund[k2] += weights[z] * (1.0 - tex)
    grain = _texture(rng, 0, height, width)
    brightness = 1.0 - 0.15 * grain
    return abund, brightness


def _layout_mixture(rng: np.random.Generator, k: int, height: int, width: int) -> np.ndarray:
    """Smooth abundances: softmax of smooth random fields (linear mixing model); ``(K, H, W)``."""
    sigma = max(2.0, 0.06 * min(height, width))
    return _softmax(2.5 * _smooth_fields(rng, k, height, width, sigma), axis=0)


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneComponents:
    """The ground truth of a synthetic scene: ``Z = shading[..., None] * (abundances @ endmembers)``.

    Attributes:
        abundances: ``(H, W, K)`` float64, non-negative, summing to one over ``K`` at every pixel.
        endmembers: ``(K, L)`` float64 reflectance spectra on ``wavelengths``.
        shading: ``(H, W)`` float64 in ``(0, 1]`` (illumination times texture brightness).
        wavelengths: ``(L,)`` band centres in nm.
        material_names: ``K`` names of the library materials used.
        library: the library key (see :data:`LIBRARIES`).
    """

    abundances: np.ndarray
    endmembers: np.ndarray
    shading: np.ndarray
    wavelengths: np.ndarray
    material_names: tuple[str, ...]
    library: str

    def render(self) -> np.ndarray:
        """The scene ``(H, W, L)`` float64: ``Z[i, j, :] = shading[i, j] * sum_k abundances[i, j, k] endmembers[k]``."""
        return self.shading[..., None] * (self.abundances @ self.endmembers)


def synthetic_components(
    *,
    height: int = 128,
    width: int = 128,
    wavelengths_nm: Any = None,
    layout: LayoutName = "composite",
    n_materials: int = 12,
    library: LibraryName = "colorchecker_ohta",
    illumination_variation: float = 0.2,
    seed: int = 0,
) -> SceneComponents:
    """Draw the abundances, spectra and shading of a synthetic scene (see :func:`synthetic_scene`)."""
    height = check_positive_int(height, "height", minimum=4)
    width = check_positive_int(width, "width", minimum=4)
    seed = check_positive_int(seed, "seed", minimum=0)
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
    lib = spectral_library(library)
    n_lib = len(lib.material_names)
    n_materials = check_positive_int(n_materials, "n_materials", minimum=2)
    if n_materials > n_lib:
        raise InputError(
            f"n_materials={n_materials} but library {library!r} has only {n_lib} spectra; "
            f"ask for at most {n_lib} or choose another library"
        )
    if isinstance(illumination_variation, bool) or not (
        isinstance(illumination_variation, (int, float, np.floating)) and 0.0 <= illumination_variation < 1.0
    ):
        raise InputError(
            f"illumination_variation must be a number in [0, 1) (the largest relative darkening), "
            f"got {illumination_variation!r}"
        )
    wl = DEFAULT_WAVELENGTHS.copy() if wavelengths_nm is None else _check_wavelengths(wavelengths_nm, lib)

    rng = np.random.default_rng(seed)
    chosen = rng.choice(n_lib, size=n_materials, replace=False)
    endmembers = lib.resample(wl)[chosen]
    k, h, w = n_materials, height, width
    brightness = np.ones((h, w))
    if layout == "regions":
        abund = _layout_regions(rng, k, h, w)
    elif layout == "textures":
        abund, brightness = _layout_textures(rng, k, h, w)
    elif layout == "mixture":
        abund = _layout_mixture(rng, k, h, w)
    else:
        regions = _layout_regions(rng, k, h, w)
        textures, tex_brightness = _layout_textures(rng, k, h, w)
        mixture = _layout_mixture(rng, k, h, w)
        zones = _softmax(4.0 * _smooth_fields(rng, 3, h, w, max(2.0, 0.12 * min(h, w))), axis=0)
        abund = zones[0] * regions + zones[1] * textures + zones[2] * mixture
        brightness = zones[0] + zones[1] * tex_brightness + zones[2]
        abund = _paste_objects(rng, abund, 3)
    # Exact renormalisation guards against round-off drift; the layouts already sum to one.
    abund = np.clip(abund, 0.0, None)
    abund /= abund.sum(axis=0, keepdims=True)

    illum_field = _smooth_fields(rng, 1, h, w, max(2.0, 0.3 * min(h, w)))[0]
    span = illum_field.max() - illum_field.min()
    u = (illum_field - illum_field.min()) / span if span > 0 else np.zeros_like(illum_field)
    shading = (1.0 - float(illumination_variation) * u) * brightness
    names = tuple(lib.material_names[i] for i in chosen)
    return SceneComponents(np.moveaxis(abund, 0, 2), endmembers, shading, wl, names, lib.name)


def synthetic_scene(
    *,
    height: int = 128,
    width: int = 128,
    wavelengths_nm: Any = None,
    layout: LayoutName = "composite",
    n_materials: int = 12,
    library: LibraryName = "colorchecker_ohta",
    illumination_variation: float = 0.2,
    seed: int = 0,
) -> Cube:
    """A realistic synthetic hyperspectral reflectance scene from real spectra, deterministic in ``seed``.

    ``Z(x, lambda) = s(x) * sum_k a_k(x) e_k(lambda)`` with ``a_k >= 0``, ``sum_k a_k = 1`` and
    ``1 - illumination_variation <= s(x) <= 1`` outside textured areas (textures darken by up to 15 % more).

    * Spectra ``e_k``: ``n_materials`` spectra drawn without replacement from ``library`` (default: the
      24 ColorChecker patches measured by N. Ohta, 1997, shipped by colour-science; see :data:`LIBRARIES`),
      linearly interpolated (``numpy.interp``) onto ``wavelengths_nm`` (default 400:10:700 nm, 31 bands,
      as CAVE). Wavelengths outside the library's range raise :class:`InputError`.
    * Layouts: ``"regions"`` (soft Voronoi cells with one-pixel anti-aliased edges plus pure ellipses),
      ``"textures"`` (zones mixing two materials through grain, blotch or wavy-stripe textures, with a fine
      brightness texture), ``"mixture"`` (softmax of smooth Gaussian random fields: smooth linear mixing),
      ``"composite"`` (the three blended through smooth zone weights, plus ellipses; the default).
    * Shading ``s``: a smooth illumination field (largest darkening ``illumination_variation``).

    Args:
        height, width: image size in pixels (>= 4; use multiples of the fusion ratio, e.g. 4 or 8).
        wavelengths_nm: band centres in nm, strictly increasing, inside the library's range.
        layout: spatial layout, see above.
        n_materials: number of distinct spectra (2 .. library size).
        library: spectral library key.
        illumination_variation: largest relative darkening of the illumination field, in ``[0, 1)``.
        seed: non-negative integer; the same arguments give bit-identical scenes.

    Returns:
        :class:`Cube` ``H x W x L`` float32 in ``[0, 1]``, ``units="reflectance"``, wavelengths set, ``fwhm``
        None (point samples of the spectra), and ``attrs`` recording the generator, arguments, library
        source and material names. :func:`synthetic_components` returns the abundances, spectra and shading.

    Example:
        >>> cube = synthetic_scene(height=16, width=24, layout="mixture", n_materials=4, seed=3)
        >>> cube.shape, cube.data.dtype.name, cube.units
        ((16, 24, 31), 'float32', 'reflectance')
    """
    comp = synthetic_components(
        height=height,
        width=width,
        wavelengths_nm=wavelengths_nm,
        layout=layout,
        n_materials=n_materials,
        library=library,
        illumination_variation=illumination_variation,
        seed=seed,
    )
    data = np.clip(comp.render(), 0.0, 1.0).astype(np.float32)
    attrs = {
        "generator": "hsfuse.data.synthetic.synthetic_scene",
        "model": "Z = s(x) * sum_k a_k(x) e_k(lambda)",
        "layout": layout,
        "n_materials": int(n_materials),
        "library": comp.library,
        "library_source": LIBRARIES[comp.library][1],
        "materials": list(comp.material_names),
        "illumination_variation": float(illumination_variation),
        "seed": int(seed),
    }
    return Cube(data, wavelengths=comp.wavelengths.copy(), units="reflectance", attrs=attrs)


#: Named scene variants: name -> keyword arguments of :func:`synthetic_scene`.
SCENES: dict[str, dict[str, Any]] = {
    "default": dict(height=128, width=128, layout="composite", n_materials=12, seed=0),
    "regions": dict(height=128, width=128, layout="regions", n_materials=10, seed=1),
    "textures": dict(height=128, width=128, layout="textures", n_materials=10, seed=2),
    "mixture": dict(height=128, width=128, layout="mixture", n_materials=8, seed=3),
    "cave_like": dict(height=512, width=512, layout="composite", n_materials=16, seed=4),
    "tiny": dict(height=32, width=32, layout="composite", n_materials=6, seed=5),
    "extended_range": dict(
        height=128, width=128, wavelengths_nm=np.arange(400.0, 781.0, 10.0), layout="composite", seed=6
    ),
}


def scene_names() -> tuple[str, ...]:
    """Names accepted by :func:`named_scene` (the keys of :data:`SCENES`)."""
    return tuple(SCENES)


def named_scene(name: str, **overrides: Any) -> Cube:
    """The named variant ``SCENES[name]`` of :func:`synthetic_scene`, with keyword ``overrides`` applied.

    Example:
        >>> named_scene("tiny").shape
        (32, 32, 31)
    """
    if name not in SCENES:
        raise InputError(f"unknown synthetic scene {name!r}; choose one of {list(SCENES)}")
    kwargs = dict(SCENES[name])
    kwargs.update(overrides)
    try:
        return synthetic_scene(**kwargs)
    except TypeError as exc:
        raise InputError(f"named_scene({name!r}): {exc}; valid options are those of synthetic_scene") from None
