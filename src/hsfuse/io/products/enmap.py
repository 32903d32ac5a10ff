"""EnMAP HSI Level-2A (surface reflectance) products, as DLR delivers them: :func:`open_enmap`.

Specification followed
----------------------
*EnMAP HSI Level 1B / 1C / 2A Product Specification* (DLR/GFZ, doc. EN-PCV-ICD-2009-2, issue 1.x; metadata XML
schema ``level_X``, ``metadata/schema/versionSchema`` 01.xx). The document is distributed to EnMAP data users and is
not reproduced here; the element names and nesting read below were cross-checked against the public readers of the
format (ESA SNAP's ``eu.esa.opt.dataio.enmap`` and the EnMAP-Box "Import EnMAP L2A product" algorithm). Where the
specification was not at hand, the assumption is stated.

A product (the unpacked delivery folder, named like its files) holds::

    ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z-METADATA.XML
    ...-SPECTRAL_IMAGE.TIF            reflectance DN, int16, all bands, UTM (or .BSQ/.BIL/.BIP + .HDR, or _COG.TIF)
    ...-QL_QUALITY_CLOUD.TIF          1 = cloud
    ...-QL_QUALITY_CLOUDSHADOW.TIF    1 = cloud shadow
    ...-QL_QUALITY_HAZE.TIF           1 = haze
    ...-QL_QUALITY_CIRRUS.TIF         1/2/3 = thin/medium/thick cirrus
    ...-QL_QUALITY_SNOW.TIF           1 = snow
    ...-QL_QUALITY_CLASSES.TIF        bits 0-1: 01 land, 10 water, 11 background
    ...-QL_PIXELMASK.TIF              per band, bit 0 = defective detector pixel (255 = background)
    ...-QL_QUALITY_TESTFLAGS.TIF, -QL_VNIR.TIF, -QL_SWIR.TIF, -HISTORY.XML   (not read)

What is read
------------
* ``METADATA.XML`` (root ``level_X``): ``base/level`` (must be ``L2A``), ``specific/bandCharacterisation/bandID``
  (attribute ``number``; ``wavelengthCenterOfBand``, ``FWHMOfBand`` in nm, ``GainOfBand``, ``OffsetOfBand``),
  ``specific/backgroundValue`` (no-data), ``specific/vnirProductQuality|swirProductQuality/expectedChannelsList``
  (which band numbers come from which detector), ``metadata/name``, ``base/revision`` (processor version),
  ``metadata/schema/versionSchema``, ``base/temporalCoverage/startTime|stopTime``, ``processing/productFormat``,
  ``product/ortho/projection``.
* ``SPECTRAL_IMAGE``: lazily (:func:`hsfuse.io.lazy.open_lazy`); CRS (UTM) and transform from the GeoTIFF (or the
  ENVI header's ``map info``). Reflectance = ``DN * GainOfBand + OffsetOfBand`` per band, as float32; pixels equal
  to the no-data value are NaN.
* Band order: the L2A file is ordered by wavelength (its VNIR and SWIR bands interleave in the 900-1000 nm detector
  overlap); the reader sorts by ``wavelengthCenterOfBand`` anyway and keeps every band (both detectors in the
  overlap; ``metadata["vnir_bands"]``/``["swir_bands"]`` say which band numbers are which). Bands filled with the
  no-data value (the product's bad bands) stay in the image, all NaN.
* Masks (``True`` = unusable): ``nodata`` (every band is NaN), ``cloud``, ``shadow``, ``cirrus`` (any class),
  ``haze``, ``snow``, ``water`` (class 10 of ``QL_QUALITY_CLASSES``), ``defective`` (bit 0 of any band of
  ``QL_PIXELMASK``, background 255 excluded); a mask whose file is absent is left out.

Assumptions
-----------
* No-data value: the GeoTIFF's nodata tag, else ``specific/backgroundValue``, else -32768 (what SNAP's reader uses
  for L2A, whose metadata may lack it).
* Quality rasters have the spectral image's size and grid (checked: size and transform; refused otherwise).
* ``QL_QUALITY_TESTFLAGS`` and the quicklooks are not interpreted.

The helpers at the end of this module (product folders, DLR metadata XML, the float32 reflectance image, masks) are
shared with :mod:`.desis`, :mod:`.prisma` and :mod:`.emit`.
"""

