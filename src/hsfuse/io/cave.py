"""CAVE-layout folders: one 16-bit grey PNG per band, ``<scene>_ms_01.png`` ... ``<scene>_ms_31.png``.

The CAVE multispectral database (Yasuma et al., "Generalized Assorted Pixel Camera", IEEE TIP 2010;
https://www.cs.columbia.edu/CAVE/databases/multispectral/) ships each scene as ``<scene>_ms/<scene>_ms/``
with 31 PNGs for 400, 410, ..., 700 nm and an sRGB ``.bmp`` beside them. The reader accepts the band PNGs
directly in the given folder or nested one level below (the RGB ``.bmp`` and other files are ignored).

Values are kept as stored (``uint16`` for 16-bit PNGs; an 8-bit band is widened to ``uint16`` only when the
bands mix bit depths). Some CAVE scenes hold 8-bit data shifted into the high byte (every value a multiple
of 256); the reader does not rescale, it records ``attrs["low_byte_zero"]``. Wavelengths: ``400:10:700`` nm
when there are exactly 31 bands (the CAVE sampling), else ``None`` (pass ``wavelengths=``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError
from ..types import Cube
from ._common import import_optional, make_cube, reading, require_file, to_unsigned
from .atomic import atomic_output_dir

__all__ = ["read_cave", "write_cave", "CAVE_WAVELENGTHS_NM"]

#: Band centres of the CAVE database: 400, 410, ..., 700 nm (31 bands).
CAVE_WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)
_BAND_RE = re.compile(r"^(?P<prefix>.*?)_?(?P<index>\d+)\.png$", re.IGNORECASE)


def _band_files(folder: Path) -> dict[int, Path]:
    files: dict[int, Path] = {}
    prefixes: set[str] = set()
    for entry in folder.iterdir():
        m = _BAND_RE.match(entry.name)
        if m and entry.is_file():
            prefixes.add(m.group("prefix"))
            files[int(m.group("index"))] = entry
    if len(prefixes) > 1:
        raise FileFormatError(
            f"{folder} mixes band PNGs of several scenes ({', '.join(sorted(prefixes))}); keep one scene per folder"
        )
    return files


def _find_bands(folder: Path) -> tuple[Path, dict[int, Path]]:
    files = _band_files(folder)
    if files:
        return folder, files
    nested = [(d, f) for d in sorted(folder.iterdir()) if d.is_dir() for f in [_band_files(d)] if f]
    if len(nested) == 1:
        return nested[0]
    if len(nested) > 1:
        names = ", ".join(d.name for d, _ in nested)
        raise FileFormatError(f"{folder} has several sub-folders of band PNGs ({names}); pass one of them")
    raise FileFormatError(
        f"{folder} holds no band PNGs named like <scene>_ms_01.png (here or one folder below); not a CAVE folder"
    )


def _read_band(path: Path, attrs: dict[str, Any]) -> np.ndarray:
    Image = import_optional("PIL.Image", "pillow", "reading CAVE PNG folders")
    with reading(path, "a PNG band"), Image.open(str(path)) as im:
        im.load()
        mode = im.mode
        arr = np.asarray(im)
    attrs.setdefault("png_modes", set()).add(mode)
    if arr.ndim == 3:
        # a few CAVE files are stored as RGB(A) with equal channels: keep one channel if so
        if not all(np.array_equal(arr[..., 0], arr[..., k]) for k in range(1, min(arr.shape[2], 3))):
            raise FileFormatError(f"{path} is a colour image ({mode}) with differing channels, not one band")
        arr = arr[..., 0]
    if arr.dtype.kind == "i" or arr.dtype.byteorder == ">":
        if arr.min() < 0 or arr.max() > 65535:
            raise FileFormatError(f"{path}: values outside 0..65535 for a 16-bit band")
        arr = arr.astype(np.uint16)
    return arr


def read_cave(path: str | os.PathLike[str], *, wavelengths: Sequence[float] | np.ndarray | None = None) -> Cube:
    """Read a CAVE-layout folder of per-band PNGs into a cube ``(H, W, B)``.

    Args:
        path: the scene folder (``balloons_ms`` or the nested ``balloons_ms/balloons_ms``).
        wavelengths: band centres in nm; default ``400:10:700`` for 31 bands, else ``None``.

    Returns:
        :class:`Cube` with raw stored values; ``attrs``: ``source``, ``format="cave"``, ``scene`` (file name
        prefix), ``png_modes``, ``bit_depth`` (8/16), ``low_byte_zero`` (bool), ``max_value``.

    Raises:
        FileFormatError: no band PNGs, missing band numbers, differing sizes, unreadable/truncated PNG.

    Example:
        >>> cube = read_cave("complete_ms_data/balloons_ms")  # doctest: +SKIP
        >>> cube.shape, cube.wavelengths[[0, -1]]  # doctest: +SKIP
        ((512, 512, 31), array([400., 700.]))
    """
    p = require_file(path, kind="any")
    if not p.is_dir():
        raise FileFormatError(f"{p} is not a folder; a CAVE scene is a folder of <scene>_ms_NN.png files")
    folder, files = _find_bands(p)
    indices = sorted(files)
    first = indices[0]
    expected = list(range(first, first + len(indices)))
    if indices != expected or first not in (0, 1):
        missing = sorted(set(range(1, indices[-1] + 1)) - set(indices))
        raise FileFormatError(f"{folder}: band PNGs are not numbered 1..{len(indices)} (missing {missing[:10]})")
    attrs: dict[str, Any] = {"source": str(folder), "format": "cave"}
    m = _BAND_RE.match(files[first].name)
    attrs["scene"] = m.group("prefix") if m else ""
    bands = [_read_band(files[i], attrs) for i in indices]
    shapes = {b.shape for b in bands}
    if len(shapes) != 1:
        raise FileFormatError(f"{folder}: band PNGs differ in size ({sorted(shapes)}); not one cube")
    dtypes = {b.dtype for b in bands}
    dtype = np.uint16 if len(dtypes) > 1 else bands[0].dtype
    data = np.stack([b.astype(dtype, copy=False) for b in bands], axis=2)
    attrs["png_modes"] = sorted(attrs["png_modes"])
    attrs["bit_depth"] = 8 if data.dtype == np.uint8 else 16
    attrs["max_value"] = int(data.max())
    attrs["low_byte_zero"] = bool(data.dtype == np.uint16 and not np.any(data & 0xFF))
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64).reshape(-1)
        if wl.shape[0] != data.shape[2]:
            raise InputError(f"{wl.shape[0]} wavelengths given for {data.shape[2]} band PNGs in {folder}")
    else:
        wl = CAVE_WAVELENGTHS_NM.copy() if data.shape[2] == 31 else None
    return make_cube(data, what=str(folder), wavelengths=wl, attrs=attrs)


def _scene_name(folder: Path) -> str:
    name = folder.name
    return name[:-3] if name.lower().endswith("_ms") and len(name) > 3 else name


def write_cave(
    cube: Cube,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    scale: float | None = None,
) -> Path:
    """Write a cube as a CAVE-layout folder of 16-bit grey PNGs, one per band.

    Files: ``<path>/<scene>_ms_01.png`` ... (two digits, more when there are over 99 bands), where
    ``scene`` is the folder name without a trailing ``_ms``. Data must be integers in ``0..65535``
    (any integer dtype, or integer-valued floats); other data need ``scale``: the stored value is
    ``round(data * scale)`` (e.g. ``scale=65535`` for reflectance in ``[0, 1]``, as CAVE loaders divide by
    65535). Out-of-range values are refused, not clipped. Wavelengths and other metadata are not stored (the
    format has none; CAVE's 400:10:700 nm is assumed on reading 31 bands). Written atomically as a folder;
    an existing folder is replaced (``overwrite=True``) only if it holds nothing but PNG/BMP files.
    """
    if not isinstance(cube, Cube):
        raise InputError(f"write_cave takes a Cube, got {type(cube).__name__}")
    Image = import_optional("PIL.Image", "pillow", "writing CAVE PNG folders")
    out, _ = to_unsigned(cube.data, bit_depth=16, scale=scale, what=f"CAVE folder {path}")
    folder = Path(path)
    scene = _scene_name(folder)
    digits = max(2, len(str(cube.bands)))

    def replaceable(entry: Path) -> bool:
        return entry.is_file() and entry.suffix.lower() in (".png", ".bmp")

    with atomic_output_dir(folder, overwrite=overwrite, replaceable=replaceable) as tmp:
        for i in range(cube.bands):
            band = np.ascontiguousarray(out[:, :, i])
            Image.fromarray(band).save(str(tmp / f"{scene}_ms_{i + 1:0{digits}d}.png"), format="PNG")
    return folder
