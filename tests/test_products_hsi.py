"""Readers of spaceborne hyperspectral L2 products: EnMAP L2A, PRISMA L2D, EMIT L2A, DESIS L2A.

Independent sources: the fake products of ``tests/fixtures/products/make_*.py`` (written with rasterio, h5py,
h5netcdf and xml.etree, nothing from hsfuse) and their ``scene_*`` functions (the known reflectance before
quantisation, band centres, FWHM, masks and grid); for EMIT, the GLT gather recomputed here with NumPy from the raw
file; for laziness, counts of the pixel reads rasterio and h5py make while a product is opened.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil

import dask.array as dsa
import h5py
import numpy as np
import pytest
import rasterio
from fixtures.products.make_desis import make_desis, scene_desis
from fixtures.products.make_emit import MASK_NAME, make_emit, scene_emit
from fixtures.products.make_enmap import make_enmap, scene_enmap
from fixtures.products.make_prisma import make_prisma, scene_prisma

from hsfuse.errors import FileFormatError, InputError
from hsfuse.io.products import Product, open_desis, open_emit, open_enmap, open_prisma

CHUNKS = (8, 10)


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    root = tmp_path_factory.mktemp("hsi_products")
    return {
        "enmap": make_enmap(root / "enmap"),
        "enmap_envi": make_enmap(root / "enmap_envi", fmt="ENVI"),
        "prisma": make_prisma(root / "prisma"),
        "emit": make_emit(root / "emit"),
        "desis": make_desis(root / "desis"),
    }


@contextlib.contextmanager
def count_pixel_reads(monkeypatch):
    """Count rasterio window reads and h5py reads of datasets larger than 1000 values (pixel data, not metadata)."""
    counts = {"rasterio": 0, "h5py": 0}
    read, getitem = rasterio.io.DatasetReader.read, h5py.Dataset.__getitem__

    def counting_read(self, *args, **kwargs):
        counts["rasterio"] += 1
        return read(self, *args, **kwargs)

    def counting_getitem(self, key, *args, **kwargs):
        if self.size > 1000:
            counts["h5py"] += 1
        return getitem(self, key, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting_read)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting_getitem)
    yield counts


def open_lazily(monkeypatch, opener, path, *, backend: str | None) -> Product:
    """``opener(path, chunks=CHUNKS)``, checked to read no pixel when opening and to read pixels (through ``backend``,
    rasterio or h5py; ``None``: memory-mapped, not counted) when a window is computed."""
    with count_pixel_reads(monkeypatch) as reads:
        product = opener(path, chunks=CHUNKS)
        assert reads == {"rasterio": 0, "h5py": 0}, "opening read pixels"
        product.image[:, :8, :10].compute()
        assert backend is None or reads[backend] > 0
    return product


def assert_lazy(product: Product, bands: int, shape: tuple[int, int], chunks: tuple[int, int]) -> None:
    image = product.image
    assert isinstance(image.data, dsa.Array)
    assert image.dims == ("band", "y", "x") and image.dtype == np.float32
    assert image.shape == (bands, *shape)
    assert image.data.chunks[0] == (bands,)
    assert image.data.chunks[1][0] == min(chunks[0], shape[0]) and image.data.chunks[2][0] == min(chunks[1], shape[1])
    assert product.kind == "hsi" and image.attrs["wavelength_units"] == "nm" and image.attrs["units"] == "reflectance"
    assert len(image.coords["band_name"]) == bands
    json.dumps(product.metadata)  # JSON-able
    for name, mask in product.masks.items():
        assert mask.name == name and mask.dims == ("y", "x") and mask.dtype == bool
        assert isinstance(mask.data, dsa.Array)
        assert mask.data.chunks == image.data.chunks[1:]
        np.testing.assert_array_equal(mask.coords["x"].values, image.coords["x"].values)


def assert_masks(product: Product, expected: dict[str, np.ndarray]) -> None:
    assert set(product.masks) == set(expected)
    for name, truth in expected.items():
        np.testing.assert_array_equal(product.masks[name].values, truth, err_msg=name)
    union = np.logical_or.reduce(list(expected.values()))
    np.testing.assert_array_equal(product.unusable().values, union)


def assert_reflectance(image, truth: np.ndarray, steps: np.ndarray) -> None:
    """Equal to the generator's cube within half a quantisation step (plus float32 rounding); NaN where it is NaN."""
    values = image.values
    np.testing.assert_array_equal(np.isnan(values), np.isnan(truth))
    err = np.abs(values - truth)
    assert np.all(err[~np.isnan(truth)] <= (np.broadcast_to(steps[:, None, None], truth.shape)[~np.isnan(truth)]
                                            * 0.5 + 1e-6))


