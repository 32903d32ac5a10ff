"""The closed-form large scene and its lazy HSI/MSI pair (``hsfuse.data.large_scene``).

Small sizes only (48 x 40 HR, r = 4): windows agree bit for bit, the lazy LR HSI equals a blur + decimation of a
halo-padded reference computed here with SciPy, the MSI equals ``R Z``, and nothing is computed at construction.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy.signal import convolve2d

from hsfuse.data.paths import shared_file
from hsfuse.errors import InputError, OutputExistsError

S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A")
# rioxarray's own rio.transform() multiplies Affine objects with `*` (affine >= 2.4 prefers `@`)
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


@pytest.fixture(autouse=True)
def _needs_shared_data(data_root):
    """The spectra come from the shared data folder (Jasper Ridge)."""


@pytest.fixture(scope="module")
def ls():
    from hsfuse.data import large_scene

    return large_scene


@pytest.fixture(scope="module")
def scene(ls):
    return ls.LargeScene(height=48, width=40, seed=3)


@pytest.fixture(scope="module")
def whole(ls, scene):
    return ls.reference_window(scene, 0, 48, 0, 40)


def _gaussian_kernel(size: int, fwhm: float) -> np.ndarray:
    """Independent of hsfuse: a normalised isotropic Gaussian on ``size x size`` taps centred at (size-1)/2."""
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    t = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(t**2) / (2.0 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def test_windows_agree_bit_for_bit(ls, scene, whole):
    assert whole.shape == (200, 48, 40) and whole.dtype == np.float32
    for y0, y1, x0, x1 in ((5, 30, 7, 33), (-6, 20, 13, 45), (31, 48, -3, 9), (0, 1, 0, 1)):
        win = ls.reference_window(scene, y0, y1, x0, x1)
        assert win.shape == (200, y1 - y0, x1 - x0)
        ya, yb, xa, xb = max(y0, 0), min(y1, 48), max(x0, 0), min(x1, 40)
        np.testing.assert_array_equal(win[:, ya - y0: yb - y0, xa - x0: xb - x0], whole[:, ya:yb, xa:xb])
    # the lazy reference, chunk by chunk (3 x 3 chunks, ragged last column), is the same array
    _, _, ref = ls.large_pair(scene, chunk=16)
    np.testing.assert_array_equal(ref.values, whole)


@pytest.mark.parametrize("ratio, psf_fwhm", [(4, None), (2, 3.0)])
def test_lr_hsi_is_valid_blur_then_decimation_of_the_padded_reference(ls, scene, ratio, psf_fwhm):
    hsi, _, _ = ls.large_pair(scene, ratio=ratio, chunk=16, psf_fwhm=psf_fwhm)
    k = 2 * ratio + 1
    halo = k // 2
    padded = ls.reference_window(scene, -halo, 48 + halo, -halo, 40 + halo).astype(np.float64)
    kernel = _gaussian_kernel(k, ratio if psf_fwhm is None else psf_fwhm)
    # 'valid' convolution of the padded window = convolution (kernel centre k//2) of the infinite scene
    blurred = np.stack([convolve2d(band, kernel, mode="valid") for band in padded])
    assert blurred.shape == (200, 48, 40)
    offset = (ratio - 1) // 2
    expected = blurred[:, offset::ratio, offset::ratio]
    got = hsi.values
    assert got.shape == (200, 48 // ratio, 40 // ratio) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_msi_is_srf_times_reference(ls, scene, whole):
    from hsfuse.physics.srf_library import srf_matrix

    _, msi, _ = ls.large_pair(scene, chunk=16)
    wl = np.asarray(scene.wavelengths_nm)
    R, names = srf_matrix("sentinel2a", wl, hsi_fwhm=np.asarray(scene.fwhm_nm), bands=list(S2_BANDS))
    np.testing.assert_allclose(R.sum(axis=1), 1.0)
    expected = np.einsum("mb,bhw->mhw", R, whole.astype(np.float64))
    np.testing.assert_allclose(msi.values, expected, rtol=0, atol=2e-6)
    assert list(msi["band_name"].values) == names == list(S2_BANDS)
    np.testing.assert_allclose(msi["band"].values, R @ wl)


def test_abundances_shading_and_spectra(ls, scene, whole):
    a, s = ls.abundance_window(scene, -8, 56, -8, 48)
    assert a.shape == (8, 64, 56) and s.shape == (64, 56)
    assert a.min() >= 0.0
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-5)
    assert 0.6 <= s.min() and s.max() <= 1.0
    spectra, names = ls.scene_spectra(scene)
    assert spectra.shape == (8, 200) and names == scene.materials
    assert spectra.min() >= 0.0 and spectra.max() <= 1.0
    assert 0.0 <= whole.min() and whole.max() <= 1.0
    # Z = sum_k (s a_k) e_k
    np.testing.assert_allclose(whole, np.einsum("khw,kb->bhw", a[:, 8:56, 8:48] * s[8:56, 8:48], spectra),
                               atol=1e-6)
    # the endmembers are the measured spectra (narrow bands: close to linear interpolation of the table)
    with np.load(shared_file("derived", "jasper_ridge.npz")) as z:
        table_wl, table = z["wavelengths_nm"], z["endmembers"]
        tree = list(z["endmember_names"]).index("tree")
    wl = np.asarray(scene.wavelengths_nm)
    np.testing.assert_allclose(spectra[names.index("tree")], np.interp(wl, table_wl, table[:, tree]), atol=0.01)


def test_layout_has_every_material_and_sharp_edges(ls):
    a, s = ls.abundance_window(ls.LargeScene(height=512, width=512, seed=0), 0, 512, 0, 512)
    assert (a.max(axis=(1, 2)) > 0.9).all(), "every material is (almost) pure somewhere"
    assert np.abs(np.diff(a, axis=2)).max() > 0.9, "region edges are sharp (a one-pixel jump)"
    assert s.max() - s.min() > 0.2


def test_dims_coords_attrs_chunks_and_georeferencing(ls, scene):
    hsi, msi, ref = ls.large_pair(scene, chunk=16)
    wl = np.asarray(scene.wavelengths_nm)
    for arr in (hsi, msi, ref):
        assert arr.dims == ("band", "y", "x")
        assert arr["band"].dtype == np.float64 and arr.attrs["wavelength_units"] == "nm"
        assert "fwhm" in arr.coords and arr["fwhm"].dims == ("band",)
        assert arr.rio.crs.to_epsg() == 32633
    np.testing.assert_array_equal(hsi["band"].values, wl)
    np.testing.assert_allclose(hsi["fwhm"].values, (1000.0 - 410.0) / 199)
    assert np.all((msi["fwhm"].values > 10) & (msi["fwhm"].values < 150))
    assert hsi.shape == (200, 12, 10) and hsi.chunks == ((200,), (4, 4, 4), (4, 4, 2))
    assert msi.shape == (8, 48, 40) and msi.chunks == ((8,), (16, 16, 16), (16, 16, 8))
    assert ref.chunks == ((200,), (16, 16, 16), (16, 16, 8))
    t_hr, t_lr = msi.rio.transform(), hsi.rio.transform()
    assert (t_hr.a, t_hr.e, t_hr.c, t_hr.f) == (10.0, -10.0, 300000.0, 5100000.0)
    # LR pixel (0, 0) is centred on HR pixel (1, 1) (decimation offset (r-1)//2 = 1): corner half an HR pixel out
    assert (t_lr.a, t_lr.e, t_lr.c, t_lr.f) == (40.0, -40.0, 299995.0, 5100005.0)
    assert hsi["x"].values[0] == msi["x"].values[1] and hsi["y"].values[0] == msi["y"].values[1]


def test_deterministic_in_seed_and_noise(ls, scene):
    a1 = ls.large_pair(scene, chunk=16)[0].values
    a2 = ls.large_pair(ls.LargeScene(height=48, width=40, seed=3), chunk=16)[0].values
    b = ls.large_pair(ls.LargeScene(height=48, width=40, seed=4), chunk=16)[0].values
    np.testing.assert_array_equal(a1, a2)
    assert np.abs(a1 - b).max() > 0.05
    clean_h, clean_m, _ = ls.large_pair(scene, chunk=16)
    noisy_h, noisy_m, _ = ls.large_pair(scene, chunk=16, snr_db=30.0)
    h = noisy_h.values
    np.testing.assert_array_equal(h, ls.large_pair(scene, chunk=16, snr_db=30.0)[0].values)
    # each chunk's noise depends on its index only: computing one chunk alone gives the same numbers
    np.testing.assert_array_equal(noisy_h[:, 4:8, 4:8].values, h[:, 4:8, 4:8])
    assert not np.array_equal(h, ls.large_pair(scene, chunk=16, snr_db=30.0, seed=9)[0].values)
    for noisy, clean in ((h, clean_h.values), (noisy_m.values, clean_m.values)):
        snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean.astype(np.float64)) ** 2))
        assert abs(snr - 30.0) < 0.5


def test_nothing_is_computed_at_construction(ls, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("computed at construction")

    monkeypatch.setattr(ls, "_components", refuse)
    big = ls.LargeScene(height=100_000, width=100_000, seed=1)
    start = time.perf_counter()
    hsi, msi, ref = ls.large_pair(big, chunk=512, snr_db=35.0)
    assert time.perf_counter() - start < 5.0
    n = math.ceil(100_000 / 512) ** 2
    assert hsi.shape == (200, 25_000, 25_000) and msi.shape == (8, 100_000, 100_000)
    for arr in (hsi, msi, ref):
        graph = arr.data.__dask_graph__()
        # one shared footprint task per chunk (abundances x shading on the chunk + halo) and one product task
        assert len(graph.layers) == 2 and len(graph) == 2 * n == 2 * arr.data.npartitions
    with pytest.raises(AssertionError, match="computed at construction"):
        hsi[:, :2, :2].compute()


def test_write_large_pair_round_trip(ls, scene, tmp_path):
    import xarray as xr

    seen = []
    paths = ls.write_large_pair(tmp_path, scene, chunk=16, with_reference=True,
                                progress=lambda done, total: seen.append((done, total)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hsi.zarr", "msi.zarr", "reference.zarr"]
    assert seen[-1] == (27, 27) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    hsi, msi, ref = ls.large_pair(scene, chunk=16)
    for what, lazy in (("hsi", hsi), ("msi", msi), ("reference", ref)):
        stored = xr.open_zarr(paths[what], consolidated=False, decode_coords="all")[what]
        np.testing.assert_array_equal(stored.values, lazy.values)
        np.testing.assert_array_equal(stored["band"].values, lazy["band"].values)
        assert stored.rio.transform() == lazy.rio.transform() and stored.rio.crs == lazy.rio.crs
        assert stored.encoding["chunks"] == tuple(c[0] for c in lazy.chunks)
    with pytest.raises(OutputExistsError):
        ls.write_large_pair(tmp_path, scene, chunk=16)
    ls.write_large_pair(tmp_path, scene, chunk=16, overwrite=True)


def test_refusals_and_the_visible_material_set(ls, scene):
    with pytest.raises(InputError, match="multiple of the ratio"):
        ls.large_pair(scene, chunk=18)
    with pytest.raises(InputError, match="not a multiple of the ratio"):
        ls.large_pair(ls.LargeScene(height=50, width=40), chunk=16)
    with pytest.raises(InputError, match="unknown material"):
        ls.LargeScene(materials=("tree", "granite"))
    # ColorChecker spectra are measured up to 780 nm only: never extrapolated
    with pytest.raises(InputError, match="measured only over 380.0-780.0 nm"):
        ls.scene_spectra(ls.LargeScene(height=8, width=8, materials="visible"))
    visible = ls.LargeScene(height=16, width=16, materials="visible", wavelength_range_nm=(410.0, 780.0), bands=60)
    spectra, names = ls.scene_spectra(visible)
    assert spectra.shape == (8, 60) and "cc_red" in names and 0 <= spectra.min() and spectra.max() <= 1
    hsi, msi, _ = ls.large_pair(visible, chunk=8, msi_bands=("B2", "B3", "B4", "B5"))
    assert msi.shape == (4, 16, 16) and np.isfinite(hsi.values).all()
