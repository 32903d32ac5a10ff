"""Readers of satellite and airborne products as they come (see :mod:`.base` for what they return)."""

from .base import Product, ProductKind
from .desis import open_desis
from .detect import PRODUCT_TYPES, open_product, product_type
from .emit import open_emit
from .enmap import open_enmap
from .landsat import open_landsat
from .prisma import open_prisma
from .sentinel2 import open_sentinel2

__all__ = ["Product", "ProductKind"]
__all__ += ["open_sentinel2", "open_landsat"]
__all__ += ["open_enmap", "open_prisma", "open_emit", "open_desis"]
__all__ += ["open_product", "product_type", "PRODUCT_TYPES"]
