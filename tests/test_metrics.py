"""Full-reference metrics against independent references: scikit-image, torchmetrics, NumPy transcriptions of the
MATLAB formulas (img_qi.m, q2n.m/onions_quality.m, SpectAngMapper.m) and hand computations. Each test names its
source."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from hsfuse.errors import InputError
from hsfuse.metrics import (
    MATLAB_EPS,
    cc,
    clip,
    crop_border,
    ergas,
    psnr,
    q2n,
    quantize_uint8,
    quantize_uint16,
    rmse,
    sam,
    ssim,
    uiqi,
)
from hsfuse.metrics.functional import _cayley_dickson_table, _hypercomplex_contract


def _pair(shape=(2, 3, 23, 19), seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    ref = rng.random(shape) * 0.8 + 0.1
    est = ref + noise * rng.standard_normal(shape)
    return ref, est


# ----------------------------------------------------------------------------------------------------- PSNR
def test_psnr_band_mean_matches_torchmetrics_per_band_and_numpy():
    ref, est = _pair()
    out = psnr(torch.from_numpy(ref), torch.from_numpy(est), data_range=1.0, reduction="band_mean")
    # torchmetrics: one PSNR per (image, band) with dim=(2, 3), then the band mean.
    # (torchmetrics turns data_range into a float32 tensor, hence the looser tolerance.)
    tm = tm_psnr(torch.from_numpy(est), torch.from_numpy(ref), data_range=1.0, dim=(2, 3), reduction="none")
    np.testing.assert_allclose(out.numpy(), tm.mean(dim=1).numpy(), rtol=1e-6)
    # NumPy hand formula: mean_b 10 log10(1 / MSE_b).
    mse = ((ref - est) ** 2).mean(axis=(2, 3))
    np.testing.assert_allclose(out.numpy(), (10 * np.log10(1.0 / mse)).mean(axis=1), rtol=1e-12)


def test_psnr_global_matches_torchmetrics_whole_image():
    ref, est = _pair(shape=(1, 4, 11, 13), seed=1)
    out = psnr(torch.from_numpy(ref), torch.from_numpy(est), data_range=2.0, reduction="global")
    tm = tm_psnr(torch.from_numpy(est), torch.from_numpy(ref), data_range=2.0)
    np.testing.assert_allclose(out.numpy(), [float(tm)], rtol=1e-6)  # float32 data_range inside torchmetrics
    mse = ((ref - est) ** 2).mean()
    np.testing.assert_allclose(out.numpy(), [10 * np.log10(4.0 / mse)], rtol=1e-12)


def test_psnr_global_and_band_mean_differ_as_computed_by_hand():
    # Band 0 errs by 0.1 everywhere, band 1 by 0.01: per band 20 dB and 40 dB -> mean 30 dB;
    # global MSE = (0.01 + 0.0001) / 2 -> 10 log10(1 / 0.00505) = 22.967 dB (hand computation).
    ref = torch.full((1, 2, 5, 7), 0.5, dtype=torch.float64)
    est = ref.clone()
    est[:, 0] += 0.1
    est[:, 1] += 0.01
    assert float(psnr(ref, est, data_range=1.0, reduction="band_mean")[0]) == pytest.approx(30.0, abs=1e-9)
    assert float(psnr(ref, est, data_range=1.0, reduction="global")[0]) == pytest.approx(
        10 * math.log10(1 / 0.00505), abs=1e-9
    )


def test_psnr_band_max_and_image_max_peaks():
    ref, est = _pair(shape=(2, 3, 9, 8), seed=2)
    ref[:, 1] *= 0.3  # bands with different maxima make the peaks differ
    mse = ((ref - est) ** 2).mean(axis=(2, 3))
    band_peak = ref.max(axis=(2, 3))
    expected = (10 * np.log10(band_peak**2 / mse)).mean(axis=1)  # UDALN / Yokoya PSNR.m, NumPy
    got = psnr(torch.from_numpy(ref), torch.from_numpy(est), data_range="band_max")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    img_peak = ref.max(axis=(1, 2, 3))[:, None]
    expected = (10 * np.log10(img_peak**2 / mse)).mean(axis=1)
    got = psnr(torch.from_numpy(ref), torch.from_numpy(est), data_range="image_max")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    expected = 10 * np.log10(img_peak[:, 0] ** 2 / ((ref - est) ** 2).mean(axis=(1, 2, 3)))
    got = psnr(torch.from_numpy(ref), torch.from_numpy(est), data_range="image_max", reduction="global")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_psnr_perfect_reconstruction_is_inf_not_an_error():
    ref, _ = _pair(shape=(1, 2, 5, 5))
    assert math.isinf(float(psnr(ref, ref, data_range=1.0)[0]))
    assert math.isinf(float(psnr(ref, ref, data_range=1.0, reduction="global")[0]))


def test_psnr_errors():
    ref, est = _pair(shape=(1, 2, 5, 5))
    with pytest.raises(InputError, match="band_mean"):
        psnr(ref, est, data_range="band_max", reduction="global")
    zero = ref.copy()
    zero[:, 1] = 0.0
    with pytest.raises(InputError, match="band 1"):
        psnr(zero, est, data_range="band_max")
    for bad in (0.0, -1.0, "peak", None, float("nan")):
        with pytest.raises(InputError):
            psnr(ref, est, data_range=bad)
    with pytest.raises(InputError, match="reduction"):
        psnr(ref, est, data_range=1.0, reduction="mean")


# ----------------------------------------------------------------------------------------------------- SSIM
def test_ssim_gaussian_matches_skimage_and_torchmetrics_valid_region():
    ref, est = _pair(seed=3)
    out = ssim(torch.from_numpy(ref), torch.from_numpy(est), data_range=1.0)
    # scikit-image with Wang's MATLAB conventions (Gaussian 11x11, sigma 1.5, population moments), per band.
    sk = [
        np.mean([
            structural_similarity(ref[n, b], est[n, b], gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1.0)
            for b in range(ref.shape[1])
        ])
        for n in range(ref.shape[0])
    ]
    np.testing.assert_allclose(out.numpy(), sk, rtol=1e-10)
    # torchmetrics averages its map over the reflect-padded full image; its map cropped to the valid region
    # (5 pixels on each side) is the same quantity.
    _, full = tm_ssim(torch.from_numpy(est), torch.from_numpy(ref), data_range=1.0, gaussian_kernel=True,
                      sigma=1.5, kernel_size=11, reduction="none", return_full_image=True)
    np.testing.assert_allclose(out.numpy(), full[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).numpy(), rtol=1e-10)


def test_ssim_uniform_7_matches_skimage_defaults():
    ref, est = _pair(shape=(1, 2, 15, 12), seed=4)
    out = ssim(torch.from_numpy(ref), torch.from_numpy(est), data_range=2.0, window="uniform", window_size=7)
    sk = np.mean([structural_similarity(ref[0, b], est[0, b], data_range=2.0) for b in range(2)])  # win 7, sample cov
    np.testing.assert_allclose(out.numpy(), [sk], rtol=1e-10)


def test_ssim_constant_band_is_finite_and_identical_is_one():
    ref = np.full((1, 2, 12, 12), 0.4)
    est = ref.copy()
    est[0, 1] = 0.6
    out = ssim(ref, est, data_range=1.0)
    # A constant band: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) (hand formula), band 0 exact = 1.
    c1 = 0.01**2
    expected = (1.0 + (2 * 0.4 * 0.6 + c1) / (0.4**2 + 0.6**2 + c1)) / 2
    assert float(out[0]) == pytest.approx(expected, rel=1e-12)


def test_ssim_errors():
    ref, est = _pair(shape=(1, 1, 9, 9))
    with pytest.raises(InputError, match="larger than"):
        ssim(ref, est, data_range=1.0)  # 11x11 window on 9x9
    with pytest.raises(InputError, match="odd"):
        ssim(ref, est, data_range=1.0, window_size=4)
    with pytest.raises(InputError):
        ssim(ref, est, data_range="band_max")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ssim(ref, est, data_range=1.0, window="box")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------ SAM
def test_sam_hand_angles_45_90_0_degrees():
    # Pixels (spectra over 2 bands): (1,0)vs(1,1) = 45 deg, (1,0)vs(0,1) = 90 deg, (1,1)vs(2,2) = 0 deg.
    ref = torch.tensor([[[1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0]]])  # (C=2, H=1, W=3)
    est = torch.tensor([[[1.0, 0.0, 2.0]], [[1.0, 1.0, 2.0]]])
    assert float(sam(ref, est)[0]) == pytest.approx(45.0, abs=1e-12)
    assert float(sam(ref, est, unit="radians")[0]) == pytest.approx(math.pi / 4, abs=1e-14)


def test_sam_zero_pixel_policies_by_hand():
    # Same three pixels plus a fourth whose estimate is the zero vector.
    ref = torch.tensor([[[1.0, 1.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 0.0]]])
    est = torch.tensor([[[1.0, 0.0, 2.0, 0.0]], [[1.0, 1.0, 2.0, 0.0]]])
    assert float(sam(ref, est, zero_pixels="exclude")[0]) == pytest.approx(45.0, abs=1e-12)  # (45+90+0)/3
    assert float(sam(ref, est, zero_pixels="zero")[0]) == pytest.approx(33.75, abs=1e-12)  # (45+90+0+0)/4
    r, e = ref.numpy().reshape(2, -1).astype(float), est.numpy().reshape(2, -1).astype(float)
    # UDALN evaluation.py in NumPy: arccos(<x,y> / (|x||y| + 1e-7)); the zero pixel scores arccos(0) = 90 deg,
    # so the mean is close to (45 + 90 + 0 + 90) / 4 (the 1e-7 also moves the 0-degree pixel to ~0.013 deg).
    cos = (r * e).sum(0) / (np.sqrt((r**2).sum(0)) * np.sqrt((e**2).sum(0)) + 1e-7)
    udaln = float(sam(ref, est, zero_pixels="eps_denominator", eps=1e-7)[0])
    assert udaln == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), rel=1e-12)
    assert udaln == pytest.approx(56.25, abs=0.01)
    # DHSIS SpectAngMapper.m transcribed in NumPy: acos((<x,y>+eps) / ((|x|+eps)(|y|+eps))), real part.
    eps = np.finfo(float).eps
    tmp = ((r * e).sum(0) + eps) / (np.sqrt((r**2).sum(0)) + eps) / (np.sqrt((e**2).sum(0)) + eps)
    expected = np.degrees(np.mean(np.arccos(np.clip(tmp, -1, 1))))
    # (arccos near 1 turns one rounding unit of the cosine into ~1e-6 degrees, hence abs=1e-6.)
    assert float(sam(ref, est, zero_pixels="eps")[0]) == pytest.approx(expected, abs=1e-6)


def test_sam_random_matches_numpy_arccos_formula():
    ref, est = _pair(seed=5, noise=0.3)
    r = ref.transpose(0, 2, 3, 1)
    e = est.transpose(0, 2, 3, 1)
    cos = (r * e).sum(-1) / np.linalg.norm(r, axis=-1) / np.linalg.norm(e, axis=-1)
    expected = np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(axis=(1, 2))
    np.testing.assert_allclose(sam(ref, est).numpy(), expected, rtol=1e-9)


def test_sam_all_zero_image_raises_for_exclude_and_is_zero_for_zero():
    ref = np.zeros((1, 3, 4, 5))
    est = np.ones((1, 3, 4, 5))
    with pytest.raises(InputError, match="undefined"):
        sam(ref, est)
    assert float(sam(ref, est, zero_pixels="zero")[0]) == 0.0
    with pytest.raises(InputError):
        sam(ref, est, zero_pixels="eps", eps=0.0)
    with pytest.raises(InputError):
        sam(ref, est, unit="grad")  # type: ignore[arg-type]


def test_sam_identical_spectra_give_exactly_zero():
    ref, _ = _pair(shape=(1, 31, 6, 7))
    assert float(sam(ref, 3.0 * ref)[0]) == pytest.approx(0.0, abs=1e-12)


# -------------------------------------------------------------------------------------- ERGAS, RMSE, CC
def test_ergas_rmse_match_numpy_formulas():
    ref, est = _pair(seed=6)
    rmse_b = np.sqrt(((ref - est) ** 2).mean(axis=(2, 3)))
    for mean_of, base in (("reference", ref), ("estimate", est)):
        mu = base.mean(axis=(2, 3))
        expected = 100 / 4 * np.sqrt(((rmse_b / mu) ** 2).mean(axis=1))  # Wald: 100 h/l, h/l = 1/4
        got = ergas(ref, est, ratio=4, mean_of=mean_of)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(rmse(ref, est).numpy(), np.sqrt(((ref - est) ** 2).mean(axis=(1, 2, 3))), rtol=1e-12)


def test_ergas_errors():
    ref, est = _pair(shape=(1, 3, 5, 5))
    ref[0, 2] = 0.0
    with pytest.raises(InputError, match=r"band\(s\) \[2\]"):
        ergas(ref, est, ratio=4)
    for bad in (0, 2.5, -4, "4x"):
        with pytest.raises(InputError):
            ergas(est, est, ratio=bad)


def test_cc_matches_numpy_corrcoef_and_constant_band_policies():
    ref, est = _pair(shape=(1, 4, 7, 9), seed=7, noise=0.2)
    expected = np.mean([np.corrcoef(ref[0, b].ravel(), est[0, b].ravel())[0, 1] for b in range(4)])
    assert float(cc(ref, est)[0]) == pytest.approx(expected, rel=1e-12)
    ref[0, 3] = 0.25  # a constant band: its correlation is undefined
    partial = np.mean([np.corrcoef(ref[0, b].ravel(), est[0, b].ravel())[0, 1] for b in range(3)])
    assert float(cc(ref, est, constant_bands="exclude")[0]) == pytest.approx(partial, rel=1e-12)
    assert float(cc(ref, est, constant_bands="zero")[0]) == pytest.approx(partial * 3 / 4, rel=1e-12)
    with pytest.raises(InputError, match="band 3"):
        cc(ref, est, constant_bands="raise")
    with pytest.raises(InputError, match="every band"):
        cc(np.ones((1, 2, 3, 3)), est[:, :2, :3, :3])


# ------------------------------------------------------------------------------------------------------ UIQI
def _img_qi(img1: np.ndarray, img2: np.ndarray, block: int) -> float:
    """NumPy transcription of Wang's img_qi.m (filter2 'valid' sums, its flat-window rules)."""
    N = block**2
    win = np.ones((block, block))
    s1, s2 = correlate2d(img1, win, "valid"), correlate2d(img2, win, "valid")
    s11, s22 = correlate2d(img1 * img1, win, "valid"), correlate2d(img2 * img2, win, "valid")
    s12 = correlate2d(img1 * img2, win, "valid")
    mul = s1 * s2
    sq = s1 * s1 + s2 * s2
    num = 4 * (N * s12 - mul) * mul
    den1 = N * (s11 + s22) - sq
    den = den1 * sq
    q = np.ones_like(den)
    idx = (den1 == 0) & (sq != 0)
    q[idx] = 2 * mul[idx] / sq[idx]
    idx = den != 0
    q[idx] = num[idx] / den[idx]
    return float(q.mean())


