"""HySure's PSF/SRF estimator against an independent transcription of sen_resp_est.m and known operators."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

from hsfuse.errors import InputError
from hsfuse.estimation.hysure import estimate_hysure
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf, support_from_srf
from hsfuse.physics.srf_library import srf_matrix
from hsfuse.types import FusionMeasurement


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _smooth_scene(bands: int, size: int, *, seed: int, sigma: float = 1.0, width: int | None = None) -> torch.Tensor:
    """Independent random bands, Gaussian-smoothed white noise (sigma in pixels), scaled to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(1, bands, size + 8, (width or size) + 8, generator=g, dtype=torch.float64)
    k = gaussian_psf(9, sigma=sigma)
    z = F.conv2d(z, k.expand(bands, 1, 9, 9), groups=bands)
    return (z - z.amin()) / (z.amax() - z.amin())


def _sentinel_srf(bands: int) -> torch.Tensor:
    """Sentinel-2A B2-B7 (a real sensor, built into the SRF library) resampled onto ``bands`` bands, 440-800 nm."""
    R, _ = srf_matrix("sentinel2a", np.linspace(440.0, 800.0, bands), bands=["B2", "B3", "B4", "B5", "B6", "B7"],
                      method="gaussian")
    return torch.from_numpy(R)


def _pair(z: torch.Tensor, R: torch.Tensor, r: int, *, k: int | None = None, fwhm: float | None = None):
    psf = gaussian_psf(k or 2 * r - 1, fwhm=float(fwhm or r))
    obs = FusionObservation(SpatialDegradation(ratio=r, psf=psf, boundary="reflect"), SpectralResponse(R))
    with torch.no_grad():
        return obs.A(z), psf


# ----------------------------------------------------------------------------------------------------------
# an independent transcription of sen_resp_est.m (loops over pixels, stacked least squares), restricted to
# interior pixels and with the demos' max scaling, as the module docstring says


def _stacked_solve(A, y, nonnegative):
    if nonnegative:  # bounded least squares, an active-set solver independent of the estimator's NNLS
        return scipy.optimize.lsq_linear(A, y, bounds=(0, np.inf), method="bvls", tol=1e-14).x
    return np.linalg.lstsq(A, y, rcond=None)[0]


