"""Simulation presets against independent NumPy/SciPy transcriptions of the original code's steps."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from hsfuse.data.simulation import SIMULATION_PRESETS, crop_to_multiple, simulate
from hsfuse.errors import InputError
from hsfuse.types import Cube, GeoInfo


def _cube(h=40, w=48, bands=6, seed=0) -> Cube:
    rng = np.random.default_rng(seed)
    return Cube(rng.random((h, w, bands)).astype(np.float32), wavelengths=np.linspace(420, 680, bands),
                geo=GeoInfo("EPSG:32633", (2.0, 0.0, 1000.0, 0.0, -2.0, 5000.0)))


def _srf(bands=6, m=3, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).random((m, bands))


def _matlab_gauss2d(size: int, sigma: float) -> np.ndarray:
    # MATLAB fspecial / UDALN matlab_style_gauss2D / cv2.getGaussianKernel outer product
    m = (size - 1) / 2.0
    y, x = np.ogrid[-m : m + 1, -m : m + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return h / h.sum()


def test_udaln_preset_equals_valid_convolution_then_stride():
    """UDALN Data_loader: convolve2d(band, kernel, 'valid')[::r, ::r], sigma = r / 2.35482; SRF cols sum 1."""
    r = 4
    ref = _cube()
    srf = _srf()
    sim = simulate(ref, srf, ratio=r, preset="udaln")
    k = _matlab_gauss2d(r, r / 2.35482)
    expected = np.stack([scipy.signal.convolve2d(ref.data[:, :, b].astype(np.float64), k, "valid")[::r, ::r]
                         for b in range(ref.bands)], axis=2)
    np.testing.assert_allclose(sim.hsi.data, expected, rtol=2e-6, atol=1e-6)  # float32 storage
    S = srf / srf.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(sim.msi.data, np.einsum("hwl,ml->hwm", ref.data.astype(np.float64), S),
                               rtol=2e-6, atol=1e-6)


def test_dhifnet_preset_equals_fft_circular_blur_and_offset_decimation():
    """DHIF-Net: getGaussianKernel(sf, 2) outer product, psf2otf (centre at floor(k/2)), [sf/2-1::sf]."""
    r = 8
    ref = _cube(h=48, w=40)
    sim = simulate(ref, _srf(), ratio=r, preset="dhifnet_cave")
    k = _matlab_gauss2d(r, 2.0)
    H, W = ref.shape[:2]
    pad = np.zeros((H, W))
    pad[:r, :r] = k
    otf = np.fft.fft2(np.roll(pad, (-(r // 2), -(r // 2)), axis=(0, 1)))
    blurred = np.real(np.fft.ifft2(np.fft.fft2(ref.data.astype(np.float64), axes=(0, 1)) * otf[:, :, None],
                                   axes=(0, 1)))
    expected = blurred[r // 2 - 1 :: r, r // 2 - 1 :: r]
    np.testing.assert_allclose(sim.hsi.data, expected, rtol=2e-6, atol=1e-6)
    # the DHIF-Net preset uses the SRF as given (no normalisation)
    np.testing.assert_allclose(sim.msi.data, np.einsum("hwl,ml->hwm", ref.data.astype(np.float64), _srf()),
                               rtol=2e-6, atol=1e-6)


def test_overrides_and_noise_seed():
    ref = _cube()
    a = simulate(ref, _srf(), ratio=4, snr_hsi_db=30.0, snr_msi_db=40.0, seed=3)
    b = simulate(ref, _srf(), ratio=4, snr_hsi_db=30.0, snr_msi_db=40.0, seed=3)
    c = simulate(ref, _srf(), ratio=4, snr_hsi_db=30.0, snr_msi_db=40.0, seed=4)
    clean = simulate(ref, _srf(), ratio=4)
    np.testing.assert_array_equal(a.hsi.data, b.hsi.data)
    assert not np.array_equal(a.hsi.data, c.hsi.data)
    noise = a.msi.data.astype(np.float64) - clean.msi.data
    snr = 10 * np.log10(np.mean(clean.msi.data.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(snr - 40.0) < 0.3
    assert a.preset.snr_hsi_db == 30.0 and a.preset.name == "hsfuse"
    assert SIMULATION_PRESETS["hsfuse"].snr_hsi_db is None  # presets are not mutated


def test_crop_and_georeferencing():
    ref = _cube(h=42, w=50)
    sim = simulate(ref, _srf(), ratio=4, preset="udaln")
    assert sim.reference.shape == (40, 48, 6) and sim.hsi.shape == (10, 12, 6) and sim.msi.shape == (40, 48, 3)
    # centre crop removed 1 row and 1 column: origin moves by one HR pixel (2 m) in x and y
    assert sim.reference.geo.transform == (2.0, 0.0, 1002.0, 0.0, -2.0, 4998.0)
    assert sim.msi.geo == sim.reference.geo
    # UDALN blocks: LR pixel (0,0) covers exactly HR pixels 0..3 -> same origin, pixel size x4
    assert sim.hsi.geo.transform == pytest.approx((8.0, 0.0, 1002.0, 0.0, -8.0, 4998.0))
    np.testing.assert_array_equal(sim.hsi.wavelengths, ref.wavelengths)


def test_errors():
    ref = _cube()
    with pytest.raises(InputError, match="unknown simulation preset"):
        simulate(ref, _srf(), ratio=4, preset="nope")
    with pytest.raises(InputError, match="positive integer"):
        simulate(ref, _srf(), ratio=2.5)
    with pytest.raises(InputError, match="5 HSI-band columns but the HSI has 6"):
        simulate(ref, _srf(bands=5), ratio=4)
    bad = ref.data.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        simulate(ref.replace(data=bad), _srf(), ratio=4)
    with pytest.raises(InputError, match="smaller than the ratio"):
        crop_to_multiple(_cube(h=3, w=3), 4)
