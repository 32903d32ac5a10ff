"""Presets reproduce the conventions of the code bases they name: expected values are computed in the test with
NumPy / scikit-image / torchmetrics from the conventions read in each code base (sources named per test)."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings

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
    assert {"hsfuse", "dhsis_matlab", "yokoya_toolbox", "hsmsfusion_toolbox", "udaln", "dhifnet_test"} <= set(PRESETS)
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
    # Data with max <= 1 that is not on [0, 1] would be destroyed by the uint16 cast: still refused.
    with pytest.raises(InputError, match="uint16"):
        evaluate(ref / 4000.0 - 0.5, est / 4000.0 - 0.5, preset="yokoya_toolbox", ratio=r)
    # An explicit scale (the umax variant) is used as given, with no warning.
    scaled = dataclasses.replace(PRESETS["yokoya_toolbox"], q2n_scale=4000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got_scaled = evaluate(ref / 4000.0, est / 4000.0, preset=scaled, ratio=r)["q2n"]
    assert got_scaled == pytest.approx(
        float(q2n(ref_f, np.clip(np.floor(est + 0.5), 0, 65535), block_size=32, shift=32)[0]), rel=1e-9
    )


def test_yokoya_toolbox_q2n_scales_unit_data_itself():
    """[0, 1] data: scaled by 65535 (im2uint16's range) before q2n.m's uint16 cast, as if pre-scaled by hand."""
    rng = np.random.default_rng(15)
    ref = rng.random((4, 40, 36)) * 0.9 + 0.05
    est = np.clip(ref + rng.normal(0, 0.03, ref.shape), 0.0, 1.0)
    with pytest.warns(UserWarning, match=r"scaled by 65535") as record:
        got = evaluate(ref, est, preset="yokoya_toolbox", ratio=4)
    assert len(record) == 1 and "[0, 1]" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # data on its integer scale: no warning
        by_hand = evaluate(ref * 65535.0, est * 65535.0, preset="yokoya_toolbox", ratio=4)
    assert got["q2n"] == by_hand["q2n"]
    # Independently: q2n of the hand-made uint16 casts (round half away from zero, saturate).
    cast = [np.clip(np.floor(x * 65535.0 + 0.5), 0, 65535) for x in (ref, est)]
    assert got["q2n"] == pytest.approx(float(q2n(*cast, block_size=32, shift=32)[0]), rel=1e-12)
    assert 0.5 < got["q2n"] < 1.0
    for key in ("psnr", "sam", "ergas"):  # scale-free under this preset
        assert got[key] == pytest.approx(by_hand[key], rel=1e-9), key
    assert "65535" in PRESETS["yokoya_toolbox"].describe() and "65535" in PRESETS["yokoya_toolbox"].reproduces


def _csnr_sam_eps(q_ref, q_est):
    """DHSIS csnr.m (peak 255, band mean) and SpectAngMapper.m (MATLAB eps, then degrees), in NumPy."""
    mse_b = ((q_ref - q_est) ** 2).mean(axis=(1, 2))
    eps = np.finfo(float).eps
    tmp = ((q_ref * q_est).sum(0) + eps) / (np.sqrt((q_ref**2).sum(0)) + eps) / (np.sqrt((q_est**2).sum(0)) + eps)
    return np.mean(10 * np.log10(255.0**2 / mse_b)), np.degrees(np.mean(np.arccos(np.clip(tmp, -1, 1))))


def test_dhsis_matlab_zero_mean_reference_band_gives_inf_ergas_with_a_warning():
    ref, est = _images(shape=(4, 34, 36), seed=11)
    ref[1] = 0.001  # im2uint8 -> 0: the GT band has mean 0 (the DHSIS code: rmse_per_band ./ mean_y = Inf)
    sf = 8
    q_ref, q_est = np.floor(ref * 255 + 0.5), np.floor(est * 255 + 0.5)
    assert q_ref[1].max() == 0 and q_est[1].max() > 0
    with pytest.warns(UserWarning) as record:
        got = evaluate(ref, est, preset="dhsis_matlab", ratio=sf)
    messages = [str(w.message) for w in record]
    ergas_msg = [m for m in messages if m.startswith("ERGAS")]
    assert len(ergas_msg) == 1
    assert "band(s) [1]" in ergas_msg[0] and "mean 0" in ergas_msg[0] and "returns Inf too" in ergas_msg[0]
    assert any(m.startswith("CC") and "band(s) [1]" in m and "NaN" in m for m in messages)  # corrcoef there
    assert got["ergas"] == math.inf
    # Every other metric as usual, recomputed independently on the quantised images.
    psnr, sam = _csnr_sam_eps(q_ref, q_est)
    others = [b for b in range(4) if b != 1]  # the constant GT band has no correlation: averaged over the rest
    expected = {
        "psnr": psnr,
        "sam": sam,
        "rmse": np.sqrt(((q_ref - q_est) ** 2).mean()),
        "ssim": np.mean([structural_similarity(q_ref[b], q_est[b], gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False, data_range=255.0) for b in range(4)]),
        "uiqi": np.mean([_img_qi(q_ref[b], q_est[b], 32) for b in range(4)]),
        "cc": np.mean([np.corrcoef(q_ref[b].ravel(), q_est[b].ravel())[0, 1] for b in others]),
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-10), key
    # Zero error in that band too: 0 / 0, NaN in the original as well.
    est0 = est.copy()
    est0[1] = 0.0
    with pytest.warns(UserWarning) as record:
        assert math.isnan(evaluate(ref, est0, preset="dhsis_matlab", ratio=sf)["ergas"])
    assert any(re.match(r"ERGAS is NaN .*band\(s\) \[1\].*0 / 0", str(w.message)) for w in record)
    # hsfuse's own preset still refuses (no silent Inf there).
    with pytest.raises(InputError, match="mean 0"):
        evaluate(ref.round(2), est, preset="hsfuse", ratio=sf)


def test_matlab_presets_return_the_original_inf_nan_instead_of_refusing():
    rng = np.random.default_rng(12)
    shape = (3, 20, 22)
    # Integer DN values: sums are exact, so a band mean is exactly 0 where intended.
    ref = rng.integers(100, 1000, shape).astype(np.float64)
    est = ref + rng.choice([-1.0, 1.0], shape) * rng.integers(1, 30, shape)  # no pixel error is 0

    def zero_mean(h, w):
        half = rng.integers(1, 500, h * w // 2).astype(np.float64)
        return rng.permutation(np.concatenate([half, -half])).reshape(h, w)

    # yokoya_toolbox / hsmsfusion_toolbox: ERGAS.m divides by the FUSED band means (after the crop for the latter).
    est_z = est.copy()
    est_z[2] = zero_mean(*shape[1:])
    est_c = est.copy()
    est_c[2, 2:-2, 2:-2] = zero_mean(shape[1] - 4, shape[2] - 4)
    for name, fused in (("yokoya_toolbox", est_z), ("hsmsfusion_toolbox", est_c)):
        with pytest.warns(UserWarning, match=r"ERGAS is Inf .*band\(s\) \[2\] of the estimate"):
            got = evaluate(ref, fused, preset=name, ratio=2)
        assert got["ergas"] == math.inf
        assert math.isfinite(got["sam"])
    # yokoya_toolbox's other metrics as usual (NumPy, PSNR.m and SAM.m; no pixel spectrum is zero here).
    mse_b = ((ref - est_z) ** 2).mean(axis=(1, 2))
    x, y = ref.reshape(3, -1), est_z.reshape(3, -1)
    cos = (x * y).sum(0) / np.linalg.norm(x, axis=0) / np.linalg.norm(y, axis=0)
    with pytest.warns(UserWarning, match="ERGAS is Inf"):
        got = evaluate(ref, est_z, preset="yokoya_toolbox", ratio=2)
    assert got["psnr"] == pytest.approx(np.mean(10 * np.log10(ref.max(axis=(1, 2)) ** 2 / mse_b)), rel=1e-12)
    assert got["sam"] == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), rel=1e-10)
    # PSNR.m: 10 log10(max(ref)^2 ./ msr) with max 0 -> -Inf (band mean -Inf); the other bands unaffected.
    ref_p = ref.copy()
    ref_p[0] = 0.0
    for name in ("yokoya_toolbox", "udaln"):
        with pytest.warns(UserWarning) as record:  # (udaln: ERGAS and CC of that all-zero band warn too)
            got = evaluate(ref_p, est, preset=name, ratio=2)
        assert any(re.match(r"PSNR is -Inf .*band\(s\) \[0\]", str(w.message)) for w in record), name
        assert got["psnr"] == -math.inf
    with pytest.raises(InputError, match="peak"):
        evaluate(ref_p, est, preset=dataclasses.replace(PRESETS["hsfuse"], psnr_data_range="band_max"), ratio=2)
    # SAM.m with every pixel dropped: sum([]) / 0 = NaN.
    zero = np.zeros_like(ref)
    with pytest.warns(UserWarning, match="SAM is NaN"):
        got = evaluate(ref, zero, preset=dataclasses.replace(PRESETS["yokoya_toolbox"], metrics=("sam", "q2n")))
    assert math.isnan(got["sam"]) and math.isfinite(got["q2n"])
    # CC: every band constant -> corrcoef NaN in each band -> NaN.
    flat = np.ones_like(ref) * np.array([1.0, 2.0, 3.0])[:, None, None]
    with pytest.warns(UserWarning, match="CC is NaN"):
        got = evaluate(flat, est, preset="hsmsfusion_toolbox", ratio=2)
    assert math.isnan(got["cc"]) and math.isfinite(got["rmse"])
    # UDALN divides each pixel's squared error by the squared mean: Inf, or NaN once one pixel error is 0.
    ref_u = ref.copy()
    ref_u[1] = zero_mean(*shape[1:])
    est = ref_u + rng.choice([-1.0, 1.0], shape) * rng.integers(1, 30, shape)  # no pixel error is 0
    with pytest.warns(UserWarning, match=r"ERGAS is Inf"):
        assert evaluate(ref_u, est, preset="udaln", ratio=2)["ergas"] == math.inf
    est_u = est.copy()
    est_u[1, 0, 0] = ref_u[1, 0, 0]
    with pytest.warns(UserWarning, match=r"ERGAS is NaN"):
        assert math.isnan(evaluate(ref_u, est_u, preset="udaln", ratio=2)["ergas"])
    assert PRESETS["hsfuse"].degenerate == "raise" and PRESETS["dhifnet_test"].degenerate == "raise"


def _quality_indices_m(I_HS, I_REF, ratio):
    """NumPy transcription of the HSMSFusionToolbox QualityIndices.m with its CC.m, SAM.m, RMSE.m and ERGAS.m,
    on (rows, cols, bands) arrays as in MATLAB (column-major vectorisation where it matters)."""
    rows, cols, bands = I_REF.shape
    I_HS = I_HS[ratio:rows - ratio, ratio:cols - ratio, :]  # I_HS(ratio+1:rows-ratio, ratio+1:cols-ratio, :)
    I_REF = I_REF[ratio:rows - ratio, ratio:cols - ratio, :]
    # CC.m(ref=I_HS, tar=I_REF): corrcoef(tar_tmp(:), ref_tmp(:)) per band; QualityIndices: mean(cc).
    cc = np.zeros(bands)
    for i in range(bands):
        cc[i] = np.corrcoef(I_REF[:, :, i].ravel(order="F"), I_HS[:, :, i].ravel(order="F"))[0, 1]
    # SAM.m(I_HS, I_REF)
    r, c, _ = I_REF.shape
    prod_scal = np.sum(I_HS * I_REF, axis=2)  # dot(ref, tar, 3)
    norm_orig = np.sum(I_HS * I_HS, axis=2)
    norm_fusa = np.sum(I_REF * I_REF, axis=2)
    prod_norm = np.sqrt(norm_orig * norm_fusa)
    prod_scal = prod_scal.reshape(r * c, order="F")
    prod_norm = prod_norm.reshape(r * c, order="F")
    z = np.flatnonzero(prod_norm == 0)
    prod_scal, prod_norm = np.delete(prod_scal, z), np.delete(prod_norm, z)
    angolo = np.sum(np.arccos((prod_scal / prod_norm).astype(complex))) / prod_norm.shape[0]  # acos may be complex
    sam = np.real(angolo) * 180 / np.pi
    # RMSE.m(I_HS, I_REF)
    rmse = (np.sum((I_REF - I_HS) ** 2) / (r * c * bands)) ** 0.5
    # ERGAS.m(I = I_HS, I_Fus = I_REF, Resize_fact = ratio): mean2 of the FIRST argument.
    err = I_HS - I_REF
    ergas = 0.0
    for i in range(bands):
        ergas += np.mean(err[:, :, i] ** 2) / np.mean(I_HS[:, :, i]) ** 2
    ergas = (100 / ratio) * np.sqrt((1 / bands) * ergas)
    return {"cc": np.mean(cc), "sam": sam, "rmse": rmse, "ergas": ergas}


def test_hsmsfusion_toolbox_preset_matches_a_numpy_transcription_of_quality_indices_m():
    rng = np.random.default_rng(13)
    ref = rng.integers(50, 4000, (6, 31, 27)).astype(np.float64)  # DN-like cube (no data-scale assumption)
    est = ref * (1 + 0.05 * rng.standard_normal(ref.shape)) + rng.normal(0, 40, ref.shape)
    est[:, 10, 12] = 0.0  # a zero fused spectrum inside the crop: SAM.m drops the pixel
    est[:, 0, 5] = 0.0  # ... and one in the border, cropped away
    ratio = 3
    hwc = lambda x: np.ascontiguousarray(np.moveaxis(x, 0, -1))  # noqa: E731  (C, H, W) -> MATLAB (H, W, C)
    expected = _quality_indices_m(hwc(est), hwc(ref), ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing undefined here: no warning
        got = evaluate(ref, est, preset="hsmsfusion_toolbox", ratio=ratio)
    assert list(got) == ["cc", "sam", "rmse", "ergas"]
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-10), key
    # The crop and the estimate's means matter: without them the numbers differ.
    plain = evaluate(ref, est, preset=dataclasses.replace(PRESETS["hsmsfusion_toolbox"], border=0), ratio=ratio)
    assert plain["rmse"] != pytest.approx(got["rmse"], rel=1e-6)
    by_ref = evaluate(ref, est, preset=dataclasses.replace(PRESETS["hsmsfusion_toolbox"], ergas_mean_of="reference"),
                      ratio=ratio)
    assert by_ref["ergas"] != pytest.approx(got["ergas"], rel=1e-6)
    # The SAM helper of the toolbox == hsfuse's "exclude" SAM on the cropped cube.
    crop = (slice(None), slice(ratio, -ratio), slice(ratio, -ratio))
    assert got["sam"] == pytest.approx(float(fm.sam(ref[crop], est[crop], zero_pixels="exclude")[0]), rel=1e-10)


def test_hsmsfusion_toolbox_ergas_is_normalised_by_the_estimate_means_by_hand():
    # 2 bands, 6 x 6, ratio 2: only the central 2 x 2 pixels are scored.
    ref = np.full((2, 6, 6), 50.0)
    est = np.full((2, 6, 6), 90.0)  # border values: cropped away
    ref[0, 2:4, 2:4] = [[1.0, 3.0], [3.0, 1.0]]  # mean 2
    ref[1, 2:4, 2:4] = [[0.0, 2.0], [2.0, 0.0]]  # mean 1
    est[0, 2:4, 2:4] = ref[0, 2:4, 2:4] + 2.0  # error 2 everywhere, estimate mean 4
    est[1, 2:4, 2:4] = ref[1, 2:4, 2:4] + 1.0  # error 1 everywhere, estimate mean 2
    got = evaluate(ref, est, preset="hsmsfusion_toolbox", ratio=2)
    # (100 / 2) sqrt(((2 / 4)^2 + (1 / 2)^2) / 2) = 50 * 0.5 = 25 with the ESTIMATE's means;
    assert got["ergas"] == pytest.approx(25.0, rel=1e-14)
    # with the reference's means (Wald; dhsis_matlab) it would be 50 sqrt(((2 / 2)^2 + (1 / 1)^2) / 2) = 50.
    wald = dataclasses.replace(PRESETS["hsmsfusion_toolbox"], ergas_mean_of="reference")
    assert evaluate(ref, est, preset=wald, ratio=2)["ergas"] == pytest.approx(50.0, rel=1e-14)
    assert got["rmse"] == pytest.approx(math.sqrt((4.0 + 1.0) / 2), rel=1e-14)
    assert got["cc"] == pytest.approx(1.0, abs=1e-14)


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
