"""DBIN (ICCV 2019) and EDBIN (TNNLS 2023) plus their blocks (scaled spectral norm, SE, CARAFE, TF init)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hsfuse.models.base import count_parameters
from hsfuse.models.blocks import (
    CARAFEStage,
    carafe_reassemble,
    prime_factors,
    scaled_spectral_norm,
    variance_scaling_init_,
)
from hsfuse.models.dbin import DBIN, DBINConfig
from hsfuse.models.edbin import EDBIN, EDBINConfig

MODELS = [(DBIN, DBINConfig), (EDBIN, EDBINConfig)]


def _pair(L: int, m: int, r: int, h: int = 3, w: int = 2, *, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, L, h, w, generator=g), torch.rand(2, m, r * h, r * w, generator=g)


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


# ------------------------------------------------------------------------------------------------ both networks

@pytest.mark.parametrize("model, config", MODELS)
@pytest.mark.parametrize("L", [5, 31])
@pytest.mark.parametrize("m", [1, 3, 4])
@pytest.mark.parametrize("ratio", [2, 3, 4, 8])
def test_shapes_and_finite(model, config, L, m, ratio):
    torch.manual_seed(0)
    net = model(hsi_bands=L, msi_bands=m, ratio=ratio, config=config.tiny())
    hsi, msi = _pair(L, m, ratio)
    out = net(hsi, msi)
    assert out.shape == (2, L, 3 * ratio, 2 * ratio)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("model, config", MODELS)
def test_every_parameter_gets_a_gradient(model, config):
    torch.manual_seed(1)
    net = model(hsi_bands=5, msi_bands=3, ratio=4, config=config.tiny())
    hsi, msi = _pair(5, 3, 4, h=3, w=4)
    net(hsi, msi).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("model, config", MODELS)
def test_zero_iterations_is_fusion_block_then_final_conv(model, config):
    torch.manual_seed(2)
    net = model(hsi_bands=5, msi_bands=3, ratio=2, config=config(**{**config.tiny().__dict__, "iterations": 0}))
    net.eval()  # fixed spectral-norm estimates, so two calls use the same weights
    assert net.observe is None
    hsi, msi = _pair(5, 3, 2)
    torch.testing.assert_close(net(hsi, msi), net.final(net.fusion(msi, hsi)))


@pytest.mark.parametrize("model, config", MODELS)
def test_one_iteration_is_a_back_projection_step(model, config):
    """X1 = X0 + F(Z - g_R(X0), Y - g_B(X0)); output = final([X0, X1])."""
    torch.manual_seed(3)
    net = model(hsi_bands=5, msi_bands=2, ratio=3, config=config(**{**config.tiny().__dict__, "iterations": 1}))
    net.eval()
    hsi, msi = _pair(5, 2, 3)
    x0 = net.fusion(msi, hsi)
    slope = net.config.negative_slope
    msi_hat = F.leaky_relu(net.observe.spectral(x0), slope)
    hsi_hat = F.leaky_relu(net.observe.spatial(x0), slope)
    x1 = x0 + net.fusion(msi - msi_hat, hsi - hsi_hat)
    torch.testing.assert_close(net(hsi, msi), net.final(torch.cat([x0, x1], dim=1)))


@pytest.mark.parametrize("model, config", MODELS)
def test_weights_are_shared_across_iterations(model, config):
    """Only the final conv grows with the iteration count: (K+1) L inputs of a 3x3 conv to L outputs."""
    base = config.tiny().__dict__
    counts = [count_parameters(model(hsi_bands=7, msi_bands=3, ratio=2, config=config(**{**base, "iterations": k})))
              for k in (1, 4)]
    assert counts[1] - counts[0] == 3 * 7 * 7 * 9


# ------------------------------------------------------------------------------------------------ DBIN

def test_dbin_paper_parameter_count():
    """Hand sum of train_boost_res.py's layers at 31 bands, RGB, ratio 8 (every tf.contrib layer has a bias)."""
    L, m, C = 31, 3, 128
    fusion = (L * L * 12 * 12 + L) + _conv(L + m, C, 3) + 8 * _conv(C, C, 3) + _conv(C, L, 3)
    g = _conv(L, m, 3) + _conv(L, L, 12)
    final = _conv(6 * L, L, 3)
    assert fusion + g + final == 1_585_306
    assert DBIN.AUTHORS_PARAMETERS[0] == 1_585_306
    assert count_parameters(DBIN(hsi_bands=31, msi_bands=3, ratio=8, config=DBINConfig())) == 1_585_306


