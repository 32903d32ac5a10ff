"""Helpers shared by the readers and writers (internal): layout, wavelength units, error wrapping."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FileFormatError, HsfuseError, InputError, MissingDependencyError
from ..types import Cube, GeoInfo

Layout = Literal["auto", "hwb", "bhw"]
LAYOUTS = ("auto", "hwb", "bhw")

# Wavelength / FWHM variable names recognised in .mat and .npz files (case-insensitive). A unit suffix
# (_nm, _um, ...) fixes the unit; without one, values whose maximum is below 30 are taken as micrometres.
_WL_RE = re.compile(
    r"^(wavelengths?|wl|wls|wvl|band_?cent(?:er|re)s?)(?:_?(nm|um|microns?|micrometers?|nanometers?))?$", re.I
)
_FWHM_RE = re.compile(r"^(fwhm|bandwidths?)(?:_?(nm|um|microns?|micrometers?|nanometers?))?$", re.I)
MICROMETRE_THRESHOLD = 30.0

# Unit names (ENVI "wavelength units", GDAL tags, name suffixes) -> factor to nanometres. Units of other
# quantities (wavenumber, GHz, band index) have no factor: their values are not kept as wavelengths.
_UNIT_TO_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "micrometer": 1e3, "micrometers": 1e3, "micrometre": 1e3, "micrometres": 1e3,
    "micron": 1e3, "microns": 1e3,
    "mm": 1e6, "millimeter": 1e6, "millimeters": 1e6, "millimetre": 1e6, "millimetres": 1e6,
    "cm": 1e7, "centimeter": 1e7, "centimeters": 1e7,
    "m": 1e9, "meter": 1e9, "meters": 1e9, "metre": 1e9, "metres": 1e9,
}  # fmt: skip
_UNKNOWN_UNITS = {"", "unknown", "none"}


def wavelength_name_unit(name: str) -> str | None:
    """``"nm"``/``"um"``/``""`` (no unit in the name) if ``name`` names a wavelength vector, else ``None``."""
    m = _WL_RE.match(name)
    if not m:
        return None
    return _suffix_unit(m.group(2))


def fwhm_name_unit(name: str) -> str | None:
    """Like :func:`wavelength_name_unit` for FWHM / bandwidth vectors."""
    m = _FWHM_RE.match(name)
    if not m:
        return None
    return _suffix_unit(m.group(2))


def _suffix_unit(suffix: str | None) -> str:
    if not suffix:
        return ""
    return "nm" if suffix.lower().startswith("n") else "um"


def unit_factor(unit: str | None) -> float | None:
    """Factor from ``unit`` to nm; ``0.0`` for unknown/absent (guess from values); ``None`` for non-lengths."""
    u = (unit or "").strip().lower()
    if u in _UNKNOWN_UNITS:
        return 0.0
    return _UNIT_TO_NM.get(u)


def nm_factor(values: Any, unit: str | None) -> tuple[float | None, str]:
    """Factor converting band centres given in ``unit`` to nm, and a note on how it was decided.

    ``unit`` is a unit name (``"Micrometers"``, ``"nm"``, ...). Unknown/absent units are guessed from the
    values: all below 30 means micrometres (no sensor band centre in nm is below 30), else nanometres. A
    unit that is not a length (wavenumber, GHz, index) gives ``None``: such values are not wavelengths.
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    factor = unit_factor(unit)
    if factor is None:
        return None, f"wavelength unit {unit!r} is not a length; wavelengths not kept"
    if factor == 0.0:
        if arr.size and np.nanmax(np.abs(arr)) < MICROMETRE_THRESHOLD:
            return 1e3, "no wavelength unit given; values < 30 read as micrometres and converted to nm"
        return 1.0, "no wavelength unit given; values read as nm"
    return factor, ""


def to_nanometres(values: Any, unit: str | None) -> tuple[np.ndarray | None, str]:
    """Band centres converted to nm (see :func:`nm_factor`); ``(None, note)`` for non-length units."""
    factor, note = nm_factor(values, unit)
    if factor is None:
        return None, note
    return np.asarray(values, dtype=np.float64).reshape(-1) * factor, note


def native(arr: np.ndarray) -> np.ndarray:
    """The array in native byte order (a copy only when needed)."""
    if arr.dtype.byteorder not in ("=", "|") and arr.dtype.byteorder != ("<" if np.little_endian else ">"):
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def is_real_numeric(arr: np.ndarray) -> bool:
    dt = np.asarray(arr).dtype if not isinstance(arr, np.ndarray) else arr.dtype
    return bool(np.issubdtype(dt, np.number) and not np.issubdtype(dt, np.complexfloating))


def shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(s)) for s in shape) if shape else "scalar"


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {LAYOUTS} ('hwb' = H x W x B, 'bhw' = B x H x W), got {layout!r}")


def check_real_dtype(dtype: Any, what: str) -> None:
    """Raise :class:`FileFormatError` unless ``dtype`` holds real numbers (checked from the dtype alone)."""
    if not is_real_numeric(np.empty(0, dtype)):
        raise FileFormatError(f"{what} has dtype {dtype}; expected real numbers (complex/char/logical are not cubes)")


