"""Two-branch CNN (Yang, Zhao, Chan, "Hyperspectral and multispectral image fusion via deep two-branches
convolutional neural network", Remote Sensing 10(5):800, 2018), applied densely.

Per high-resolution pixel ``(i, j)`` the authors' network (Caffe prototxt "version 7", official repository
polwork/Hyperspectral-and-Multispectral-fusion-via-Two-branch-CNN) computes::

    u = U(Y_h)[:, i, j]                     the LR-HSI upsampled to the MSI grid: a spectrum of L values
    a1 = relu(conv1d_k(u));  a3 = relu(conv1d_k(relu(conv1d_k(a1))))       20 filters, valid, kernel k
    s  = relu(fc_250(flatten(relu(a3 + relu(conv1d_{2k-1}(a1))))))         spectral branch

    w = Y_m[:, i-15 .. i+15, j-15 .. j+15]  the 31 x 31 MSI window centred on the pixel (m bands)
    b1 = relu(conv2d_10(w));  b3 = relu(conv2d_10(relu(conv2d_10(b1))))    20 filters, valid: 31 -> 22 -> 13 -> 4
    t  = relu(fc_200(flatten(relu(b3 + relu(conv2d_19(b1))))))             spatial branch (4 x 4 x 20 -> 200)

    f = [s, t] (450);  g = relu(fc_450(relu(fc_450(f))));  z[:, i, j] = fc_L(relu(g + f))

Dense application: the spatial branch's valid convolutions run once on the MSI padded by ``window // 2``
(mirror, "reflect") and its FC layer is a ``4 x 4`` convolution, so output pixel ``(i, j)`` sees exactly the
window above (the authors' MATLAB code loops over pixels and drops a 15-pixel border instead). The spectral
branch's 1-D convolutions run over the band axis of a ``(N, C, L, pixels)`` tensor, its FC is an
``(L', 1)`` convolution, and the fusion FCs are 1 x 1 convolutions; rows are processed in chunks of at most
``chunk_pixels`` pixels to bound memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from ..errors import InputError
from ..physics.interpolation import upsample_cubic
from .base import FusionNet

__all__ = ["TwoBranchConfig", "TwoBranchCNN", "spectral_kernel_length", "two_branch_authors_parameters"]

_PROTOTXT_BANDS = 244
_PROTOTXT_KERNEL = 45


def spectral_kernel_length(bands: int) -> int:
    """The ``"auto"`` spectral kernel length for ``L`` bands.

    ``k = min(45, max(3, round(45 L / 244)), (L - 1) // 3 + 1)``: the prototxt's 45 taps for 244 bands scaled
    in proportion to ``L`` (so the three valid convolutions keep about the same fraction of the spectrum),
    at least 3 taps, and never so long that the three valid convolutions (which shorten the spectrum by
    ``3 (k - 1)``) leave less than one value. ``244 -> 45``, ``162 -> 30``, ``31 -> 6``, ``8 -> 3``, ``5 -> 2``.
    """
    scaled = math.floor(_PROTOTXT_KERNEL * bands / _PROTOTXT_BANDS + 0.5)
    return max(1, min(_PROTOTXT_KERNEL, max(3, scaled), (bands - 1) // 3 + 1))


@dataclass(frozen=True)
class TwoBranchConfig:
    """Architecture options of :class:`TwoBranchCNN`; the defaults are the authors' prototxt (version 7).

    Attributes:
        spectral_filters: filters of each 1-D convolution of the spectral branch (20).
        spectral_kernel: taps ``k`` of the three 1-D convolutions (the skip convolution has ``2k - 1``), or
            ``"auto"``: :func:`spectral_kernel_length` of the band count (45 at the prototxt's 244 bands).
        spectral_fc: width of the spectral branch's FC layer (250).
        spatial_filters: filters of each 2-D convolution of the spatial branch (20).
        spatial_kernel: side ``q`` of the three 2-D convolutions (10; the skip convolution has ``2q - 1``).
        window: odd side of the MSI window around each pixel (31).
        spatial_fc: width of the spatial branch's FC layer (200). The fusion FCs have
            ``spectral_fc + spatial_fc`` units (450), as the residual sum requires.
        upsample_offset: decimation offset of the cubic upsampling of the HSI to the MSI grid
            (:func:`hsfuse.physics.interpolation.upsample_cubic`); ``None``: ``(ratio - 1) // 2``, the default of
            :class:`hsfuse.physics.SpatialDegradation`.
        init: ``"authors"`` (Gaussian, std 1e-3 for convolutions and 1e-2 for FC layers, zero biases, as in the
            prototxt) or ``"pytorch"`` (PyTorch's default Kaiming-uniform).
    """

    spectral_filters: int = 20
    spectral_kernel: int | Literal["auto"] = "auto"
    spectral_fc: int = 250
    spatial_filters: int = 20
    spatial_kernel: int = 10
    window: int = 31
    spatial_fc: int = 200
    upsample_offset: int | None = None
    init: Literal["authors", "pytorch"] = "authors"

    def __post_init__(self) -> None:
        for name in ("spectral_filters", "spectral_fc", "spatial_filters", "spatial_kernel", "spatial_fc", "window"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), f"TwoBranchConfig.{name}"))
        if isinstance(self.spectral_kernel, str):
            if self.spectral_kernel != "auto":
                raise InputError(f"spectral_kernel must be 'auto' or an integer >= 1, got {self.spectral_kernel!r}")
        else:
            object.__setattr__(self, "spectral_kernel",
                               check_positive_int(self.spectral_kernel, "TwoBranchConfig.spectral_kernel"))
        if self.window % 2 == 0:
            raise InputError(f"window must be a positive odd integer (centred on the pixel), got {self.window!r}")
        if self.window - 3 * (self.spatial_kernel - 1) < 1:
            raise InputError(f"a {self.window}x{self.window} window is too small for three valid "
                             f"{self.spatial_kernel}x{self.spatial_kernel} convolutions "
                             f"(need window >= {3 * (self.spatial_kernel - 1) + 1})")
        if self.init not in ("authors", "pytorch"):
            raise InputError(f"init must be 'authors' or 'pytorch', got {self.init!r}")

    @classmethod
    def tiny(cls) -> TwoBranchConfig:
        """A small version for tests: 8 filters, 3 x 3 kernels on a 9 x 9 window, FC widths 12 + 10.

        Eight filters per layer: with fewer, all ReLUs of a branch can be inactive on a small input (positive
        spectra meet one sign pattern of the first layer), leaving that branch without gradient.
        """
        return cls(spectral_filters=8, spectral_fc=12, spatial_filters=8, spatial_kernel=3, window=9,
                   spatial_fc=10)


def two_branch_authors_parameters(*, hsi_bands: int = 244, msi_bands: int = 6, spectral_filters: int = 20,
                                  spectral_kernel: int = 45, spectral_fc: int = 250, spatial_filters: int = 20,
                                  spatial_kernel: int = 10, window: int = 31, spatial_fc: int = 200) -> int:
    """Parameter count of the prototxt network summed layer by layer (every Caffe layer has a bias).

    ``conv11 (k x 1, 1 -> F)``, ``conv12, conv13 (k x 1, F -> F)``, ``skip11 ((2k-1) x 1, F -> F)``,
    ``ip11 (F (L - 3(k-1)) -> 250)``; ``conv21 (q x q, m -> F)``, ``conv22, conv23``, ``skip21 ((2q-1)^2)``,
    ``ip21 (F s^2 -> 200)`` with ``s = window - 3(q-1)``; ``ip1, ip2 (450 -> 450)``, ``ip3 (450 -> L)``.
    """
    L, m, Fs, k, Fp, q = hsi_bands, msi_bands, spectral_filters, spectral_kernel, spatial_filters, spatial_kernel
    spectral = (k * Fs + Fs) + 2 * (Fs * Fs * k + Fs) + (Fs * Fs * (2 * k - 1) + Fs)
    spectral += Fs * (L - 3 * (k - 1)) * spectral_fc + spectral_fc
    s = window - 3 * (q - 1)
    spatial = (m * Fp * q * q + Fp) + 2 * (Fp * Fp * q * q + Fp) + (Fp * Fp * (2 * q - 1) ** 2 + Fp)
    spatial += Fp * s * s * spatial_fc + spatial_fc
    width = spectral_fc + spatial_fc
    fusion = 2 * (width * width + width) + (width * L + L)
    return spectral + spatial + fusion


def _mirror_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes by ``pad`` with mirror reflection (edge not repeated), repeated as often as needed
    when ``pad`` exceeds the image (each pass reflects the already padded image)."""
    left = top = pad
    while left > 0 or top > 0:
        step_w = min(left, x.shape[-1] - 1)
        step_h = min(top, x.shape[-2] - 1)
        x = F.pad(x, (step_w, step_w, step_h, step_h), mode="reflect")
        left, top = left - step_w, top - step_h
    return x


class TwoBranchCNN(FusionNet):
    """Two-branch CNN (Yang, Zhao, Chan, Remote Sensing 10(5):800, 2018), the authors' v7 prototxt, dense.

    Equations and dense application: see :mod:`hsfuse.models.two_branch`. ``forward(hsi (N, L, h, w),
    msi (N, m, r h, r w)) -> (N, L, r h, r w)``.

    Followed the authors' code (prototxt "version 7" and ``main.m``) where the paper is not specific: the
    skip convolutions and per-branch FC layers with a residual FC fusion (the paper's Table 2 describes a
    plainer variant), ReLU after every layer except the output FC, valid convolutions, the 31 x 31 MSI window,
    Gaussian initialisation (``init="authors"``).

    Deviations, and why:
    * The HSI is upsampled inside the network by Keys-cubic interpolation aligned to the decimation grid
      (:func:`hsfuse.physics.interpolation.upsample_cubic`, offset ``(r - 1) // 2`` by default, replicate border),
      so the network takes ``(hsi, msi)`` like every other; the authors interpolate beforehand in MATLAB.
    * Every pixel gets an output: the MSI is mirror-padded by ``window // 2``; the authors skip a 15-pixel
      border.
    * The prototxt's 45-tap 1-D kernels assume 244 bands; ``spectral_kernel="auto"`` scales them with ``L``
      (:func:`spectral_kernel_length`: 45 at 244 bands, 6 at 31, 3 at 8, 2 at 5), keeping valid convolutions.
    * Band scaling is the toolkit's per-band maximum (see :mod:`hsfuse.models.base`), not per-band min-max.

    ``AUTHORS_PARAMETERS`` is counted for the setting the prototxt was written for (EnMAP: 244 bands, 6 MSI
    bands, 31 x 31 window; the ratio does not change the count); our model matches it exactly there.

    Attributes:
        chunk_pixels: at most this many output pixels (whole rows, at least one) are computed at once.

    Example:
        >>> net = TwoBranchCNN(hsi_bands=5, msi_bands=3, ratio=2, config=TwoBranchConfig.tiny())
        >>> tuple(net(torch.rand(1, 5, 4, 3), torch.rand(1, 3, 8, 6)).shape)
        (1, 5, 8, 6)
    """

    config_class: ClassVar[type] = TwoBranchConfig
    RATIOS: ClassVar[str] = "any integer ratio >= 2 (the HSI is upsampled to the MSI grid first)"
    AUTHORS_PARAMETERS: ClassVar[tuple[int, str] | None] = (
        two_branch_authors_parameters(),
        "244 bands, 6 MSI bands, 31 x 31 window (the EnMAP setting of the v7 prototxt); any ratio")

    chunk_pixels: int = 65536

    def __init__(self, *, hsi_bands: int, msi_bands: int, ratio: int,
                 config: TwoBranchConfig | None = None) -> None:
        super().__init__(hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=ratio,
                         config=TwoBranchConfig() if config is None else config)
        c: TwoBranchConfig = self.config
        L = hsi_bands
        k = spectral_kernel_length(L) if c.spectral_kernel == "auto" else c.spectral_kernel
        if L - 3 * (k - 1) < 1:
            raise InputError(f"spectral_kernel {k} is too long for {L} bands: three valid convolutions need "
                             f"k <= {(L - 1) // 3 + 1}; use spectral_kernel='auto'")
        if c.upsample_offset is None:
            offset = (self.ratio - 1) // 2
        else:
            offset = check_positive_int(c.upsample_offset, "upsample_offset", minimum=0)
            if offset >= self.ratio:
                raise InputError(f"upsample_offset must be an integer in [0, ratio={self.ratio}), got {offset!r}")
        self.spectral_kernel = k
        self.upsample_offset = offset
        self.pad = c.window // 2
        Fs, Fp, q = c.spectral_filters, c.spatial_filters, c.spatial_kernel
        spectral_len = L - 3 * (k - 1)
        side = c.window - 3 * (q - 1)
        width = c.spectral_fc + c.spatial_fc
        # spectral branch: tensors (N, C, bands, pixels), 1-D kernels along the band axis
        self.conv11 = nn.Conv2d(1, Fs, (k, 1))
        self.conv12 = nn.Conv2d(Fs, Fs, (k, 1))
        self.conv13 = nn.Conv2d(Fs, Fs, (k, 1))
        self.skip11 = nn.Conv2d(Fs, Fs, (2 * k - 1, 1))
        self.ip11 = nn.Conv2d(Fs, c.spectral_fc, (spectral_len, 1))
        # spatial branch: valid 2-D convolutions on the padded MSI; the FC is a side x side convolution
        self.conv21 = nn.Conv2d(msi_bands, Fp, q)
        self.conv22 = nn.Conv2d(Fp, Fp, q)
        self.conv23 = nn.Conv2d(Fp, Fp, q)
        self.skip21 = nn.Conv2d(Fp, Fp, 2 * q - 1)
        self.ip21 = nn.Conv2d(Fp, c.spatial_fc, side)
        # fusion: FC layers as 1 x 1 convolutions
        self.ip1 = nn.Conv2d(width, width, 1)
        self.ip2 = nn.Conv2d(width, width, 1)
        self.ip3 = nn.Conv2d(width, L, 1)
        if c.init == "authors":
            fcs = (self.ip11, self.ip21, self.ip1, self.ip2, self.ip3)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, std=1e-2 if module in fcs else 1e-3)
                    nn.init.zeros_(module.bias)

    def _spectral(self, u: torch.Tensor) -> torch.Tensor:
        """Spectral branch on upsampled spectra ``(N, L, rows, W) -> (N, spectral_fc, rows, W)``."""
        n, L, rows, w = u.shape
        x = u.reshape(n, 1, L, rows * w)
        a1 = F.relu(self.conv11(x))
        a3 = F.relu(self.conv13(F.relu(self.conv12(a1))))
        res = F.relu(a3 + F.relu(self.skip11(a1)))
        return F.relu(self.ip11(res)).reshape(n, -1, rows, w)

    def _spatial(self, window_rows: torch.Tensor) -> torch.Tensor:
        """Spatial branch on padded MSI rows ``(N, m, rows + 2p, W + 2p) -> (N, spatial_fc, rows, W)``."""
        b1 = F.relu(self.conv21(window_rows))
        b3 = F.relu(self.conv23(F.relu(self.conv22(b1))))
        res = F.relu(b3 + F.relu(self.skip21(b1)))
        return F.relu(self.ip21(res))

    def _fuse(self, f: torch.Tensor) -> torch.Tensor:
        g = F.relu(self.ip2(F.relu(self.ip1(f))))
        return self.ip3(F.relu(g + f))

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        hsi, msi = self.check_inputs(hsi, msi)
        up = upsample_cubic(hsi, ratio=self.ratio, offset=self.upsample_offset, boundary="replicate")
        padded = _mirror_pad(msi, self.pad)
        height, width = up.shape[-2:]
        rows = max(1, self.chunk_pixels // width)
        out = []
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            f = torch.cat([self._spectral(up[:, :, top:bottom]),
                           self._spatial(padded[:, :, top:bottom + 2 * self.pad])], dim=1)
            out.append(self._fuse(f))
        return out[0] if len(out) == 1 else torch.cat(out, dim=2)
