"""Two-branch CNN (Yang, Zhao, Chan 2018): shapes, gradients, dense == per-pixel, parameter count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsfuse.errors import InputError
from hsfuse.models.base import count_parameters
from hsfuse.models.two_branch import TwoBranchCNN, TwoBranchConfig, _mirror_pad, spectral_kernel_length
from hsfuse.physics.interpolation import upsample_cubic


def _pair(L: int, m: int, r: int, h: int = 3, w: int = 2, *, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(2, L, h, w, generator=g, dtype=dtype),
            torch.rand(2, m, r * h, r * w, generator=g, dtype=dtype))


@pytest.mark.parametrize("L", [5, 31])
@pytest.mark.parametrize("m", [1, 3, 4])
@pytest.mark.parametrize("ratio", [2, 3, 4, 8])
def test_shapes_and_finite(L, m, ratio):
    torch.manual_seed(0)
    net = TwoBranchCNN(hsi_bands=L, msi_bands=m, ratio=ratio, config=TwoBranchConfig.tiny())
    hsi, msi = _pair(L, m, ratio)
    out = net(hsi, msi)
    assert out.shape == (2, L, 3 * ratio, 2 * ratio)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("init", ["authors", "pytorch"])
def test_every_parameter_gets_a_gradient(init):
    torch.manual_seed(1)
    net = TwoBranchCNN(hsi_bands=8, msi_bands=3, ratio=2,
                       config=TwoBranchConfig(**{**TwoBranchConfig.tiny().__dict__, "init": init}))
    hsi, msi = _pair(8, 3, 2, h=5, w=4)
    net(hsi, msi).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def _reference_pixel(net: TwoBranchCNN, spectrum: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """The per-pixel network of the prototxt: 1-D convs on one spectrum, 2-D valid convs on one window, FCs."""
    k = net.spectral_kernel
    a1 = F.relu(F.conv1d(spectrum[None, None], net.conv11.weight[..., 0], net.conv11.bias))
    a2 = F.relu(F.conv1d(a1, net.conv12.weight[..., 0], net.conv12.bias))
    a3 = F.relu(F.conv1d(a2, net.conv13.weight[..., 0], net.conv13.bias))
    skip = F.relu(F.conv1d(a1, net.skip11.weight[..., 0], net.skip11.bias))
    assert net.skip11.weight.shape[2] == 2 * k - 1
    s = F.relu(F.linear((a3 + skip).relu().flatten(), net.ip11.weight.flatten(1), net.ip11.bias))
    b1 = F.relu(F.conv2d(window[None], net.conv21.weight, net.conv21.bias))
    b3 = F.relu(F.conv2d(F.relu(F.conv2d(b1, net.conv22.weight, net.conv22.bias)), net.conv23.weight,
                         net.conv23.bias))
    skip2 = F.relu(F.conv2d(b1, net.skip21.weight, net.skip21.bias))
    t = F.relu(F.linear((b3 + skip2).relu().flatten(), net.ip21.weight.flatten(1), net.ip21.bias))
    f = torch.cat([s, t])
    g = F.relu(F.linear(F.relu(F.linear(f, net.ip1.weight.flatten(1), net.ip1.bias)),
                        net.ip2.weight.flatten(1), net.ip2.bias))
    return F.linear(F.relu(g + f), net.ip3.weight.flatten(1), net.ip3.bias)


def test_dense_application_equals_per_pixel_network():
    """Windows cut by hand from a numpy-mirror-padded MSI; spectra from the same cubic upsampling."""
    torch.manual_seed(2)
    L, m, r = 11, 3, 3
    config = TwoBranchConfig(spectral_filters=3, spectral_fc=7, spatial_filters=3, spatial_kernel=3, window=9,
                             spatial_fc=5, init="pytorch")
    net = TwoBranchCNN(hsi_bands=L, msi_bands=m, ratio=r, config=config).double()
    hsi, msi = _pair(L, m, r, h=5, w=4, dtype=torch.float64)
    dense = net(hsi, msi)
    up = upsample_cubic(hsi, ratio=r, offset=(r - 1) // 2)
    pad = config.window // 2
    padded = torch.from_numpy(np.pad(msi.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect"))
    for n, i, j in [(0, 0, 0), (1, 14, 11), (0, 7, 5), (1, 2, 10), (0, 13, 1)]:
        window = padded[n, :, i:i + config.window, j:j + config.window]  # centred on (i, j)
        expected = _reference_pixel(net, up[n, :, i, j], window)
        torch.testing.assert_close(dense[n, :, i, j], expected, rtol=1e-10, atol=1e-12)


def test_row_chunking_does_not_change_the_result():
    torch.manual_seed(3)
    net = TwoBranchCNN(hsi_bands=5, msi_bands=2, ratio=2, config=TwoBranchConfig.tiny())
    hsi, msi = _pair(5, 2, 2, h=5, w=3)
    whole = net(hsi, msi)
    net.chunk_pixels = 7  # one row of 6 pixels per chunk
    torch.testing.assert_close(net(hsi, msi), whole)


@pytest.mark.parametrize("pad", [1, 4, 9, 17])
def test_mirror_pad_matches_numpy_reflect(pad):
    """numpy's 'reflect' pads wider than the array by reflecting repeatedly, as _mirror_pad does."""
    x = torch.arange(2 * 3 * 5, dtype=torch.float64).reshape(1, 1, 6, 5)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="reflect")
    np.testing.assert_array_equal(_mirror_pad(x, pad).numpy(), expected)


