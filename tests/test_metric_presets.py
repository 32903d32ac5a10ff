"""Presets reproduce the conventions of the code bases they name: expected values are computed in the test with
NumPy / scikit-image / torchmetrics from the conventions read in each code base (sources named per test)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

from hsfuse.errors import InputError
from hsfuse.metrics import PRESETS, MetricPreset, evaluate, get_preset, q2n
from hsfuse.metrics import functional as fm


def _images(shape=(3, 35, 33), seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    ref = rng.random(shape) * 0.8 + 0.1
    est = np.clip(ref + noise * rng.standard_normal(shape), 0.0, 1.0)
    return ref, est


def _img_qi(a, b, block):  # Wang's img_qi.m in NumPy (same transcription as in test_metrics)
    N, win = block**2, np.ones((block, block))
    s1, s2 = correlate2d(a, win, "valid"), correlate2d(b, win, "valid")
    s11, s22, s12 = (correlate2d(u, win, "valid") for u in (a * a, b * b, a * b))
    mul, sq = s1 * s2, s1 * s1 + s2 * s2
    den1 = N * (s11 + s22) - sq
    q = np.ones_like(den1)
    idx = (den1 == 0) & (sq != 0)
    q[idx] = 2 * mul[idx] / sq[idx]
    idx = den1 * sq != 0
    q[idx] = (4 * (N * s12 - mul) * mul)[idx] / (den1 * sq)[idx]
    return q.mean()


def test_registry_has_the_documented_presets_and_descriptions():
    assert {"hsfuse", "dhsis_matlab", "yokoya_toolbox", "udaln", "dhifnet_test"} <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.name == name
        text = preset.describe()
        assert name in text and "metrics:" in text
    assert get_preset("udaln") is PRESETS["udaln"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["hsfuse"].quantize = "uint8"  # type: ignore[misc]


def test_dhsis_matlab_preset_matches_hand_quantised_computation():
    ref, est = _images(seed=1)
    sf = 8
    # tf_quali.m: double(im2uint8(x)) = round half up of 255 x on [0, 1] (hand, NumPy).
    q_ref, q_est = np.floor(ref * 255 + 0.5), np.floor(est * 255 + 0.5)
    C = ref.shape[0]
    mse_b = ((q_ref - q_est) ** 2).mean(axis=(1, 2))
    expected = {
        "psnr": np.mean(10 * np.log10(255.0**2 / mse_b)),  # csnr.m
        "ssim": np.mean([structural_similarity(q_ref[b], q_est[b], gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=255.0) for b in range(C)]),
        "ergas": 100 / sf * np.sqrt(np.mean(mse_b / q_ref.mean(axis=(1, 2)) ** 2)),  # 100 * (1/sf) * ...
        "rmse": np.sqrt(((q_ref - q_est) ** 2).mean()),
        "cc": np.mean([np.corrcoef(q_ref[b].ravel(), q_est[b].ravel())[0, 1] for b in range(C)]),
        "uiqi": np.mean([_img_qi(q_ref[b], q_est[b], 32) for b in range(C)]),
    }
    eps = np.finfo(float).eps  # SpectAngMapper.m, then * 180 / pi
    tmp = ((q_ref * q_est).sum(0) + eps) / (np.sqrt((q_ref**2).sum(0)) + eps) / (np.sqrt((q_est**2).sum(0)) + eps)
    expected["sam"] = np.degrees(np.mean(np.arccos(np.clip(tmp, -1, 1))))
    got = evaluate(torch.from_numpy(ref), torch.from_numpy(est), preset="dhsis_matlab", ratio=sf)
    assert list(got) == ["psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi"]
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-10), key


def test_udaln_preset_matches_evaluation_py_conventions():
    ref, est = _images(shape=(4, 12, 10), seed=2)
    ref[:, 0, 0] = 0.0  # a zero reference spectrum: UDALN's +1e-7 scores it 90 degrees
    r = 4
    mse_b = ((ref - est) ** 2).mean(axis=(1, 2))
    x, y = ref.reshape(4, -1), est.reshape(4, -1)
    cos = (x * y).sum(0) / (np.linalg.norm(x, axis=0) * np.linalg.norm(y, axis=0) + 1e-7)
    expected = {
        "psnr": np.mean(10 * np.log10(ref.max(axis=(1, 2)) ** 2 / mse_b)),  # peak = max of each reference band
        "sam": np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(),
        "ergas": 100 / r * np.sqrt(np.mean(mse_b / ref.mean(axis=(1, 2)) ** 2)),
        "rmse": np.sqrt(((ref - est) ** 2).mean()),
        "cc": np.mean([np.corrcoef(x[b], y[b])[0, 1] for b in range(4)]),
    }
    got = evaluate(ref, est, preset="udaln", ratio=r)
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-10), key


def test_dhifnet_test_preset_clamps_estimate_and_uses_global_psnr():
    ref, _ = _images(shape=(3, 9, 11), seed=3)
    est = ref + np.random.default_rng(4).normal(0, 0.3, ref.shape)  # leaves [0, 1]
    expected = float(tm_psnr(torch.from_numpy(np.clip(est, 0, 1)), torch.from_numpy(ref), data_range=1.0))
    got = evaluate(ref, est, preset="dhifnet_test")
    assert list(got) == ["psnr"]
    assert got["psnr"] == pytest.approx(expected, rel=1e-6)  # torchmetrics keeps data_range in float32
    mse = ((ref - np.clip(est, 0, 1)) ** 2).mean()
    assert got["psnr"] == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-12)


def test_yokoya_toolbox_preset_conventions():
    rng = np.random.default_rng(5)
    ref = rng.integers(100, 4000, (3, 32, 32)).astype(np.uint16)
    est = np.clip(ref + rng.normal(0, 80, ref.shape), 0, None)  # float DN values
    ref_f = ref.astype(float)
    ref_f_zero = ref_f.copy()
    est[:, 0, 0] = 0.0  # a zero fused spectrum: SAM.m drops the pixel
    r = 4
    mse_b = ((ref_f - est) ** 2).mean(axis=(1, 2))
    x, y = ref_f_zero.reshape(3, -1)[:, 1:], est.reshape(3, -1)[:, 1:]
    cos = (x * y).sum(0) / np.linalg.norm(x, axis=0) / np.linalg.norm(y, axis=0)
    expected = {
        "psnr": np.mean(10 * np.log10(ref_f.max(axis=(1, 2)) ** 2 / mse_b)),  # PSNR.m: max(ref,[],1)
        "sam": np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(),  # SAM.m: zero-norm pixels removed
        # ERGAS(I_HS, I_REF, ratio): the first argument (the fused image) provides the band means.
        "ergas": 100 / r * np.sqrt(np.mean(mse_b / est.mean(axis=(1, 2)) ** 2)),
        # q2n.m casts to uint16 first: round half away and saturate, done here by hand.
        "q2n": float(q2n(ref_f, np.clip(np.floor(est + 0.5), 0, 65535), block_size=32, shift=32)[0]),
    }
    got = evaluate(ref, est, preset="yokoya_toolbox", ratio=r)
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-10), key
    # Normalised data would be destroyed by the uint16 cast: refused, unless a scale is given (the umax variant).
    with pytest.raises(InputError, match="uint16"):
        evaluate(ref / 4000.0, est / 4000.0, preset="yokoya_toolbox", ratio=r)
    scaled = dataclasses.replace(PRESETS["yokoya_toolbox"], q2n_scale=4000.0)
    assert evaluate(ref / 4000.0, est / 4000.0, preset=scaled, ratio=r)["q2n"] == pytest.approx(
        float(q2n(ref_f, np.clip(np.floor(est + 0.5), 0, 65535), block_size=32, shift=32)[0]), rel=1e-9
    )


def test_border_ratio_and_data_range_override():
    ref, est = _images(shape=(2, 40, 44), seed=6)
    custom = MetricPreset(name="crop", reproduces="test", metrics=("psnr", "rmse", "ssim"), border="ratio")
    got = evaluate(ref, est, preset=custom, ratio=3)
    cr, ce = ref[:, 3:-3, 3:-3], est[:, 3:-3, 3:-3]  # Yokoya CNMF QualityIndices.m: I(ratio+1:end-ratio, ...)
    assert got["rmse"] == pytest.approx(np.sqrt(((cr - ce) ** 2).mean()), rel=1e-12)
    mse_b = ((cr - ce) ** 2).mean(axis=(1, 2))
    assert got["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse_b)), rel=1e-12)
    scaled = evaluate(ref * 4095, est * 4095, preset="hsfuse", ratio=2, data_range=4095)
    plain = evaluate(ref, est, preset="hsfuse", ratio=2)
    for key in ("psnr", "ssim", "sam", "ergas", "cc", "uiqi", "q2n"):
        assert scaled[key] == pytest.approx(plain[key], rel=1e-9), key


def test_hsfuse_preset_integer_input_constant_band_and_zero_pixels_give_no_nan():
    rng = np.random.default_rng(7)
    ref = rng.integers(1, 255, (4, 33, 34)).astype(np.uint8)
    est = rng.integers(0, 255, (4, 33, 34)).astype(np.int32)
    ref[2] = 90  # constant band
    est[:, 5, 5] = 0  # a zero spectrum
    got = evaluate(torch.from_numpy(ref), torch.from_numpy(est), preset="hsfuse", ratio=4, data_range=255)
    assert list(got) == ["psnr", "ssim", "sam", "ergas", "rmse", "cc", "uiqi", "q2n"]
    assert all(math.isfinite(v) for v in got.values())
    # Same numbers as the float64 computation.
    again = evaluate(ref.astype(np.float64), est.astype(np.float64), preset="hsfuse", ratio=4, data_range=255.0)
    assert got == again


def test_evaluate_errors():
    ref, est = _images(shape=(3, 32, 32))
    with pytest.raises(InputError, match="unknown metric preset"):
        evaluate(ref, est, preset="matlab")
    with pytest.raises(InputError, match="ratio"):
        evaluate(ref, est, preset="hsfuse")
    with pytest.raises(InputError, match="one image"):
        evaluate(np.stack([ref, ref]), np.stack([est, est]), ratio=4)
    with pytest.raises(InputError, match="same shape"):
        evaluate(ref, est[:, :31], ratio=4)
    with pytest.raises(InputError):
        evaluate(ref, est, ratio=4, data_range=-1.0)
    with pytest.raises(InputError, match="metrics"):
        MetricPreset(name="x", reproduces="y", metrics=("psnr", "lpips"))
    with pytest.raises(InputError, match="clip"):
        MetricPreset(name="x", reproduces="y", clip=(1.0, 0.0))
    with pytest.raises(InputError, match="border"):
        MetricPreset(name="x", reproduces="y", border=-2)
    assert evaluate(ref, est, preset="dhifnet_test")["psnr"] == pytest.approx(
        float(fm.psnr(ref, est, data_range=1.0, reduction="global")[0]), rel=1e-12
    )
