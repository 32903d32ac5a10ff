"""GeoTIFF (and any TIFF GDAL reads) via rasterio.

On disk bands come first (GDAL's ``(B, H, W)``); the cube is ``H x W x B``. Kept: the data and dtype, the CRS
(``"EPSG:n"`` when it is one, else WKT), the affine transform (rasterio's ``Affine`` ``(a, b, c, d, e, f)``,
pixel-corner convention; a TIFF without georeferencing gives ``geo=None``), nodata, band descriptions
(-> ``band_names``), band unit (-> ``units``, when all bands share it), and wavelengths/fwhm.

Wavelength metadata written: per-band tags ``wavelength`` and ``fwhm`` (nm) and the dataset tag
``wavelength_units=nm``. Read, in this order: those per-band tags (with a per-band or dataset
``wavelength_units``), GDAL's ``IMAGERY`` domain (``CENTRAL_WAVELENGTH_UM``/``FWHM_UM``, GDAL >= 3.10), and
the ``ENVI`` domain (``wavelength = {...}``) that GDAL keeps when it converts ENVI files. Values are converted
to nm; without a unit, values below 30 are micrometres.

A plain RGB TIFF reads as a 3-band cube (``band_names`` ``R, G, B`` when its colour interpretation says so).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube, GeoInfo
from ._common import import_optional, make_cube, nm_factor, reading, require_file
from .atomic import atomic_output

__all__ = ["read_geotiff", "write_geotiff", "dataset_fields"]

_COLOR_NAMES = {"red": "R", "green": "G", "blue": "B", "alpha": "A"}


def _rasterio() -> Any:
    return import_optional("rasterio", "rasterio", "reading and writing GeoTIFF files")


def _band_values(src: Any, key: str) -> tuple[list[str] | None, list[str | None]]:
    """Per-band tag ``key`` (any case) for every band, and each band's ``wavelength_units`` tag."""
    values: list[str] = []
    units: list[str | None] = []
    for i in range(1, src.count + 1):
        tags = {k.lower(): v for k, v in src.tags(i).items()}
        if key not in tags:
            return None, []
        values.append(tags[key])
        units.append(tags.get("wavelength_units"))
    return values, units


def _wavelengths(src: Any, attrs: dict[str, Any]) -> tuple[np.ndarray | None, np.ndarray | None]:
    dataset_tags = {k.lower(): v for k, v in src.tags().items()}
    wl_raw, band_units = _band_values(src, "wavelength")
    if wl_raw is not None:
        unit = next((u for u in band_units if u), None) or dataset_tags.get("wavelength_units")
        raw = np.asarray([float(v) for v in wl_raw])
        factor, note = nm_factor(raw, unit)
        if note:
            attrs["wavelength_note"] = note
        if factor is None:
            return None, None
        fw_raw, _ = _band_values(src, "fwhm")
        fwhm = None if fw_raw is None else np.asarray([float(v) for v in fw_raw]) * factor
        return raw * factor, fwhm
    namespaces = set(src.tag_namespaces(1)) if src.count else set()
    if "IMAGERY" in namespaces:
        tags = [src.tags(i, ns="IMAGERY") for i in range(1, src.count + 1)]
        if all("CENTRAL_WAVELENGTH_UM" in t for t in tags):
            wl = np.asarray([float(t["CENTRAL_WAVELENGTH_UM"]) for t in tags]) * 1e3
            fwhm = np.asarray([float(t["FWHM_UM"]) for t in tags]) * 1e3 if all("FWHM_UM" in t for t in tags) else None
            return wl, fwhm
    if "ENVI" in set(src.tag_namespaces()):
        envi = {k.lower(): v for k, v in src.tags(ns="ENVI").items()}
        if "wavelength" in envi:
            raw = np.asarray([float(v) for v in envi["wavelength"].strip("{} ").split(",") if v.strip()])
            factor, note = nm_factor(raw, envi.get("wavelength_units"))
            if note:
                attrs["wavelength_note"] = note
            if factor is None:
                return None, None
            fwhm = None
            if "fwhm" in envi:
                fwhm = np.asarray([float(v) for v in envi["fwhm"].strip("{} ").split(",") if v.strip()]) * factor
            return raw * factor, fwhm
    return None, None


def read_geotiff(path: str | os.PathLike[str]) -> Cube:
    """Read a (Geo)TIFF into a cube ``(H, W, B)``.

    Returns:
        :class:`Cube` with the file's dtype and the metadata listed in the module docstring; ``attrs``:
        ``source``, ``format="geotiff"``, ``driver``.

    Raises:
        FileFormatError: missing, truncated or unreadable file.

    Example:
        >>> cube = read_geotiff("scene.tif")  # doctest: +SKIP
        >>> cube.geo.crs, cube.wavelengths[:2]  # doctest: +SKIP
        ('EPSG:32615', array([450., 460.]))
    """
    p = require_file(path)
    rasterio = _rasterio()
    from rasterio.errors import NotGeoreferencedWarning

    with reading(p, "TIFF (rasterio/GDAL)"), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(str(p)) as src:
            fields = dataset_fields(src, p)
            data = np.moveaxis(src.read(), 0, 2)
    return make_cube(data, what=str(p), **fields)