def test_uiqi_matches_img_qi_transcription_on_8bit_data():
    rng = np.random.default_rng(8)
    ref = rng.integers(0, 256, (1, 3, 13, 11)).astype(np.float64)
    est = np.clip(ref + rng.integers(-20, 21, ref.shape), 0, 255)
    ref[0, 1, :6, :6] = 77.0  # flat windows exercise img_qi's special cases
    est[0, 1, :6, :6] = 77.0
    est[0, 2, :6, :6] = 90.0
    ref[0, 2, :6, :6] = 60.0
    expected = np.mean([_img_qi(ref[0, b], est[0, b], 4) for b in range(3)])
    assert float(uiqi(ref, est, block_size=4)[0]) == pytest.approx(expected, rel=1e-12)


def test_uiqi_single_block_hand_formula_and_identity():
    rng = np.random.default_rng(9)
    x = rng.random((1, 1, 3, 3)) + 0.5
    y = x + 0.2 * rng.random((1, 1, 3, 3))
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cxy = ((x - mx) * (y - my)).mean()
    q = 4 * cxy * mx * my / ((vx + vy) * (mx**2 + my**2))  # Wang & Bovik 2002, one 3x3 block
    assert float(uiqi(x, y, block_size=3)[0]) == pytest.approx(q, rel=1e-12)
    assert float(uiqi(x, x, block_size=3)[0]) == pytest.approx(1.0, abs=1e-12)
    flat = np.full((1, 1, 4, 4), 0.3)
    assert float(uiqi(flat, flat + 0.1, block_size=2)[0]) == pytest.approx(2 * 0.3 * 0.4 / (0.09 + 0.16), rel=1e-12)
    with pytest.raises(InputError, match="larger than"):
        uiqi(x, y, block_size=4)