def resolve_layout(shape: tuple[int, ...], layout: str, *, n_wavelengths: int | None, what: str) -> str:
    """The layout (``"hwb"`` or ``"bhw"``) of a 3-D array of ``shape``; the rule of :func:`orient`.

    Needs only the shape, so lazy readers decide without touching the data.
    """
    check_layout(layout)
    if len(shape) != 3:
        raise FileFormatError(f"{what} has shape {shape_str(tuple(shape))}; expected a 3-D cube")
    if layout != "auto":
        return layout
    a0, a1, a2 = (int(s) for s in shape)
    confirmed = False
    if n_wavelengths is not None and a2 == n_wavelengths:
        layout, confirmed = "hwb", True
    elif n_wavelengths is not None and a0 == n_wavelengths:
        layout, confirmed = "bhw", True
    elif a0 == a1 and a2 != a0:
        layout, confirmed = "hwb", True
    elif a1 == a2 and a0 != a1:
        layout, confirmed = "bhw", True
    elif 4 * a0 < a1 and 4 * a0 < a2 and not (4 * a2 < a0 and 4 * a2 < a1):
        layout = "bhw"
    else:
        layout = "hwb"
    if not confirmed:
        band, spatial = (a2, (a0, a1)) if layout == "hwb" else (a0, (a1, a2))
        if band > max(spatial):
            raise FileFormatError(
                f"{what} has shape {shape_str(tuple(shape))}: cannot tell which axis holds the bands (taking the "
                f"last would give {band} bands on a {spatial[0]}x{spatial[1]} image); pass layout='hwb' "
                "(H x W x B) or layout='bhw' (B x H x W), or give wavelengths"
            )
    return layout


def orient(arr: np.ndarray, layout: str, *, n_wavelengths: int | None, what: str) -> tuple[np.ndarray, str]:
    """Return ``(H x W x B view, layout used)`` of a 3-D array.

    ``"hwb"`` keeps it, ``"bhw"`` moves the first axis last. ``"auto"`` picks ``"bhw"`` when the first axis
    is clearly the band axis: it matches ``n_wavelengths`` (and the last does not), or the other two are equal
    (a square image, the first differing), or it is below a quarter of both others while the last is not;
    else ``"hwb"`` (the MATLAB / NumPy usual). ``"auto"`` refuses (asking for ``layout=``) when its band axis
    would be longer than both spatial axes with nothing (wavelength count, square image) confirming it.
    The decision is :func:`resolve_layout`'s.
    """
    layout = resolve_layout(arr.shape, layout, n_wavelengths=n_wavelengths, what=what)
    out = arr if layout == "hwb" else np.moveaxis(arr, 0, 2)
    return out, layout


def check_wavelength_count(
    wl: np.ndarray | None, bands: int, *, user: bool, what: str, attrs: dict[str, Any]
) -> np.ndarray | None:
    """Keep ``wl`` when it has one value per band; else error (user-given) or drop it with a note (found)."""
    if wl is None:
        return None
    if wl.shape[0] == bands:
        return wl
    if user:
        raise InputError(f"{wl.shape[0]} wavelengths given but {what} has {bands} bands; give one value per band")
    attrs["wavelength_note"] = f"ignored a wavelength vector of {wl.shape[0]} values (the cube has {bands} bands)"
    return None


def check_data(data: np.ndarray, what: str) -> np.ndarray:
    """Empty -> InputError, non-numeric -> FileFormatError; returns native-byte-order data."""
    if data.size == 0:
        raise InputError(f"{what} is empty (shape {shape_str(data.shape)}): nothing to read")
    if not is_real_numeric(data):
        raise FileFormatError(f"{what} has dtype {data.dtype}, not real numbers; it is not an image cube")
    return native(data)


def clean_band_metadata(
    bands: int,
    *,
    what: str,
    wavelengths: Any = None,
    fwhm: Any = None,
    band_names: list[str] | None = None,
    attrs: dict[str, Any] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, list[str] | None, dict[str, Any]]:
    """``(wavelengths, fwhm, band_names, attrs)`` a :class:`Cube` of ``bands`` bands can hold.

    Wavelengths that are not strictly increasing, or FWHM/band names of the wrong count, go to ``attrs``
    (``*_unusable``) with a warning, so a valid file still reads. The rule of :func:`make_cube`, also used by
    the lazy opener, which has no data array to build a cube from.
    """
    attrs = dict(attrs or {})
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
        bad = wl.shape[0] != bands or not np.all(np.isfinite(wl)) or (bands > 1 and np.any(np.diff(wl) <= 0))
        if bad:
            warnings.warn(f"{what}: wavelengths are not one strictly increasing value per band; kept in attrs only")
            attrs["wavelengths_nm_unusable"] = wl.tolist()
            wavelengths = None
    for name, value in (("fwhm", fwhm), ("band_names", band_names)):
        if value is not None and len(value) != bands:
            warnings.warn(f"{what}: {len(value)} {name} for {bands} bands; kept in attrs only")
            attrs[f"{name}_unusable"] = list(np.asarray(value).tolist())
            if name == "fwhm":
                fwhm = None
            else:
                band_names = None
    if fwhm is not None and not np.all(np.isfinite(np.asarray(fwhm, dtype=np.float64))):
        attrs["fwhm_unusable"] = list(np.asarray(fwhm).tolist())
        fwhm = None
    return wavelengths, fwhm, band_names, attrs


