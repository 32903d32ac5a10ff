"""The trained networks as fusion methods: load a checkpoint (``weights``) and fuse, tiled to fit memory.

Every network of :data:`hsfuse.models.catalog.MODELS` becomes a method ``fuse_<name>(y, physics, *, weights,
tile, overlap, memory_gb, device, progress)`` (see :func:`hsfuse.models.inference.fuse_with_network`); its
algorithm options are :class:`NetworkOptions` (the architecture itself is fixed by the checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import InputError
from ..models.checkpoint import load_model
from ..models.inference import fuse_with_network
from ..physics import FusionObservation
from ..progress import ProgressFn
from ..types import FusionMeasurement
from .chunking import Chunked, State, StatsPass, Tile, select
from .options import MethodOptions, option

__all__ = ["NetworkOptions", "network_function", "NETWORK_CHUNKED"]


@dataclass(frozen=True)
class NetworkOptions(MethodOptions):
    """Inference options of a trained network (tiling; the checkpoint fixes everything else)."""

    tile: int | Literal["auto"] | None = option("auto", "tile side in LR pixels; auto: the largest that fits "
                                                "memory_gb; none: the whole image at once", ge=1)
    overlap: int = option(4, "overlap of neighbouring tiles in LR pixels (blended with a raised cosine)", ge=0)
    memory_gb: float = option(4.0, "memory budget for tile=auto, in GiB", gt=0)


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


# --------------------------------------------------------------------------------------------- chunked (large scenes)
#
# Fit: the per-band maxima of both whole images (the networks' band scaling, ``models.base.band_scales``: never of a
# tile), streamed as a maximum. Apply: the network on each tile (core plus ``overlap`` LR pixels, at least
# NETWORK_MIN_HALO) on the globally scaled data, keeping the core. Not exact: a network's receptive field is wider
# than any practical halo, as with the blended tiles of ``models.tiling``.

NETWORK_MIN_HALO = 4
_LOADED: dict[tuple[str, str, int, int, int], Any] = {}  # per process: (path, device, L, m, r) -> (net, card)


def _network(weights: str, *, device: str, hsi_bands: int, msi_bands: int, ratio: int) -> tuple[Any, Any]:
    key = (str(weights), device, hsi_bands, msi_bands, ratio)
    if key not in _LOADED:
        _LOADED[key] = load_model(weights, hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=ratio, device=device)
    return _LOADED[key]


def _maxima(tile: Tile, physics: Any, options: NetworkOptions, state: State) -> State:
    hs = select(tile.lr_core(tile.hsi)[0].flatten(1), tile.valid_lr_core())
    ms = select(tile.hr_core(tile.msi)[0].flatten(1), tile.valid_hr_core())
    empty = torch.zeros(hs.shape[0], dtype=torch.float64), torch.zeros(ms.shape[0], dtype=torch.float64)
    return {"max_h": hs.amax(dim=1).double() if hs.shape[1] else empty[0],
            "max_m": ms.amax(dim=1).double() if ms.shape[1] else empty[1]}


def _scales(t: State, physics: Any, options: NetworkOptions, state: State) -> State:
    if state.get("weights") is None:
        raise InputError("a trained network needs weights= (CLI: --weights CHECKPOINT)")
    return {**state, "s_h": t["max_h"].clamp_min(1e-8), "s_m": t["max_m"].clamp_min(1e-8)}


def _net_apply(tile: Tile, physics: Any, options: NetworkOptions, state: State) -> torch.Tensor:
    device = state.get("device") or "cpu"
    net, card = _network(state["weights"], device=device, hsi_bands=tile.hsi.shape[1], msi_bands=tile.msi.shape[1],
                         ratio=tile.ratio)
    scale = card.band_scaling != "none"
    s_h = state["s_h"][None, :, None, None] if scale else torch.ones(1)
    s_m = state["s_m"][None, :, None, None] if scale else torch.ones(1)
    with torch.inference_mode():
        out = net((tile.hsi / s_h).to(device, torch.float32), (tile.msi / s_m).to(device, torch.float32))
    return tile.hr_core(out.to(tile.hsi.device, torch.float64) * s_h).to(tile.hsi.dtype)


#: chunked plan of every network: band maxima streamed, then overlap-and-discard tiles (not exact)
NETWORK_CHUNKED = Chunked(
    passes=(StatsPass(halo=lambda r, physics, options: 0, partial=_maxima, finish=_scales, reduce="max"),),
    apply_halo=lambda r, physics, options: max(NETWORK_MIN_HALO, int(options.overlap)), apply=_net_apply,
    exact=False, working_set=2048.0)
