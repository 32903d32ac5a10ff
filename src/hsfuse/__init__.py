"""hsfuse: hyperspectral + multispectral image fusion (hyperspectral super-resolution).

The front door is :func:`fuse` (NumPy arrays, :class:`Cube` s, tensors or files in, the same kind out)::

    import hsfuse
    fused = hsfuse.fuse(hsi, msi, method="fuse", srf="nikon_d700_dhsis")   # hsi: h x w x L, msi: H x W x 3

``hsfuse methods`` / :data:`hsfuse.methods.METHODS` list the methods and their options; :func:`fuse_products`
fuses satellite products (or rasters on their own grids) into a georeferenced file. The package's layers
(lower never import higher) are stated in :mod:`hsfuse._layers`.
"""

from typing import Any

from .errors import FileFormatError, HsfuseError, InputError
from .types import Cube, FusionMeasurement, GeoInfo

__version__ = "0.1.0"
__all__ = ["Cube", "FileFormatError", "FusionMeasurement", "GeoInfo", "HsfuseError", "InputError", "fuse",
           "fuse_products", "__version__"]


def __getattr__(name: str) -> Any:  # imported on first use: ``import hsfuse`` stays light
    if name == "fuse":
        from .workflows.fusion import fuse

        return fuse
    if name == "fuse_products":
        from .workflows.products import fuse_products

        return fuse_products
    raise AttributeError(f"module 'hsfuse' has no attribute {name!r}")