def make_cube(
    data: np.ndarray,
    *,
    what: str,
    wavelengths: np.ndarray | None = None,
    fwhm: np.ndarray | None = None,
    geo: GeoInfo | None = None,
    nodata: float | None = None,
    units: str | None = None,
    band_names: list[str] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Cube:
    """Build a :class:`Cube` from what a reader found, never failing on metadata the Cube cannot hold.

    Wavelengths that are not strictly increasing, or FWHM/band names of the wrong count, go to ``attrs``
    (``*_unusable``) with a warning, so a valid file still reads.
    """
    data = check_data(data, what)
    bands = data.shape[2] if data.ndim == 3 else 1
    wavelengths, fwhm, band_names, attrs = clean_band_metadata(
        bands, what=what, wavelengths=wavelengths, fwhm=fwhm, band_names=band_names, attrs=attrs
    )
    return Cube(
        data,
        wavelengths=wavelengths,
        fwhm=fwhm,
        geo=geo,
        nodata=nodata,
        units=units,
        band_names=band_names,
        attrs=attrs,
    )


def require_file(path: str | os.PathLike[str], *, kind: str = "file") -> Path:
    """``Path(path)`` if it exists, else :class:`FileFormatError` ``"<path> not found"``."""
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p} not found; check the path (current folder: {Path.cwd()})")
    if kind == "file" and p.is_dir():
        raise FileFormatError(f"{p} is a folder, expected a file")
    return p


@contextmanager
def reading(path: Path | str, fmt: str) -> Iterator[None]:
    """Turn any library exception while reading into :class:`FileFormatError` naming the file.

    hsfuse's own errors pass through unchanged. Used around third-party readers, which raise anything from
    ``OSError`` to ``TypeError`` on truncated or corrupt files.
    """
    try:
        yield
    except HsfuseError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary: every library failure becomes one clear error
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(
            f"could not read {path} as {fmt}: {msg} ({type(exc).__name__}); the file may be truncated, corrupt "
            "or of another format"
        ) from exc


def import_optional(module: str, package: str, feature: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip package."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{feature} needs the '{package}' package: pip install {package}") from exc


def to_unsigned(
    data: np.ndarray, *, bit_depth: int | None, scale: float | None, what: str
) -> tuple[np.ndarray, int]:
    """Convert image data to ``uint8``/``uint16`` for PNG writers; returns ``(array, bit_depth)``.

    ``bit_depth=None`` keeps ``uint8`` as 8-bit and ``uint16`` as 16-bit; other dtypes need an explicit
    ``bit_depth``. With ``scale`` the values stored are ``round(data * scale)``; without it the values must
    already be integers. Values outside ``[0, 2**bit_depth - 1]`` and NaN/inf are refused, never clipped.
    """
    arr = np.asarray(data)
    if bit_depth is None:
        if arr.dtype == np.uint8 and scale is None:
            bit_depth = 8
        elif arr.dtype == np.uint16 and scale is None:
            bit_depth = 16
        else:
            raise InputError(
                f"{what}: data of dtype {arr.dtype} needs an explicit bit_depth=8 or 16 (and scale= for values "
                "that are not integers, e.g. scale=65535 for reflectance in [0, 1])"
            )
    if bit_depth not in (8, 16):
        raise InputError(f"{what}: bit_depth must be 8 or 16, got {bit_depth!r}")
    top = (1 << bit_depth) - 1
    target = np.uint8 if bit_depth == 8 else np.uint16
    if arr.dtype == target and scale is None:
        return arr, bit_depth
    if not is_real_numeric(arr) and arr.dtype != np.bool_:
        raise InputError(f"{what}: dtype {arr.dtype} is not real numbers")
    values = arr.astype(np.float64)
    if scale is not None:
        if not (np.isfinite(scale) and scale > 0):
            raise InputError(f"{what}: scale must be a positive finite number, got {scale!r}")
        values = np.round(values * float(scale))
    if not np.all(np.isfinite(values)):
        raise InputError(f"{what}: data contain NaN/inf; fill them before writing a {bit_depth}-bit image")
    if np.any(values != np.round(values)):
        raise InputError(
            f"{what}: values are not integers (range {values.min():g}..{values.max():g}); pass scale= to store "
            f"round(value * scale), e.g. scale={top} for data in [0, 1]"
        )
    lo, hi = float(values.min()), float(values.max())
    if lo < 0 or hi > top:
        raise InputError(
            f"{what}: values span {lo:g}..{hi:g}, outside the {bit_depth}-bit range 0..{top}; rescale them "
            f"(scale=) or choose bit_depth=16"
        )
    return values.astype(target), bit_depth