# ------------------------------------------------------------------------------------------------------ Q2n
def _conj(v):
    return np.concatenate([v[:1], -v[1:]])


def _onion_mult(o1, o2):
    """Transcription of onion_mult.m (Vivone's pansharpening toolbox)."""
    n = len(o1)
    if n == 1:
        return o1 * o2
    h = n // 2
    a, b, c, d = o1[:h], _conj(o1[h:]), o2[:h], _conj(o2[h:])
    if n == 2:
        return np.array([a[0] * c[0] - d[0] * b[0], a[0] * d[0] + c[0] * b[0]])
    return np.concatenate([_onion_mult(a, c) - _onion_mult(d, _conj(b)), _onion_mult(_conj(a), d) + _onion_mult(c, b)])


def _onions_quality(d1: np.ndarray, d2: np.ndarray) -> float:
    """Transcription of onions_quality.m + norm_blocco.m for one block (b x b x n), returns |q|."""
    d1 = d1.astype(float).copy()
    d2 = d2.astype(float).copy()
    d2[:, :, 1:] *= -1
    b, _, n = d1.shape
    for i in range(n):
        x = d1[:, :, i]
        a, c = x.mean(), x.std(ddof=1)
        c = np.finfo(float).eps if c == 0 else c
        d1[:, :, i] = (x - a) / c + 1
        if a == 0:
            d2[:, :, i] = d2[:, :, i] - a + 1 if i == 0 else -(-d2[:, :, i] - a + 1)
        else:
            d2[:, :, i] = (d2[:, :, i] - a) / c + 1 if i == 0 else -((-d2[:, :, i] - a) / c + 1)
    m1, m2 = d1.mean(axis=(0, 1)), d2.mean(axis=(0, 1))
    P = b * b
    mod_q1m, mod_q2m = np.sqrt((m1**2).sum()), np.sqrt((m2**2).sum())
    int1 = P / (P - 1) * (d1**2).sum(axis=2).mean()
    int2 = P / (P - 1) * (d2**2).sum(axis=2).mean()
    termine3 = int1 + int2 - P / (P - 1) * (mod_q1m**2 + mod_q2m**2)
    mean_bias = 2 * mod_q1m * mod_q2m / (mod_q1m**2 + mod_q2m**2)
    if termine3 == 0:
        return mean_bias
    qu = np.array([_onion_mult(d1[i, j], d2[i, j]) for i in range(b) for j in range(b)]).mean(axis=0)
    q = P / (P - 1) * qu - P / (P - 1) * _onion_mult(m1, m2)
    return float(np.linalg.norm(q * mean_bias * 2 / termine3))


