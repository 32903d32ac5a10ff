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
