"""Tiled inference: exactness where the receptive field fits a tile, blending, coverage, memory choice."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hsfuse.errors import InputError
from hsfuse.models.tiling import blend_ramp, choose_tile, tile_starts, tile_window, tiled_forward


def _pair(L: int, m: int, h: int, w: int, r: int, *, n: int = 2, seed: int = 0,
          dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, L, h, w, generator=g, dtype=dtype), torch.rand(n, m, r * h, r * w, generator=g, dtype=dtype))


class Pointwise(nn.Module):
    """1x1 conv on [nearest-upsampled HSI, MSI]: every HR pixel depends on its own LR and HR pixel only."""

    def __init__(self, L: int, m: int, r: int) -> None:
        super().__init__()
        self.r = r
        self.mix = nn.Conv2d(L + m, L, 1)

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([F.interpolate(hsi, scale_factor=self.r, mode="nearest"), msi], dim=1))


class ThreeConvs(Pointwise):
    """Pointwise mix then three zero-padded 3x3 convs: receptive-field radius 3 HR pixels."""

    RHO = 3

    def __init__(self, L: int, m: int, r: int) -> None:
        super().__init__(L, m, r)
        self.convs = nn.ModuleList(nn.Conv2d(L, L, 3, padding=1) for _ in range(3))

    def forward(self, hsi: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        x = super().forward(hsi, msi)
        for conv in self.convs:
            x = torch.tanh(conv(x))
        return x


# ------------------------------------------------------------------------------------------------ layout

def test_tile_starts_hand_values():
    assert tile_starts(10, 4, 1) == [0, 3, 6]       # stride 3, last tile [6, 10) ends at the border
    assert tile_starts(11, 4, 1) == [0, 3, 6, 7]    # last tile shifted back from 9 to 7
    assert tile_starts(16, 7, 3) == [0, 4, 8, 9]
    assert tile_starts(13, 7, 3) == [0, 4, 6]
    assert tile_starts(3, 8, 2) == [0]              # image smaller than a tile
    assert tile_starts(8, 8, 2) == [0]
    assert tile_starts(9, 3, 0) == [0, 3, 6]


def test_blend_ramp_hand_values_and_partition_of_unity():
    ramp = blend_ramp(2, dtype=torch.float64)
    torch.testing.assert_close(ramp, torch.tensor([math.sin(math.pi / 8) ** 2, math.sin(3 * math.pi / 8) ** 2],
                                                  dtype=torch.float64))
    r5 = blend_ramp(5, dtype=torch.float64)
    torch.testing.assert_close(r5 + r5.flip(0), torch.ones(5, dtype=torch.float64))


def test_tile_window_positive_with_ramps_only_on_interior_sides():
    w = tile_window(10, 3, first=False, last=False)
    assert (w > 0).all() and (w[3:7] == 1).all() and (w[:3] < 1).all() and (w[7:] < 1).all()
    assert (tile_window(10, 3, first=True, last=True) == 1).all()
    edge = tile_window(10, 3, first=True, last=False)
    assert (edge[:7] == 1).all() and (edge[7:] < 1).all() and (edge > 0).all()


# ------------------------------------------------------------------------------------------- exactness

def test_pointwise_net_tiled_equals_whole():
    torch.manual_seed(0)
    net = Pointwise(4, 3, 3).double()
    hsi, msi = _pair(4, 3, 11, 9, 3)
    torch.testing.assert_close(tiled_forward(net, hsi, msi, ratio=3, tile=4, overlap=1), net(hsi, msi),
                               rtol=0, atol=1e-12)


def test_constant_net_output_is_one_everywhere_so_weights_cover_every_pixel():
    hsi, msi = _pair(2, 1, 13, 10, 2)
    ones = lambda h, m: torch.ones_like(m[:, :1]).expand(-1, 3, -1, -1)  # noqa: E731
    out = tiled_forward(ones, hsi, msi, ratio=2, tile=(5, 4), overlap=(2, 1))
    assert out.shape == (2, 3, 26, 20)
    torch.testing.assert_close(out, torch.ones_like(out), rtol=0, atol=1e-12)


def test_finite_receptive_field_exact_away_from_seams():
    torch.manual_seed(1)
    r, tile, overlap, h, w = 3, 7, 3, 16, 13
    net = ThreeConvs(3, 2, r).double()
    hsi, msi = _pair(3, 2, h, w, r, n=1)
    whole = net(hsi, msi)
    tiled = tiled_forward(net, hsi, msi, ratio=r, tile=tile, overlap=overlap)

    # Tile layout by hand (stride 4, last tile shifted back inside the image): rows 0, 4, 8, 9; cols 0, 4, 6.
    rows, cols = [0, 4, 8, 9], [0, 4, 6]
    assert tile_starts(h, tile, overlap) == rows and tile_starts(w, tile, overlap) == cols

    def safe_1d(starts: list[int], length: int) -> list[list[bool]]:
        """Per tile, per HR pixel: None if not covered, else whether rho-far from the tile's interior edges."""
        out = []
        for s in starts:
            lo, hi = r * s, r * (s + tile)
            flags = []
            for p in range(r * length):
                if not lo <= p < hi:
                    flags.append(None)
                else:
                    ok_lo = s == 0 or p - lo >= net.RHO
                    ok_hi = s + tile == length or hi - 1 - p >= net.RHO
                    flags.append(ok_lo and ok_hi)
            out.append(flags)
        return out

    fy, fx = safe_1d(rows, h), safe_1d(cols, w)
    safe = torch.ones(r * h, r * w, dtype=torch.bool)
    for ty in fy:
        for tx in fx:
            for y in range(r * h):
                for x in range(r * w):
                    if ty[y] is not None and tx[x] is not None and not (ty[y] and tx[x]):
                        safe[y, x] = False
    assert safe.float().mean() > 0.3  # plenty of pixels checked, including inside overlaps
    diff = (tiled - whole).abs().amax(dim=(0, 1))
    assert diff[safe].max() < 1e-12
    assert diff[~safe].max() > 1e-4  # the seams really are blends: the test can tell tiling from whole