def _q2n_ref(gt: np.ndarray, f: np.ndarray, block: int, shift: int) -> float:
    """Transcription of q2n.m for one H x W x C image (mirror padding, band zero-padding, block loop)."""
    H, W, C = gt.shape
    sx, sy = math.ceil(H / shift), math.ceil(W / shift)
    e1, e2 = (sx - 1) * shift + block - H, (sy - 1) * shift + block - W
    gt = np.pad(gt, ((0, e1), (0, e2), (0, 0)), mode="symmetric")
    f = np.pad(f, ((0, e1), (0, e2), (0, 0)), mode="symmetric")
    n = 2 ** math.ceil(math.log2(C))
    gt = np.concatenate([gt, np.zeros(gt.shape[:2] + (n - C,))], axis=2)
    f = np.concatenate([f, np.zeros(f.shape[:2] + (n - C,))], axis=2)
    vals = [
        _onions_quality(gt[j * shift : j * shift + block, i * shift : i * shift + block],
                        f[j * shift : j * shift + block, i * shift : i * shift + block])
        for j in range(sx) for i in range(sy)
    ]
    return float(np.mean(vals))


def test_hypercomplex_product_is_complex_and_quaternion_product():
    # n = 2: (1 + 2i)(3 + 4i) = -5 + 10i (hand). n = 4: Hamilton (1,2,3,4)(5,6,7,8) = (-60, 12, 30, 24) (hand);
    # the toolbox's Cayley-Dickson convention negates the last component (same modulus).
    x2, y2 = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert _hypercomplex_contract(torch.outer(x2, y2)).tolist() == [-5.0, 10.0]
    x4 = torch.tensor([1.0, 2, 3, 4], dtype=torch.float64)
    y4 = torch.tensor([5.0, 6, 7, 8], dtype=torch.float64)
    assert _hypercomplex_contract(torch.outer(x4, y4)).tolist() == [-60.0, 12.0, 30.0, -24.0]
    # n = 8: against the transcribed onion_mult.m recursion.
    rng = np.random.default_rng(10)
    x8, y8 = rng.standard_normal(8), rng.standard_normal(8)
    K, _ = _cayley_dickson_table(8)
    assert sorted(np.unique(K[0])) == list(range(8))  # each row hits every component once
    got = _hypercomplex_contract(torch.outer(torch.from_numpy(x8), torch.from_numpy(y8))).numpy()
    np.testing.assert_allclose(got, _onion_mult(x8, y8), rtol=1e-12)


