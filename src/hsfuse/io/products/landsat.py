"""Landsat 8-9 OLI Collection 2 Level-2 products as they come: :func:`open_landsat` returns a :class:`Product`.

Specification
-------------
USGS, *Landsat 8-9 Collection 2 (C2) Level 2 Science Product (L2SP) Guide*, LSDS-1619 (Version 6.0), and the
*Landsat 8-9 OLI/TIRS Collection 2 Level 2 Data Format Control Book*, LSDS-1328 (Version 6.0, September 2020)
for the file names and the metadata file. A product is a folder (the unpacked ``.tar``) of Cloud Optimized
GeoTIFFs and a metadata file::

    LC08_L2SP_190025_20230615_20230621_02_T1/
      LC08_L2SP_190025_20230615_20230621_02_T1_MTL.txt     (or _MTL.json / _MTL.xml: the same content)
      LC08_L2SP_190025_20230615_20230621_02_T1_SR_B1.TIF ... _SR_B7.TIF
      LC08_L2SP_190025_20230615_20230621_02_T1_QA_PIXEL.TIF

* the MTL (``GROUP = ... / END_GROUP = ...`` text, preferred over ``.json`` then ``.xml``):
  ``PRODUCT_CONTENTS`` (``PROCESSING_LEVEL`` = ``L2SP``/``L2SR``, ``COLLECTION_NUMBER`` = 02,
  ``FILE_NAME_BAND_n``, ``FILE_NAME_QUALITY_L1_PIXEL``), ``IMAGE_ATTRIBUTES`` (``SPACECRAFT_ID`` ``LANDSAT_8`` ->
  sensor ``"landsat8"``, ``LANDSAT_9`` -> ``"landsat9"``: both in the SRF library), and
  ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (``REFLECTANCE_MULT_BAND_n``, ``REFLECTANCE_ADD_BAND_n``; the
  ``LEVEL1_RADIOMETRIC_RESCALING`` group reuses these names for top-of-atmosphere values and is not read);
* the COGs: the pixels, the CRS and the transform (GDAL applies the files' ``PixelIsPoint`` convention: the
  transform is that of pixel corners); every file must share the grid.

``surface reflectance = DN * REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n`` (2.75e-05 and -0.2 in C2), in
float32; fill (DN 0) is NaN. Bands ``B1``-``B7`` (the SRF library's names; coastal/aerosol, blue, green, red,
NIR, SWIR 1, SWIR 2), in that (spectral) order. The product gives no band centres, so ``band`` holds the band
indices ``0..B-1`` (the data model for unknown wavelengths) and ``attrs["srf_sensor"]`` names the SRF library
entry that has them.

Masks (``QA_PIXEL`` bits, C2 L2 pixel quality assessment; True = bit set)
---------------------------------------------------------------------------
=============  ====  ===============================================================
mask           bit   meaning
=============  ====  ===============================================================
nodata         0     fill; also True where any returned band is NaN (SR DN 0)
dilated_cloud  1     dilated cloud
cirrus         2     cirrus (high confidence)
cloud          3     cloud
shadow         4     cloud shadow
snow           5     snow
water          7     water
=============  ====  ===============================================================

Bit 6 (clear) and the confidence pairs (bits 8-15) are not masks. Not read: ``QA_RADSAT``, ``SR_QA_AEROSOL``,
the surface temperature bands, the angle files.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FileFormatError, InputError
from ...types import GeoInfo
from ..lazy import _build, _dask_array, spatial_chunks, _xarray
from .base import Product, select_bands

__all__ = ["open_landsat", "QA_PIXEL_MASKS", "LANDSAT_BANDS", "LANDSAT_REFERENCE"]

LANDSAT_REFERENCE = ("USGS Landsat 8-9 Collection 2 Level 2 Science Product Guide LSDS-1619 (Version 6.0); "
                     "Landsat 8-9 OLI/TIRS C2 L2 Data Format Control Book LSDS-1328 (Version 6.0)")
#: the surface reflectance bands, in spectral order (names of the SRF library's landsat8/landsat9)
LANDSAT_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
#: mask name -> QA_PIXEL bit
QA_PIXEL_MASKS: dict[str, int] = {"nodata": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "shadow": 4,
                                  "snow": 5, "water": 7}
_SPACECRAFT = {"LANDSAT_8": "landsat8", "LANDSAT_9": "landsat9"}
_LEVELS = ("L2SP", "L2SR")
_MTL_SUFFIXES = ("_MTL.txt", "_MTL.json", "_MTL.xml")
_FILL = 0


# ---------------------------------------------------------------------------------------------- MTL


def _value(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _parse_odl(text: str, path: Path) -> dict[str, Any]:
    """The ``GROUP = X ... END_GROUP = X`` / ``KEY = value`` text of an MTL as nested dicts of strings."""
    root: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any]]] = [("", root)]
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line == "END":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise FileFormatError(f"{path}, line {number}: {raw!r} is not 'KEY = value'")
        if key == "GROUP":
            group: dict[str, Any] = {}
            stack[-1][1][value] = group
            stack.append((value, group))
        elif key == "END_GROUP":
            if len(stack) == 1 or stack[-1][0] != value:
                raise FileFormatError(f"{path}, line {number}: END_GROUP = {value} closes "
                                      f"{stack[-1][0] or 'no group'}")
            stack.pop()
        else:
            stack[-1][1][key] = _value(value)
    if len(stack) != 1:
        raise FileFormatError(f"{path}: GROUP = {stack[-1][0]} is never closed (truncated file?)")
    return root


def _xml_dict(elem: ET.Element) -> Any:
    kids = list(elem)
    if not kids:
        return (elem.text or "").strip()
    return {child.tag: _xml_dict(child) for child in kids}


def _read_mtl(path: Path) -> dict[str, Any]:
    """The ``LANDSAT_METADATA_FILE`` group of an MTL file (``.txt``, ``.json`` or ``.xml``), values as strings."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FileFormatError(f"cannot read {path} ({exc})") from exc
    name = path.name.lower()
    try:
        if name.endswith(".json"):
            tree = json.loads(text)
        elif name.endswith(".xml"):
            root = ET.fromstring(text)
            tree = {root.tag: _xml_dict(root)}
        else:
            tree = _parse_odl(text, path)
    except (json.JSONDecodeError, ET.ParseError) as exc:
        raise FileFormatError(f"{path} cannot be parsed ({exc}); the metadata file is damaged") from exc
    meta = tree.get("LANDSAT_METADATA_FILE") if isinstance(tree, dict) else None
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path} has no LANDSAT_METADATA_FILE group: not a Landsat Collection 2 MTL file")
    return meta


