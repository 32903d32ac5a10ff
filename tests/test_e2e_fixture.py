"""The realistic end-to-end product pair of issue 16 (``tests/fixtures/products/make_e2e_pair.py``): an EnMAP-like
30 m L2A product (UTM) and a Sentinel-2-like 10 m L2A product (EPSG:4326) of Jasper Ridge, with a known sub-pixel
shift and a cloud, written through the product generators and read back by the product readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rioxarray")
rasterio = pytest.importorskip("rasterio")
ndimage = pytest.importorskip("scipy.ndimage")

from fixtures.products import make_e2e_pair as e2e  # noqa: E402
from fixtures.products import make_enmap as em  # noqa: E402
from fixtures.products import make_sentinel2 as s2  # noqa: E402

from hsfuse.io.products import open_enmap, open_sentinel2  # noqa: E402

BORDER = 4  # 10 m pixels left out at the edges of the UTM grid when comparing after the warp back


@pytest.fixture(scope="module")
def pair(tmp_path_factory, data_root) -> e2e.E2EPair:
    return e2e.make_e2e_pair(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def msi(pair):
    return open_sentinel2(pair.sentinel2)


def _warp_back(image: np.ndarray, truth: e2e.E2ETruth, transform, method: str = "cubic") -> np.ndarray:
    """The S2 image (bands, Hm, Wm) warped onto a 99 x 99 10 m UTM grid with the given transform."""
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject

    h, w = truth.reference.shape[1:]
    out = np.full((image.shape[0], h, w), np.nan)
    reproject(image.astype(np.float64), out, src_transform=Affine(*truth.msi_transform), src_crs=truth.msi_crs,
              src_nodata=np.nan, dst_transform=Affine(*transform), dst_crs=truth.utm_crs, dst_nodata=np.nan,
              resampling=getattr(Resampling, method))
    return out


def _errors(back: np.ndarray, truth: e2e.E2ETruth) -> np.ndarray:
    """Per band RMSE / mean of ``back`` against ``truth.msi_aligned``, away from the borders and the cloud."""
    ok = ~ndimage.binary_dilation(truth.cloud_utm, iterations=3)
    ok[:BORDER], ok[-BORDER:], ok[:, :BORDER], ok[:, -BORDER:] = False, False, False, False
    ok &= np.isfinite(back).all(axis=0)
    assert ok.sum() > 0.6 * ok.size
    ref = truth.msi_aligned[:, ok]
    return np.sqrt(((back[:, ok] - ref) ** 2).mean(axis=1)) / ref.mean(axis=1)


def test_pair_is_written_with_the_documented_truth(pair):
    t = pair.truth
    assert pair.enmap.is_dir() and (pair.enmap / f"{pair.enmap.name}-METADATA.XML").is_file()
    assert pair.sentinel2.name.endswith(".SAFE") and (pair.sentinel2 / "MTD_MSIL2A.xml").is_file()
    assert t.reference.shape == (198, 99, 99) and t.reference_wavelengths.shape == (198,)
    assert t.hsi.shape == (195, 33, 33)
    assert t.hsi_wavelengths.min() >= 420.0 and t.hsi_wavelengths.max() <= 2450.0
    np.testing.assert_array_equal(t.hsi_wavelengths, t.reference_wavelengths[t.hsi_band_index])
    assert t.msi_aligned.shape == (10, 99, 99) and t.msi_bands == list(e2e.MSI_BANDS)
    np.testing.assert_allclose(t.srf.sum(axis=1), 1.0)
    np.testing.assert_allclose(t.msi_aligned, np.einsum("mb,bhw->mhw", t.srf, t.reference))
    assert t.cloud_utm.shape == (99, 99) and t.cloud_utm.dtype == bool and 0.04 < t.cloud_utm.mean() < 0.12
    assert abs(t.cloud_msi.sum() / t.msi_valid.sum() - e2e.CLOUD_FRACTION) < 0.01
    assert t.shift_hsi_px == (0.3, -0.4)
    # grids: the HSI shares the reference's upper-left corner; the MSI content is the reference grid moved
    # 30 dx east and 30 dy south
    assert t.hr_transform[2::3] == t.hsi_transform[2::3] == e2e.UTM_ORIGIN
    assert t.hsi_transform[0] == 30.0 and t.hr_transform[0] == 10.0
    assert t.content_transform[2] == pytest.approx(t.hr_transform[2] + 30 * 0.3)
    assert t.content_transform[5] == pytest.approx(t.hr_transform[5] - 30 * -0.4)
    lat = t.msi_transform[5]
    per_lat, per_lon = e2e._metres_per_degree(lat)
    assert t.msi_transform[0] * per_lon == pytest.approx(10.0, rel=1e-3)
    assert -t.msi_transform[4] * per_lat == pytest.approx(10.0, rel=1e-3)


def test_enmap_reads_back_the_hsi(pair):
    t = pair.truth
    p = open_enmap(pair.enmap)
    image = p.image.values
    step = 0.5 * em._gains_offsets(len(t.hsi_wavelengths))[0].max() + 1e-6
    assert image.shape == t.hsi.shape
    assert np.abs(image - t.hsi).max() <= step
    np.testing.assert_allclose(p.image["band"].values, t.hsi_wavelengths)
    assert str(p.image.rio.crs) == "EPSG:32610"
    assert tuple(p.image.rio.transform())[:6] == pytest.approx(t.hsi_transform)
    assert not p.masks["cloud"].values.any() and not p.masks["nodata"].values.any()
    vnir, swir = p.metadata["vnir_bands"], p.metadata["swir_bands"]
    assert len(vnir) + len(swir) == 195
    assert t.hsi_wavelengths[np.array(vnir) - 1].max() < 1000.0 <= t.hsi_wavelengths[np.array(swir) - 1].min()


def test_sentinel2_is_geographic_with_the_cloud_masked(pair, msi):
    t = pair.truth
    assert msi.metadata["crs"] == "EPSG:4326" and str(msi.image.rio.crs) == "EPSG:4326"
    assert tuple(msi.image.rio.transform())[:6] == pytest.approx(t.msi_transform, rel=1e-12)
    assert list(msi.image["band_name"].values) == list(e2e.MSI_BANDS)
    image = msi.image.values
    cloud = msi.masks["cloud"].values
    assert cloud[t.cloud_msi].all()  # the reader's mask covers the blob ...
    assert cloud.sum() < 1.3 * t.cloud_msi.sum()  # ... at 20 m (SCL 9), hardly more
    assert not t.cloud_msi[~t.msi_valid].any()
    ten = [list(e2e.MSI_BANDS).index(b) for b in e2e.MSI_BANDS_10M]
    np.testing.assert_allclose(image[ten][:, t.cloud_msi], e2e.CLOUD_REFLECTANCE, atol=0.5 / s2.QUANTIFICATION)
    # the 10 m bands are what was written, to the quantisation step; no data outside the swath (SCL 0)
    np.testing.assert_allclose(image[ten], t.msi[ten], atol=0.5 / s2.QUANTIFICATION + 1e-6)
    nodata = msi.masks["nodata"].values
    assert nodata[~t.msi_valid].all() and nodata[0].all() and nodata[:, 0].all()
    assert not nodata[t.msi.shape[1] // 2].all()


def test_warping_back_and_undoing_the_shift_gives_the_aligned_msi(pair, msi):
    """The shift convention: the content of UTM (x, y) is at (x + 30 dx, y - 30 dy) in the S2 product, so the S2
    image warped onto the UTM grid moved by (+30 dx, -30 dy) is R Z on the UTM grid; not undoing the shift, or
    undoing it with either sign flipped, is far worse."""
    t = pair.truth
    image = msi.image.values
    ten = np.array([b in e2e.MSI_BANDS_10M for b in e2e.MSI_BANDS])
    err = _errors(_warp_back(image, t, t.content_transform), t)
    assert err[ten].max() < 0.04  # two cubic resamplings of the 10 m bands
    assert err[~ten].max() < 0.25  # 20 m bands: 2 x 2 means, bilinear back to 10 m by the reader
    x0, y0 = t.hr_transform[2], t.hr_transform[5]
    dx, dy = 30 * t.shift_hsi_px[0], 30 * t.shift_hsi_px[1]
    for wrong in ((x0, y0), (x0 - dx, y0 + dy), (x0 + dx, y0 + dy), (x0 - dx, y0 - dy)):
        other = _errors(_warp_back(image, t, (10.0, 0.0, wrong[0], 0.0, -10.0, wrong[1])), t)
        assert np.all(other[ten] > 4 * err[ten]), wrong


def test_cloud_utm_is_the_cloud_seen_through_the_shift(pair, msi):
    t = pair.truth
    back = _warp_back(msi.masks["cloud"].values[None].astype(np.float64), t, t.content_transform, "nearest")[0]
    assert (back[t.cloud_utm] == 1).all()  # the reader's (20 m) mask covers it ...
    assert not (back[~ndimage.binary_dilation(t.cloud_utm, iterations=3)] == 1).any()  # ... hardly more


def test_script_writes_the_pair_and_truth(tmp_path, data_root):
    e2e.main([str(tmp_path), "--no-cloud", "--shift", "0", "0"])
    with np.load(tmp_path / "truth.npz") as z:
        assert z["hsi"].shape == (195, 33, 33) and not z["cloud_msi"].any()
        assert tuple(z["shift_hsi_px"]) == (0.0, 0.0) and str(z["msi_crs"]) == "EPSG:4326"
    assert len(list(tmp_path.glob("enmap/ENMAP01-*"))) == 1 and len(list(tmp_path.glob("sentinel2/*.SAFE"))) == 1


def test_generators_refuse_bad_content():
    with pytest.raises(ValueError, match="multiple of 6"):
        s2.make_sentinel2(Path("/nonexistent"), content=s2.Sentinel2Content(
            bands={"B2": np.zeros((10, 12))}, scl=np.zeros((5, 6), np.uint8), crs="EPSG:4326",
            transform=(1e-4, 0.0, -122.0, 0.0, -1e-4, 37.0)))
    with pytest.raises(ValueError, match="UTM"):
        em.scene_from_content(em.EnmapContent(np.zeros((2, 3, 3)), np.array([500.0, 600.0]), 10.0, "EPSG:4326",
                                               (30.0, 0.0, 0.0, 0.0, -30.0, 0.0)))
