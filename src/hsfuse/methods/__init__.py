"""Fusion methods, each a plain function ``fuse_<name>(y, physics, *, options) -> (N, L, H, W)`` with its options
as a frozen dataclass (:mod:`.options`).

The registry (:data:`METHODS`, :func:`get_method`, :func:`fuse`) lists them by name, with what each needs, for
the Python API (:func:`hsfuse.fuse`), benchmarks and the command line. Modules: :mod:`.bicubic` (grid-aligned
cubic upsampling), :mod:`.gsa` (GSA), :mod:`.sylvester` (FUSE / R-FUSE closed form), :mod:`.subspace` (PCA
subspace), :mod:`.udaln` (UDALN), :mod:`.networks` (trained networks as methods).
"""

from .bicubic import BicubicOptions, fuse_bicubic, upsample_cubic
from .gsa import GsaOptions, fuse_gsa
from .networks import NetworkOptions
from .options import MethodOptions
from .registry import METHODS, MethodSpec, fuse, get_method
from .subspace import pca_subspace
from .sylvester import FuseOptions, fuse_fuse, sylvester_solve
from .udaln import UdalnOptions

__all__ = [
    "BicubicOptions",
    "FuseOptions",
    "GsaOptions",
    "METHODS",
    "MethodOptions",
    "NetworkOptions",
    "UdalnOptions",
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
