"""Tests for the FUSE / R-FUSE closed-form solver (:mod:`hsfuse.methods.sylvester`).

Independent sources of the numbers asserted:
* exact recovery: a scene built to lie exactly in a ``p``-dimensional spectral subspace, observed without
  noise through the circular model. The stacked operator ``X -> (E X B S, R E X)`` is injective when ``R E``
  has full column rank ``p`` (here ``m = p = 3``), so with ``lam -> 0`` the normal equations have the unique
  solution ``X = X_true``; the prior only biases the result by ``O(lam)`` (``lam = 1e-10`` here).
* normal equations: the optimality condition
  ``E^T [ (SB)^T Lh^-1 (S B Z - Y_h) + R^T Lm^-1 (R Z - Y_m) ] + lam (X - Xbar) = 0`` evaluated with
  ``physics.A`` / ``physics.A_adjoint`` (spatial-domain convolutions, no FFT), i.e. independently of the
  Fourier/Woodbury derivation;
* the offset identity ``S_o B = S_0 B_o`` checked against :func:`hsfuse.physics.decimate` / ``blur``.
"""

from __future__ import annotations

import pytest
import torch

from hsfuse.errors import InputError
from hsfuse.methods import fuse_fuse, pca_subspace, sylvester_solve, upsample_cubic
from hsfuse.methods.sylvester import shifted_otf
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, blur, decimate, gaussian_psf
from hsfuse.types import FusionMeasurement

F64 = torch.float64