def test_dbin_defaults_follow_the_code():
    c = DBINConfig()
    assert (c.width, c.resblocks, c.iterations, c.negative_slope) == (128, 4, 5, 0.2)
    net = DBIN(hsi_bands=31, msi_bands=3, ratio=8, config=DBINConfig.tiny())
    up, down = net.fusion.upsample, net.observe.spatial
    assert (up.kernel_size, up.stride, up.padding) == ((12, 12), (8, 8), (2, 2))
    assert (down.kernel_size, down.stride, down.padding) == ((12, 12), (8, 8), (2, 2))


def test_variance_scaling_init_matches_tf_contrib():
    """TF1 contrib default: truncated normal at +-2 s with s = sqrt(1.3 * 2 / fan_in); its std is
    s * sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)) = s * 0.8796 (variance of N(0, 1) truncated at +-2)."""
    torch.manual_seed(4)
    conv = nn.Conv2d(96, 128, 3)
    variance_scaling_init_(conv)
    s = math.sqrt(1.3 * 2.0 / (96 * 9))
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    truncated_std = s * math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2)))
    assert conv.weight.abs().max() <= 2 * s + 1e-7
    assert abs(conv.weight.std().item() / truncated_std - 1) < 0.02
    assert conv.bias.abs().max() == 0
    deconv = nn.ConvTranspose2d(16, 7, 4)  # TF's fan-in of a transposed kernel counts its output channels
    variance_scaling_init_(deconv)
    assert deconv.weight.abs().max() <= 2 * math.sqrt(2.6 / (7 * 16)) + 1e-7


# ------------------------------------------------------------------------------------------------ EDBIN

def test_edbin_paper_parameter_count():
    """Hand sum of train_cave_edbin.py's layers at 31 bands, RGB, ratio 8."""
    L, m, C = 31, 3, 64
    carafe = 3 * (_conv(L, L, 3) + _conv(L, 100, 3))        # 3 x2 stages, (2 * 5)^2 = 100 kernel channels
    se = (64 * 4 + 4) + (4 * 64 + 64)                         # dense 64 -> 4 -> 64
    fusion = carafe + _conv(L + m, C, 3) + 4 * (2 * _conv(C, C, 3) + se) + _conv(C, L, 3)
    g = _conv(L, m, 3) + _conv(L, L, 12)
    final = _conv(9 * L, L, 3, bias=False)
    assert fusion + g + final == 662_415
    assert EDBIN.AUTHORS_PARAMETERS[0] == 662_415
    assert count_parameters(EDBIN(hsi_bands=31, msi_bands=3, ratio=8, config=EDBINConfig())) == 662_415


def test_edbin_defaults_follow_the_code():
    c = EDBINConfig()
    assert (c.width, c.resblocks, c.iterations, c.k_up, c.sn_scale, c.negative_slope) == (64, 4, 8, 5, 0.7, 0.2)
    net = EDBIN(hsi_bands=31, msi_bands=3, ratio=8, config=EDBINConfig.tiny())
    assert [stage.scale for stage in net.fusion.upsample] == [2, 2, 2]
    assert net.final.bias is None
    net12 = EDBIN(hsi_bands=5, msi_bands=3, ratio=12, config=EDBINConfig.tiny())
    assert [stage.scale for stage in net12.fusion.upsample] == [2, 2, 3]
    assert net.fusion.body[0]["se"].squeeze.out_features == 12  # tiny: 12 // 1
    assert EDBIN(hsi_bands=5, msi_bands=3, ratio=2).fusion.body[0]["se"].squeeze.out_features == 4  # 64 // 16


def test_edbin_spectral_norm_layers():
    net = EDBIN(hsi_bands=5, msi_bands=3, ratio=2, config=EDBINConfig.tiny())
    normalized = {id(layer) for layer in net.normalized_layers()}
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            expect = id(module) in normalized
            assert torch.nn.utils.parametrize.is_parametrized(module, "weight") == expect
    # CARAFE predictors are plain convs, every fusion / g / final conv is normalised
    assert not torch.nn.utils.parametrize.is_parametrized(net.fusion.upsample[0].predict)
    assert len(normalized) == 2 + 2 * 1 + 2 + 1  # head, tail, one SE-ResBlock, g_R, g_B, final


