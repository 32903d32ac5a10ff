"""Which product a path is: :func:`product_type` looks at names and the few bytes that identify each format, and
:func:`open_product` opens it with its reader; a plain raster is not a product (``None`` / :func:`open_product`
refuses it)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import FileFormatError
from .base import Product

__all__ = ["product_type", "open_product", "PRODUCT_TYPES"]


def _names(path: Path) -> list[str]:
    if path.is_dir():
        try:
            return [p.name for p in path.iterdir()] + [path.name]
        except OSError:
            return [path.name]
    return [path.name] + ([p.name for p in path.parent.iterdir()] if path.parent.is_dir() else [])


def _h5_attr(path: Path, key: str) -> str | None:
    try:
        import h5py

        with h5py.File(path, "r") as f:
            value = f.attrs.get(key)
    except (OSError, ValueError):
        return None
    return None if value is None else (value.decode() if isinstance(value, bytes) else str(value))


def product_type(path: str | os.PathLike[str]) -> str | None:
    """``"enmap"``, ``"prisma"``, ``"emit"``, ``"desis"``, ``"sentinel2"``, ``"landsat"``, or ``None`` (a plain file)."""
    p = Path(path)
    if not p.exists():
        return None
    names = _names(p)
    upper = " ".join(names).upper()
    if p.name.upper().endswith(".SAFE") or "MTD_MSIL2A.XML" in upper or any(n.upper() == "MTD_MSIL2A.XML" for n in names):
        return "sentinel2"
    if any(re.search(r"_MTL\.(TXT|JSON|XML)$", n.upper()) for n in names) and (p.is_dir() or "_MTL" in p.name.upper()):
        return "landsat"
    if p.suffix.lower() == ".he5" or (p.is_dir() and any(n.lower().endswith(".he5") for n in names)):
        return "prisma"
    if p.suffix.lower() == ".nc" and p.name.upper().startswith("EMIT_L2A"):
        return "emit"
    if any(re.search(r"ENMAP.*-METADATA\.XML$", n.upper()) for n in names):
        return "enmap"
    if any(re.search(r"DESIS.*-METADATA\.XML$", n.upper()) for n in names):
        return "desis"
    if p.suffix.lower() in (".h5", ".he5") and _h5_attr(p, "Product_ID") is not None:
        return "prisma"
    return None


def _readers() -> dict[str, Callable[..., Product]]:
    from .desis import open_desis
    from .emit import open_emit
    from .enmap import open_enmap
    from .landsat import open_landsat
    from .prisma import open_prisma
    from .sentinel2 import open_sentinel2

    return {"enmap": open_enmap, "prisma": open_prisma, "emit": open_emit, "desis": open_desis,
            "sentinel2": open_sentinel2, "landsat": open_landsat}


#: the product types :func:`open_product` knows
PRODUCT_TYPES = ("enmap", "prisma", "emit", "desis", "sentinel2", "landsat")


def open_product(path: str | os.PathLike[str], **kwargs: Any) -> Product:
    """Open a product with the reader of its type (:func:`product_type`); ``kwargs`` go to that reader."""
    kind = product_type(path)
    if kind is None:
        raise FileFormatError(f"{path} is not a product hsfuse recognises ({', '.join(PRODUCT_TYPES)}); plain raster "
                              "files are read with hsfuse.io.lazy.open_lazy")
    return _readers()[kind](path, **kwargs)