@pytest.mark.parametrize("bands,block,shift,size", [(4, 8, 8, (16, 16)), (3, 8, 8, (21, 19)), (5, 6, 4, (13, 11)),
                                                    (1, 5, 5, (10, 10))])
def test_q2n_matches_toolbox_transcription(bands, block, shift, size):
    rng = np.random.default_rng(bands * 100 + block)
    gt = rng.integers(50, 2000, size + (bands,)).astype(float)
    f = gt + rng.normal(0, 150, gt.shape)
    expected = _q2n_ref(gt, f, block, shift)
    got = q2n(np.moveaxis(gt, 2, 0), np.moveaxis(f, 2, 0), block_size=block, shift=shift)
    assert float(got[0]) == pytest.approx(expected, rel=1e-9)


def test_q4_matches_hamilton_quaternion_formula():
    # Garzelli & Nencini Q4 with Hamilton quaternions, on the toolbox-normalised data of one 6x6 block:
    # Q4 = |s_zw| * 2 / (s_z^2 + s_w^2) * 2|z||w| / (|z|^2 + |w|^2), s_zw = E[z conj(w)] - E[z] conj(E[w]).
    rng = np.random.default_rng(11)
    gt = rng.random((6, 6, 4)) + 0.2
    f = gt + 0.1 * rng.standard_normal(gt.shape)
    mu, sd = gt.mean(axis=(0, 1)), gt.std(axis=(0, 1), ddof=1)
    z, w = (gt - mu) / sd + 1, (f - mu) / sd + 1

    def ham(p, q):
        a1, b1, c1, d1 = p
        a2, b2, c2, d2 = q
        return np.array([a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2, a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
                         a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2, a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2])

    conj = np.array([1.0, -1, -1, -1])
    zz, ww = z.reshape(-1, 4), w.reshape(-1, 4)
    P = zz.shape[0]
    mz, mw = zz.mean(0), ww.mean(0)
    szw = (np.mean([ham(a, conj * b) for a, b in zip(zz, ww)], axis=0) - ham(mz, conj * mw)) * P / (P - 1)
    var = (((zz - mz) ** 2).sum(1).sum() + ((ww - mw) ** 2).sum(1).sum()) / (P - 1)
    nz, nw = np.linalg.norm(mz), np.linalg.norm(mw)
    q4 = np.linalg.norm(szw) * 2 / var * 2 * nz * nw / (nz**2 + nw**2)
    got = q2n(np.moveaxis(gt, 2, 0), np.moveaxis(f, 2, 0), block_size=6, shift=6)
    assert float(got[0]) == pytest.approx(q4, rel=1e-10)


