"""The trained networks as fusion methods: load a checkpoint (``weights``) and fuse, tiled to fit memory.

Every network of :data:`hsfuse.models.catalog.MODELS` becomes a method ``fuse_<name>(y, physics, *, weights,
tile, overlap, memory_gb, device, progress)`` (see :func:`hsfuse.models.inference.fuse_with_network`); its
algorithm options are :class:`NetworkOptions` (the architecture itself is fixed by the checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ..models.inference import fuse_with_network
from ..physics import FusionObservation
from ..progress import ProgressFn
from ..types import FusionMeasurement
from .options import MethodOptions, option

__all__ = ["NetworkOptions", "network_function"]


@dataclass(frozen=True)
class NetworkOptions(MethodOptions):
    """Inference options of a trained network (tiling; the checkpoint fixes everything else)."""

    tile: int | Literal["auto"] | None = option("auto", "tile side in LR pixels; auto: the largest that fits "
                                                "memory_gb; none: the whole image at once")
    overlap: int = option(4, "overlap of neighbouring tiles in LR pixels (blended with a raised cosine)")
    memory_gb: float = option(4.0, "memory budget for tile=auto, in GiB")


def network_function(name: str) -> Callable[..., torch.Tensor]:
    """The method function of network ``name``: load a checkpoint of that network and fuse with it."""

    def fuse_network(y: FusionMeasurement, physics: FusionObservation | None, *, weights: str | os.PathLike[str],
                     tile: int | str | None = "auto", overlap: int = 4, memory_gb: float = 4.0,
                     device: str | None = None, progress: ProgressFn | None = None) -> torch.Tensor:
        return fuse_with_network(y, physics, weights=weights, method=name, tile=tile, overlap=overlap,
                                 memory_gb=memory_gb, device=device, progress=progress)

    fuse_network.__name__ = fuse_network.__qualname__ = f"fuse_{name}"
    fuse_network.__doc__ = (f"Fuse with a trained {name} checkpoint (``weights``); see "
                            ":func:`hsfuse.models.inference.fuse_with_network` for the options.")
    return fuse_network