def assert_grid(image, crs: str, transform: tuple[float, ...]) -> None:
    assert image.rio.crs.to_string() == crs
    assert tuple(image.rio.transform())[:6] == pytest.approx(transform, abs=1e-9)
    a, _, c, _, e, f = transform
    np.testing.assert_allclose(image.coords["x"].values, c + a * (np.arange(image.shape[2]) + 0.5))
    np.testing.assert_allclose(image.coords["y"].values, f + e * (np.arange(image.shape[1]) + 0.5))


# ---------------------------------------------------------------------------------------------- EnMAP


@pytest.mark.parametrize("variant", ["enmap", "enmap_envi"])
def test_enmap_l2a(products, variant, monkeypatch):
    sc = scene_enmap()
    # ENVI rasters are memory-mapped (no counted reads)
    product = open_lazily(monkeypatch, open_enmap, products[variant],
                          backend=None if variant == "enmap_envi" else "rasterio")
    assert (product.sensor, product.level) == ("enmap", "L2A")
    assert_lazy(product, len(sc.wavelengths), sc.dn.shape[1:], CHUNKS)
    image = product.image
    np.testing.assert_array_equal(image.coords["band"].values, sc.wavelengths)
    assert np.all(np.diff(image.coords["band"].values) > 0)
    np.testing.assert_array_equal(image.coords["fwhm"].values, sc.fwhm)
    assert_reflectance(image, sc.reflectance, sc.gains)
    assert np.isnan(image.values[sc.bad_band]).all()  # the product's empty band stays, all NaN
    assert_masks(product, sc.masks)
    assert_grid(image, sc.crs, sc.transform)
    md = product.metadata
    assert md["vnir_bands"] == sc.vnir_bands and md["swir_bands"] == sc.swir_bands
    assert md["gains"] == pytest.approx(sc.gains.tolist()) and md["nodata_value"] == -32768
    assert "enmap L2A" in product.describe()


def test_enmap_accepts_metadata_file_member_file_and_parent_folder(products):
    folder = products["enmap"]
    meta = next(folder.glob("*-METADATA.XML"))
    for path in (meta, next(folder.glob("*-SPECTRAL_IMAGE.TIF")), folder.parent):
        assert open_enmap(path).image.shape == open_enmap(folder).image.shape