def test_q2n_identity_invariance_and_flat_blocks():
    rng = np.random.default_rng(12)
    x = rng.random((2, 5, 12, 12)) + 0.1
    y = x + 0.05 * rng.standard_normal(x.shape)
    np.testing.assert_allclose(q2n(x, x, block_size=6, shift=6).numpy(), [1.0, 1.0], atol=1e-12)
    # The per-band block normalisation makes Q2n invariant to a common positive affine map of each band.
    a = np.array([2.0, 0.5, 10.0, 3.0, 1.0])[None, :, None, None]
    c = np.array([1.0, -0.2, 5.0, 0.0, 3.0])[None, :, None, None]
    np.testing.assert_allclose(q2n(a * x + c, a * y + c, block_size=6, shift=6).numpy(),
                               q2n(x, y, block_size=6, shift=6).numpy(), rtol=1e-10)
    flat = np.full((1, 4, 8, 8), 0.7)
    assert float(q2n(flat, flat, block_size=4, shift=4)[0]) == 1.0  # flat identical blocks: mean-bias term = 1
    out = q2n(flat, flat * 0.0 + 0.2, block_size=4, shift=4)
    assert torch.isfinite(out).all()


def test_q2n_errors():
    x = np.random.default_rng(0).random((1, 3, 10, 10))
    with pytest.raises(InputError, match="shift"):
        q2n(x, x, block_size=4, shift=8)
    with pytest.raises(InputError, match="too small"):
        q2n(x, x, block_size=32, shift=32)