def smooth_field(n: int, c: int, H: int, W: int, *, seed: int, cutoff: int = 6) -> torch.Tensor:
    """Random real images with only low spatial frequencies (|k|, |l| < cutoff)."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.zeros(n, c, H, W // 2 + 1, dtype=torch.complex128)
    block = torch.randn(n, c, 2 * cutoff - 1, cutoff, 2, generator=g, dtype=F64)
    rows = torch.cat([torch.arange(cutoff), torch.arange(H - cutoff + 1, H)])
    spec[:, :, rows, :cutoff] = torch.view_as_complex(block)
    return torch.fft.irfft2(spec, s=(H, W)) * H * W / cutoff**2


def observation(*, r, L, m, k=None, offset=None, seed=0, boundary="circular", per_band_psf=False):
    g = torch.Generator().manual_seed(seed)
    k = 2 * r + 1 if k is None else k
    psf = gaussian_psf(k, sigma=r / 2.0) + 0.02 * torch.rand(k, k, generator=g, dtype=F64)  # not symmetric
    psf = psf / psf.sum()
    if per_band_psf:
        psf = torch.stack([gaussian_psf(k, sigma=0.5 + 0.1 * i) for i in range(L)])
    srf = torch.rand(m, L, generator=g, dtype=F64)
    return FusionObservation(
        SpatialDegradation(ratio=r, psf=psf, offset=offset, boundary=boundary), SpectralResponse(srf, normalize="sum")
    )


def normal_equation_residual(obs, y, z_hat, basis, *, lam, sigma_hsi, sigma_msi, prior_mean):
    """Relative residual of the normal equations in subspace coordinates, via physics.A / A_adjoint."""
    bt = basis.transpose(-1, -2)
    x = torch.einsum("npl,nlhw->nphw", bt, z_hat)
    z = torch.einsum("nlp,nphw->nlhw", basis, x)
    ax = obs.A(z)
    sh = torch.as_tensor(sigma_hsi, dtype=F64).reshape(-1, 1, 1)
    weighted = FusionMeasurement((ax.hsi - y.hsi) / sh**2, (ax.msi - y.msi) / sigma_msi**2)
    grad = torch.einsum("npl,nlhw->nphw", bt, obs.A_adjoint(weighted)) + lam * (x - prior_mean)
    scale = torch.einsum("npl,nlhw->nphw", bt, obs.A_adjoint(FusionMeasurement(y.hsi / sh**2, y.msi / sigma_msi**2)))
    return float(grad.norm() / scale.norm())


# ----------------------------------------------------------------------------------------------------------
# exactness


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_exact_recovery_of_a_low_rank_scene(offset):
    H, W, r, L, p = 48, 40, 4, 17, 3
    obs = observation(r=r, L=L, m=3, offset=offset, seed=offset)
    g = torch.Generator().manual_seed(10 + offset)
    E = torch.rand(L, p, generator=g, dtype=F64)  # non-negative "endmember" spectra
    X = smooth_field(2, p, H, W, seed=offset) + 1.0
    z = torch.einsum("lp,nphw->nlhw", E, X)
    y = obs.A(z)
    z_hat = fuse_fuse(y, obs, subspace_dim=p, lam=1e-10)  # subspace estimated from the LR HSI (PCA)
    rel = float((z_hat - z).norm() / z.norm())
    assert rel < 1e-4
    z_given = fuse_fuse(y, obs, subspace=E, lam=1e-10)  # the true (non-orthonormal) basis, span used
    assert float((z_given - z).norm() / z.norm()) < 1e-4


def test_pca_subspace_spans_low_rank_data():
    g = torch.Generator().manual_seed(0)
    E = torch.rand(11, 3, generator=g, dtype=F64)
    x = torch.einsum("lp,nphw->nlhw", E, torch.rand(2, 3, 5, 7, generator=g, dtype=F64))
    B = pca_subspace(x, dim=3)
    assert B.shape == (2, 11, 3) and B.dtype == F64
    assert torch.allclose(B.transpose(1, 2) @ B, torch.eye(3, dtype=F64).expand(2, 3, 3), atol=1e-12)
    proj = B @ B.transpose(1, 2)  # projector onto span(B) must fix span(E)
    assert torch.allclose(proj @ E, E.expand(2, -1, -1), atol=1e-10)
    with pytest.raises(InputError, match="subspace dim"):
        pca_subspace(x, dim=12)
    with pytest.raises(InputError, match="pixels"):
        pca_subspace(x[..., :1, :2], dim=3)


# ----------------------------------------------------------------------------------------------------------
# normal equations (independent of the Fourier derivation)


@pytest.mark.parametrize(
    ("H", "W", "r", "k", "offsets"),
    [(48, 40, 4, 7, [0, 1, 2, 3]), (45, 35, 5, 5, [0, 4]), (36, 42, 6, 6, [2, 5])],  # odd LR width, even PSF
)
@pytest.mark.parametrize("per_band_sigma", [False, True])
def test_normal_equations_hold(H, W, r, k, offsets, per_band_sigma):
    L, m, p, lam = 9, 2, 5, 1e-2  # m < p: the MSI-invisible directions are exercised
    for offset in offsets:
        obs = observation(r=r, L=L, m=m, k=k, offset=offset, seed=offset)
        g = torch.Generator().manual_seed(offset)
        z = torch.rand(2, L, H, W, generator=g, dtype=F64)
        clean = obs.A(z)
        y = FusionMeasurement(clean.hsi + 0.01 * torch.randn(clean.hsi.shape, generator=g, dtype=F64),
                              clean.msi + 0.01 * torch.randn(clean.msi.shape, generator=g, dtype=F64))
        sigma_hsi = (0.5 + torch.rand(L, generator=g, dtype=F64)) if per_band_sigma else 0.8
        z_hat = fuse_fuse(y, obs, subspace_dim=p, lam=lam, sigma_hsi=sigma_hsi, sigma_msi=0.6)
        basis = pca_subspace(y.hsi, dim=p)
        xbar = torch.einsum("nlp,nlhw->nphw", basis,
                            upsample_cubic(y.hsi, ratio=r, offset=offset, boundary="circular"))
        res = normal_equation_residual(obs, y, z_hat, basis, lam=lam, sigma_hsi=sigma_hsi, sigma_msi=0.6,
                                       prior_mean=xbar)
        assert res < 1e-10, (offset, res)


def test_normal_equations_hold_with_a_full_resolution_prior_mean():
    H, W, r, L, m, p, lam, offset = 40, 36, 4, 8, 3, 6, 0.05, 1
    obs = observation(r=r, L=L, m=m, offset=offset, seed=7)
    g = torch.Generator().manual_seed(7)
    y = obs.A(torch.rand(1, L, H, W, generator=g, dtype=F64))
    basis = pca_subspace(y.hsi, dim=p)
    prior = torch.randn(1, p, H, W, generator=g, dtype=F64)
    z_hat = sylvester_solve(y.hsi, y.msi, basis=basis, srf=obs.spectral.matrix, psf=obs.spatial.psf, ratio=r,
                            offset=offset, lam=lam, prior_mean=prior)
    res = normal_equation_residual(obs, y, z_hat, basis, lam=lam, sigma_hsi=1.0, sigma_msi=1.0, prior_mean=prior)
    assert res < 1e-10


@pytest.mark.parametrize(("H", "W", "r"), [(24, 20, 4), (15, 25, 5), (18, 12, 3)])
def test_shifted_otf_is_blur_then_decimation_at_offset(H, W, r):
    g = torch.Generator().manual_seed(H)
    x = torch.rand(2, 3, H, W, generator=g, dtype=F64)
    psf = torch.rand(5, 5, generator=g, dtype=F64)
    for offset in range(r):
        direct = decimate(blur(x, psf, boundary="circular"), ratio=r, offset=offset)
        otf = shifted_otf(psf, (H, W), offset=offset)
        via_fft = torch.fft.irfft2(torch.fft.rfft2(x) * otf, s=(H, W))[..., ::r, ::r]
        assert torch.allclose(via_fft, direct, atol=1e-13, rtol=0)


# ----------------------------------------------------------------------------------------------------------
# precision, batching, devices


def test_float32_agrees_with_float64_and_keeps_dtype():
    obs = observation(r=4, L=12, m=3, seed=1)
    z = torch.rand(1, 12, 32, 28, generator=torch.Generator().manual_seed(1), dtype=F64)
    y = obs.A(z)
    ref = fuse_fuse(y, obs, subspace_dim=6)
    y32 = FusionMeasurement(y.hsi.float(), y.msi.float())
    out = fuse_fuse(y32, obs, subspace_dim=6)
    assert out.dtype == torch.float32 and ref.dtype == F64
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-4  # ~eps32 / lam, see the module docstring


def test_batch_equals_separate_solves():
    obs = observation(r=3, L=8, m=2, seed=2)
    z = torch.rand(3, 8, 18, 21, generator=torch.Generator().manual_seed(2), dtype=F64)
    y = obs.A(z)
    batch = fuse_fuse(y, obs, subspace_dim=4)
    for n in range(3):
        single = fuse_fuse(FusionMeasurement(y.hsi[n : n + 1], y.msi[n : n + 1]), obs, subspace_dim=4)
        assert torch.allclose(batch[n : n + 1], single, atol=1e-12, rtol=0)


def test_identical_per_band_psfs_are_accepted():
    obs = observation(r=2, L=5, m=2, k=3, seed=3)
    shared = obs.spatial.psf
    per_band = FusionObservation(SpatialDegradation(ratio=2, psf=shared.expand(5, 3, 3)), obs.spectral)
    y = obs.A(torch.rand(1, 5, 12, 10, dtype=F64))
    assert torch.allclose(fuse_fuse(y, per_band, subspace_dim=3), fuse_fuse(y, obs, subspace_dim=3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_and_matches_cpu():
    obs = observation(r=4, L=10, m=3, seed=4)
    y = obs.A(torch.rand(2, 10, 32, 24, dtype=F64))
    ref = fuse_fuse(y, obs, subspace_dim=5)
    out = fuse_fuse(FusionMeasurement(y.hsi.cuda(), y.msi.cuda()), obs.cuda(), subspace_dim=5)
    assert out.device.type == "cuda" and out.dtype == F64
    assert torch.allclose(out.cpu(), ref, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# errors


def test_rejects_models_the_closed_form_cannot_solve():
    y_obs = observation(r=2, L=5, m=2, k=3)
    y = y_obs.A(torch.rand(1, 5, 12, 10, dtype=F64))
    with pytest.raises(InputError, match="circular boundary.*boundary='circular'"):
        fuse_fuse(y, observation(r=2, L=5, m=2, k=3, boundary="reflect"))
    with pytest.raises(InputError, match="one PSF shared by all bands"):
        fuse_fuse(y, observation(r=2, L=5, m=2, k=3, per_band_psf=True))


def test_rejects_bad_options():
    obs = observation(r=2, L=5, m=2, k=3)
    y = obs.A(torch.rand(1, 5, 12, 10, dtype=F64))
    for lam in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="lam"):
            fuse_fuse(y, obs, lam=lam)
    with pytest.raises(InputError, match="subspace_dim"):
        fuse_fuse(y, obs, subspace_dim=0)
    with pytest.raises(InputError, match=r"subspace must be \(L, p\)"):
        fuse_fuse(y, obs, subspace=torch.rand(4, 2, dtype=F64))
    with pytest.raises(InputError, match="linearly dependent"):
        fuse_fuse(y, obs, subspace=torch.ones(5, 2, dtype=F64))
    with pytest.raises(InputError, match="batch of 1"):
        fuse_fuse(y, obs, subspace=torch.rand(3, 5, 2, dtype=F64))
    with pytest.raises(InputError, match="sigma_hsi.*positive"):
        fuse_fuse(y, obs, sigma_hsi=-1.0)
    with pytest.raises(InputError, match=r"sigma_msi needs one value or one per band \(2\)"):
        fuse_fuse(y, obs, sigma_msi=[1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="HSI 6x5 and MSI 10x10 are not related by one integer ratio"):
        fuse_fuse(FusionMeasurement(y.hsi, y.msi[..., :10, :]), obs)