from __future__ import annotations

import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FileFormatError
from ...types import GeoInfo
from .._common import reading
from ..lazy import _build, _geo_of, _spatial_chunks, _xarray, open_lazy
from .base import Product

__all__ = ["open_enmap"]

SPEC = "EnMAP HSI Level 1B/1C/2A Product Specification (DLR/GFZ, EN-PCV-ICD-2009-2, issue 1.x; XML schema level_X)"
_DEFAULT_NODATA = -32768.0
_METADATA_RE = re.compile(r"^ENMAP.*-METADATA\.XML$", re.I)
_RASTER_EXT = r"(?:_COG)?\.(?:tif|tiff|bsq|bil|bip)"

#: quality raster key -> (mask name, rule)
_QUALITY = {
    "QL_QUALITY_CLOUD": ("cloud", "eq1"),
    "QL_QUALITY_CLOUDSHADOW": ("shadow", "eq1"),
    "QL_QUALITY_CIRRUS": ("cirrus", "cirrus"),
    "QL_QUALITY_HAZE": ("haze", "eq1"),
    "QL_QUALITY_SNOW": ("snow", "eq1"),
    "QL_QUALITY_CLASSES": ("water", "water_class"),
    "QL_PIXELMASK": ("defective", "pixelmask"),
}


def open_enmap(path: str | os.PathLike[str], *, chunks: int | tuple[int, int] | None = None) -> Product:
    """Open an EnMAP L2A product lazily: surface reflectance (float32, NaN = no data), band centres/FWHM, masks.

    Args:
        path: the product folder (or the folder it was unpacked into), its ``-METADATA.XML``, or any of its files.
        chunks: spatial chunk side, ``(rows, cols)``, or ``None`` for the GeoTIFF's blocks grouped to >= 512.

    Returns:
        :class:`~hsfuse.io.products.base.Product` with ``sensor="enmap"``, ``level="L2A"``, ``kind="hsi"``; the
        module docstring says what is read and which masks are made. Nothing but metadata is read until computed.

    Raises:
        FileFormatError: no or several ``-METADATA.XML``, unparsable metadata, missing spectral image, a product of
        another level (L1B/L1C), metadata and image that disagree, a truncated raster.
        InputError: bad ``chunks``.
    """
    _spatial_chunks(chunks, (1, 1))  # bad chunks -> InputError before any file is touched
    folder, meta_path = find_product(Path(path), _METADATA_RE, what="EnMAP", pattern="ENMAP*-METADATA.XML")
    prefix = meta_path.name[: -len("-METADATA.XML")]
    root = parse_xml(meta_path, "EnMAP metadata")
    if root.tag != "level_X":
        raise FileFormatError(f"{meta_path} is not EnMAP metadata: its root element is <{root.tag}>, expected "
                              "<level_X>")
    level = (root.findtext("base/level") or "").strip()
    if level and level.upper() != "L2A":
        raise FileFormatError(f"{meta_path} describes an EnMAP {level} product; open_enmap reads L2A (surface "
                              "reflectance, orthorectified)")
    if not level and "L2A" not in prefix.upper():
        raise FileFormatError(f"{meta_path}: no <base><level> and the name does not say L2A; open_enmap reads L2A")
    numbers, wl, fwhm, gains, offsets = _band_characterisation(root, meta_path)
    spectral = find_member(folder, prefix, "SPECTRAL_IMAGE", what="EnMAP spectral image")
    raw = open_raster(spectral, chunks, what="EnMAP spectral image")
    if raw.shape[0] != len(wl):
        raise FileFormatError(f"{spectral} has {raw.shape[0]} bands but {meta_path} characterises {len(wl)}")
    nodata, nodata_from = _nodata_value(raw, root.findtext("specific/backgroundValue"))
    image, order = reflectance_image(
        raw, wavelengths=wl, fwhm=fwhm, gains=gains, offsets=offsets, nodata=nodata,
        band_names=[f"B{n:03d}" for n in numbers], what=str(spectral),
        attrs={"source": str(folder), "format": "enmap-l2a", "sensor": "enmap", "level": "L2A"},
    )
    masks = {"nodata": nodata_mask(image)}
    files = {"metadata": meta_path.name, "spectral_image": spectral.name}
    cy, cx = image.data.chunks[1][0], image.data.chunks[2][0]
    for key, (name, rule) in _QUALITY.items():
        member = find_member(folder, prefix, key, what=key, required=False)
        if member is None:
            continue
        ql = open_raster(member, (cy, cx), what=f"EnMAP {key}")
        check_same_grid(ql, image, member)
        masks[name] = mask_dataarray(_quality_rule(ql.data, rule), image, name)
        files[name] = member.name
    vnir = _channel_list(root, "specific/vnirProductQuality/expectedChannelsList")
    swir = _channel_list(root, "specific/swirProductQuality/expectedChannelsList")
    metadata = {
        "product_name": prefix,
        "level": "L2A",
        "processor_version": _clean(root.findtext("base/revision")),
        "schema_version": _clean(root.findtext("metadata/schema/versionSchema")),
        "start_time": _clean(root.findtext("base/temporalCoverage/startTime")),
        "stop_time": _clean(root.findtext("base/temporalCoverage/stopTime")),
        "product_format": _clean(root.findtext("processing/productFormat")),
        "projection": _clean(root.findtext("product/ortho/projection")),
        "nodata_value": nodata,
        "nodata_value_from": nodata_from,
        "band_numbers": [int(numbers[i]) for i in order],
        "gains": [float(gains[i]) for i in order],
        "offsets": [float(offsets[i]) for i in order],
        "vnir_bands": vnir,
        "swir_bands": swir,
        "scaling": "reflectance = DN * GainOfBand + OffsetOfBand; DN == no-data value -> NaN",
        "files": files,
        "specification": SPEC,
    }
    return Product(image=image, kind="hsi", sensor="enmap", level="L2A", masks=masks,
                   metadata={k: v for k, v in metadata.items() if v is not None})


