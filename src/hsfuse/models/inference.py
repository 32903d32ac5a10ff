"""Run a trained network on a measurement: band scaling, device placement, optional tiling.

    Z_hat = s_h * net(Y_h / s_h, Y_m / s_m)          (s_h, s_m: per-band maxima of the whole inputs)

:func:`fuse_with_network` is what ``hsfuse fuse --method NAME --weights CKPT`` and the method registry call.
"""

from __future__ import annotations

import os

import torch

from .._checks import check_pair, check_positive_int
from ..errors import InputError
from ..physics import FusionObservation
from ..progress import ProgressFn
from ..types import FusionMeasurement
from .base import BandScaling, FusionNet, band_scales
from .checkpoint import ModelCard, load_model
from .tiling import choose_tile, tiled_forward

__all__ = ["run_network", "fuse_with_network"]


def run_network(net: FusionNet, hsi: torch.Tensor, msi: torch.Tensor, *, band_scaling: BandScaling = "band_max",
                tile: int | None = None, overlap: int = 4, device: str | torch.device | None = None,
                progress: ProgressFn | None = None) -> torch.Tensor:
    """Fuse ``hsi (N, L, h, w)`` and ``msi (N, m, rh, rw)`` with ``net`` in inference mode.

    Scaling statistics come from the whole inputs (never per tile). ``tile`` (LR pixels) splits the work into
    overlapping, blended tiles (see :func:`hsfuse.models.tiling.tiled_forward`); ``None`` runs the whole image.
    The result is on the inputs' device and dtype.
    """
    hsi, msi = net.check_inputs(hsi, msi)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    net = net.to(dev).eval()
    s_h, s_m = band_scales(hsi, msi, mode=band_scaling)

    def forward(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return net(h.to(dev, torch.float32), m.to(dev, torch.float32)).to(hsi.device, hsi.dtype)

    with torch.inference_mode():
        h, m = hsi / s_h, msi / s_m
        if tile is None:
            out = forward(h, m)
        else:
            out = tiled_forward(forward, h, m, ratio=net.ratio, tile=tile, overlap=overlap, progress=progress)
    return out * s_h


def fuse_with_network(y: FusionMeasurement, physics: FusionObservation | None, *,
                      weights: str | os.PathLike[str], method: str | None = None,
                      tile: int | str | None = "auto", overlap: int = 4,
                      memory_gb: float = 4.0, device: str | None = None,
                      progress: ProgressFn | None = None) -> torch.Tensor:
    """Fuse ``y`` with the trained network of checkpoint ``weights``.

    ``method`` (if given) must be the checkpoint's network. ``physics`` (if given) must fit ``y`` (ratio, band
    counts); the networks learned their own observation model from training data, so the PSF/SRF in ``physics``
    are not used. ``tile="auto"`` picks the largest tile whose
    estimated peak memory fits ``memory_gb``; an integer is a tile side in LR pixels; ``None`` disables tiling.
    """
    who = method or "network"
    if physics is not None:
        _, _, ratio = check_pair(y.hsi, y.msi, ratio=physics.ratio, hsi_bands=physics.spectral.hsi_bands,
                                 msi_bands=physics.spectral.msi_bands, who=who)
    else:
        _, _, ratio = check_pair(y.hsi, y.msi, who=who)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    net, card = load_model(weights, hsi_bands=y.hsi.shape[1], msi_bands=y.msi.shape[1], ratio=ratio, device=dev)
    if method is not None and card.method != method:
        raise InputError(f"checkpoint {weights} holds a {card.method} network, not {method}; pass --method "
                         f"{card.method} or a {method} checkpoint")
    return _run_with_card(net, card, y, tile=tile, overlap=overlap, memory_gb=memory_gb, device=dev,
                          progress=progress)


def _run_with_card(net: FusionNet, card: ModelCard, y: FusionMeasurement, *, tile: int | str | None, overlap: int,
                   memory_gb: float, device: str, progress: ProgressFn | None) -> torch.Tensor:
    if tile == "auto":
        h, w = y.hsi.shape[-2:]
        chosen = choose_tile(net, hsi_bands=card.hsi_bands, msi_bands=card.msi_bands, ratio=card.ratio,
                             memory_bytes=int(memory_gb * 2**30), device=device, overlap=overlap)
        tile = None if chosen >= max(h, w) else chosen
    elif isinstance(tile, str):
        raise InputError(f"tile must be a positive number of LR pixels, 'auto' or None, got {tile!r}")
    elif tile is not None:
        tile = check_positive_int(tile, "tile (LR pixels)")
    return run_network(net, y.hsi, y.msi, band_scaling=card.band_scaling, tile=tile,  # type: ignore[arg-type]
                       overlap=overlap, device=device, progress=progress)
