"""What every satellite/airborne product reader returns: the image in the data model, its masks and metadata.

A reader (``open_enmap``, ``open_prisma``, ``open_emit``, ``open_desis``, ``open_sentinel2``, ``open_landsat``)
opens a product *as it comes* (its folder, archive members or files, per the agency's format specification) lazily
and returns a :class:`Product`:

* ``image``: an xarray ``DataArray`` ``(band, y, x)`` backed by dask (:mod:`hsfuse.io.lazy` conventions: ``band``
  = centre wavelength in nm with ``attrs["wavelength_units"] = "nm"``, ``fwhm`` and ``band_name`` coordinates,
  pixel-centre ``y``/``x`` map coordinates, CRS and transform through rioxarray), in **physical units** (surface
  reflectance in [0, 1] for L2A products): the product's scale factors and offsets are applied lazily, as float32,
  and its no-data pixels are NaN;
* ``masks``: named boolean ``(y, x)`` DataArrays on the image's grid, ``True`` where a pixel is *unusable* for that
  reason (``"nodata"``, ``"cloud"``, ``"shadow"``, ``"snow"``, ``"water"``, ``"quality"``...), lazily;
* ``kind``: ``"hsi"`` or ``"msi"``; ``sensor``: e.g. ``"enmap"``, ``"sentinel2a"`` (a name ``hsfuse srf list`` knows
  for multispectral sensors); ``level``: e.g. ``"L2A"``;
* ``metadata``: what was read (acquisition time, processing baseline/version, scale factors, source files), JSON-able.

:meth:`Product.unusable` combines masks; :meth:`Product.describe` is what ``hsfuse info`` prints for a product.

The helpers below it are shared by the readers: band selection (:func:`select_bands`, multispectral), product
folders and their members, DLR metadata XML, the float32 reflectance image and its masks, HDF5 attributes.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...errors import FileFormatError, InputError
from ...types import GeoInfo
from .._common import import_optional, reading
from ..lazy import _build, _dask_array, _geo_of, _xarray, open_lazy

__all__ = ["Product", "ProductKind"]

ProductKind = Literal["hsi", "msi"]
#: raster members of a product folder: GeoTIFF/COG or ENVI binary (with a header beside it)
DEFAULT_DLR_NODATA = -32768.0
RASTER_EXT = r"(?:_COG)?\.(?:tif|tiff|bsq|bil|bip)"


@dataclass
class Product:
    """A product opened lazily (module docstring)."""

    image: Any
    kind: ProductKind
    sensor: str
    level: str
    masks: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def unusable(self, reasons: Sequence[str] | None = None) -> Any | None:
        """The OR of the named masks (default: all), a lazy boolean ``(y, x)`` DataArray, or ``None`` if none."""
        names = list(self.masks) if reasons is None else list(reasons)
        unknown = [n for n in names if n not in self.masks]
        if unknown:
            raise InputError(f"{self.sensor} {self.level} has no mask(s) {', '.join(unknown)}; it has: "
                             f"{', '.join(self.masks) or 'none'}")
        out = None
        for name in names:
            out = self.masks[name] if out is None else (out | self.masks[name])
        return out

    def describe(self) -> str:
        """A multi-line summary: sensor, level, size, bands and wavelength range, grid, masks, metadata keys."""
        da = self.image
        bands, h, w = (int(n) for n in da.shape)
        lines = [f"product:      {self.sensor} {self.level} ({'hyperspectral' if self.kind == 'hsi' else 'multispectral'})",
                 f"shape:        {h} x {w} x {bands} (H x W x B), {da.dtype}, chunks "
                 f"{da.chunks[1][0]} x {da.chunks[2][0]}" if getattr(da, "chunks", None) else
                 f"shape:        {h} x {w} x {bands} (H x W x B), {da.dtype}"]
        if da.attrs.get("wavelength_units") == "nm":
            wl = da.coords["band"].values
            lines.append(f"wavelengths:  {bands} bands, {float(wl.min()):g} - {float(wl.max()):g} nm")
        if "band_name" in da.coords:
            names = [str(n) for n in da.coords["band_name"].values]
            lines.append("band names:   " + ", ".join(names[:8]) + (f", ... ({len(names)})" if len(names) > 8 else ""))
        try:
            crs = da.rio.crs
            res = da.rio.resolution()
        except Exception:  # noqa: BLE001 - no spatial metadata
            crs, res = None, None
        lines.append(f"crs:          {crs if crs is not None else 'none'}")
        if res is not None and crs is not None:
            lines.append(f"pixel size:   {abs(res[0]):g} x {abs(res[1]):g} (map units)")
        lines.append(f"masks:        {', '.join(self.masks) if self.masks else 'none'}")
        shown = [(k, str(v)) for k, v in sorted(self.metadata.items()) if not isinstance(v, (dict, list))
                 and len(str(v)) <= 100]
        if shown:
            lines.append("metadata:")
            lines.extend(f"  {key}: {text}" for key, text in shown)
        return "\n".join(lines)


def select_bands(bands: Any, parse: Any, default: Sequence[str], order: Any, *, example: str,
                 default_text: str) -> list[str]:
    """The band names a multispectral reader opens: ``default`` for ``None``, else ``bands`` (one name or a list)
    through ``parse`` (name -> canonical name, InputError if unknown), non-empty, no repeats, sorted by ``order``
    (spectral order: the band coordinate must increase)."""
    if bands is None:
        return list(default)
    if isinstance(bands, (str, int)):
        bands = [bands]
    try:
        names = [parse(b) for b in bands]
    except TypeError:
        raise InputError(f"bands must be a list of band names such as {example}, got {bands!r}") from None
    if not names:
        raise InputError(f"bands is empty; give at least one band (or None for {default_text})")
    if len(set(names)) != len(names):
        raise InputError(f"bands lists a band twice: {list(bands)}")
    return sorted(names, key=order)


# ---------------------------------------------------------------------------------------------- shared helpers
# (used by the hyperspectral readers: enmap.py, desis.py, prisma.py, emit.py)


def find_product(path: Path, metadata_re: re.Pattern[str], *, what: str, pattern: str) -> tuple[Path, Path]:
    """``(folder, metadata file)`` of a product given as its folder (or the folder it was unpacked into, one level
    up), its metadata file, or any member file."""
    if not path.exists():
        raise FileFormatError(f"{path} not found; check the path (current folder: {Path.cwd()})")
    if path.is_file() and metadata_re.search(path.name):
        return path.parent, path
    if path.is_file() and path.suffix.lower() in (".zip", ".tar", ".gz", ".tgz"):
        raise FileFormatError(f"{path} is an archive; unpack it and pass the {what} product folder")
    folder = path.parent if path.is_file() else path
    found = sorted(p for p in folder.iterdir() if p.is_file() and metadata_re.search(p.name))
    if not found and path.is_dir():
        found = sorted(p for d in folder.iterdir() if d.is_dir() for p in d.iterdir()
                       if p.is_file() and metadata_re.search(p.name))
    if not found:
        listing = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise FileFormatError(f"no {what} metadata file ({pattern}) in {folder} (it holds: {listing}); a {what} "
                              "product folder holds the metadata XML beside the spectral image")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise FileFormatError(f"{folder} holds {len(found)} {what} metadata files ({names}); pass the one of the "
                              "product to open")
    return found[0].parent, found[0]


def find_member(folder: Path, prefix: str, key: str, *, what: str, required: bool = True,
                ext: str = RASTER_EXT) -> Path | None:
    """The raster ``<prefix>-<key>.<tif|tiff|bsq|bil|bip>`` (any case, optional ``_COG``) of a product folder."""
    rx = re.compile(rf"^{re.escape(prefix)}-{re.escape(key)}{ext}$", re.I)
    found = sorted(p for p in folder.iterdir() if p.is_file() and rx.match(p.name))
    if found:
        return found[0]
    if required:
        raise FileFormatError(f"{what} not found: expected {prefix}-{key}.TIF (or .BSQ/.BIL/.BIP with a header) in "
                              f"{folder}")
    return None


def parse_xml(path: Path, what: str) -> ET.Element:
    """The root of an XML file; truncated/corrupt files raise :class:`FileFormatError`."""
    try:
        return ET.parse(str(path)).getroot()
    except ET.ParseError as exc:
        raise FileFormatError(f"could not parse {path} as {what} XML: {exc}; the file may be truncated or corrupt") \
            from exc
    except OSError as exc:
        raise FileFormatError(f"could not read {path}: {exc}") from exc


def xml_float(item: ET.Element, tag: str, path: Path, where: str) -> float:
    text = item.findtext(tag)
    if text is None or not text.strip():
        raise FileFormatError(f"{path}: <{tag}> missing in {where}")
    try:
        return float(text)
    except ValueError:
        raise FileFormatError(f"{path}: <{tag}> of {where} is {text!r}, not a number") from None


def xml_int(text: str, path: Path, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise FileFormatError(f"{path}: {what} {text!r} is not an integer") from None


def clean_text(text: str | None) -> str | None:
    return text.strip() if text is not None and text.strip() else None


def band_table(items: list[ET.Element], numbers: list[str], tags: tuple[str, str, str, str], meta_path: Path, *,
               where: str, number_name: str) -> tuple[np.ndarray, ...]:
    """``(band numbers, centres, FWHM, gains, offsets)`` of a DLR band characterisation (one XML element per band,
    ``tags`` = its centre, FWHM, gain and offset children), sorted by band number (the image's band i is number
    i + 1)."""
    if not items:
        raise FileFormatError(f"{meta_path} has no {where} elements: band centres, FWHM and gains are unknown")
    nums = [xml_int(text, meta_path, number_name) for text in numbers]
    rows = [[xml_float(item, tag, meta_path, f"band {n}") for tag in tags] for item, n in zip(items, nums)]
    by_number = np.argsort(nums, kind="stable")
    arr = np.asarray(rows, np.float64)[by_number]
    return np.asarray(nums)[by_number], arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]


def nodata_value(raw: Any, root: ET.Element, paths: Sequence[str]) -> tuple[float, str]:
    """The no-data DN and where it came from: the raster's nodata tag, else the first numeric metadata element at
    ``paths``, else -32768 (what public readers of DLR products mask)."""
    tagged = raw.attrs.get("_FillValue")
    if tagged is not None and np.isfinite(float(tagged)):
        return float(tagged), "raster nodata tag"
    for path in paths:
        text = root.findtext(path)
        if text is not None and text.strip():
            try:
                return float(text), f"metadata {path.rsplit('/', 1)[-1]}"
            except ValueError:
                pass
    return DEFAULT_DLR_NODATA, "default -32768 (not in the raster nor the metadata)"


def check_tiff_complete(path: Path) -> None:
    """Refuse a (Geo)TIFF whose last block lies beyond the end of the file (a truncated download), reading only
    the TIFF directory (GDAL's ``BLOCK_OFFSET``/``BLOCK_SIZE`` items)."""
    import rasterio

    with reading(path, "TIFF (rasterio/GDAL)"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(str(path)) as src:
            by, bx = src.block_shapes[0]
            nby, nbx = -(-src.height // by), -(-src.width // bx)
            bidx = src.count
            offset = src.get_tag_item(f"BLOCK_OFFSET_{nbx - 1}_{nby - 1}", "TIFF", bidx=bidx)
            size = src.get_tag_item(f"BLOCK_SIZE_{nbx - 1}_{nby - 1}", "TIFF", bidx=bidx)
    if offset is not None and size is not None:
        end = int(offset) + int(size)
        actual = path.stat().st_size
        if end > actual:
            raise FileFormatError(f"{path} is truncated: its last block ends at byte {end}, the file has {actual}")


def open_raster(path: Path, chunks: Any, *, what: str) -> Any:
    """A product raster (GeoTIFF/COG or ENVI) as the lazy ``(band, y, x)`` DataArray of :func:`open_lazy`."""
    if path.suffix.lower() in (".tif", ".tiff"):
        check_tiff_complete(path)
    try:
        return open_lazy(path, chunks=chunks)
    except FileFormatError as exc:
        raise FileFormatError(f"{what}: {exc}") from exc


def check_same_grid(layer: Any, image: Any, path: Path) -> None:
    """Refuse a quality raster whose size or (when both have one) transform differs from the image's."""
    if tuple(layer.shape[-2:]) != tuple(image.shape[-2:]):
        raise FileFormatError(f"{path} is {layer.shape[-2]} x {layer.shape[-1]} pixels but the spectral image is "
                              f"{image.shape[-2]} x {image.shape[-1]}; the quality layers must share its grid")
    mine, theirs = _geo_of(layer), _geo_of(image)
    if (mine is not None and theirs is not None and mine.transform is not None and theirs.transform is not None
            and not np.allclose(mine.transform, theirs.transform, rtol=0, atol=1e-6 * abs(theirs.transform[0]))):
        raise FileFormatError(f"{path} has the transform {mine.transform} but the spectral image {theirs.transform}; "
                              "the quality layers must share its grid")


def sort_bands(wavelengths: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Indices that sort the bands by centre wavelength, keeping the first of exact duplicates; the dropped centres."""
    wl = np.asarray(wavelengths, np.float64)
    order = np.argsort(wl, kind="stable")
    keep = np.ones(len(order), bool)
    keep[1:] = np.diff(wl[order]) > 0
    return order[keep], [float(v) for v in wl[order][~keep]]


def reflectance_image(
    raw: Any,
    *,
    wavelengths: np.ndarray,
    fwhm: np.ndarray | None,
    gains: np.ndarray,
    offsets: np.ndarray,
    nodata: float | None,
    band_names: list[str],
    what: str,
    attrs: dict[str, Any],
) -> tuple[Any, np.ndarray]:
    """The float32 reflectance DataArray (data model of :mod:`hsfuse.io.lazy`) of a raw DN DataArray: per band
    ``DN * gain + offset``, NaN where DN equals ``nodata``, bands sorted by wavelength; and the band order used."""
    dsa = _dask_array()
    order, dropped = sort_bands(wavelengths)
    dn = raw.data
    g = np.asarray(gains, np.float32)[:, None, None]
    o = np.asarray(offsets, np.float32)[:, None, None]
    refl = dn.astype(np.float32) * g + o
    if nodata is not None:
        refl = dsa.where(dn == nodata, np.float32(np.nan), refl)
    if not np.array_equal(order, np.arange(len(wavelengths))):
        refl = refl[order]
    if dropped:
        attrs = dict(attrs, duplicate_wavelengths_dropped=dropped)
    image = build_image(refl, geo=_geo_of(raw), wavelengths=np.asarray(wavelengths)[order],
                        fwhm=None if fwhm is None else np.asarray(fwhm)[order],
                        band_names=[band_names[i] for i in order], what=what, attrs=attrs)
    return image, order


def build_image(data: Any, *, geo: GeoInfo | None, wavelengths: np.ndarray, fwhm: np.ndarray | None,
                band_names: list[str] | None, what: str, attrs: dict[str, Any]) -> Any:
    """A ``(band, y, x)`` float32 dask array as the product image (reflectance, NaN = no data)."""
    return _build(data, what=what, name="reflectance", wavelengths=wavelengths, fwhm=fwhm, band_names=band_names,
                  geo=geo, nodata=float("nan"), units="reflectance", attrs=attrs)


def mask_dataarray(data: Any, image: Any, name: str) -> Any:
    """A lazy boolean ``(y, x)`` mask on the image's grid (its ``y``/``x`` and grid-mapping coordinates)."""
    xr = _xarray()
    coords = {"y": image.coords["y"], "x": image.coords["x"]}
    if "spatial_ref" in image.coords:
        coords["spatial_ref"] = image.coords["spatial_ref"]
    return xr.DataArray(data.astype(bool), dims=("y", "x"), coords=coords, name=name)


def nodata_mask(image: Any) -> Any:
    """``True`` where every band of the image is NaN."""
    dsa = _dask_array()
    return mask_dataarray(dsa.isnan(image.data).all(axis=0), image, "nodata")


def open_h5(p: Path, fmt: str, feature: str) -> Any:
    """The ``h5py.File`` of an HDF5/NetCDF-4 product, opened read-only (a truncated or non-HDF5 file raises
    :class:`FileFormatError` naming ``fmt``; no h5py raises :class:`MissingDependencyError`)."""
    h5py = import_optional("h5py", "h5py", feature)
    with reading(p, fmt):
        return h5py.File(str(p), "r")


def h5_text(value: Any) -> str | None:
    """An HDF5 attribute (bytes, str, a one-element string/number array, or a number) as stripped text."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace").strip()
    arr = np.asarray(value)
    if arr.dtype.kind in "SO" and arr.size == 1:
        return h5_text(arr.reshape(-1)[0])
    if arr.dtype.kind == "U" and arr.size == 1:
        return str(arr.reshape(-1)[0]).strip()
    if arr.size == 1 and arr.dtype.kind in "iuf":
        return str(arr.reshape(-1)[0].item())
    return str(value)