def test_enmap_errors(products, tmp_path):
    bad = tmp_path / "p"
    shutil.copytree(products["enmap"], bad)
    meta = next(bad.glob("*-METADATA.XML"))
    spectral = next(bad.glob("*-SPECTRAL_IMAGE.TIF"))
    text = meta.read_text()
    # wrong product type: an L1B product's metadata
    meta.write_text(text.replace("<level>L2A</level>", "<level>L1B</level>"))
    with pytest.raises(FileFormatError, match="EnMAP L1B product; open_enmap reads L2A"):
        open_enmap(bad)
    # truncated metadata
    meta.write_text(text[: len(text) // 2])
    with pytest.raises(FileFormatError, match="could not parse .*truncated"):
        open_enmap(bad)
    meta.write_text(text)
    # truncated spectral image
    data = spectral.read_bytes()
    spectral.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(FileFormatError, match="truncated"):
        open_enmap(bad)
    spectral.write_bytes(data)
    # missing metadata
    meta.unlink()
    with pytest.raises(FileFormatError, match=r"no EnMAP metadata file \(ENMAP\*-METADATA.XML\)"):
        open_enmap(bad)
    # a DESIS product is not EnMAP; bad chunks
    with pytest.raises(FileFormatError, match="no EnMAP metadata"):
        open_enmap(products["desis"])
    with pytest.raises(InputError, match="chunks"):
        open_enmap(products["enmap"], chunks=0)
    with pytest.raises(FileFormatError, match="not found"):
        open_enmap(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------- PRISMA


def test_prisma_l2d(products, monkeypatch):
    sc = scene_prisma()
    product = open_lazily(monkeypatch, open_prisma, products["prisma"], backend="h5py")
    assert (product.sensor, product.level) == ("prisma", "L2D")
    rows, _, cols = sc.dn["Vnir"].shape
    assert_lazy(product, len(sc.wavelengths), (rows, cols), CHUNKS)
    image = product.image
    np.testing.assert_allclose(image.coords["band"].values, sc.wavelengths, rtol=1e-6)
    np.testing.assert_allclose(image.coords["fwhm"].values, sc.fwhm, rtol=1e-6)
    assert_reflectance(image, sc.reflectance, sc.steps)
    assert_masks(product, sc.masks)
    assert_grid(image, f"EPSG:{sc.epsg}", sc.transform)


def test_prisma_band_selection_and_overlap_rule(products):
    sc = scene_prisma()
    product = open_prisma(products["prisma"])
    wl = product.image.coords["band"].values
    names = [str(n) for n in product.image.coords["band_name"].values]
    vnir = np.array([n.startswith("VNIR") for n in names])
    first_swir = sc.cw["Swir"][sc.flags["Swir"] == 1].min()
    assert np.all(np.diff(wl) > 0)  # sorted by wavelength
    assert wl[vnir].max() < first_swir <= wl[~vnir].min()  # VNIR only below the first SWIR band
    np.testing.assert_allclose(sorted(product.metadata["dropped_bands"]["vnir_overlap_nm"]), sc.overlap_dropped,
                               rtol=1e-6)
    assert not np.any(np.isin(wl, [0.0]))  # flagged (zero) bands are gone
    # stored (decreasing) band index k of a detector is named "<DET>_k": its centre is List_Cw at k
    for name, centre in zip(names, wl):
        det, k = name.split("_")
        assert sc.cw[det.title()][int(k) - 1] == pytest.approx(centre, rel=1e-6)
    assert product.metadata["dropped_bands"]["swir_flagged"] == [1, 2]  # written at the start (longest first)
    assert product.image.data.chunks[1:] == ((24,), (20,))  # chunks=None: contiguous HDF5 -> one capped block


def test_prisma_errors(products, tmp_path):
    with pytest.raises(FileFormatError, match=r"another level \(swaths PRS_L2C_HCO\)"):
        open_prisma(make_prisma(tmp_path / "l2c", level="L2C"))
    data = products["prisma"].read_bytes()
    cut = tmp_path / "cut.he5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="could not read .*cut.he5"):
        open_prisma(cut)
    with h5py.File(tmp_path / "other.he5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(FileFormatError, match="not a PRISMA product: it has no HDFEOS/SWATHS"):
        open_prisma(tmp_path / "other.he5")
    no_attr = tmp_path / "noattr"
    no_attr.mkdir()
    shutil.copy(products["prisma"], no_attr / products["prisma"].name)
    with h5py.File(no_attr / products["prisma"].name, "a") as f:
        del f.attrs["List_Cw_Swir"]
    with pytest.raises(FileFormatError, match="root attribute List_Cw_Swir missing"):
        open_prisma(no_attr)  # a folder with one .he5
    product = open_prisma(make_prisma(tmp_path / "nocloud", cloud_mask=False))
    assert list(product.masks) == ["nodata"]
    with pytest.raises(InputError, match="chunks"):
        open_prisma(products["prisma"], chunks=(8, -1))


# ---------------------------------------------------------------------------------------------- EMIT


def test_emit_l2a_orthorectified_through_the_glt(products, monkeypatch):
    sc = scene_emit()
    product = open_lazily(monkeypatch, open_emit, products["emit"], backend="h5py")
    assert (product.sensor, product.level) == ("emit", "L2A")
    good = sc.good == 1
    assert_lazy(product, int(good.sum()), sc.glt_x.shape, CHUNKS)
    image = product.image
    np.testing.assert_allclose(image.coords["band"].values, sc.wavelengths[good], rtol=1e-6)
    np.testing.assert_allclose(image.coords["fwhm"].values, sc.fwhm[good], rtol=1e-6)
    # the GLT gather, recomputed with NumPy from the file itself
    with h5py.File(products["emit"], "r") as f:
        swath = f["reflectance"][()]
        gx, gy = f["location/glt_x"][()], f["location/glt_y"][()]
        keep = f["sensor_band_parameters/good_wavelengths"][()] == 1
    expected = np.full((int(keep.sum()),) + gx.shape, np.nan, np.float32)
    for i in range(gx.shape[0]):
        for j in range(gx.shape[1]):
            if gx[i, j] > 0 and gy[i, j] > 0:
                spectrum = swath[gy[i, j] - 1, gx[i, j] - 1][keep]
                expected[:, i, j] = np.where(spectrum == -9999, np.nan, spectrum)
    values = image.values
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_allclose(values, sc.ortho, atol=1e-6)  # and the generator's closed form
    # the graph travels without the data (distributed workers reopen the file)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(image)).values, values)
    # swath windows read in row strips when a chunk's window is large: same pixels
    monkeypatch.setattr("hsfuse.io.products.emit._WINDOW_BYTES", 3 * 16 * 36 * 4)
    np.testing.assert_array_equal(open_emit(products["emit"], chunks=CHUNKS).image.values, values)
    assert_masks(product, sc.masks)
    a, _, c, _, e, f = (sc.geotransform[1], 0, sc.geotransform[0], 0, sc.geotransform[5], sc.geotransform[3])
    assert_grid(image, "EPSG:4326", (a, 0.0, c, 0.0, e, f))
    md = product.metadata
    assert md["dropped_bands_nm"] == pytest.approx(sc.wavelengths[~good].tolist(), rel=1e-6)
    assert "good_wavelengths == 0" in md["dropped_bands_note"] and md["files"]["mask"] == MASK_NAME


def test_emit_mask_file_options_and_errors(products, tmp_path):
    sc = scene_emit()
    assert list(open_emit(products["emit"], mask_file=False).masks) == ["nodata"]
    explicit = open_emit(products["emit"], mask_file=products["emit"].with_name(MASK_NAME))
    np.testing.assert_array_equal(explicit.masks["cloud"].values, sc.masks["cloud"])
    # a granule without its mask file beside it, opened through its folder
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(products["emit"], alone)
    assert list(open_emit(alone).masks) == ["nodata"]
    assert open_emit(alone).image.data.chunks[1:] == ((sc.glt_x.shape[0],), (sc.glt_x.shape[1],))
    # wrong product type: the mask file itself
    with pytest.raises(FileFormatError, match="is an EMIT L2A mask file; open the EMIT_L2A_RFL"):
        open_emit(products["emit"].with_name(MASK_NAME))
    with pytest.raises(FileFormatError, match="belongs to another granule"):
        open_emit(products["emit"], mask_file=make_emit(tmp_path / "small", downtrack=12, crosstrack=10)
                  .with_name(MASK_NAME))
    data = products["emit"].read_bytes()
    cut = tmp_path / products["emit"].name
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match="could not read"):
        open_emit(cut, mask_file=False)
    with pytest.raises(InputError, match="mask_file"):
        open_emit(products["emit"], mask_file=3)
    with pytest.raises(FileFormatError, match="mask file .* not found"):
        open_emit(products["emit"], mask_file=tmp_path / "none.nc")


# ---------------------------------------------------------------------------------------------- DESIS


def test_desis_l2a(products, monkeypatch):
    sc = scene_desis()
    product = open_lazily(monkeypatch, open_desis, products["desis"], backend="rasterio")
    assert (product.sensor, product.level) == ("desis", "L2A")
    assert_lazy(product, len(sc.wavelengths), sc.dn.shape[1:], CHUNKS)
    image = product.image
    np.testing.assert_array_equal(image.coords["band"].values, sc.wavelengths)
    np.testing.assert_array_equal(image.coords["fwhm"].values, sc.fwhm)
    assert_reflectance(image, sc.reflectance, sc.gains)
    assert_masks(product, sc.masks)
    assert_grid(image, sc.crs, sc.transform)


def test_desis_older_quality_name_and_errors(tmp_path):
    sc = scene_desis()
    product = open_desis(make_desis(tmp_path / "old", quality_name="QL_QUALITY"))
    assert_masks(product, sc.masks)
    with pytest.raises(FileFormatError, match="DESIS L1C product; open_desis reads L2A"):
        open_desis(make_desis(tmp_path / "l1c", level="L1C"))
    folder = make_desis(tmp_path / "broken")
    meta = next(folder.glob("*-METADATA.xml"))
    text = meta.read_text()
    meta.write_text(text.replace("<gainOfBand>", "<gain>").replace("</gainOfBand>", "</gain>"))
    with pytest.raises(FileFormatError, match="<gainOfBand> missing in band 1"):
        open_desis(folder)
    meta.write_text(text[:200])
    with pytest.raises(FileFormatError, match="could not parse"):
        open_desis(folder)
    meta.unlink()
    with pytest.raises(FileFormatError, match="no DESIS metadata file"):
        open_desis(folder)
