"""Multispectral L2 product readers (``open_sentinel2``, ``open_landsat``) on tiny fake products in the real
layouts, written by the committed generators ``tests/fixtures/products/make_sentinel2.py`` / ``make_landsat.py``
(their docstrings name the specifications and what is simplified)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rioxarray")
rasterio = pytest.importorskip("rasterio")
ndimage = pytest.importorskip("scipy.ndimage")

from fixtures.products import make_landsat as ls  # noqa: E402
from fixtures.products import make_sentinel2 as s2  # noqa: E402

from hsfuse.errors import FileFormatError, InputError  # noqa: E402
from hsfuse.io.products import Product, open_landsat, open_sentinel2  # noqa: E402

STEP_S2 = 0.5 / s2.QUANTIFICATION + 1e-7  # half a quantisation step (+ float32 rounding)
STEP_LS = 0.5 * ls.MULT + 1e-7
S2A_CENTRES = {b[0]: b[3] for b in s2.BANDS}
S2B_CENTRES = {b[0]: b[4] for b in s2.BANDS}
DEFAULT_10 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]


@pytest.fixture(scope="module")
def s2_new(tmp_path_factory) -> Path:
    return s2.make_sentinel2(tmp_path_factory.mktemp("s2new"))  # S2A, baseline 05.10


@pytest.fixture(scope="module")
def s2_old(tmp_path_factory) -> Path:
    return s2.make_sentinel2(tmp_path_factory.mktemp("s2old"), baseline="03.00", spacecraft="Sentinel-2B")


@pytest.fixture(scope="module")
def l8(tmp_path_factory) -> Path:
    return ls.make_landsat(tmp_path_factory.mktemp("l8"), formats=("txt", "json", "xml"))


def _scl10() -> np.ndarray:
    return np.repeat(np.repeat(s2.scl(), 2, axis=0), 2, axis=1)


def _band_file(safe: Path, token: str, res: int) -> Path:
    return next(safe.glob(f"GRANULE/*/IMG_DATA/R{res}m/*_{token}_{res}m.jp2"))


# ---------------------------------------------------------------------------------------------- Sentinel-2


def test_sentinel2_is_lazy_with_named_bands_in_spectral_order(s2_new, tmp_path):
    p = open_sentinel2(s2_new, chunks=16)
    assert isinstance(p, Product) and (p.kind, p.sensor, p.level) == ("msi", "sentinel2a", "L2A")
    da = p.image
    assert hasattr(da.data, "dask") and da.dtype == np.float32 and da.dims == ("band", "y", "x")
    assert da.data.chunks == ((10,), (16, 16, 16), (16, 16, 16))  # all bands per chunk
    assert list(da.band_name.values) == DEFAULT_10
    np.testing.assert_array_equal(da.band.values, [S2A_CENTRES[b] for b in DEFAULT_10])  # the product's CENTRAL
    assert da.attrs["wavelength_units"] == "nm" and da.attrs["srf_sensor"] == "sentinel2a"
    assert all(hasattr(m.data, "dask") and m.dims == ("y", "x") and m.dtype == bool for m in p.masks.values())
    assert set(p.masks) == {"nodata", "saturated", "dark", "shadow", "water", "cloud", "cirrus", "snow"}
    json.dumps(p.metadata)  # JSON-able
    # bands asked in any order and spelling come back in spectral order
    q = open_sentinel2(s2_new / "MTD_MSIL2A.xml", bands=["B12", "b02", "B8A", "B1"])
    assert list(q.image.band_name.values) == ["B1", "B2", "B8A", "B12"]
    # nothing was read at opening: a band file removed afterwards is missed only when computed
    copy = shutil.copytree(s2_new, tmp_path / s2_new.name)
    lazy = open_sentinel2(copy)
    _band_file(copy, "B05", 20).unlink()
    assert np.isfinite(lazy.image.sel(band=S2A_CENTRES["B2"]).values[10:, 10:]).all()
    with pytest.raises(FileFormatError, match="B05_20m"):
        lazy.image.values
    # the graph pickles small (paths, not pixels) and computes the same after a round trip
    blob = pickle.dumps(p.image.data)
    assert len(blob) < 20_000
    np.testing.assert_array_equal(pickle.loads(blob).compute(), p.image.values)


@pytest.mark.parametrize("which", ["05.10", "03.00"])
def test_sentinel2_reflectance_offset_only_from_baseline_04(which, s2_new, s2_old):
    safe = s2_new if which == "05.10" else s2_old
    p = open_sentinel2(safe)
    assert p.metadata["processing_baseline"] == which
    assert p.metadata["boa_add_offset"]["B2"] == (-1000.0 if which == "05.10" else 0.0)
    assert p.sensor == ("sentinel2a" if which == "05.10" else "sentinel2b")
    centres = S2A_CENTRES if which == "05.10" else S2B_CENTRES
    np.testing.assert_array_equal(p.image.band.values, [centres[b] for b in DEFAULT_10])
    img = p.image.values
    corner = s2.nodata(10)
    for b in ("B2", "B3", "B4", "B8"):  # 10 m bands: read as stored
        got = img[DEFAULT_10.index(b)]
        np.testing.assert_allclose(got, s2.stored_reflectance(b, 10, baseline=which), rtol=0, atol=1e-7)
        truth = s2.reflectance(b, 10)
        assert np.isnan(got[corner]).all() and np.isfinite(got[~corner]).all()
        if which == "05.10":  # the offset keeps negative reflectance (dark water)
            assert (truth[~corner] < 0).any()
            assert np.abs(got[~corner] - truth[~corner]).max() <= STEP_S2
        else:  # before 04.00: no offset; negative values were clamped to DN 1
            ok = ~corner & (truth > 0)
            assert np.abs(got[ok] - truth[ok]).max() <= STEP_S2
            np.testing.assert_allclose(got[~corner & (truth < 0)], 1e-4, atol=1e-9)
    # the stored numbers differ by the offset: DN(05.10) = DN(03.00) + 1000 where nothing was clamped
    with rasterio.open(_band_file(s2_new, "B03", 10)) as a, rasterio.open(_band_file(s2_old, "B03", 10)) as b:
        new, old = a.read(1).astype(int), b.read(1).astype(int)
    ok = ~corner & (s2.reflectance("B3", 10) > 0)
    assert np.all(new[ok] - old[ok] == 1000)


def test_sentinel2_coarser_bands_are_resampled_as_documented(s2_new):
    bil = open_sentinel2(s2_new, bands=["B5", "B11", "B1"])
    near = open_sentinel2(s2_new, bands=["B5", "B11"], resampling="nearest")
    assert bil.metadata["band_files"]["B5"]["resampled"] == "bilinear x2"
    assert bil.metadata["band_resolution_m"] == {"B1": 60, "B5": 20, "B11": 20}
    for k, b in enumerate(["B5", "B11"]):
        stored = s2.stored_reflectance(b, 20)
        # bilinear at aligned pixel centres = scipy's zoom in grid mode with replicated edges
        expected = ndimage.zoom(stored, 2, order=1, mode="nearest", grid_mode=True)
        got = bil.image.values[1 + k]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7, equal_nan=True)
        truth = ndimage.zoom(s2.reflectance(b, 20), 2, order=1, mode="nearest", grid_mode=True)
        assert np.nanmax(np.abs(got - truth)) <= STEP_S2  # within the quantisation step of the known content
        np.testing.assert_allclose(near.image.values[k], np.kron(stored, np.ones((2, 2))), rtol=0, atol=1e-7,
                                   equal_nan=True)
    # B1 (60 m): factor 6 to 10 m and factor 3 to 20 m, at u = (i + 1/2) / f - 1/2 (edges replicated)
    for resolution, product in ((10, bil), (20, open_sentinel2(s2_new, resolution=20, bands=["B1"]))):
        f = 60 // resolution
        u = (np.arange(480 // resolution) + 0.5) / f - 0.5
        yy, xx = np.meshgrid(u, u, indexing="ij")
        expected = ndimage.map_coordinates(s2.stored_reflectance("B1", 60), [yy, xx], order=1, mode="nearest")
        got = product.image.sel(band=S2A_CENTRES["B1"]).values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7, equal_nan=True)


def test_sentinel2_masks_are_the_scene_classes(s2_new):
    p = open_sentinel2(s2_new)
    scl10 = _scl10()
    table = {"saturated": [1], "dark": [2], "shadow": [3], "water": [6], "cloud": [8, 9], "cirrus": [10],
             "snow": [11]}
    for name, classes in table.items():
        np.testing.assert_array_equal(p.masks[name].values, np.isin(scl10, classes), err_msg=name)
        assert p.metadata["scl_masks"][name] == classes
    nodata = p.masks["nodata"].values
    img = p.image.values
    np.testing.assert_array_equal(nodata, (scl10 == 0) | np.isnan(img).any(axis=0))
    assert nodata[:6, :6].all() and nodata[6:, 7:].sum() == 0 and nodata[7:, 6:].sum() == 0
    assert np.isnan(img[:, :6, :6]).all()
    assert p.unusable(["cloud", "cirrus"]).values.sum() == np.isin(scl10, [8, 9, 10]).sum()
    on20 = open_sentinel2(s2_new, resolution=20)
    np.testing.assert_array_equal(on20.masks["shadow"].values, s2.scl() == 3)


def test_sentinel2_grid_crs_and_20m(s2_new, tmp_path):
    p = open_sentinel2(s2_new)
    assert p.image.rio.crs.to_epsg() == 32633 and p.metadata["crs"] == "EPSG:32633"
    assert tuple(p.image.rio.transform())[:6] == (10.0, 0.0, 300000.0, 0.0, -10.0, 5700000.0)
    assert p.image.rio.resolution() == (10.0, -10.0)
    assert p.image.x.values[0] == 300005.0 and p.image.y.values[0] == 5699995.0
    assert p.masks["cloud"].x.values[0] == 300005.0
    with rasterio.open(_band_file(s2_new, "B02", 10)) as ds:  # the JPEG2000 carries the same georeferencing
        assert ds.crs.to_epsg() == 32633 and tuple(ds.transform)[:6] == tuple(p.image.rio.transform())[:6]
    q = open_sentinel2(s2_new, resolution=20)
    assert list(q.image.band_name.values) == [b for b in DEFAULT_10 if b != "B8"] and q.image.shape[1:] == (24, 24)
    assert tuple(q.image.rio.transform())[:6] == (20.0, 0.0, 300000.0, 0.0, -20.0, 5700000.0)
    assert q.metadata["band_files"]["B2"]["file_resolution_m"] == 20  # the product's own 20 m B02
    np.testing.assert_allclose(q.image.values[0], s2.stored_reflectance("B2", 20), atol=1e-7, equal_nan=True)
    with pytest.raises(InputError, match="B8A"):
        open_sentinel2(s2_new, resolution=20, bands=["B8"])
    other = s2.make_sentinel2(tmp_path, size10=12, crs="EPSG:32634", ulx=500000.0, uly=4000020.0)
    o = open_sentinel2(other)
    assert o.image.rio.crs.to_epsg() == 32634 and o.image.shape == (10, 12, 12)
    assert tuple(o.image.rio.transform())[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 4000020.0)


def _fails(error, pattern, path, **kwargs):
    with pytest.raises(error, match=pattern):
        open_sentinel2(path, **kwargs)


def test_sentinel2_errors(s2_new, tmp_path):
    _fails(FileFormatError, "not found", tmp_path / "nothing.SAFE")
    _fails(FileFormatError, "no MTD_MSIL2A.xml", tmp_path)
    _fails(InputError, "resolution", s2_new, resolution=60)
    _fails(InputError, "B10", s2_new, bands=["B10"])
    _fails(InputError, "unknown Sentinel-2 band", s2_new, bands=["B13"])
    _fails(InputError, "twice", s2_new, bands=["B2", "B02"])
    _fails(InputError, "resampling", s2_new, resampling="cubic")
    safe = Path(shutil.copytree(s2_new, tmp_path / "copy" / s2_new.name))
    mtd = safe / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    _band_file(safe, "B06", 20).unlink()
    _fails(FileFormatError, "B06_20m.*missing", safe)
    open_sentinel2(safe, bands=["B2", "B5"])  # a selection without the missing band still opens
    mtd.write_text(re.sub(r"\s*<BOA_ADD_OFFSET_VALUES_LIST>.*</BOA_ADD_OFFSET_VALUES_LIST>", "", text, flags=re.S))
    _fails(FileFormatError, "BOA_ADD_OFFSET", safe, bands=["B2"])
    mtd.write_text(text.replace("<PRODUCT_TYPE>S2MSI2A", "<PRODUCT_TYPE>S2MSI1C"))
    _fails(FileFormatError, "Level-2A", safe, bands=["B2"])
    mtd.write_text(text[: len(text) // 2])
    _fails(FileFormatError, "not valid XML", safe)
    mtd.write_text(text)
    mtl = next(safe.glob("GRANULE/*/MTD_TL.xml"))
    mtl.rename(mtl.with_suffix(".bak"))
    _fails(FileFormatError, "MTD_TL.xml", safe, bands=["B2"])
    mtl.with_suffix(".bak").rename(mtl)
    mtd.rename(safe / "MTD_MSIL1C.xml")
    _fails(FileFormatError, "Level-1C", safe)
    (safe / "MTD_MSIL1C.xml").unlink()
    _fails(FileFormatError, "no MTD_MSIL2A.xml", safe)


def test_opening_reads_no_pixels(s2_new, l8, monkeypatch):
    import rasterio.io

    reads: list[str] = []
    original = rasterio.io.DatasetReader.read

    def counting(self, *args, **kwargs):
        reads.append(Path(self.name).name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)
    s, ls8 = open_sentinel2(s2_new, bands=["B2", "B5"]), open_landsat(l8, bands=["B4"])
    assert reads == []  # headers only
    s.image[:, :8, :8].compute()
    s.masks["cloud"].compute()
    ls8.masks["cloud"].compute()
    ls8.image.compute()
    assert {r.split("_")[-2] + "_" + r.split("_")[-1] for r in reads if r.endswith(".jp2")} == \
        {"B02_10m.jp2", "B05_20m.jp2", "SCL_20m.jp2"}
    assert {r for r in reads if r.endswith(".TIF")} == {f"{l8.name}_SR_B4.TIF", f"{l8.name}_QA_PIXEL.TIF"}


# ---------------------------------------------------------------------------------------------- Landsat


def test_landsat_reflectance_and_grid(l8):
    p = open_landsat(l8, chunks=16)
    assert (p.kind, p.sensor, p.level) == ("msi", "landsat8", "L2SP")
    da = p.image
    assert hasattr(da.data, "dask") and da.dtype == np.float32 and da.data.chunks == ((7,), (16, 16, 8), (16, 16, 8))
    assert list(da.band_name.values) == list(ls.BANDS) and list(da.band.values) == list(range(7))
    assert "wavelength_units" not in da.attrs and da.attrs["srf_sensor"] == "landsat8"
    json.dumps(p.metadata)
    img = da.values
    fill = ls.fill()
    for k, b in enumerate(ls.BANDS):
        np.testing.assert_allclose(img[k], ls.stored_reflectance(b), rtol=0, atol=1e-7, equal_nan=True)
        assert np.isnan(img[k][fill]).all()
        assert np.abs(img[k][~fill] - ls.reflectance(b)[~fill]).max() <= STEP_LS
    # the Level-2 group's factors, not the Level-1 group's (same key names)
    assert p.metadata["reflectance_mult"]["B4"] == 2.75e-05 and p.metadata["reflectance_add"]["B4"] == -0.2
    assert da.rio.crs.to_epsg() == 32633
    assert tuple(da.rio.transform())[:6] == (30.0, 0.0, 399960.0, 0.0, -30.0, 5700000.0)
    assert da.x.values[0] == 399975.0  # = CORNER_UL_PROJECTION_X_PRODUCT: pixel centres (PixelIsPoint files)
    # the three MTL forms read the same; any band selection comes back in spectral order
    for suffix in ("json", "xml"):
        q = open_landsat(next(l8.glob(f"*_MTL.{suffix}")), bands=["SR_B5", "B2"])
        assert list(q.image.band_name.values) == ["B2", "B5"]
        np.testing.assert_array_equal(q.image.values, img[[1, 4]])


def test_landsat_masks_are_the_qa_pixel_bits(l8):
    p = open_landsat(l8)
    qa = ls.qa_pixel()
    for name, bit in {"dilated_cloud": 1, "cirrus": 2, "cloud": 3, "shadow": 4, "snow": 5, "water": 7}.items():
        expected = (qa >> bit) & 1 == 1
        assert expected.any(), name
        np.testing.assert_array_equal(p.masks[name].values, expected, err_msg=name)
    np.testing.assert_array_equal(p.masks["nodata"].values, ls.fill())
    np.testing.assert_array_equal(p.masks["cloud"].values, np.isin(qa, [22280, 55052]))


def test_landsat9_and_errors(tmp_path):
    l9 = ls.make_landsat(tmp_path / "nine", spacecraft="LANDSAT_9", size=20, seed=3)
    p = open_landsat(l9)
    assert p.sensor == "landsat9" and p.image.attrs["srf_sensor"] == "landsat9" and p.image.shape == (7, 20, 20)
    np.testing.assert_allclose(p.image.values[6], ls.stored_reflectance("B7", size=20, seed=3), atol=1e-7,
                               equal_nan=True)

    def fails(error, pattern, path, **kwargs):
        with pytest.raises(error, match=pattern):
            open_landsat(path, **kwargs)

    fails(FileFormatError, "not found", tmp_path / "missing")
    fails(FileFormatError, "no \\*_MTL.txt", tmp_path)
    fails(InputError, "Level-1 only", l9, bands=["B8"])
    fails(InputError, "unknown Landsat", l9, bands=["B0"])
    mtl = next(l9.glob("*_MTL.txt"))
    text = mtl.read_text()
    mtl.write_text(text.replace('PROCESSING_LEVEL = "L2SP"', 'PROCESSING_LEVEL = "L1TP"', 1))
    fails(FileFormatError, "Level-2", l9)
    mtl.write_text(text.replace("    REFLECTANCE_MULT_BAND_3 = 2.75e-05\n", ""))
    fails(FileFormatError, "REFLECTANCE_MULT_BAND_3", l9)
    mtl.write_text(text.replace("  END_GROUP = IMAGE_ATTRIBUTES\n", ""))
    fails(FileFormatError, "END_GROUP", l9)
    mtl.write_text(text)
    band3 = next(l9.glob("*_SR_B3.TIF"))
    with rasterio.open(band3) as ds:
        profile, data = ds.profile, ds.read(1)
    band3.unlink()
    fails(FileFormatError, "SR_B3.TIF.*missing", l9)
    open_landsat(l9, bands=["B1", "B2"])  # the bands that are there still open
    profile.update(driver="GTiff", transform=rasterio.Affine(30.0, 0.0, 400000.0, 0.0, -30.0, 5700000.0))
    with rasterio.open(band3, "w", **profile) as ds:
        ds.write(data, 1)
    fails(FileFormatError, "another grid", l9)
