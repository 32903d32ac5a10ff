"""Ordinary colour / grey images (PNG, JPEG, TIFF, BMP) as cubes with 1-4 bands.

Readers, chosen per file because no one library reads every case correctly:

* PNG, JPEG, BMP: Pillow, except 16-bit colour PNGs (Pillow reduces those to 8 bits): read via rasterio
  (GDAL's PNG driver), detected from the PNG header (bit depth 16, colour type RGB / RGBA / grey+alpha).
* TIFF: tifffile (Pillow also reduces 16-bit RGB TIFFs to 8 bits); any samples-per-pixel and dtype.

Values are as stored (``uint8``/``uint16``, no scaling). ``band_names``: ``R, G, B[, A]`` for colour,
``gray[, A]`` for grey, ``C, M, Y, K`` for CMYK JPEGs; palette images are expanded to RGB(A).
``wavelengths`` are ``None`` (a camera's bands are broad; attach an SRF instead). JPEG EXIF orientation is
not applied (the pixel grid is kept as stored).

:func:`write_png` writes 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) bands at 8 or 16 bits.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube
from ._common import import_optional, make_cube, native, reading, require_file, to_unsigned
from .atomic import atomic_output

__all__ = ["read_image", "write_png", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NAMES = {1: ["gray"], 2: ["gray", "A"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}


def _pil() -> Any:
    return import_optional("PIL.Image", "pillow", "reading and writing PNG/JPEG images")


def _png_header(path: Path) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` from a PNG's IHDR chunk, or ``None`` if not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _read_pillow(p: Path, attrs: dict[str, Any]) -> tuple[np.ndarray, list[str] | None]:
    Image = _pil()
    with Image.open(str(p)) as im:
        im.load()
        mode = im.mode
        attrs["mode"] = mode
        if mode == "1":
            im = im.convert("L")
        elif mode in ("P", "PA"):
            im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
        elif mode in ("RGBX", "YCbCr", "LAB", "HSV", "RGBa", "La"):
            im = im.convert("RGB")
        arr = native(np.asarray(im))
        out_mode = im.mode
    if arr.ndim == 2:
        arr = arr[:, :, None]
    names = ["C", "M", "Y", "K"] if out_mode == "CMYK" else _NAMES.get(arr.shape[2])
    return arr, names


def _read_rasterio_png(p: Path) -> tuple[np.ndarray, list[str] | None]:
    rasterio = import_optional("rasterio", "rasterio", "reading 16-bit colour PNG files")
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(str(p)) as src:
            arr = np.moveaxis(src.read(), 0, 2)
    return arr, _NAMES.get(arr.shape[2])


def _read_tiff(p: Path, attrs: dict[str, Any]) -> tuple[np.ndarray, list[str] | None]:
    tifffile = import_optional("tifffile", "tifffile", "reading TIFF images")
    with tifffile.TiffFile(str(p)) as tif:
        series = tif.series[0]
        axes = series.axes
        arr = native(series.asarray())
        photometric = tif.pages[0].photometric
    attrs["tiff_axes"] = axes
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3 and axes.endswith("YX") and axes[0] in "SCIQ":
        arr = np.moveaxis(arr, 0, 2)
    elif not (arr.ndim == 3 and axes == "YXS"):
        raise FileFormatError(f"{p}: TIFF of axes {axes!r} (shape {arr.shape}) is not a single image; use read_geotiff")
    rgb = getattr(photometric, "name", "") == "RGB"
    names = _NAMES.get(arr.shape[2]) if (rgb or arr.shape[2] <= 2) and arr.shape[2] <= 4 else None
    return arr, names


def read_image(path: str | os.PathLike[str]) -> Cube:
    """Read a PNG/JPEG/TIFF/BMP image into a cube ``(H, W, C)`` with the stored values and dtype.

    Returns:
        :class:`Cube`, ``wavelengths=None``, ``band_names`` as in the module docstring, ``attrs``: ``source``,
        ``format="image"``, ``reader`` (``pillow``/``rasterio``/``tifffile``) and ``mode`` (Pillow's).

    Raises:
        FileFormatError: missing, truncated or unreadable file.

    Example:
        >>> rgb = read_image("photo.png")  # doctest: +SKIP
        >>> rgb.band_names  # doctest: +SKIP
        ['R', 'G', 'B']
    """
    p = require_file(path)
    attrs: dict[str, Any] = {"source": str(p), "format": "image"}
    with reading(p, "an image"):
        suffix = p.suffix.lower()
        if suffix in (".tif", ".tiff"):
            attrs["reader"] = "tifffile"
            arr, names = _read_tiff(p, attrs)
        else:
            png = _png_header(p)
            if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
                attrs["reader"] = "rasterio"
                attrs["mode"] = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[png[1]]
                arr, names = _read_rasterio_png(p)
            else:
                attrs["reader"] = "pillow"
                arr, names = _read_pillow(p, attrs)
    return make_cube(arr, what=str(p), band_names=names, attrs=attrs)


def write_png(
    cube: Cube,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    bit_depth: Literal[8, 16] | None = None,
    scale: float | None = None,
) -> Path:
    """Write a 1-4 band cube as a PNG (grey, grey+alpha, RGB, RGBA) at 8 or 16 bits per sample.

    ``bit_depth=None`` keeps ``uint8`` data as 8-bit and ``uint16`` as 16-bit; other dtypes need
    ``bit_depth``. ``scale`` stores ``round(data * scale)`` (e.g. ``scale=255`` for data in [0, 1]); without it
    values must be integers. Out-of-range values or NaN are refused, never clipped. 8-bit and 16-bit grey
    images are written by Pillow, 16-bit colour by rasterio (Pillow cannot). The write is atomic.
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_png takes a Cube, got {type(cube).__name__}")
    bands = cube.bands
    if bands not in (1, 2, 3, 4):
        raise InputError(
            f"PNG holds 1-4 bands (grey, grey+alpha, RGB, RGBA); the cube has {bands}: select bands (e.g. a "
            "false-colour composite) or write .tif/.npz/.hdr instead"
        )
    data, depth = to_unsigned(cube.data, bit_depth=bit_depth, scale=scale, what=f"PNG {path}")
    with atomic_output(path, overwrite=overwrite) as tmp:
        if depth == 16 and bands > 1:
            rasterio = import_optional("rasterio", "rasterio", "writing 16-bit colour PNG files")
            from rasterio.errors import NotGeoreferencedWarning

            h, w, _ = data.shape
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
                    str(tmp), "w", driver="PNG", width=w, height=h, count=bands, dtype="uint16"
                ) as dst:
                    dst.write(np.ascontiguousarray(np.moveaxis(data, 2, 0)))
        else:
            Image = _pil()
            arr = np.ascontiguousarray(data[:, :, 0] if bands == 1 else data)
            # uint8 (H, W[, 2|3|4]) -> L / LA / RGB / RGBA, uint16 (H, W) -> I;16 (Pillow infers the mode)
            Image.fromarray(arr).save(str(tmp), format="PNG")
    return Path(path)