# --------------------------------------------------------------------------------------- input handling
@pytest.mark.parametrize("metric", [
    lambda r, e: psnr(r, e, data_range=255.0), lambda r, e: ssim(r, e, data_range=255.0, window_size=3),
    lambda r, e: sam(r, e), lambda r, e: ergas(r, e, ratio=2), rmse, cc, lambda r, e: uiqi(r, e, block_size=3),
    lambda r, e: q2n(r, e, block_size=3, shift=3),
])
def test_integer_inputs_and_chw_layout_equal_float_batch(metric):
    rng = np.random.default_rng(13)
    r8 = rng.integers(1, 256, (3, 7, 6), dtype=np.uint8)
    e8 = rng.integers(1, 256, (3, 7, 6), dtype=np.uint8)
    as_int = metric(torch.from_numpy(r8), torch.from_numpy(e8))  # (C, H, W) uint8 -> one image
    as_float = metric(r8[None].astype(np.float64), e8[None].astype(np.float64))
    assert as_int.shape == (1,) and as_int.dtype == torch.float64
    torch.testing.assert_close(as_int, as_float, rtol=0, atol=0)


@pytest.mark.parametrize("metric", [lambda r, e: psnr(r, e, data_range=1.0), lambda r, e: sam(r, e), rmse, cc])
def test_bad_inputs_raise(metric):
    ref, est = _pair(shape=(1, 2, 5, 5))
    with pytest.raises(InputError, match=r"\(1, 2, 5, 5\).*\(1, 2, 5, 4\)"):
        metric(ref, est[..., :4])
    bad = est.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        metric(ref, bad)
    bad[0, 0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN/inf"):
        metric(bad, ref)
    with pytest.raises(InputError, match="shape"):
        metric(ref[0, 0], est[0, 0])
    with pytest.raises(InputError):
        metric([[1.0]], [[1.0]])


# ---------------------------------------------------------------------------------------------- helpers
def test_crop_quantize_clip_helpers():
    x = torch.arange(2 * 7 * 6, dtype=torch.float64).reshape(1, 2, 7, 6)
    assert torch.equal(crop_border(x, 2), x[..., 2:5, 2:4])
    assert crop_border(x, 0) is x
    with pytest.raises(InputError, match="leaves nothing"):
        crop_border(x, 3)
    # MATLAB im2uint8: round half away from zero and saturate (hand values: 0.2*255 = 51, 0.5*255 = 127.5 -> 128).
    assert quantize_uint8(np.array([-0.3, 0.0, 0.2, 0.5, 1.0, 1.7])).tolist() == [0, 0, 51, 128, 255, 255]
    # MATLAB uint16(): 2.5 -> 3 (not NumPy's banker's 2), saturation at 65535.
    assert quantize_uint16(torch.tensor([1.5, 2.5, -3.0, 7e4])).tolist() == [2, 3, 0, 65535]
    assert quantize_uint16(torch.tensor([0.5]), scale=4.0).tolist() == [2]
    assert clip(torch.tensor([[[-1.0, 0.5, 2.0]]]), 0.0, 1.0).flatten().tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(InputError):
        clip(x, 1.0, 0.0)
    with pytest.raises(InputError, match="NaN"):
        quantize_uint8(np.array([np.nan]))
    assert MATLAB_EPS == 2.0**-52