def _reference_hysure(yh, ym, *, r, k, off, support, lam_r, lam_b, nonnegative=False):
    L, h, w = yh.shape
    m, H, W = ym.shape
    c = k // 2

    def psf_rows(i):  # MSI rows seen by LR row i through the k-tap PSF: off + r i - t + c, t = 0..k-1
        return [off + r * i - t + c for t in range(k)]

    psf_ok = np.array([[all(0 <= p < H for p in psf_rows(i)) and all(0 <= p < W for p in psf_rows(j))
                        for j in range(w)] for i in range(h)])
    ch = np.abs(yh[:, psf_ok]).max()
    cm = np.abs(ym.reshape(m, -1)).max(axis=1)
    yh, ym = yh / ch, ym / cm[:, None, None]
    # step R: 9 x 9 box on the MSI at the sampling points, (2 round(4/r) + 1) box on the HSI
    half_lr = int(np.floor(4 / r + 0.5))
    A, T = [], []
    for i in range(h):
        for j in range(w):
            ci, cj = off + r * i, off + r * j
            if ci - 4 < 0 or cj - 4 < 0 or ci + 4 >= H or cj + 4 >= W:
                continue
            lo_i, hi_i, lo_j, hi_j = i - half_lr, i + half_lr, j - half_lr, j + half_lr
            if lo_i < 0 or lo_j < 0 or hi_i >= h or hi_j >= w or not psf_ok[lo_i:hi_i + 1, lo_j:hi_j + 1].all():
                continue
            A.append(yh[:, lo_i:hi_i + 1, lo_j:hi_j + 1].mean(axis=(1, 2)))
            T.append(ym[:, ci - 4:ci + 5, cj - 4:cj + 5].mean(axis=(1, 2)))
    A, T = np.array(A), np.array(T)  # (n, L), (n, m)
    R = np.zeros((m, L))
    for b in range(m):
        idx = np.nonzero(support[b])[0]
        D = [np.eye(len(idx))[a + 1] - np.eye(len(idx))[a] for a in range(len(idx) - 1) if idx[a + 1] == idx[a] + 1]
        D = np.array(D).reshape(-1, len(idx))
        stacked = np.vstack([A[:, idx], np.sqrt(lam_r) * D])
        R[b, idx] = _stacked_solve(stacked, np.concatenate([T[:, b], np.zeros(len(D))]), nonnegative)
    # step B: one row per (LR pixel, MSI band): sum_t b[t] Y_m[off + r i - t + c] = (R Y_h)[i]
    rows, target = [], []
    RY = np.einsum("bl,lij->bij", R, yh)
    for i in range(h):
        for j in range(w):
            if not psf_ok[i, j]:
                continue
            for b in range(m):
                rows.append([ym[b, pi, pj] for pi in psf_rows(i) for pj in psf_rows(j)])
                target.append(RY[b, i, j])
    reg = []
    for t1 in range(k):
        for t2 in range(k):
            for d1, d2 in ((1, 0), (0, 1)):
                if t1 + d1 < k and t2 + d2 < k:
                    row = np.zeros((k, k))
                    row[t1, t2], row[t1 + d1, t2 + d2] = -1.0, 1.0
                    reg.append(np.sqrt(lam_b) * row.reshape(-1))
    stacked = np.vstack([np.array(rows), np.array(reg)])
    b = _stacked_solve(stacked, np.concatenate([target, np.zeros(len(reg))]), nonnegative).reshape(k, k)
    s = b.sum()
    return b / s, R / s * cm[:, None] / ch


