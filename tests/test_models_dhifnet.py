"""DHIF-Net: shapes, gradients, the hand parameter count and the adaptive separable filter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsfuse.errors import InputError
from hsfuse.models.base import count_parameters
from hsfuse.models.dhifnet import (DHIFNet, DHIFNetConfig, adaptive_separable_filter, normalize_taps,
                                   split_ratio)


def _pair(L: int, m: int, h: int, w: int, r: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, L, h, w, generator=g), torch.rand(2, m, r * h, r * w, generator=g)


# --------------------------------------------------------------------------------------------------- network

@pytest.mark.parametrize("L,m,r,h,w", [(5, 3, 4, 3, 5), (5, 1, 2, 5, 3), (31, 3, 3, 3, 3), (5, 3, 8, 2, 3),
                                       (31, 1, 2, 3, 5)])
def test_forward_shape_finite(L, m, r, h, w):
    torch.manual_seed(0)
    net = DHIFNet(hsi_bands=L, msi_bands=m, ratio=r, config=DHIFNetConfig.tiny())
    hsi, msi = _pair(L, m, h, w, r)
    out = net(hsi, msi)
    assert out.shape == (2, L, r * h, r * w)
    assert torch.isfinite(out).all()


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=4, config=DHIFNetConfig.tiny())
    hsi, msi = _pair(5, 3, 3, 5, 4)
    net(hsi, msi).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_ratio_16_uses_two_x4_stages_and_runs():
    torch.manual_seed(0)
    net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=16, config=DHIFNetConfig.tiny())
    strided = [mod for mod in net.B if isinstance(mod, torch.nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.padding) for c in strided] == [((6, 6), (4, 4), (1, 1))] * 2
    hsi, msi = _pair(5, 3, 1, 2, 16)
    assert net(hsi, msi).shape == (2, 5, 16, 32)


def test_split_ratio_hand_values():
    assert split_ratio(2) == (2,)
    assert split_ratio(8) == (8,)
    assert split_ratio(16) == (4, 4)
    assert split_ratio(12) == (4, 3)
    assert split_ratio(64) == (8, 8)
    assert split_ratio(11) == (11,)
    assert split_ratio(100) == (5, 5, 4)


def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def test_paper_parameter_count_equals_hand_count_of_authors_layers():
    # Hand count from TaoHuang95/DHIF-Net CAVE/Model.py, 31 bands, RGB, ratio 8 (layer by layer).
    L, m, K = 31, 3, 31 * 7
    hand = (_conv(m, L, 3) + _conv(L, m, 3)                     # R^T, R
            + 2 * _conv(L, L, 12)                               # B, B^T (12x12, stride 8)
            + _conv(L + m, 64, 3)                               # shallow conv
            + sum(_conv(64 * t, 64, 3) for t in (1, 2, 3, 4))   # Den_con1..4
            + _conv(64, 64, 3) * 2                              # E1
            + _conv(64, 128, 3) + _conv(128, 128, 3)            # E2
            + _conv(128, 256, 3) + _conv(256, 256, 3)           # E3
            + _conv(256, 512, 3) + _conv(512, 512, 3)           # E4
            + _conv(512, 512, 3) * 2                            # E5
            + _conv(1024, 512, 3) + _conv(512, 512, 3)          # D1
            + _conv(768, 256, 3) + _conv(256, 256, 3)           # D2
            + _conv(384, 128, 3) + _conv(128, 128, 3)           # D3
            + _conv(192, 128, 3) + _conv(128, 128, 3)           # D4
            + 3 * (_conv(128, K, 3) + _conv(K, K, 3) + _conv(K, K, 1))  # K_1, K_2, K_3
            + 8)                                                # eta_0..3, lamda_0..3
    assert hand == 22_669_489
    assert DHIFNet.AUTHORS_PARAMETERS == (hand, "31 bands, RGB (3), ratio 8")
    net = DHIFNet(hsi_bands=31, msi_bands=3, ratio=8, config=DHIFNetConfig())
    assert count_parameters(net) == hand


def test_step_size_init_follows_authors():
    torch.manual_seed(0)
    net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=2, config=DHIFNetConfig(stages=64, features=4,
                  encoder_widths=(4,), decoder_widths=(), head_width=4))
    assert abs(net.eta.mean().item() - 0.1) < 0.01 and 0.003 < net.eta.std().item() < 0.02
    assert abs(net.lam.mean().item() - 1.0) < 0.01 and 0.003 < net.lam.std().item() < 0.02


def test_bad_inputs_and_configs():
    net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=4, config=DHIFNetConfig.tiny())
    hsi, msi = _pair(5, 3, 3, 5, 4)
    with pytest.raises(InputError, match="ratio 4"):
        net(hsi, msi[..., :-1])
    with pytest.raises(InputError, match="5 bands"):
        net(hsi[:, :4], msi)
    with pytest.raises(InputError, match="odd"):
        DHIFNetConfig(taps=6)
    with pytest.raises(InputError, match="decoder widths"):
        DHIFNetConfig(encoder_widths=(4, 8), decoder_widths=(8, 8))
    with pytest.raises(InputError, match="ratio"):
        DHIFNet(hsi_bands=5, msi_bands=3, ratio=1, config=DHIFNetConfig.tiny())


def test_unet_padding_is_invisible_at_divisible_sizes():
    # Divisible sides (8x12 for a 3-level U-Net): filter_taps == the bare generator; odd sides: padded, cropped.
    torch.manual_seed(0)
    net = DHIFNet(hsi_bands=5, msi_bands=3, ratio=2, config=DHIFNetConfig.tiny())
    g = torch.rand(1, 4, 8, 12)
    direct = [normalize_taps(raw, taps=7) for raw in net.generator(g)]
    for a, b in zip(net.filter_taps(g), direct):
        torch.testing.assert_close(a, b)
    k = net.filter_taps(torch.rand(1, 4, 7, 5))
    assert all(t.shape == (1, 7, 5, 7, 5) for t in k)


# ------------------------------------------------------------------------------------------ adaptive filter

def test_normalized_taps_have_unit_norm_and_layout():
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(2, 7 * 4, 3, 5, generator=g)
    k = normalize_taps(raw, taps=7)
    assert k.shape == (2, 7, 4, 3, 5)
    torch.testing.assert_close(k.square().sum(dim=1), torch.ones(2, 4, 3, 5))
    # channel t*L + b is tap t of band b
    torch.testing.assert_close(k[1, 2, 3, 1, 4] * raw[1, 3::4, 1, 4].norm(), raw[1, 2 * 4 + 3, 1, 4])


def test_centre_one_hot_taps_are_the_identity():
    g = torch.Generator().manual_seed(2)
    z = torch.rand(2, 5, 7, 9, generator=g)
    k = torch.zeros(2, 7, 5, 7, 9)
    k[:, 3] = 1.0
    torch.testing.assert_close(adaptive_separable_filter(z, k, k, k), z)


def test_constant_taps_equal_a_fixed_separable_3d_convolution():
    # Reference: pad (rows/cols replicate, bands zero) and one conv3d with the outer-product kernel.
    g = torch.Generator().manual_seed(3)
    N, L, H, W, T = 2, 6, 5, 9, 5
    z = torch.rand(N, L, H, W, generator=g, dtype=torch.float64)
    a, b, c = (torch.randn(T, generator=g, dtype=torch.float64) for _ in range(3))
    expand = lambda v: v.view(1, T, 1, 1, 1).expand(N, T, L, H, W)  # noqa: E731
    out = adaptive_separable_filter(z, expand(a), expand(b), expand(c))

    q = T // 2
    zp = F.pad(z, (q, q, q, q), mode="replicate")           # (N, L, H+2q, W+2q)
    zp = F.pad(zp, (0, 0, 0, 0, q, q))                       # zero-pad bands
    kernel = c.view(T, 1, 1) * b.view(1, T, 1) * a.view(1, 1, T)   # [band, row, col]
    ref = F.conv3d(zp.unsqueeze(1), kernel.view(1, 1, T, T, T)).squeeze(1)
    torch.testing.assert_close(out, ref)


def _stacked_reference(cube: torch.Tensor, core: torch.Tensor, axis: str) -> torch.Tensor:
    """The authors' formulation (kernel_pred_1/2/3): stack the T shifted copies, multiply, sum over taps."""
    T = core.shape[1]
    q = T // 2
    N, L, H, W = cube.shape
    if axis == "h":
        p = F.pad(cube, [q, q, 0, 0], mode="replicate")
        stack = torch.stack([p[..., i:i + W] for i in range(T)], dim=1)
    elif axis == "v":
        p = F.pad(cube, [0, 0, q, q], mode="replicate")
        stack = torch.stack([p[:, :, i:i + H] for i in range(T)], dim=1)
    else:
        p = torch.cat([cube.new_zeros(N, q, H, W), cube, cube.new_zeros(N, q, H, W)], dim=1)
        stack = torch.stack([p[:, i:i + L] for i in range(T)], dim=1)
    return (core * stack).sum(dim=1)