@pytest.mark.parametrize("shape, stride", [((6, 5, 3, 3), 1), ((5, 5, 6, 6), 4)])
def test_scaled_spectral_norm_reaches_the_scale(shape, stride):
    """After enough training-mode power iterations the effective weight, reshaped to (out, in*kh*kw), has
    largest singular value 0.7 (computed independently by torch.linalg)."""
    torch.manual_seed(5)
    conv = nn.Conv2d(shape[1], shape[0], shape[2], stride=stride)
    raw = conv.weight.detach().clone()
    scaled_spectral_norm(conv, scale=0.7, n_power_iterations=1)
    conv.train()
    for _ in range(200):
        weight = conv.weight  # each training-mode evaluation runs one power iteration
    sigma = torch.linalg.matrix_norm(weight.detach().reshape(shape[0], -1), ord=2)
    assert abs(sigma.item() - 0.7) < 1e-4
    # same direction as the raw weight: W_eff = 0.7 W / sigma_max(W)
    sigma_raw = torch.linalg.matrix_norm(raw.reshape(shape[0], -1), ord=2)
    torch.testing.assert_close(weight.detach(), 0.7 * raw / sigma_raw, rtol=1e-4, atol=1e-6)


def test_prime_factors():
    assert prime_factors(8) == [2, 2, 2]
    assert prime_factors(12) == [2, 2, 3]
    assert prime_factors(7) == [7]
    assert prime_factors(90) == [2, 3, 3, 5]


@pytest.mark.parametrize("scale", [2, 3])
def test_carafe_kernels_are_a_softmax_over_taps(scale):
    torch.manual_seed(6)
    stage = CARAFEStage(4, scale=scale, k_up=5)
    kernels = stage.kernels(torch.randn(2, 4, 3, 5))
    assert kernels.shape == (2, 25, 3 * scale, 5 * scale)
    assert (kernels >= 0).all()
    torch.testing.assert_close(kernels.sum(dim=1), torch.ones(2, 3 * scale, 5 * scale))


def _carafe_reference(x: np.ndarray, kernels: np.ndarray, scale: int) -> np.ndarray:
    """Loop version of the authors' recipe: nearest upsampling, k x k patches with dilation ``scale`` (zero
    outside the image), weighted sum with the pixel's kernel."""
    n, c, h, w = x.shape
    k = int(round(math.sqrt(kernels.shape[1])))
    up = x.repeat(scale, axis=2).repeat(scale, axis=3)
    half = k // 2
    out = np.zeros((n, c, h * scale, w * scale))
    for y in range(h * scale):
        for z in range(w * scale):
            for t in range(k * k):
                yy, zz = y + scale * (t // k - half), z + scale * (t % k - half)
                if 0 <= yy < h * scale and 0 <= zz < w * scale:
                    out[:, :, y, z] += kernels[:, t, y, z][:, None] * up[:, :, yy, zz]
    return out


@pytest.mark.parametrize("scale, k", [(2, 5), (3, 3)])
def test_carafe_reassembly_matches_a_loop_reference(scale, k):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    kernels = torch.rand(2, k * k, 4 * scale, 5 * scale, generator=g, dtype=torch.float64)
    got = carafe_reassemble(x, kernels, scale=scale)
    np.testing.assert_allclose(got.numpy(), _carafe_reference(x.numpy(), kernels.numpy(), scale), atol=1e-12)


def test_carafe_keeps_a_constant_map_constant():
    """Kernels sum to one, so a constant map stays constant: everywhere with replicate padding, and at least
    k_up // 2 LR pixels away from the border with the authors' zero padding."""
    torch.manual_seed(8)
    x = torch.full((1, 3, 6, 7), 0.37)
    rep = CARAFEStage(3, scale=2, k_up=5, padding="replicate")
    torch.testing.assert_close(rep(x), torch.full((1, 3, 12, 14), 0.37))
    zero = CARAFEStage(3, scale=2, k_up=5, padding="zeros")
    out = zero(x)
    torch.testing.assert_close(out[..., 4:8, 4:10], torch.full((1, 3, 4, 6), 0.37))
    assert (out[..., 0, :] < 0.37 - 1e-4).all()  # the zero border pulls the edge down
