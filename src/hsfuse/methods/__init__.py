"""Classical fusion methods, each a plain function ``fuse_<name>(y, physics, *, options) -> (N, L, H, W)``.

The registry (:data:`METHODS`, :func:`get_method`, :func:`fuse`) lists them by name for benchmarks and the
command line. Modules: :mod:`.bicubic` (grid-aligned cubic upsampling), :mod:`.gsa` (GSA),
:mod:`.sylvester` (FUSE / R-FUSE closed form), :mod:`.subspace` (PCA subspace).
"""

from .bicubic import fuse_bicubic, upsample_cubic
from .gsa import fuse_gsa
from .registry import METHODS, MethodSpec, fuse, get_method
from .subspace import pca_subspace
from .sylvester import fuse_fuse, sylvester_solve

__all__ = [
    "METHODS",
    "MethodSpec",
    "fuse",
    "fuse_bicubic",
    "fuse_fuse",
    "fuse_gsa",
    "get_method",
    "pca_subspace",
    "sylvester_solve",
    "upsample_cubic",
]