def _find_mtl(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"{p} not found; give the folder of a Landsat Collection 2 Level-2 product (or its "
                              f"_MTL.txt); current folder: {Path.cwd()}")
    if p.is_file():
        if any(p.name.upper().endswith(s.upper()) for s in _MTL_SUFFIXES):
            return p
        if p.suffix.lower() in (".tar", ".gz", ".tgz"):
            raise FileFormatError(f"{p} is an archive; unpack it and give the folder")
        raise FileFormatError(f"{p} is not a Landsat product: give its folder or its *_MTL.txt file")
    for suffix in _MTL_SUFFIXES:
        found = sorted(f for f in p.iterdir() if f.is_file() and f.name.upper().endswith(suffix.upper()))
        if len(found) > 1:
            raise FileFormatError(f"{p} holds {len(found)} products ({', '.join(f.name for f in found)}); give "
                                  "one product's folder or its *_MTL.txt")
        if found:
            return found[0]
    raise FileFormatError(f"{p} is not a Landsat Collection 2 Level-2 product folder: no *_MTL.txt, *_MTL.json or "
                          "*_MTL.xml metadata file")


def _group(meta: dict[str, Any], name: str, mtl: Path) -> dict[str, Any]:
    group = meta.get(name)
    if not isinstance(group, dict):
        raise FileFormatError(f"{mtl}: no {name} group")
    return group


def _float(group: dict[str, Any], key: str, mtl: Path, gname: str) -> float:
    if key not in group:
        raise FileFormatError(f"{mtl}: {gname} has no {key}")
    try:
        return float(group[key])
    except (TypeError, ValueError):
        raise FileFormatError(f"{mtl}: {gname}/{key} is {group[key]!r}, not a number") from None


# ---------------------------------------------------------------------------------------------- public


def _band_name(value: Any) -> str:
    text = str(value).strip().upper()
    m = re.fullmatch(r"(?:SR_)?B?0*(\d{1,2})", text)
    name = f"B{int(m.group(1))}" if m else text
    if name not in LANDSAT_BANDS:
        extra = " (B8 panchromatic and B9 cirrus are Level-1 only; B10/B11 are thermal: ST_B10 is surface " \
                "temperature)" if name in ("B8", "B9", "B10", "B11") else ""
        raise InputError(f"unknown Landsat surface reflectance band {value!r}; bands are "
                         f"{', '.join(LANDSAT_BANDS)}{extra}")
    return name


