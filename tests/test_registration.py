"""Co-registration check: shifts built by hand (np.roll, Fourier shift theorem, offset crops) are recovered."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from hsfuse.errors import InputError
from hsfuse.estimation.hysure import estimate_hysure
from hsfuse.estimation.registration import RegistrationCheck, check_coregistration, estimate_shift
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.types import FusionMeasurement


def _smooth(seed: int, shape: tuple[int, ...], sigma: float = 1.5) -> np.ndarray:
    """Seeded white noise smoothed by a periodic Gaussian, per channel: ``(C, H, W)``."""
    g = np.random.default_rng(seed).random(shape)
    return np.stack([ndi.gaussian_filter(c, sigma, mode="wrap") for c in g])


def _fourier_shift(x: np.ndarray, d: tuple[float, float]) -> np.ndarray:
    """``x`` moved by ``d`` (periodic, exact for any real ``d``): ``out[y, x] = x[y - dy, x - dx]``."""
    return np.stack([np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(c), d)).real for c in x])


# ----------------------------------------------------------------------------------------------------------
# estimate_shift


def test_sign_convention_integer_shift():
    a = _smooth(0, (1, 32, 40))[0]
    b = np.roll(a, (2, -1), axis=(0, 1))  # b[y, x] = a[y - 2, x + 1]
    dy, dx, peak = estimate_shift(a, b)
    assert abs(dy - 2.0) < 1e-3 and abs(dx + 1.0) < 1e-3
    assert peak > 0.99
    dy, dx, _ = estimate_shift(b, a)  # the other way round: the opposite shift
    assert abs(dy + 2.0) < 1e-3 and abs(dx - 1.0) < 1e-3


@pytest.mark.parametrize("d", [(0.3, -1.7), (-2.6, 0.45), (0.0, 0.0)])
def test_subpixel_fourier_shift(d):
    a = _smooth(1, (2, 32, 32))
    dy, dx, _ = estimate_shift(torch.from_numpy(a), torch.from_numpy(_fourier_shift(a, d)))
    assert abs(dy - d[0]) < 0.05 and abs(dx - d[1]) < 0.05


@pytest.mark.parametrize("d", [(2, -1), (3, 5), (0.3, -1.7)])
def test_non_periodic_crops_and_gain(d):
    """A window of a larger image against a window moved by d (no wrap-around), with a gain and an offset."""
    big = _smooth(2, (3, 52, 52))
    moved = _fourier_shift(big, d)  # periodic on the big image, not on the 32 x 32 windows
    a, b = big[:, 10:42, 10:42], 3.0 * moved[:, 10:42, 10:42] + 5.0
    dy, dx, peak = estimate_shift(a, b)
    assert abs(dy - d[0]) < 0.05 and abs(dx - d[1]) < 0.05
    assert peak > 0.95


def test_masked_region_is_ignored():
    big = _smooth(3, (3, 52, 52))
    a = big[:, 10:42, 10:42]
    b = big[:, 8:40, 11:43].copy()  # b[y, x] = a[y - 2, x + 1]
    valid = np.ones((32, 32), bool)
    valid[4:12, 5:15] = False
    clean = estimate_shift(a, b, valid=torch.from_numpy(valid))
    b[:, ~valid] = 100.0 * np.random.default_rng(0).random((3, int((~valid).sum())))
    b[0, 6, 7] = np.nan
    dirty = estimate_shift(a, b, valid=valid)
    assert dirty == clean
    assert abs(dirty[0] - 2.0) < 0.05 and abs(dirty[1] + 1.0) < 0.05
    b[0, 6, 7] = 0.0
    dy, dx, _ = estimate_shift(a, b)  # the garbage, unmasked, wins
    assert abs(dy - 2.0) + abs(dx + 1.0) > 0.5


def test_estimate_shift_errors():
    a = np.zeros((16, 16))
    with pytest.raises(InputError, match="same shape"):
        estimate_shift(a, np.zeros((16, 17)))
    with pytest.raises(InputError, match=r"\(H, W\) image or a \(C, H, W\) stack"):
        estimate_shift(np.zeros((1, 1, 16, 16)), np.zeros((1, 1, 16, 16)))
    with pytest.raises(InputError, match="too small"):
        estimate_shift(np.ones((4, 4)), np.ones((4, 4)))
    with pytest.raises(InputError, match="upsample must be an integer >= 1"):
        estimate_shift(a, a, upsample=0)
    with pytest.raises(InputError, match="constant"):
        estimate_shift(a, a)
    with pytest.raises(InputError, match="NaN/inf in usable pixels"):
        estimate_shift(np.full((16, 16), np.nan), a)
    with pytest.raises(InputError, match="valid must be a boolean 16x16"):
        estimate_shift(a, a, valid=np.ones((8, 8), bool))


# ----------------------------------------------------------------------------------------------------------
# check_coregistration on simulated pairs: the MSI simulated from a window of the scene moved by d HR pixels


def _pair(z: torch.Tensor, obs: FusionObservation, d: tuple[int, int], size: tuple[int, int], origin=(12, 12)):
    (y0, x0), (H, W) = origin, size
    zh = z[..., y0 : y0 + H, x0 : x0 + W]
    zm = z[..., y0 - d[0] : y0 - d[0] + H, x0 - d[1] : x0 - d[1] + W]  # msi[y] = scene seen by the HSI at y - d
    with torch.no_grad():
        return FusionMeasurement(obs.spatial.A(zh), obs.spectral.A(zm))


@pytest.fixture(scope="module")
def random_scene():
    z = torch.from_numpy(_smooth(4, (8, 124, 124), sigma=1.0))[None]
    R = torch.from_numpy(np.random.default_rng(4).random((3, 8)))
    r = 4
    obs = FusionObservation(SpatialDegradation(ratio=r, psf=gaussian_psf(2 * r - 1, fwhm=float(r)), boundary="reflect"),
                            SpectralResponse(R))
    return z, obs


@pytest.mark.parametrize("d,expect_lr", [((0, 0), (0.0, 0.0)), ((4, 0), (1.0, 0.0)), ((0, -4), (0.0, -1.0)),
                                         ((-4, 4), (-1.0, 1.0)), ((2, 0), (0.5, 0.0))])
def test_check_with_known_operators(random_scene, d, expect_lr):
    z, obs = random_scene
    check = check_coregistration(_pair(z, obs, d, (96, 96)), obs)
    assert isinstance(check, RegistrationCheck)
    assert np.allclose(check.shift_lr_px, expect_lr, atol=0.05)
    assert np.allclose(check.shift_hr_px, np.array(check.shift_lr_px) * 4)
    assert check.magnitude_lr_px == pytest.approx(float(np.hypot(*check.shift_lr_px)))
    assert check.ok == (np.hypot(*expect_lr) <= 0.5) and check.threshold_lr_px == 0.5
    assert check.peak > 0.9
    assert ("NOT co-registered" in check.message) == (not check.ok)
    if not check.ok:
        assert "move the MSI by" in check.message


def test_check_with_estimated_operators_and_threshold(random_scene):
    z, obs = random_scene
    aligned = _pair(z, obs, (0, 0), (96, 96))
    est = estimate_hysure(aligned, lambda_r=0.1, lambda_b=0.1)
    check = check_coregistration(aligned, est)
    assert check.ok and check.magnitude_lr_px < 0.1
    shifted = _pair(z, obs, (4, 0), (96, 96))
    check = check_coregistration(shifted, estimate_hysure(shifted, lambda_r=0.1, lambda_b=0.1))
    assert not check.ok and check.shift_lr_px[0] > 0.75 and abs(check.shift_lr_px[1]) < 0.25
    assert check_coregistration(shifted, obs, threshold_lr_px=1.5).ok


def test_even_psf_support_is_centred_half_a_pixel_further(random_scene):
    """An r x r PSF (UDALN's) centres LR pixel i at HR offset + r i + 1/2: an aligned pair reads zero with
    those operators. Judged with an odd-support model (LR pixel i at HR offset + r i) the HSI samples the
    scene at i + 1/(2r) of that model's grid: a[i] = b[i + 1/8], i.e. b[i] = a[i - 1/8], a shift of the MSI
    of (+1/8, +1/8) LR pixels for r = 4 (hand computation)."""
    z, obs = random_scene
    box = FusionObservation(SpatialDegradation(ratio=4, psf=gaussian_psf(4, fwhm=4.0), boundary="reflect"),
                            obs.spectral)
    y = _pair(z, box, (0, 0), (96, 96))
    assert np.allclose(check_coregistration(y, box).shift_lr_px, (0.0, 0.0), atol=0.03)
    assert np.allclose(check_coregistration(y, obs).shift_lr_px, (0.125, 0.125), atol=0.03)


def test_check_ignores_masked_garbage(random_scene):
    z, obs = random_scene
    y = _pair(z, obs, (4, 0), (96, 96))
    valid = torch.ones(96, 96, dtype=torch.bool)
    valid[20:44, 52:80] = False
    msi = y.msi.clone()
    msi[..., 20:44, 52:80] = 1e3 * torch.rand(3, 24, 28, generator=torch.Generator().manual_seed(0),
                                              dtype=torch.float64)
    masked = check_coregistration(FusionMeasurement(y.hsi, msi), obs, valid=valid)
    assert np.allclose(masked.shift_lr_px, (1.0, 0.0), atol=0.05)
    unmasked = check_coregistration(FusionMeasurement(y.hsi, msi), obs)
    assert not np.allclose(unmasked.shift_lr_px, (1.0, 0.0), atol=0.05)


def test_unrelated_images_give_low_confidence(random_scene):
    z, obs = random_scene
    other = torch.from_numpy(_smooth(9, (8, 124, 124), sigma=1.0))[None]
    y = FusionMeasurement(_pair(z, obs, (0, 0), (96, 96)).hsi, _pair(other, obs, (0, 0), (96, 96)).msi)
    check = check_coregistration(y, obs)
    assert check.peak < 0.5 and "low confidence" in check.message


def test_pavia_pair(data_root):
    """The real Pavia University scene (103 bands), IKONOS-like random SRF: aligned ok, 4 HR px = 1 LR px not."""
    from hsfuse.data.scenes import load_scene

    cube = load_scene("pavia_u")
    z = torch.from_numpy(np.ascontiguousarray(np.moveaxis(cube.data, 2, 0)).astype(np.float64))[None]
    R = torch.from_numpy(np.random.default_rng(5).random((4, cube.bands)))
    obs = FusionObservation(SpatialDegradation(ratio=4, psf=gaussian_psf(7, fwhm=4.0), boundary="reflect"),
                            SpectralResponse(R))
    aligned = check_coregistration(_pair(z, obs, (0, 0), (96, 64), origin=(20, 8)), obs)
    assert aligned.ok and aligned.magnitude_lr_px < 0.1
    moved = check_coregistration(_pair(z, obs, (0, -4), (96, 64), origin=(20, 8)), obs)
    assert not moved.ok and np.allclose(moved.shift_lr_px, (0.0, -1.0), atol=0.05)


def test_check_errors(random_scene):
    z, obs = random_scene
    y = _pair(z, obs, (0, 0), (96, 96))
    with pytest.raises(InputError, match="check_coregistration fits one image pair at a time, got a batch of 2"):
        check_coregistration(FusionMeasurement(y.hsi.repeat(2, 1, 1, 1), y.msi.repeat(2, 1, 1, 1)), obs)
    with pytest.raises(InputError, match="do not match the operators' ratio 4"):
        check_coregistration(FusionMeasurement(y.hsi[..., :12, :12], y.msi[..., :24, :24]), obs)
    with pytest.raises(InputError, match=r"SRF is \(3, 8\) but the pair has 3 MSI and 7 HSI bands"):
        check_coregistration(FusionMeasurement(y.hsi[:, :7], y.msi), obs)
    with pytest.raises(InputError, match="threshold_lr_px must be a positive number"):
        check_coregistration(y, obs, threshold_lr_px=0)
    with pytest.raises(InputError, match="EstimatedOperators or a FusionObservation"):
        check_coregistration(y, "hysure")
    with pytest.raises(InputError, match="FusionMeasurement"):
        check_coregistration((y.hsi, y.msi), obs)
