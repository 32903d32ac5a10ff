"""What every supervised fusion network shares: the call convention, input checks and band scaling.

Call convention
---------------
A network is an ``nn.Module`` subclass of :class:`FusionNet` built for one data layout::

    net = DBIN(hsi_bands=L, msi_bands=m, ratio=r, config=DBINConfig())
    z = net(hsi, msi)          # hsi (N, L, h, w), msi (N, m, r*h, r*w)  ->  (N, L, r*h, r*w)

Inputs and outputs are in *scaled* units (see :func:`band_scales`); :func:`hsfuse.methods.registry.fuse`
and the training engine do the scaling, so a network never sees raw sensor numbers.

Band scaling (the per-band normalisation of DBIN, made usable without a reference)
----------------------------------------------------------------------------------
DBIN (Wang et al., ICCV 2019) normalises every band of every *reference* image to [0, 1] before simulating
its inputs. A user fusing a real pair has no reference, so hsfuse scales each band of the *inputs* instead::

    s_h[b] = max over pixels of Y_h[b],    s_m[k] = max over pixels of Y_m[k]
    network sees Y_h / s_h and Y_m / s_m, its output is multiplied by s_h

with the maxima taken over the whole image (never per tile or per patch, so tiled inference and training
patches see the same scaling as whole-image inference). ``mode="none"`` leaves the data as it is.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from .._checks import check_image_tensor, check_positive_int, check_ratio
from ..errors import InputError

__all__ = ["FusionNet", "BandScaling", "band_scales", "count_parameters", "config_from_dict"]

BandScaling = Literal["band_max", "none"]
_EPS = 1e-8


def band_scales(hsi: torch.Tensor, msi: torch.Tensor, *, mode: BandScaling = "band_max"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band scales ``(s_h (N, L, 1, 1), s_m (N, m, 1, 1))`` of a pair, each image on its own.

    ``mode="band_max"``: the band's maximum over the image (at least 1e-8, so an all-zero band stays zero);
    ``mode="none"``: ones.
    """
    if mode == "none":
        return (torch.ones_like(hsi[:, :, :1, :1]), torch.ones_like(msi[:, :, :1, :1]))
    if mode != "band_max":
        raise InputError(f"band scaling must be 'band_max' or 'none', got {mode!r}")
    s_h = hsi.amax(dim=(-2, -1), keepdim=True).clamp_min(_EPS)
    s_m = msi.amax(dim=(-2, -1), keepdim=True).clamp_min(_EPS)
    return s_h, s_m


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a frozen config dataclass from JSON values, refusing unknown keys with a clear message."""
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{config_cls.__name__} has no option(s) {', '.join(unknown)}; "
                         f"its options are: {', '.join(sorted(known))}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**converted)


class FusionNet(nn.Module):
    """Base class of the supervised fusion networks.

    Subclasses set ``config_class`` (a frozen dataclass of architecture options), build their layers in
    ``__init__`` after calling ``super().__init__(hsi_bands=..., msi_bands=..., ratio=..., config=...)``,
    override :meth:`ratio_problem` if the architecture restricts the ratio, and implement :meth:`forward`.

    Args:
        hsi_bands: number of HSI bands ``L`` (>= 2).
        msi_bands: number of MSI bands ``m`` (>= 1).
        ratio: integer resolution ratio ``r`` between the grids.
        config: architecture options (an instance of ``config_class``).
    """

    config_class: ClassVar[type]

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int, config: Any) -> None:
        super().__init__()
        hsi_bands = check_positive_int(hsi_bands, "hsi_bands", minimum=2)
        msi_bands = check_positive_int(msi_bands, "msi_bands")
        ratio = check_ratio(ratio)
        problem = self.ratio_problem(ratio)
        if problem is not None:
            raise InputError(f"{type(self).__name__} cannot work at ratio {ratio}: {problem}")
        if not isinstance(config, self.config_class):
            raise InputError(f"{type(self).__name__} needs a {self.config_class.__name__} config, "
                             f"got {type(config).__name__}")
        self.hsi_bands = hsi_bands
        self.msi_bands = msi_bands
        self.ratio = ratio
        self.config = config

    @classmethod
    def ratio_problem(cls, ratio: int) -> str | None:
        """``None`` if the architecture supports ``ratio``, else the reason (default: any ratio >= 2)."""
        return None if ratio >= 2 else "the ratio must be at least 2"

    def config_dict(self) -> dict[str, Any]:
        """The architecture options as JSON-ready values."""
        return asdict(self.config)

    def check_inputs(self, hsi: torch.Tensor, msi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate a pair against this network's bands and ratio; returns the (float) tensors."""
        hsi = check_image_tensor(hsi, "low-resolution HSI", channels=self.hsi_bands)
        msi = check_image_tensor(msi, "multispectral image", channels=self.msi_bands)
        h, w = hsi.shape[-2:]
        H, W = msi.shape[-2:]
        r = self.ratio
        if (H, W) != (h * r, w * r):
            raise InputError(f"HSI {h}x{w} and MSI {H}x{W} do not match the network's ratio {r} "
                             f"(expected MSI {h * r}x{w * r})")
        if hsi.shape[0] != msi.shape[0]:
            raise InputError(f"HSI batch {hsi.shape[0]} and MSI batch {msi.shape[0]} differ")
        return hsi, msi

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