@pytest.mark.parametrize("r,k,off", [(2, 3, 0), (3, 4, 1), (4, 7, 2)])
def test_matches_transcription_of_sen_resp_est(r, k, off):
    """Closed form (nonnegative=False) equals the loop-and-lstsq transcription above; odd/even k, offsets."""
    rng = np.random.default_rng(r)
    L, m, H = 7, 3, 12 * r
    z = _smooth_scene(L, H, seed=r, width=10 * r)  # not square
    R_true = torch.from_numpy(rng.random((m, L)))
    support = np.ones((m, L), bool)
    support[0, 4:] = False
    support[1, [0, 3]] = False  # a gap: no difference row between HSI bands 2 and 4
    y, _ = _pair(z, R_true, r, k=5)
    yh = y.hsi[0].numpy() + 0.01 * rng.standard_normal(y.hsi[0].shape)  # break exact consistency
    y = FusionMeasurement(torch.from_numpy(yh)[None], y.msi)
    est = estimate_hysure(y, kernel_size=k, offset=off, support=torch.from_numpy(support), lambda_r=0.3,
                          lambda_b=0.7, nonnegative=False)
    b_ref, R_ref = _reference_hysure(yh, y.msi[0].numpy(), r=r, k=k, off=off, support=support, lam_r=0.3,
                                     lam_b=0.7)
    np.testing.assert_allclose(est.psf.numpy(), b_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(est.srf.numpy(), R_ref, rtol=1e-7, atol=1e-9)
    assert est.srf.dtype == est.psf.dtype == torch.float64
    assert (est.ratio, est.offset, est.method) == (r, off, "hysure")
    assert np.all(est.srf.numpy()[~support] == 0)


def test_nonnegative_solution_equals_bounded_least_squares():
    """nonnegative=True equals the transcription with scipy's bounded solver (BVLS) on the stacked systems."""
    r, k, L, m = 2, 5, 6, 2
    z = _smooth_scene(L, 24, seed=5)
    rng = np.random.default_rng(5)
    R_true = rng.random((m, L)) * (rng.random((m, L)) > 0.5)  # zero entries: the unconstrained fit dips below
    y, _ = _pair(z, torch.from_numpy(R_true), r, k=3)  # a 3x3 PSF fitted with 5x5 taps: zero outer ring
    yh = y.hsi[0].numpy() + 0.05 * rng.standard_normal(y.hsi[0].shape)
    y = FusionMeasurement(torch.from_numpy(yh)[None], y.msi)
    kw = dict(kernel_size=k, lambda_r=0.01, lambda_b=0.01)
    unconstrained = estimate_hysure(y, nonnegative=False, **kw)
    assert (unconstrained.srf < 0).any() and (unconstrained.psf < 0).any(), "test needs active bounds"
    est = estimate_hysure(y, **kw)
    assert (est.psf >= 0).all() and (est.srf >= 0).all()
    b_ref, R_ref = _reference_hysure(yh, y.msi[0].numpy(), r=r, k=k, off=0, support=np.ones((m, L), bool),
                                     lam_r=0.01, lam_b=0.01, nonnegative=True)
    np.testing.assert_allclose(est.psf.numpy(), b_ref, atol=1e-7)
    np.testing.assert_allclose(est.srf.numpy(), R_ref, atol=1e-7)


# ----------------------------------------------------------------------------------------------------------
# recovery of known operators


@pytest.mark.parametrize("r", [2, 4])
def test_recovers_known_psf_and_srf_on_random_scene(r):
    """Noise-free pair of a seeded random scene (12 independent bands), Gaussian PSF FWHM = r on 2r-1 taps,
    Sentinel-2 B2-B7 SRF: the true pair is an exact zero-residual solution of R Y_h = S(b * Y_m), so with
    lambda -> 0 and the refinement the estimate converges to it; the bounds (PSF 5 %, SRF 2 %) leave room for
    the small lambda's bias. HySure's box step alone is biased (its two boxes are different filters): the
    refinement must lower the model residual and both errors."""
    R = _sentinel_srf(12)
    z = _smooth_scene(12, 64, seed=1)
    y, psf = _pair(z, R, r)
    support = support_from_srf(R)
    est = estimate_hysure(y, support=support, lambda_r=1e-3, lambda_b=1e-3, refine_iterations=20)
    assert _rel(est.psf, psf) < 0.05
    assert _rel(est.srf, R) < 0.02
    plain = estimate_hysure(y, support=support, lambda_r=1e-3, lambda_b=1e-3)
    assert est.diagnostics["psf_residual_rmse"] < plain.diagnostics["psf_residual_rmse"]
    assert _rel(est.psf, psf) < _rel(plain.psf, psf) and _rel(est.srf, R) < _rel(plain.srf, R)


@pytest.fixture(scope="module")
def pavia_ikonos(data_root):
    from hsfuse.data.scenes import load_scene

    cube = load_scene("pavia_u")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NIR reaches past 860 nm: a coverage warning, irrelevant here
        R, _ = srf_matrix(data_root / "srf" / "ikonos_5nm.csv", cube.wavelengths, bands=["Blue", "Green", "Red", "NIR"])
    z = torch.from_numpy(np.ascontiguousarray(np.moveaxis(cube.data[:64, :64], 2, 0)).astype(np.float64))[None]
    return z, torch.from_numpy(R)


@pytest.mark.parametrize("r", [2, 4])
def test_recovers_known_psf_and_srf_on_pavia_crop(pavia_ikonos, r):
    """Pavia University 64x64 crop (103 bands), IKONOS SRF (HySure's own data), Gaussian PSF FWHM = r.

    The PSF is identifiable (< 5 %). The SRF's 4 x 103 entries are not all identifiable from a scene whose
    spectra span a few dimensions: what the data determine is R Y_h, the SRF applied to the scene, which must
    match within 1 %; the entries themselves within 10 % (they are pinned only by the small smoothness term).
    """
    z, R = pavia_ikonos
    y, psf = _pair(z, R, r)
    est = estimate_hysure(y, lambda_r=1e-3, lambda_b=1e-3, refine_iterations=20)
    Yh = y.hsi[0].reshape(R.shape[1], -1)
    assert _rel(est.psf, psf) < 0.05
    assert _rel(est.srf @ Yh, R @ Yh) < 0.01
    assert _rel(est.srf, R) < 0.10


# ----------------------------------------------------------------------------------------------------------
# properties


@pytest.fixture(scope="module")
def random_pair():
    R = _sentinel_srf(10)
    z = _smooth_scene(10, 48, seed=2)
    y, psf = _pair(z, R, 2)
    return y, R, psf


def test_psf_is_normalised_and_outputs_non_negative(random_pair):
    y, _, _ = random_pair
    est = estimate_hysure(y)
    assert abs(float(est.psf.sum()) - 1.0) < 1e-12
    assert (est.psf >= 0).all() and (est.srf >= 0).all()
    assert tuple(est.psf.shape) == (3, 3) and tuple(est.srf.shape) == (6, 10)
    d = est.diagnostics
    # k = 3, offset 0: LR row i sees MSI rows 2i-1..2i+1, inside 0..47 for i = 1..23
    assert d["lambda_r"] == d["lambda_b"] == 10.0 and d["pixels_used"] == 23 * 23
    json.dumps(d)  # serialisable
    assert np.isfinite([d["srf_residual_rmse"], d["psf_residual_rmse"]]).all()


def test_scaling_the_msi_scales_the_srf_only(random_pair):
    """Y_m -> 3 Y_m: R -> 3 R, b unchanged (the lambdas act on data scaled to its maximum)."""
    y, _, _ = random_pair
    a = estimate_hysure(y, refine_iterations=3)
    b = estimate_hysure(FusionMeasurement(y.hsi, 3.0 * y.msi), refine_iterations=3)
    np.testing.assert_allclose(b.srf.numpy(), 3.0 * a.srf.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.psf.numpy(), a.psf.numpy(), rtol=1e-9, atol=1e-12)
    c = estimate_hysure(FusionMeasurement(0.5 * y.hsi, y.msi), refine_iterations=3)  # HSI / 2: R * 2
    np.testing.assert_allclose(c.srf.numpy(), 2.0 * a.srf.numpy(), rtol=1e-9, atol=1e-12)


def test_float32_input_gives_float64_output(random_pair):
    y, _, _ = random_pair
    est = estimate_hysure(FusionMeasurement(y.hsi.float(), y.msi.float()))
    ref = estimate_hysure(y)
    assert est.psf.dtype == torch.float64
    np.testing.assert_allclose(est.psf.numpy(), ref.psf.numpy(), atol=1e-4)


def test_masked_garbage_has_no_influence(random_pair):
    y, R, psf = random_pair
    valid = torch.ones(48, 48, dtype=torch.bool)
    valid[10:22, 26:40] = False
    corrupt = y.msi.clone()
    corrupt[..., 10:22, 26:40] = 50.0 * torch.rand(6, 12, 14, generator=torch.Generator().manual_seed(0))
    corrupt[..., 12, 30] = float("nan")  # no-data may even be NaN under the mask
    hsi = y.hsi.clone()  # HSI pixels whose 3x3 footprint lies in the block (rows 11-19, cols 27-37): no-data too
    hsi[..., 6:10, 14:19] = -1e4
    hsi[..., 7, 15] = float("nan")
    kw = dict(lambda_r=1e-3, lambda_b=1e-3, refine_iterations=20)
    clean = estimate_hysure(y, valid=valid, **kw)
    dirty = estimate_hysure(FusionMeasurement(hsi, corrupt), valid=valid, **kw)
    np.testing.assert_allclose(dirty.psf.numpy(), clean.psf.numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(dirty.srf.numpy(), clean.srf.numpy(), rtol=1e-6, atol=1e-12)
    assert clean.diagnostics["pixels_used"] < 23 * 23
    # unmasked, the garbage wrecks the estimate; masked, it is close to the truth
    corrupt[..., 12, 30] = 0.0
    unmasked = estimate_hysure(FusionMeasurement(y.hsi, corrupt), **kw)
    assert _rel(clean.psf, psf) < 0.1
    assert _rel(unmasked.psf, psf) > 3 * _rel(clean.psf, psf)


def test_subspace_projection_runs_and_stays_close(random_pair):
    y, _, psf = random_pair
    full = estimate_hysure(y, subspace_dim=10)  # all 10 bands kept: the projection is the identity
    ref = estimate_hysure(y)
    np.testing.assert_allclose(full.psf.numpy(), ref.psf.numpy(), atol=1e-9)
    assert estimate_hysure(y, subspace_dim=3).diagnostics["subspace_dim"] == 3


# ----------------------------------------------------------------------------------------------------------
# errors


def test_errors(random_pair):
    y, _, _ = random_pair
    with pytest.raises(InputError, match="estimate_hysure fits one image pair at a time, got a batch of 2"):
        estimate_hysure(FusionMeasurement(y.hsi.repeat(2, 1, 1, 1), y.msi.repeat(2, 1, 1, 1)))
    with pytest.raises(InputError, match="not related by one integer ratio"):
        estimate_hysure(FusionMeasurement(y.hsi, y.msi[..., :47, :]))
    with pytest.raises(InputError, match="estimate_hysure: ratio 3 disagrees with the image sizes"):
        estimate_hysure(y, ratio=3)
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        estimate_hysure(FusionMeasurement(y.hsi[0], y.msi))
    with pytest.raises(InputError, match="support rows \\[1\\] select no HSI band"):
        s = torch.ones(6, 10, dtype=torch.bool)
        s[1] = False
        estimate_hysure(y, support=s)
    with pytest.raises(InputError, match=r"support must be a boolean \(6, 10\)"):
        estimate_hysure(y, support=torch.ones(10, 6, dtype=torch.bool))
    with pytest.raises(InputError, match="fitting 441 PSF taps needs at least 441"):
        estimate_hysure(y, kernel_size=21)
    small = torch.zeros(48, 48, dtype=torch.bool)
    small[:6, :6] = True
    with pytest.raises(InputError, match="low-resolution pixels have their whole 3x3"):
        estimate_hysure(y, valid=small)
    with pytest.raises(InputError, match="valid must be a boolean 48x48"):
        estimate_hysure(y, valid=torch.ones(24, 24, dtype=torch.bool))
    bad = y.msi.clone()
    bad[0, 0, 5, 5] = float("inf")
    with pytest.raises(InputError, match="MSI has 1 NaN/inf"):
        estimate_hysure(FusionMeasurement(y.hsi, bad))
    bad = y.hsi.clone()
    bad[0, 2, 0, 0] = float("nan")  # a border pixel: unused by the fits, still an error without a mask
    with pytest.raises(InputError, match="HSI has 1 NaN/inf"):
        estimate_hysure(FusionMeasurement(bad, y.msi))
    for kwargs, text in [(dict(kernel_size=0), r"kernel_size must be an integer >= 1, got 0"),
                         (dict(offset=2), r"offset must be an integer in \[0, ratio=2\)"),
                         (dict(lambda_r=-1.0), "lambda_r must be a finite number >= 0"),
                         (dict(subspace_dim=11), r"subspace_dim must be an integer in \[1, L=10\]"),
                         (dict(refine_iterations=-1), "refine_iterations must be an integer >= 0"),
                         (dict(band_names=["a"]), "band_names has 1 names but the MSI has 6")]:
        with pytest.raises(InputError, match=text):
            estimate_hysure(y, **kwargs)
    with pytest.raises(InputError, match="FusionMeasurement"):
        estimate_hysure((y.hsi, y.msi))