def _band_characterisation(root: ET.Element, meta_path: Path) -> tuple[np.ndarray, ...]:
    items = root.findall("specific/bandCharacterisation/bandID")
    if not items:
        raise FileFormatError(f"{meta_path} has no <specific><bandCharacterisation><bandID> elements: band centres, "
                              "FWHM and gains are unknown")
    numbers, rows = [], []
    for i, item in enumerate(items):
        numbers.append(_int(item.get("number", str(i + 1)), meta_path, "bandID number"))
        rows.append([xml_float(item, tag, meta_path, f"bandID {numbers[-1]}")
                     for tag in ("wavelengthCenterOfBand", "FWHMOfBand", "GainOfBand", "OffsetOfBand")])
    by_number = np.argsort(numbers, kind="stable")  # the file's band i is bandID number i + 1
    arr = np.asarray(rows, np.float64)[by_number]
    return (np.asarray(numbers)[by_number], arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


def _channel_list(root: ET.Element, tag: str) -> list[int] | None:
    text = root.findtext(tag)
    if not text:
        return None
    try:
        return [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        return None


def _nodata_value(raw: Any, background: str | None) -> tuple[float, str]:
    tagged = raw.attrs.get("_FillValue")
    if tagged is not None and np.isfinite(float(tagged)):
        return float(tagged), "raster nodata tag"
    if background is not None and background.strip():
        try:
            return float(background), "metadata backgroundValue"
        except ValueError:
            pass
    return _DEFAULT_NODATA, "default -32768 (not in the raster nor the metadata)"


def _quality_rule(data: Any, rule: str) -> Any:
    """Lazy boolean ``(y, x)`` of a quality raster ``(bands, y, x)`` under ``rule`` (module docstring)."""
    band0 = data[0]
    if rule == "eq1":
        return band0 == 1
    if rule == "cirrus":
        return (band0 >= 1) & (band0 <= 3)
    if rule == "water_class":
        return (band0 & 3) == 2
    if rule == "pixelmask":
        return (((data & 1) == 1) & (data != 255)).any(axis=0)
    raise AssertionError(rule)  # pragma: no cover


# ---------------------------------------------------------------------------------------------- shared helpers
# (used by desis.py, prisma.py and emit.py too)


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
                ext: str = _RASTER_EXT) -> Path | None:
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


def _int(text: str, path: Path, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise FileFormatError(f"{path}: {what} {text!r} is not an integer") from None


def _clean(text: str | None) -> str | None:
    return text.strip() if text is not None and text.strip() else None


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


def _dask_array() -> Any:
    import dask.array as dsa

    return dsa