def test_spectral_kernel_length_rule():
    # 45 taps at the prototxt's 244 bands; proportional below; at least 3 where the bands allow
    assert [spectral_kernel_length(L) for L in (244, 300, 162, 31, 8, 5, 3)] == [45, 45, 30, 6, 3, 2, 1]
    for L in range(2, 400):
        k = spectral_kernel_length(L)
        assert 1 <= k <= 45 and L - 3 * (k - 1) >= 1


def _prototxt_parameter_count() -> int:
    """Sum of weight + bias sizes of the v7 prototxt layers (EnMAP: 244 bands, 6 MSI bands, 31 x 31 window)."""
    layers = [  # (weight shape, bias size)
        ((20, 1, 45, 1), 20), ((20, 20, 45, 1), 20), ((20, 20, 45, 1), 20),   # conv11..13: 244->200->156->112
        ((20, 20, 89, 1), 20),                                                # skip11: 200 -> 112
        ((250, 20 * 112), 250),                                               # ip11
        ((20, 6, 10, 10), 20), ((20, 20, 10, 10), 20), ((20, 20, 10, 10), 20),  # conv21..23: 31->22->13->4
        ((20, 20, 19, 19), 20),                                               # skip21: 22 -> 4
        ((200, 20 * 4 * 4), 200),                                             # ip21
        ((450, 450), 450), ((450, 450), 450), ((244, 450), 244),              # ip1, ip2, ip3
    ]
    return sum(int(np.prod(shape)) + bias for shape, bias in layers)


def test_parameter_count_matches_the_prototxt():
    assert TwoBranchCNN.AUTHORS_PARAMETERS[0] == _prototxt_parameter_count() == 1_449_454
    net = TwoBranchCNN(hsi_bands=244, msi_bands=6, ratio=3, config=TwoBranchConfig())
    assert net.spectral_kernel == 45
    assert count_parameters(net) == _prototxt_parameter_count()


def test_configuration_errors():
    with pytest.raises(InputError, match="too long"):
        TwoBranchCNN(hsi_bands=8, msi_bands=3, ratio=2, config=TwoBranchConfig(spectral_kernel=4))
    with pytest.raises(InputError, match="odd"):
        TwoBranchConfig(window=8)
    with pytest.raises(InputError, match="too small"):
        TwoBranchConfig(window=9, spatial_kernel=5)
    with pytest.raises(InputError, match="upsample_offset"):
        TwoBranchCNN(hsi_bands=5, msi_bands=3, ratio=2, config=TwoBranchConfig(upsample_offset=2))
    net = TwoBranchCNN(hsi_bands=5, msi_bands=3, ratio=2, config=TwoBranchConfig.tiny())
    with pytest.raises(InputError, match="ratio 2"):
        net(torch.rand(1, 5, 3, 3), torch.rand(1, 3, 7, 6))
