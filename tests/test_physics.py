"""Numbers of the observation model against independent computations (NumPy/SciPy by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from hsfuse.errors import InputError
from hsfuse.physics import (
    FusionObservation,
    LearnableSpatialDegradation,
    LearnableSpectralResponse,
    SpatialDegradation,
    SpectralResponse,
    add_noise,
    blur,
    gaussian_psf,
    noise_sigma,
    psf_to_otf,
    support_from_srf,
)
from hsfuse.physics.spectral import check_srf
from hsfuse.types import FusionMeasurement


def test_gaussian_psf_matches_matlab_fspecial_formula():
    # fspecial('gaussian', 5, 1.0): exp(-(x^2+y^2)/2) on -2..2, normalised (hand formula in NumPy).
    t = np.arange(5) - 2.0
    ref = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / 2.0)
    ref /= ref.sum()
    np.testing.assert_allclose(gaussian_psf(5, sigma=1.0).numpy(), ref, rtol=1e-12)
    # FWHM = 2 sqrt(2 ln 2) sigma
    np.testing.assert_allclose(gaussian_psf(6, fwhm=2 * np.sqrt(2 * np.log(2)) * 1.7).numpy(),
                               gaussian_psf(6, sigma=1.7).numpy(), rtol=1e-12)


@pytest.mark.parametrize("k", [3, 4, 5, 8])
def test_circular_blur_matches_scipy_wrap_convolution(k):
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 13, 11))
    psf = rng.random((k, k))
    # scipy.ndimage.convolve centres a kernel of size k at index k // 2 (origin 0), like psf2otf.
    ref = ndi.convolve(x[0, 0], psf, mode="wrap")
    out = blur(torch.from_numpy(x), torch.from_numpy(psf), boundary="circular")[0, 0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("k", [3, 5])
def test_reflect_blur_matches_scipy_mirror_convolution(k):
    # numpy/torch "reflect" (edge pixel not repeated) is scipy.ndimage's "mirror".
    rng = np.random.default_rng(1)
    x = rng.random((1, 1, 9, 12))
    psf = rng.random((k, k))
    ref = ndi.convolve(x[0, 0], psf, mode="mirror")
    out = blur(torch.from_numpy(x), torch.from_numpy(psf), boundary="reflect")[0, 0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_blur_equals_fft_with_otf():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.random((1, 2, 16, 12)))
    psf = torch.from_numpy(rng.random((8, 8)))
    fft = torch.fft.ifft2(torch.fft.fft2(x) * psf_to_otf(psf, (16, 12))).real
    torch.testing.assert_close(blur(x, psf), fft, atol=1e-12, rtol=0)


@pytest.mark.parametrize("r", [4, 5, 8])
def test_block_gaussian_with_default_offset_is_disjoint_block_average(r):
    """UDALN: an r x r kernel with the default offset averages exactly the disjoint r x r blocks."""
    rng = np.random.default_rng(3)
    x = rng.random((2 * r, 3 * r))
    psf = gaussian_psf(r, fwhm=float(r))
    y = SpatialDegradation(ratio=r, psf=psf).A(torch.from_numpy(x)[None, None])[0, 0].numpy()
    k = psf.numpy()
    ref = np.array([[np.sum(x[i * r:(i + 1) * r, j * r:(j + 1) * r] * k[::-1, ::-1]) for j in range(3)]
                    for i in range(2)])
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_spectral_response_and_normalisation():
    R = np.array([[1.0, 3.0, 0.0], [0.0, 2.0, 2.0]])
    x = np.random.default_rng(4).random((1, 3, 4, 5))
    op = SpectralResponse(R, normalize="sum")
    ref = np.einsum("ml,nlhw->nmhw", R / R.sum(1, keepdims=True), x)
    np.testing.assert_allclose(op.A(torch.from_numpy(x)).numpy(), ref, atol=1e-14)
    with pytest.raises(InputError, match="sum to zero"):
        SpectralResponse(np.array([[0.0, 0.0, 0.0]]), normalize="sum")
    with pytest.raises(InputError, match="transposed"):
        check_srf(R.T, hsi_bands=3)
    with pytest.raises(InputError, match="3 bands"):
        op.A(torch.zeros(1, 2, 4, 5))


def test_noise_hits_requested_snr():
    x = torch.rand(1, 4, 64, 64, dtype=torch.float64) + 0.5
    y = add_noise(x, snr_db=30.0, seed=7)
    snr = 10 * torch.log10(x.pow(2).mean() / (y - x).pow(2).mean())
    assert abs(float(snr) - 30.0) < 0.1  # 16k samples: the empirical power is within ~1% of sigma^2
    torch.testing.assert_close(add_noise(x, snr_db=30.0, seed=7), y)  # seeded
    assert not torch.equal(add_noise(x, snr_db=30.0, seed=8), y)
    per_band = noise_sigma(x, snr_db=20.0, per_band=True)
    assert per_band.shape == (1, 4, 1, 1)
    np.testing.assert_allclose(per_band.flatten().numpy() ** 2,
                               (x.pow(2).mean(dim=(2, 3)) / 100.0).flatten().numpy(), rtol=1e-12)


def test_fusion_observation_checks_measurements():
    obs = FusionObservation(SpatialDegradation(ratio=4), SpectralResponse(torch.ones(3, 6)))
    good = FusionMeasurement(torch.zeros(1, 6, 4, 5), torch.zeros(1, 3, 16, 20))
    obs.check_measurement(good)
    with pytest.raises(InputError, match="HSI 4x5 and MSI 16x16 are not related by one integer ratio"):
        obs.check_measurement(FusionMeasurement(torch.zeros(1, 6, 4, 5), torch.zeros(1, 3, 16, 16)))
    with pytest.raises(InputError, match="ratio 4 disagrees with the image sizes.*give ratio 2"):
        obs.check_measurement(FusionMeasurement(torch.zeros(1, 6, 4, 5), torch.zeros(1, 3, 8, 10)))
    with pytest.raises(InputError, match="6 bands"):
        obs.check_measurement(FusionMeasurement(torch.zeros(1, 5, 4, 5), torch.zeros(1, 3, 16, 20)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ratio=2.5), "positive integer"),
        (dict(ratio=0), "positive integer"),
        (dict(ratio=4, offset=4), "offset"),
        (dict(ratio=4, boundary="symmetric"), "boundary"),
        (dict(ratio=4, psf=torch.ones(3, 4)), "square"),
    ],
)
def test_spatial_degradation_rejects_bad_options(kwargs, match):
    with pytest.raises(InputError, match=match):
        SpatialDegradation(**kwargs)


def test_spatial_degradation_rejects_sizes_not_multiple_of_ratio():
    with pytest.raises(InputError, match="multiple of the ratio"):
        SpatialDegradation(ratio=4).A(torch.zeros(1, 2, 10, 12))


def test_learnable_psf_stays_on_simplex_and_learns():
    r = 4
    true = SpatialDegradation(ratio=r, psf=gaussian_psf(r, fwhm=float(r)))
    est = LearnableSpatialDegradation(ratio=r)
    x = torch.rand(4, 3, 32, 32)
    y = true.A(x).float()
    opt = torch.optim.Adam(est.parameters(), lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        loss = (est.A(x) - y).pow(2).mean()
        loss.backward()
        est.project_grad_()
        opt.step()
        est.project_()
        psf = est.psf.detach()
        assert torch.all(psf >= 0) and abs(float(psf.sum()) - 1) < 1e-6  # feasible after every step
    psf = est.psf.detach()
    assert torch.all(psf >= 0) and abs(float(psf.sum()) - 1) < 1e-6
    assert float((psf - true.psf.float()).abs().max()) < 5e-3


def test_learnable_srf_is_nonnegative_and_respects_support():
    ref = torch.tensor([[1.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 3.0]])
    support = support_from_srf(ref)
    assert support.tolist() == [[True, True, False, False, False], [False, False, True, True, True]]
    srf = LearnableSpectralResponse(msi_bands=2, hsi_bands=5, support=support)
    with torch.no_grad():
        srf.weight.normal_()  # an optimiser step may leave the feasible set; project_() brings it back
    srf.project_()
    R = srf.matrix
    assert torch.all(R >= 0)
    assert torch.all(R[~support] == 0)
    torch.testing.assert_close(R.sum(dim=1), torch.ones(2))
    free = LearnableSpectralResponse(msi_bands=2, hsi_bands=5, support=support, normalize="none")
    with torch.no_grad():
        free.weight.normal_()
    free.project_()
    assert torch.all(free.matrix >= 0) and torch.all(free.matrix[~support] == 0)