def test_image_smaller_than_tile_is_one_call_on_the_whole_image():
    torch.manual_seed(2)
    net = ThreeConvs(3, 2, 2).double()
    hsi, msi = _pair(3, 2, 3, 2, 2)
    calls = []
    out = tiled_forward(net, hsi, msi, ratio=2, tile=8, overlap=2, progress=lambda d, t: calls.append((d, t)))
    torch.testing.assert_close(out, net(hsi, msi), rtol=0, atol=1e-12)
    assert calls == [(1, 1)]


def test_progress_called_once_per_tile():
    hsi, msi = _pair(2, 1, 11, 10, 2)
    calls = []
    tiled_forward(Pointwise(2, 1, 2).double(), hsi, msi, ratio=2, tile=4, overlap=1,
                  progress=lambda d, t: calls.append((d, t)))
    # rows [0, 3, 6, 7], cols [0, 3, 6]: 12 tiles
    assert calls == [(i, 12) for i in range(1, 13)]


def test_errors():
    hsi, msi = _pair(2, 1, 6, 5, 2)
    net = Pointwise(2, 1, 2).double()
    with pytest.raises(InputError, match="twice the overlap"):
        tiled_forward(net, hsi, msi, ratio=2, tile=4, overlap=2)
    with pytest.raises(InputError, match="tile"):
        tiled_forward(net, hsi, msi, ratio=2, tile=0, overlap=0)
    with pytest.raises(InputError, match="overlap"):
        tiled_forward(net, hsi, msi, ratio=2, tile=4, overlap=-1)
    with pytest.raises(InputError, match="HSI 6x5 and MSI 12x9 are not related by one integer ratio"):
        tiled_forward(net, hsi, msi[..., :-1], ratio=2, tile=4, overlap=1)
    with pytest.raises(InputError, match="ratio 3 disagrees with the image sizes"):
        tiled_forward(net, hsi, msi, ratio=3, tile=4, overlap=1)
    with pytest.raises(InputError, match="batch"):
        tiled_forward(net, hsi, msi[:1], ratio=2, tile=4, overlap=1)
    with pytest.raises(InputError, match="tile must be an integer >= 1, got 4.0"):
        tiled_forward(net, hsi, msi, ratio=2, tile=4.0, overlap=1)
    with pytest.raises(InputError, match="net_fn must return"):
        tiled_forward(lambda h, m: h, hsi, msi, ratio=2, tile=4, overlap=1)


# --------------------------------------------------------------------------------------------- choose_tile

def test_choose_tile_cpu_hand_estimate():
    # Probe 4x4 LR at ratio 2 (64 HR pixels), float32: the only leaf module (1x1 conv) outputs 3*64*4 = 768 B;
    # inputs 3*16*4 + 2*64*4 = 704 B; output 768 B -> 2240 B / 64 px = 35 B per HR pixel.
    net = Pointwise(3, 2, 2)
    budget = 35 * (2 * 10) ** 2
    assert choose_tile(net, hsi_bands=3, msi_bands=2, ratio=2, memory_bytes=budget, device="cpu", probe=4) == 10
    assert choose_tile(net, hsi_bands=3, msi_bands=2, ratio=2, memory_bytes=budget - 1, device="cpu",
                       probe=4) == 9


def test_choose_tile_smaller_budget_smaller_tile_and_errors():
    from hsfuse.models.dhifnet import DHIFNet, DHIFNetConfig

    net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=4, config=DHIFNetConfig.tiny())
    big = choose_tile(net, hsi_bands=5, msi_bands=3, ratio=4, memory_bytes=2**30, device="cpu", overlap=2, probe=4)
    small = choose_tile(net, hsi_bands=5, msi_bands=3, ratio=4, memory_bytes=2**26, device="cpu", overlap=2, probe=4)
    assert big > small > 4
    with pytest.raises(InputError, match="too small"):
        choose_tile(net, hsi_bands=5, msi_bands=3, ratio=4, memory_bytes=1000, device="cpu", overlap=2, probe=4)
    with pytest.raises(InputError, match="nn.Module"):
        choose_tile(lambda h, m: m, hsi_bands=5, msi_bands=3, ratio=4, memory_bytes=2**20, device="cpu")
    with pytest.raises(InputError, match="memory_bytes"):
        choose_tile(net, hsi_bands=5, msi_bands=3, ratio=4, memory_bytes=0, device="cpu")