def test_varying_taps_equal_the_stacked_formulation():
    g = torch.Generator().manual_seed(5)
    z = torch.rand(2, 9, 6, 11, generator=g, dtype=torch.float64)
    k_h, k_v, k_s = (normalize_taps(torch.randn(2, 7 * 9, 6, 11, generator=g, dtype=torch.float64), taps=7)
                     for _ in range(3))
    ref = _stacked_reference(_stacked_reference(_stacked_reference(z, k_h, "h"), k_v, "v"), k_s, "s")
    torch.testing.assert_close(adaptive_separable_filter(z, k_h, k_v, k_s), ref)


def test_adaptive_filter_hand_value_with_varying_taps():
    # One pixel by hand: horizontal taps [0, 1, 2] at (y=0, x=0) on a 1-band row with replicate padding.
    z = torch.tensor([[[[1.0, 2.0, 4.0]]]])        # (1, 1, 1, 3)
    k_h = torch.zeros(1, 3, 1, 1, 3)
    k_h[0, :, 0, 0, 0] = torch.tensor([0.0, 1.0, 2.0])   # z[-1]->z[0] (replicate) * 0 + z[0]*1 + z[1]*2 = 5
    k_h[0, 1, 0, 0, 1:] = 1.0                              # identity elsewhere
    ident = torch.zeros(1, 3, 1, 1, 3)
    ident[:, 1] = 1.0
    out = adaptive_separable_filter(z, k_h, ident, ident)
    torch.testing.assert_close(out, torch.tensor([[[[5.0, 2.0, 4.0]]]]))


def test_filter_gradcheck_float64():
    g = torch.Generator().manual_seed(4)
    z = torch.rand(1, 2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ks = [torch.randn(1, 3, 2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(adaptive_separable_filter, (z, *ks))


def test_filter_shape_errors():
    z = torch.rand(1, 3, 4, 5)
    with pytest.raises(InputError, match="k_v"):
        adaptive_separable_filter(z, torch.rand(1, 3, 3, 4, 5), torch.rand(1, 3, 3, 4, 4), torch.rand(1, 3, 3, 4, 5))
    with pytest.raises(InputError, match="odd"):
        adaptive_separable_filter(z, *(torch.rand(1, 4, 3, 4, 5) for _ in range(3)))
