"""GeoTIFF reading and writing.

Independent sources: rasterio/GDAL reading our files directly (bands-first layout, tags), GDAL's own ENVI ->
GTiff conversion (``rasterio.shutil.copy``) for the metadata other tools write, and tifffile for a plain
16-bit RGB TIFF.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import tifffile

from hsfuse.errors import FileFormatError, InputError, OutputExistsError
from hsfuse.io.envi import write_envi
from hsfuse.io.geotiff import read_geotiff, write_geotiff
from hsfuse.types import Cube, GeoInfo

RNG = np.random.default_rng(5)
GEO = GeoInfo("EPSG:32615", (30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, dtype):
    data = (RNG.random((5, 7, 4)) * 100).astype(dtype)
    cube = Cube(
        data,
        wavelengths=[450.5, 550.0, 650.0, 700.125],
        fwhm=[10.0, 11.0, 12.0, 13.0],
        band_names=["a", "b c", "d", "e,f"],
        nodata=0.0,
        units="reflectance",
        geo=GEO,
    )
    write_geotiff(cube, tmp_path / "a.tif")
    back = read_geotiff(tmp_path / "a.tif")
    np.testing.assert_array_equal(back.data, data)
    assert back.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.wavelengths, cube.wavelengths)
    np.testing.assert_array_equal(back.fwhm, cube.fwhm)
    assert back.band_names == cube.band_names and back.nodata == 0.0 and back.units == "reflectance"
    assert back.geo == GEO
    assert os.listdir(tmp_path) == ["a.tif"]


def test_on_disk_layout_and_tags(tmp_path):
    data = RNG.random((5, 7, 3)).astype(np.float32)
    write_geotiff(Cube(data, wavelengths=[400.0, 500.0, 600.0], fwhm=[5.0, 6.0, 7.0], geo=GEO), tmp_path / "a.tif")
    with rasterio.open(tmp_path / "a.tif") as src:
        assert (src.count, src.height, src.width) == (3, 5, 7)
        np.testing.assert_array_equal(src.read(2), data[:, :, 1])  # band 2 of the file is cube[..., 1]
        assert src.crs.to_epsg() == 32615 and tuple(src.transform)[:6] == GEO.transform
        assert src.tags()["wavelength_units"] == "nm"
        assert float(src.tags(3)["wavelength"]) == 600.0 and float(src.tags(3)["fwhm"]) == 7.0


def test_metadata_from_gdal_envi_conversion(tmp_path):
    # an ENVI file in micrometres, converted to GeoTIFF by GDAL itself: the wavelengths survive as GDAL writes them
    data = RNG.integers(0, 1000, (4, 6, 3)).astype(np.uint16)
    hdr = tmp_path / "e.hdr"
    write_envi(Cube(data, wavelengths=[500.0, 600.0, 700.0], fwhm=[10.0, 20.0, 30.0], geo=GEO), hdr)
    text = hdr.read_text().replace("wavelength = { 500.0 , 600.0 , 700.0 }", "wavelength = { 0.5 , 0.6 , 0.7 }")
    text = text.replace("fwhm = { 10.0 , 20.0 , 30.0 }", "fwhm = { 0.01 , 0.02 , 0.03 }")
    hdr.write_text(text.replace("wavelength units = Nanometers", "wavelength units = Micrometers"))
    rasterio.shutil.copy(str(tmp_path / "e.img"), str(tmp_path / "g.tif"), driver="GTiff")
    back = read_geotiff(tmp_path / "g.tif")
    np.testing.assert_array_equal(back.data, data)
    np.testing.assert_allclose(back.wavelengths, [500.0, 600.0, 700.0])
    assert back.geo.crs == "EPSG:32615"


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_imagery_domain(tmp_path):
    data = RNG.random((4, 5, 2)).astype(np.float32)
    with rasterio.open(tmp_path / "i.tif", "w", driver="GTiff", width=5, height=4, count=2, dtype="float32") as dst:
        dst.write(np.moveaxis(data, 2, 0))
        for i, (wl, fw) in enumerate([(0.45, 0.02), (0.55, 0.03)], start=1):
            dst.update_tags(i, ns="IMAGERY", CENTRAL_WAVELENGTH_UM=str(wl), FWHM_UM=str(fw))
    back = read_geotiff(tmp_path / "i.tif")
    np.testing.assert_allclose(back.wavelengths, [450.0, 550.0])
    np.testing.assert_allclose(back.fwhm, [20.0, 30.0])
    assert back.geo is None


def test_plain_tiffs(tmp_path):
    rgb = RNG.integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", rgb, photometric="rgb")
    back = read_geotiff(tmp_path / "p.tif")
    np.testing.assert_array_equal(back.data, rgb)
    assert back.geo is None and back.band_names == ["R", "G", "B"] and back.wavelengths is None
    # a 3-band cube we write is not tagged as a colour photo unless its bands are named R, G, B
    write_geotiff(Cube(rgb), tmp_path / "q.tif")
    assert read_geotiff(tmp_path / "q.tif").band_names is None
    write_geotiff(Cube(rgb, band_names=["R", "G", "B"]), tmp_path / "r.tif")
    assert read_geotiff(tmp_path / "r.tif").band_names == ["R", "G", "B"]


def test_errors(tmp_path):
    cube = Cube(RNG.random((16, 16, 3)).astype(np.float32), geo=GEO)
    write_geotiff(cube, tmp_path / "t.tif", compress=None)
    with pytest.raises(OutputExistsError):
        write_geotiff(cube, tmp_path / "t.tif")
    raw = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="t.tif"):
        read_geotiff(tmp_path / "t.tif")
    (tmp_path / "g.tif").write_bytes(b"II*\0garbage")
    with pytest.raises(FileFormatError, match="g.tif"):
        read_geotiff(tmp_path / "g.tif")
    with pytest.raises(InputError, match="CRS"):
        write_geotiff(cube.replace(geo=GeoInfo("not a crs", None)), tmp_path / "c.tif")
    assert sorted(os.listdir(tmp_path)) == ["g.tif", "t.tif"]