def dataset_fields(src: Any, path: Path) -> dict[str, Any]:
    """The :class:`Cube` fields (all but ``data``) of an open rasterio dataset: the module docstring's rules.

    Keys: ``wavelengths``, ``fwhm``, ``geo``, ``nodata``, ``units``, ``band_names``, ``attrs`` (``source``,
    ``format="geotiff"``, ``driver``, notes, ``gcps``). Shared by :func:`read_geotiff` and the lazy opener
    (:func:`hsfuse.io.lazy.open_lazy`), which reads the pixels through rioxarray.
    """
    attrs: dict[str, Any] = {"source": str(path), "format": "geotiff", "driver": src.driver}
    if src.count == 0:
        raise FileFormatError(f"{path} has no raster bands")
    crs = src.crs.to_string() if src.crs else None
    transform = tuple(src.transform)[:6]
    identity = transform == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    geo = None if crs is None and identity else GeoInfo(crs=crs, transform=None if identity else transform)
    nodata = src.nodata
    descriptions = list(src.descriptions)
    if all(descriptions):
        band_names = [str(d) for d in descriptions]
    else:
        interp = [_COLOR_NAMES.get(ci.name) for ci in src.colorinterp]
        band_names = interp if interp[:3] == ["R", "G", "B"] and all(interp) else None  # type: ignore[assignment]
    units_set = {u for u in src.units}
    units = units_set.pop() if len(units_set) == 1 and None not in units_set and "" not in units_set else None
    wavelengths, fwhm = _wavelengths(src, attrs)
    if src.gcps[0]:
        attrs["gcps"] = len(src.gcps[0])
    return {
        "wavelengths": wavelengths,
        "fwhm": fwhm,
        "geo": geo,
        "nodata": None if nodata is None else float(nodata),
        "units": units,
        "band_names": band_names,
        "attrs": attrs,
    }


def write_geotiff(
    cube: Cube, path: str | os.PathLike[str], *, overwrite: bool = False, compress: str | None = "deflate"
) -> Path:
    """Write a cube as a GeoTIFF (bands first on disk), keeping georeferencing and band metadata.

    Writes the CRS and transform of ``cube.geo`` (none when ``geo`` is ``None``), nodata, band descriptions
    (``band_names``), the band unit (``units``), and per-band ``wavelength``/``fwhm`` tags in nm with the
    dataset tag ``wavelength_units=nm``. A cube whose band names are exactly ``R, G, B`` (8/16-bit) is tagged
    ``PHOTOMETRIC=RGB``; anything else ``MINISBLACK``, so other 3-band cubes are not mistaken for colour
    photos. ``compress``: a GDAL compression name (``"deflate"``, ``"lzw"``, ``"zstd"``) or ``None``. BigTIFF
    is used when needed. The write is atomic.
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_geotiff takes a Cube, got {type(cube).__name__}")
    rasterio = _rasterio()
    from rasterio.dtypes import check_dtype
    from rasterio.errors import NotGeoreferencedWarning

    data = cube.data
    if not check_dtype(data.dtype) or data.dtype.kind == "c":
        raise InputError(f"GeoTIFF cannot store dtype {data.dtype} here; cast to float32 or an integer type")
    h, w, b = data.shape
    rgb = cube.band_names == ["R", "G", "B"] and data.dtype in (np.uint8, np.uint16)
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": b,
        "dtype": data.dtype.name,
        "photometric": "RGB" if rgb else "MINISBLACK",
        "BIGTIFF": "IF_SAFER",
    }
    if compress:
        profile["compress"] = compress
    if cube.nodata is not None:
        profile["nodata"] = cube.nodata
    if cube.geo is not None:
        if cube.geo.crs is not None:
            try:
                profile["crs"] = rasterio.crs.CRS.from_user_input(cube.geo.crs)
            except Exception as exc:  # noqa: BLE001 - rasterio's CRSError and friends
                raise InputError(
                    f"cube.geo.crs {cube.geo.crs!r} is not a CRS GDAL understands ({exc}); use 'EPSG:<code>' or WKT"
                ) from exc
        if cube.geo.transform is not None:
            profile["transform"] = rasterio.Affine(*cube.geo.transform)
    with atomic_output(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(str(tmp), "w", **profile) as dst:
            dst.write(np.ascontiguousarray(np.moveaxis(data, 2, 0)))
            if cube.band_names is not None:
                for i, name in enumerate(cube.band_names, start=1):
                    dst.set_band_description(i, name)
            if cube.units is not None:
                dst.units = tuple(cube.units for _ in range(b))
            if cube.wavelengths is not None:
                dst.update_tags(wavelength_units="nm")
                for i in range(b):
                    tags = {"wavelength": repr(float(cube.wavelengths[i]))}
                    if cube.fwhm is not None:
                        tags["fwhm"] = repr(float(cube.fwhm[i]))
                    dst.update_tags(i + 1, **tags)
            elif cube.fwhm is not None:
                for i in range(b):
                    dst.update_tags(i + 1, fwhm=repr(float(cube.fwhm[i])))
    return Path(path)