def _grid(path: Path, what: str) -> tuple[tuple[int, int], tuple[float, ...], str, tuple[int, int]]:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise FileFormatError(f"{what} {path} has no CRS; Landsat Level-2 files are georeferenced")
            return ((ds.height, ds.width), tuple(ds.transform)[:6], ds.crs.to_string(), tuple(ds.block_shapes[0]))
    except RasterioIOError as exc:
        raise FileFormatError(f"cannot open {what} {path} ({exc})") from exc


def _lazy_band(path: Path, cy: int, cx: int) -> Any:
    import rioxarray

    rx = rioxarray.open_rasterio(str(path), chunks={"band": -1, "y": cy, "x": cx}, mask_and_scale=False,
                                 parse_coordinates=False)
    return rx.data[0]


def open_landsat(
    path: str | os.PathLike[str],
    *,
    bands: list[str] | tuple[str, ...] | None = None,
    chunks: int | tuple[int, int] | None = None,
) -> Product:
    """Open a Landsat 8/9 Collection 2 Level-2 product (folder or its MTL file) lazily as a :class:`Product`.

    The module docstring gives the specification, the files and metadata read, the reflectance conversion and
    the ``QA_PIXEL`` mask table.

    Args:
        path: the product folder (unpacked) or its ``*_MTL.txt`` / ``.json`` / ``.xml``.
        bands: ``"B1"``..``"B7"`` (``"SR_B4"`` and ``"4"`` work too); default all seven, in spectral order.
        chunks: spatial chunk side, ``(cy, cx)``, or ``None`` (the COG tiles, grouped to at least 512).

    Returns:
        ``Product(kind="msi", sensor="landsat8"|"landsat9", level="L2SP"|"L2SR")``: float32 surface reflectance
        ``(band, y, x)`` over dask (NaN = fill), ``band_name`` = ``"B1"``..., the files' CRS and transform;
        masks ``nodata``, ``dilated_cloud``, ``cirrus``, ``cloud``, ``shadow``, ``snow``, ``water``.

    Raises:
        FileFormatError: no or damaged MTL, not a Collection 2 Level-2 Landsat 8/9 product, missing band or QA
        file, files on different grids, missing scale factors.
        InputError: bad ``bands`` or ``chunks``.
    """
    names = select_bands(bands, _band_name, LANDSAT_BANDS, LANDSAT_BANDS.index, example="['B2', 'B5']",
                         default_text="B1-B7")
    spatial_chunks(chunks, (1, 1))  # validate early
    xr = _xarray()
    mtl = _find_mtl(path)
    folder = mtl.parent
    meta = _read_mtl(mtl)
    contents = _group(meta, "PRODUCT_CONTENTS", mtl)
    image_attrs = _group(meta, "IMAGE_ATTRIBUTES", mtl)
    level = str(contents.get("PROCESSING_LEVEL", "")).upper()
    if level not in _LEVELS:
        raise FileFormatError(f"{mtl}: PROCESSING_LEVEL is {level or 'missing'!r}; open_landsat reads Level-2 "
                              "surface reflectance products (L2SP, L2SR), not Level-1")
    collection = str(contents.get("COLLECTION_NUMBER", "")).strip()
    if collection and collection.lstrip("0") != "2":
        raise FileFormatError(f"{mtl}: COLLECTION_NUMBER is {collection}; only Collection 2 is read (Collection 1 "
                              "used other scale factors and fill values)")
    craft = str(image_attrs.get("SPACECRAFT_ID", "")).upper()
    if craft not in _SPACECRAFT:
        raise FileFormatError(f"{mtl}: SPACECRAFT_ID is {craft or 'missing'!r}; open_landsat reads Landsat 8 and 9 "
                              "(OLI) products (Landsat 4-7 follow LSDS-1618 and other bands)")
    sensor = _SPACECRAFT[craft]
    params = _group(meta, "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", mtl)

    def product_file(key: str, what: str) -> Path:
        name = contents.get(key)
        if not name:
            raise FileFormatError(f"{mtl}: PRODUCT_CONTENTS has no {key} (the {what} file)")
        f = folder / str(name)
        if not f.is_file():
            raise FileFormatError(f"{folder}: {what} file {name} (named in {mtl.name}) is missing")
        return f

    paths = {n: product_file(f"FILE_NAME_BAND_{n[1:]}", f"surface reflectance band {n}") for n in names}
    qa_path = product_file("FILE_NAME_QUALITY_L1_PIXEL", "QA_PIXEL")
    scale = {n: (_float(params, f"REFLECTANCE_MULT_BAND_{n[1:]}", mtl, "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"),
                 _float(params, f"REFLECTANCE_ADD_BAND_{n[1:]}", mtl, "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS"))
             for n in names}
    grids = {n: _grid(f, f"band {n}") for n, f in paths.items()}
    grids["QA_PIXEL"] = _grid(qa_path, "QA_PIXEL")
    first = next(iter(grids.values()))
    for what, g in grids.items():
        if g[:3] != first[:3]:
            raise FileFormatError(f"{folder}: {what} is on another grid ({g[0][0]} x {g[0][1]}, {g[2]}, transform "
                                  f"{g[1]}) than {names[0]} ({first[0][0]} x {first[0][1]}, {first[2]}, {first[1]})")
    shape, transform, crs, block = first
    cy, cx = spatial_chunks(chunks, shape, block)

    dsa = _dask_array()
    layers = []
    for n in names:
        dn = _lazy_band(paths[n], cy, cx)
        mult, add = scale[n]
        refl = dn.astype(np.float64) * mult + add
        layers.append(dsa.where(dn == _FILL, np.nan, refl).astype(np.float32))
    data = dsa.stack(layers, axis=0).rechunk((len(names), cy, cx))
    attrs = {"source": str(folder), "format": "landsat-c2-l2", "sensor": sensor, "level": level,
             "srf_sensor": sensor, "product_id": str(contents.get("LANDSAT_PRODUCT_ID", folder.name))}
    image = _build(data, what=f"Landsat {folder.name}", name="reflectance", band_names=names,
                   geo=GeoInfo(crs, transform), nodata=float("nan"), units="reflectance", attrs=attrs)

    qa = _lazy_band(qa_path, cy, cx)
    plain = {k: v for k, v in image.coords.items() if "band" not in v.dims}
    masks: dict[str, Any] = {}
    for mask_name, bit in QA_PIXEL_MASKS.items():
        masks[mask_name] = xr.DataArray((qa & np.uint16(1 << bit)) != 0, dims=("y", "x"), coords=plain,
                                        name=mask_name)
    masks["nodata"] = (masks["nodata"] | image.isnull().any("band")).rename("nodata")

    def text(group: dict[str, Any], key: str) -> str | None:
        value = group.get(key)
        return None if value is None else str(value)

    record = meta.get("LEVEL2_PROCESSING_RECORD") if isinstance(meta.get("LEVEL2_PROCESSING_RECORD"), dict) else {}
    metadata: dict[str, Any] = {
        "source": str(folder), "mtl": mtl.name, "specification": LANDSAT_REFERENCE,
        "product_id": text(contents, "LANDSAT_PRODUCT_ID"), "processing_level": level,
        "collection_number": text(contents, "COLLECTION_NUMBER"),
        "collection_category": text(contents, "COLLECTION_CATEGORY"), "spacecraft": craft,
        "sensor_id": text(image_attrs, "SENSOR_ID"), "wrs_path": text(image_attrs, "WRS_PATH"),
        "wrs_row": text(image_attrs, "WRS_ROW"), "date_acquired": text(image_attrs, "DATE_ACQUIRED"),
        "scene_center_time": text(image_attrs, "SCENE_CENTER_TIME"),
        "cloud_cover": text(image_attrs, "CLOUD_COVER"), "sun_azimuth": text(image_attrs, "SUN_AZIMUTH"),
        "sun_elevation": text(image_attrs, "SUN_ELEVATION"),
        "date_product_generated": text(record, "DATE_PRODUCT_GENERATED"),
        "processing_software_version": text(record, "PROCESSING_SOFTWARE_VERSION"),
        "algorithm_source_surface_reflectance": text(record, "ALGORITHM_SOURCE_SURFACE_REFLECTANCE"),
        "crs": crs, "bands": names, "band_files": {n: paths[n].name for n in names}, "qa_file": qa_path.name,
        "reflectance_mult": {n: scale[n][0] for n in names}, "reflectance_add": {n: scale[n][1] for n in names},
        "reflectance": "DN * REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n; DN == 0 (fill) -> NaN",
        "fill_value": _FILL, "qa_pixel_masks": dict(QA_PIXEL_MASKS),
        "band_centres": "not in the product: take them from the SRF library entry attrs['srf_sensor']",
    }
    lines = text(_group(meta, "PROJECTION_ATTRIBUTES", mtl) if "PROJECTION_ATTRIBUTES" in meta else {},
                 "REFLECTIVE_LINES")
    if lines is not None and lines.isdigit() and int(lines) != shape[0]:
        warnings.warn(f"{mtl}: REFLECTIVE_LINES = {lines} but the band files have {shape[0]} rows")
    metadata = {k: v for k, v in metadata.items() if v is not None}
    return Product(image=image, kind="msi", sensor=sensor, level=level, masks=masks, metadata=metadata)
