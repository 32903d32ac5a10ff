"""No-reference indices: exact cases reasoned by hand, a NumPy transcription of the QNR toolbox code
(Vivone's D_lambda.m / D_s.m: blockproc + uqi with cov), and consistency through hsfuse.physics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.metrics import consistency, d_lambda, d_s, qnr
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement


def _uqi(x, y):
    """uqi() of D_lambda.m / D_s.m: Q of two blocks with MATLAB cov (sample covariance)."""
    x, y = x.ravel(), y.ravel()
    C = np.cov(x, y)
    mx, my = x.mean(), y.mean()
    return 4 * C[0, 1] * mx * my / (C[0, 0] + C[1, 1]) / (mx**2 + my**2)


def _q_blockproc(a, b, S):
    """mean2(blockproc(a, [S S], uqi against the same block of b)) for image sizes that are multiples of S."""
    H, W = a.shape
    return np.mean([_uqi(a[i:i + S, j:j + S], b[i:i + S, j:j + S]) for i in range(0, H, S) for j in range(0, W, S)])


def _d_lambda_ref(F, Y, S, r, p=1.0):
    L = F.shape[0]
    vals = [abs(_q_blockproc(F[i], F[j], S) - _q_blockproc(Y[i], Y[j], S // r)) ** p
            for i in range(L - 1) for j in range(i + 1, L)]
    return (np.sum(vals) / (L * (L - 1) / 2)) ** (1 / p)


def _d_s_ref(F, Y, M, M_lr, S, r, q=1.0):
    vals = [abs(_q_blockproc(F[l], M[j], S) - _q_blockproc(Y[l], M_lr[j], S // r)) ** q
            for l in range(F.shape[0]) for j in range(M.shape[0])]
    return np.mean(vals) ** (1 / q)


def _nearest_up(x, r):
    return np.repeat(np.repeat(x, r, axis=-2), r, axis=-1)


def _scene(seed=0, L=4, m=3, h=8, w=12, r=2):
    rng = np.random.default_rng(seed)
    lr = rng.random((1, L, h, w)) + 0.2
    msi_lr = rng.random((1, m, h, w)) + 0.2
    return lr, msi_lr


def test_replicated_images_have_no_distortion():
    # F = nearest-neighbour copy of Y (each LR pixel repeated r x r): an HR block of S holds the LR block of S/r
    # with every pixel r^2 times, so means, variances and covariances (up to one common factor) coincide and every
    # Q is unchanged -> D_lambda = 0. Same for the MSI pair (M = copy of M~, M~ = the r x r block mean of M).
    r = 2
    lr, msi_lr = _scene(r=r)
    fused, msi = _nearest_up(lr, r), _nearest_up(msi_lr, r)
    assert float(d_lambda(fused, lr, q_block=4)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(d_s(fused, lr, msi, ratio=r, q_block=4)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(qnr(fused, lr, msi, ratio=r, q_block=4)[0]) == pytest.approx(1.0, abs=1e-12)


def test_d_lambda_and_d_s_match_toolbox_transcription():
    r, S = 2, 4
    lr, msi_lr = _scene(seed=1, r=r)
    rng = np.random.default_rng(2)
    fused = _nearest_up(lr, r) + 0.1 * rng.standard_normal((1, 4, 16, 24))
    msi = _nearest_up(msi_lr, r) + 0.1 * rng.standard_normal((1, 3, 16, 24))
    for p in (1.0, 2.0):
        got = float(d_lambda(fused, lr, q_block=S, p=p)[0])
        assert got == pytest.approx(_d_lambda_ref(fused[0], lr[0], S, r, p), rel=1e-10)
    # Default M~: the mean of each r x r block of the MSI (computed here with a reshape).
    m_lr = msi[0].reshape(3, 8, r, 12, r).mean(axis=(2, 4))
    got = float(d_s(fused, lr, msi, ratio=r, q_block=S)[0])
    assert got == pytest.approx(_d_s_ref(fused[0], lr[0], msi[0], m_lr, S, r), rel=1e-10)
    got = float(d_s(fused, lr, msi, ratio=r, q_block=S, q=2.0, msi_lr=msi_lr)[0])
    assert got == pytest.approx(_d_s_ref(fused[0], lr[0], msi[0], msi_lr[0], S, r, q=2.0), rel=1e-10)
    dl = _d_lambda_ref(fused[0], lr[0], S, r)
    ds = _d_s_ref(fused[0], lr[0], msi[0], m_lr, S, r)
    got = float(qnr(fused, lr, msi, ratio=r, q_block=S, alpha=2.0, beta=0.5)[0])
    assert got == pytest.approx((1 - dl) ** 2 * (1 - ds) ** 0.5, rel=1e-10)


def test_distortion_grows_when_one_band_is_altered():
    r = 2
    lr, msi_lr = _scene(seed=3, r=r)
    fused = _nearest_up(lr, r)
    msi = _nearest_up(msi_lr, r)
    altered = fused.copy()
    altered[0, 1] = msi[0, 0]  # band 1 now copies an MSI band: its Q with that band jumps to 1 at high res only
    assert float(d_lambda(altered, lr, q_block=4)[0]) > 0.02
    assert float(d_s(altered, lr, msi, ratio=r, q_block=4)[0]) > 0.05
    assert float(qnr(altered, lr, msi, ratio=r, q_block=4)[0]) < 0.95


def test_no_reference_errors():
    r = 2
    lr, msi_lr = _scene(r=r)
    fused, msi = _nearest_up(lr, r), _nearest_up(msi_lr, r)
    with pytest.raises(InputError, match="multiple of the ratio"):
        d_lambda(fused, lr, q_block=5)
    with pytest.raises(InputError, match="whole number"):
        d_lambda(fused, lr, q_block=16)  # 16 does not divide 24
    with pytest.raises(InputError, match="at least 2 bands"):
        d_lambda(fused[:, :1], lr[:, :1], q_block=4)
    with pytest.raises(InputError):
        d_lambda(fused, lr[:, :3], q_block=4)
    with pytest.raises(InputError, match="ratio"):
        d_lambda(fused[..., :-1], lr, q_block=4)
    with pytest.raises(InputError, match="low-resolution HSI"):
        d_s(fused, lr, msi, ratio=4, q_block=8)
    with pytest.raises(InputError, match="MSI"):
        d_s(fused, lr, msi[..., :-2], ratio=r, q_block=4)
    with pytest.raises(InputError, match="msi_lr"):
        d_s(fused, lr, msi, ratio=r, q_block=4, msi_lr=msi_lr[..., :-1])
    with pytest.raises(InputError):
        d_lambda(fused, lr, q_block=4, p=0.0)


def _observation(L=5, m=3, r=2):
    rng = np.random.default_rng(5)
    return FusionObservation(
        SpatialDegradation(ratio=r, psf=gaussian_psf(3, sigma=0.8), boundary="circular"),
        SpectralResponse(torch.from_numpy(rng.random((m, L))), normalize="sum"),
    )


def test_consistency_is_exact_for_the_true_scene_and_matches_numpy_otherwise():
    obs = _observation()
    z = torch.from_numpy(np.random.default_rng(6).random((2, 5, 8, 10)) + 0.1)
    y = obs.A(z)
    out = consistency(z, y, obs)
    assert set(out) == {"hsi_rmse", "hsi_psnr", "hsi_sam", "msi_rmse", "msi_psnr", "msi_sam"}
    for branch in ("hsi", "msi"):
        assert out[f"{branch}_rmse"].shape == (2,)
        assert torch.all(out[f"{branch}_rmse"] == 0) and torch.all(out[f"{branch}_sam"].abs() < 1e-12)
        assert torch.all(torch.isinf(out[f"{branch}_psnr"]))
    # A perturbed fused image: compare with a NumPy computation of the same definitions.
    z2 = z + 0.05 * torch.from_numpy(np.random.default_rng(7).standard_normal(z.shape))
    y2 = obs.A(z2)
    out = consistency(z2, y, obs)
    for branch in ("hsi", "msi"):
        meas = getattr(y, branch).numpy()
        pred = getattr(y2, branch).numpy()
        np.testing.assert_allclose(out[f"{branch}_rmse"].numpy(),
                                   np.sqrt(((meas - pred) ** 2).mean(axis=(1, 2, 3))), rtol=1e-12)
        peak = meas.max(axis=(1, 2, 3))[:, None]  # the measured input's max
        expected = (10 * np.log10(peak**2 / ((meas - pred) ** 2).mean(axis=(2, 3)))).mean(axis=1)
        np.testing.assert_allclose(out[f"{branch}_psnr"].numpy(), expected, rtol=1e-12)
        cos = (meas * pred).sum(1) / np.linalg.norm(meas, axis=1) / np.linalg.norm(pred, axis=1)
        np.testing.assert_allclose(out[f"{branch}_sam"].numpy(),
                                   np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(axis=(1, 2)), rtol=1e-9)
        assert all(math.isfinite(v) for v in out[f"{branch}_psnr"].tolist())


def test_consistency_errors():
    obs = _observation()
    z = torch.rand(1, 5, 8, 10, dtype=torch.float64)
    y = obs.A(z)
    with pytest.raises(InputError, match="FusionMeasurement"):
        consistency(z, (y.hsi, y.msi), obs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="physics"):
        consistency(z, y, object())
    other = FusionMeasurement(hsi=y.hsi[..., :-1], msi=y.msi)
    with pytest.raises(InputError, match="does not match"):
        consistency(z, other, obs)


# ---------------------------------------------------------------------------------------------------------
# No-data masks (valid=). Independent sources: the same metrics on the cropped usable part (a whole number of
# blocks), the toolbox transcription above with the excluded blocks skipped, and NumPy over the usable pixels.
# ---------------------------------------------------------------------------------------------------------


def _masked_pair(seed=11, r=2):
    """fused/msi 16 x 24 with a noisy fusion, lr 8 x 12; S = 4 gives 4 x 6 blocks."""
    lr, msi_lr = _scene(seed=seed, r=r)
    rng = np.random.default_rng(seed + 1)
    fused = _nearest_up(lr, r) + 0.1 * rng.standard_normal((1, 4, 16, 24))
    msi = _nearest_up(msi_lr, r) + 0.1 * rng.standard_normal((1, 3, 16, 24))
    return fused, lr, msi, msi_lr


def _spoil(x, cols, rng):
    """Garbage (large values, one NaN, one inf) in the given columns of every band."""
    x = x.copy()
    x[..., cols] = 50.0 * rng.standard_normal(x[..., cols].shape)
    x[0, 0, 1, cols.start] = np.nan
    x[0, -1, 0, cols.start + 1] = np.inf
    return x


def test_all_true_mask_changes_nothing():
    r, S = 2, 4
    fused, lr, msi, msi_lr = _masked_pair()
    both = np.concatenate([fused, fused[:, :, ::-1]])  # N = 2
    lr2, msi2 = np.concatenate([lr, lr[:, :, ::-1]]), np.concatenate([msi, msi[:, :, ::-1]])
    for valid in (np.ones((16, 24), bool), torch.ones(2, 16, 24, dtype=torch.bool)):
        assert torch.equal(d_lambda(both, lr2, q_block=S, valid=valid), d_lambda(both, lr2, q_block=S))
        assert torch.equal(d_s(both, lr2, msi2, ratio=r, q_block=S, valid=valid),
                           d_s(both, lr2, msi2, ratio=r, q_block=S))
        assert torch.equal(qnr(both, lr2, msi2, ratio=r, q_block=S, valid=valid),
                           qnr(both, lr2, msi2, ratio=r, q_block=S))
    obs = _observation()
    z = torch.from_numpy(np.random.default_rng(6).random((2, 5, 8, 10)) + 0.1)
    y = obs.A(z + 0.05)
    plain = consistency(z, y, obs)
    masked = consistency(z, y, obs, valid=torch.ones(8, 10, dtype=torch.bool))
    assert all(torch.equal(plain[k], masked[k]) for k in plain)


def test_invalid_left_half_equals_the_right_half_alone():
    # Invalid = the left 12 of 24 columns = 3 whole 4 x 4 blocks (6 low-res columns = 3 blocks of 2 x 2), filled
    # with garbage incl. NaN/inf in every input. The masked indices must equal the indices of the right half.
    r, S = 2, 4
    fused, lr, msi, msi_lr = _masked_pair()
    rng = np.random.default_rng(3)
    valid = np.ones((16, 24), bool)
    valid[:, :12] = False
    bad_f, bad_m = _spoil(fused, slice(0, 12), rng), _spoil(msi, slice(0, 12), rng)
    bad_lr, bad_mlr = _spoil(lr, slice(0, 6), rng), _spoil(msi_lr, slice(0, 6), rng)
    right = (fused[..., 12:], lr[..., 6:], msi[..., 12:])
    got = float(d_lambda(bad_f, bad_lr, q_block=S, valid=valid)[0])
    assert got == pytest.approx(float(d_lambda(right[0], right[1], q_block=S)[0]), rel=1e-12, abs=1e-15)
    assert got == pytest.approx(_d_lambda_ref(right[0][0], right[1][0], S, r), rel=1e-10)
    got = float(d_s(bad_f, bad_lr, bad_m, ratio=r, q_block=S, valid=valid)[0])
    assert got == pytest.approx(float(d_s(*right, ratio=r, q_block=S)[0]), rel=1e-12, abs=1e-15)
    got = float(d_s(bad_f, bad_lr, bad_m, ratio=r, q_block=S, msi_lr=bad_mlr, valid=valid)[0])
    assert got == pytest.approx(float(d_s(*right, ratio=r, q_block=S, msi_lr=msi_lr[..., 6:])[0]), rel=1e-12)
    got = float(qnr(bad_f, bad_lr, bad_m, ratio=r, q_block=S, valid=valid[None])[0])
    assert got == pytest.approx(float(qnr(*right, ratio=r, q_block=S)[0]), rel=1e-12)


def _q_blockproc_skip(a, b, S, keep):
    """_q_blockproc over the blocks (i, j) with keep[i, j] only."""
    H, W = a.shape
    return np.mean([_uqi(a[i:i + S, j:j + S], b[i:i + S, j:j + S]) for i in range(0, H, S) for j in range(0, W, S)
                    if keep[i // S, j // S]])


def test_scattered_invalid_pixels_drop_their_blocks_only():
    # Two single invalid pixels: block (0, 1) (pixel (2, 5)) and block (3, 5) (pixel (15, 23)); the toolbox
    # transcription skipping those two blocks at both resolutions is the reference.
    r, S = 2, 4
    fused, lr, msi, _ = _masked_pair(seed=21)
    valid = np.ones((16, 24), bool)
    valid[2, 5] = valid[15, 23] = False
    keep = np.ones((4, 6), bool)
    keep[0, 1] = keep[3, 5] = False
    F_, Y, M = fused[0], lr[0], msi[0]
    m_lr = M.reshape(3, 8, r, 12, r).mean(axis=(2, 4))
    dl = np.mean([abs(_q_blockproc_skip(F_[i], F_[j], S, keep) - _q_blockproc_skip(Y[i], Y[j], S // r, keep))
                  for i in range(3) for j in range(i + 1, 4)])
    ds = np.mean([abs(_q_blockproc_skip(F_[l], M[j], S, keep) - _q_blockproc_skip(Y[l], m_lr[j], S // r, keep))
                  for l in range(4) for j in range(3)])
    assert float(d_lambda(fused, lr, q_block=S, valid=valid)[0]) == pytest.approx(dl, rel=1e-10)
    assert float(d_s(fused, lr, msi, ratio=r, q_block=S, valid=valid)[0]) == pytest.approx(ds, rel=1e-10)
    # Per-image masks: image 1 is unmasked and gets the plain value.
    two = np.concatenate([fused, fused])
    masks = np.stack([valid, np.ones_like(valid)])
    out = d_lambda(two, np.concatenate([lr, lr]), q_block=S, valid=masks)
    assert float(out[0]) == pytest.approx(dl, rel=1e-10)
    assert float(out[1]) == pytest.approx(float(d_lambda(fused, lr, q_block=S)[0]), rel=1e-12)


def test_masked_consistency_uses_usable_pixels_only():
    # Circular Gaussian 3x3 PSF, r = 2, offset 0: low-res column j averages high-res columns 2j-1 .. 2j+1.
    # Invalid = high-res columns 0..3. MSI side: R z is per pixel, so the true scene gives exactly 0 error on
    # the usable pixels whatever the garbage. HSI side, default rule (r x r block usable): low-res columns
    # 2..4 (column 2 also sees the garbage at column 3 through the PSF: the documented caveat); with
    # hsi_valid = columns 3..4 (the exact footprint, by hand) the error is exactly 0 again.
    obs = _observation()
    z = torch.from_numpy(np.random.default_rng(8).random((1, 5, 8, 10)) + 0.1)
    y = obs.A(z)
    garbage = z.clone()
    garbage[..., :4] = 30.0 * torch.from_numpy(np.random.default_rng(9).standard_normal((1, 5, 8, 4)))
    garbage[0, 2, 3, 1] = float("nan")
    valid = torch.ones(8, 10, dtype=torch.bool)
    valid[:, :4] = False
    out = consistency(garbage, y, obs, valid=valid)
    assert float(out["msi_rmse"][0]) == 0.0 and math.isinf(float(out["msi_psnr"][0]))
    assert float(out["msi_sam"][0]) == pytest.approx(0.0, abs=1e-12)
    filled = torch.nan_to_num(garbage, nan=0.0)
    meas, pred = y.hsi.numpy()[0][:, :, 2:], obs.A(filled).hsi.numpy()[0][:, :, 2:]  # low-res columns 2..4
    assert float(out["hsi_rmse"][0]) == pytest.approx(np.sqrt(((meas - pred) ** 2).mean()), rel=1e-12)
    expected = np.mean(10 * np.log10(meas.max() ** 2 / ((meas - pred) ** 2).mean(axis=(1, 2))))
    assert float(out["hsi_psnr"][0]) == pytest.approx(expected, rel=1e-12)
    cos = (meas * pred).sum(0) / np.linalg.norm(meas, axis=0) / np.linalg.norm(pred, axis=0)
    # (abs: arccos of a cosine rounded near 1 is ~1e-6 degrees off for the exact columns 3..4)
    assert float(out["hsi_sam"][0]) == pytest.approx(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean(), abs=1e-5)
    hsi_valid = torch.zeros(4, 5, dtype=torch.bool)
    hsi_valid[:, 3:] = True
    exact = consistency(garbage, y, obs, valid=valid, hsi_valid=hsi_valid)
    assert float(exact["hsi_rmse"][0]) == 0.0
    assert torch.equal(exact["msi_rmse"], out["msi_rmse"])


def test_masked_errors():
    r, S = 2, 4
    fused, lr, msi, _ = _masked_pair()
    none = np.zeros((16, 24), bool)
    with pytest.raises(InputError, match="no whole 4x4 Q block"):
        d_lambda(fused, lr, q_block=S, valid=none)
    with pytest.raises(InputError, match="no whole 4x4 Q block"):
        d_s(fused, lr, msi, ratio=r, q_block=S, valid=none)
    with pytest.raises(InputError, match="no whole"):
        qnr(fused, lr, msi, ratio=r, q_block=S, valid=none)
    sparse = np.ones((16, 24), bool)
    sparse[::4, ::4] = False  # one invalid pixel in every block
    with pytest.raises(InputError, match="no whole"):
        d_lambda(fused, lr, q_block=S, valid=sparse)
    with pytest.raises(InputError, match="boolean"):
        d_lambda(fused, lr, q_block=S, valid=np.ones((16, 24)))
    with pytest.raises(InputError, match=r"\(16, 24\)"):
        d_lambda(fused, lr, q_block=S, valid=np.ones((8, 12), bool))
    with pytest.raises(InputError, match=r"\(16, 24\)"):
        d_s(fused, lr, msi, ratio=r, q_block=S, valid=np.ones((3, 16, 24), bool))
    # NaN at a usable pixel is still an error; without a mask any NaN is.
    nan = fused.copy()
    nan[0, 0, 0, 20] = np.nan
    half = np.ones((16, 24), bool)
    half[:, :12] = False
    with pytest.raises(InputError, match="usable pixel"):
        d_lambda(nan, lr, q_block=S, valid=half)
    with pytest.raises(InputError, match="NaN"):
        d_lambda(nan, lr, q_block=S)
    obs = _observation()
    z = torch.rand(1, 5, 8, 10, dtype=torch.float64)
    y = obs.A(z)
    with pytest.raises(InputError, match="marks no pixel"):
        consistency(z, y, obs, valid=torch.zeros(8, 10, dtype=torch.bool))
    one_col = torch.zeros(8, 10, dtype=torch.bool)
    one_col[:, 5] = True  # usable MSI pixels, but no whole 2 x 2 block
    with pytest.raises(InputError, match="no HSI pixel"):
        consistency(z, y, obs, valid=one_col)
    with pytest.raises(InputError, match="hsi_valid"):
        consistency(z, y, obs, hsi_valid=torch.ones(8, 10, dtype=torch.bool))
