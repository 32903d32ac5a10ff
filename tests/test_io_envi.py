"""ENVI .hdr/.img reading and writing.

Independent sources: a header + raw file written by hand in the test (big-endian BIL with a header offset),
transforms computed by hand from the ENVI map-info definition, GDAL's ENVI driver (via rasterio) reading the
same files, and spectral's own header parser reading what we write.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from spectral.io import envi as spy_envi

from hsfuse.errors import FileFormatError, InputError, OutputExistsError
from hsfuse.io.envi import format_map_info, parse_map_info, read_envi, write_envi
from hsfuse.types import Cube, GeoInfo

RNG = np.random.default_rng(3)


def _gdal(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return np.moveaxis(src.read(), 0, 2), src.crs, tuple(src.transform)[:6], src.nodata


def _hand_file(tmp_path, map_info: str, extra: str = "") -> tuple[np.ndarray, os.PathLike]:
    data = RNG.integers(-300, 300, (3, 4, 2)).astype(np.int16)  # lines 3, samples 4, bands 2
    header = (
        "ENVI\nsamples = 4\nlines = 3\nbands = 2\nheader offset = 16\nfile type = ENVI Standard\n"
        "data type = 2\ninterleave = bil\nbyte order = 1\nwavelength units = Micrometers\n"
        "wavelength = {0.5, 0.6}\nfwhm = {0.01, 0.02}\nband names = {first, second}\n"
        f"data ignore value = -1\nmap info = {map_info}\n{extra}"
    )
    (tmp_path / "h.hdr").write_text(header)
    bil = np.ascontiguousarray(np.moveaxis(data, 2, 1))  # (lines, bands, samples)
    (tmp_path / "h.img").write_bytes(b"\0" * 16 + bil.astype(">i2").tobytes())
    return data, tmp_path / "h.img"


def test_hand_written_big_endian_bil_file(tmp_path):
    data, img = _hand_file(tmp_path, "{UTM, 1.5, 2.5, 600000.0, 4100000.0, 10.0, 10.0, 32, South, WGS-84, units=Meters}")
    cube = read_envi(tmp_path / "h.hdr")
    np.testing.assert_array_equal(cube.data, data)
    assert cube.data.dtype == np.int16 and cube.data.dtype.isnative
    np.testing.assert_allclose(cube.wavelengths, [500.0, 600.0])  # micrometres -> nm
    np.testing.assert_allclose(cube.fwhm, [10.0, 20.0])
    assert cube.band_names == ["first", "second"] and cube.nodata == -1.0
    # by hand: the corner of 1-based pixel (1.5, 2.5) is (600000, 4100000); pixels are 10 m
    assert cube.geo.crs == "EPSG:32732"  # UTM 32 South, WGS-84
    assert cube.geo.transform == (10.0, 0.0, 599995.0, 0.0, -10.0, 4100015.0)
    gdal_data, gdal_crs, gdal_transform, _ = _gdal(img)
    np.testing.assert_array_equal(gdal_data, data)
    assert gdal_crs.to_epsg() == 32732
    np.testing.assert_allclose(cube.geo.transform, gdal_transform)
    assert read_envi(img).shape == (3, 4, 2)  # the data file's path works too


def test_rotated_map_info_matches_gdal(tmp_path):
    _, img = _hand_file(
        tmp_path, "{UTM, 1, 1, 500000.0, 4000000.0, 10.0, 10.0, 15, North, WGS-84, units=Meters, rotation=30.0}"
    )
    cube = read_envi(img)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    np.testing.assert_allclose(cube.geo.transform, (10 * c, 10 * s, 500000.0, 10 * s, -10 * c, 4000000.0))
    np.testing.assert_allclose(cube.geo.transform, _gdal(img)[2])
    fields, _ = format_map_info(cube.geo)
    assert fields is not None and float(fields[-1].split("=")[1]) == pytest.approx(30.0)


def test_unknown_projection_kept_in_attrs(tmp_path):
    _, img = _hand_file(tmp_path, "{State Plane (NAD 83), 1, 1, 100.0, 200.0, 2.0, 2.0, units=Feet}")
    cube = read_envi(img)
    assert cube.geo.crs is None and cube.geo.transform == (2.0, 0.0, 100.0, 0.0, -2.0, 200.0)
    assert "State Plane (NAD 83)" in cube.attrs["envi_map_info"] and "geo_note" in cube.attrs


def test_unsorted_wavelengths_kept_in_attrs_with_warning(tmp_path):
    _, img = _hand_file(tmp_path, "{Arbitrary, 1, 1, 0, 0, 1, 1}")
    hdr = tmp_path / "h.hdr"
    hdr.write_text(hdr.read_text().replace("wavelength = {0.5, 0.6}", "wavelength = {0.6, 0.5}"))
    with pytest.warns(UserWarning, match="strictly increasing"):
        cube = read_envi(img)
    assert cube.wavelengths is None and cube.attrs["wavelengths_nm_unusable"] == pytest.approx([600.0, 500.0])


def test_parse_map_info_geographic():
    geo, note = parse_map_info("{Geographic Lat/Lon, 1, 1, -93.5, 45.25, 0.001, 0.002, WGS-84, units=Degrees}")
    assert note == "" and geo.crs == "EPSG:4326" and geo.transform == (0.001, 0.0, -93.5, 0.0, -0.002, 45.25)
    assert parse_map_info("{UTM, 1, 1}")[0] is None


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32, np.float64])
def test_round_trip(tmp_path, interleave, dtype):
    data = (RNG.random((5, 7, 3)) * 200).astype(dtype)
    cube = Cube(
        data,
        wavelengths=[450.5, 550.0, 650.0],
        fwhm=[10.0, 11.0, 12.5],
        band_names=["a", "b c", "d"],
        nodata=0.0,
        units="DN",
        geo=GeoInfo("EPSG:32615", (30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0)),
    )
    hdr = write_envi(cube, tmp_path / "o.hdr", interleave=interleave)
    assert sorted(os.listdir(tmp_path)) == ["o.hdr", "o.img"]
    back = read_envi(hdr)
    np.testing.assert_array_equal(back.data, data)
    assert back.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.wavelengths, cube.wavelengths)
    np.testing.assert_array_equal(back.fwhm, cube.fwhm)
    assert back.band_names == cube.band_names and back.nodata == 0.0 and back.units == "DN"
    assert back.geo == cube.geo
    assert back.attrs["interleave"] == interleave


def test_written_file_read_by_gdal_and_spectral(tmp_path):
    data = RNG.random((5, 7, 3)).astype(np.float32)
    geo = GeoInfo("EPSG:3857", (10.0, 0.0, 12.5, 0.0, -10.0, 45.0))
    write_envi(Cube(data, wavelengths=[400.0, 500.0, 600.0], nodata=-9999.0, geo=geo), tmp_path / "o.img")
    gdal_data, gdal_crs, gdal_transform, gdal_nodata = _gdal(tmp_path / "o.img")
    np.testing.assert_array_equal(gdal_data, data)
    assert gdal_crs.to_epsg() == 3857 and gdal_transform == pytest.approx(geo.transform) and gdal_nodata == -9999.0
    md = spy_envi.read_envi_header(str(tmp_path / "o.hdr"))
    assert md["wavelength units"] == "Nanometers" and [float(v) for v in md["wavelength"]] == [400.0, 500.0, 600.0]
    assert read_envi(tmp_path / "o.hdr").geo == geo  # "Arbitrary" map info + WKT read back as the EPSG code


def test_map_info_round_trip_without_crs(tmp_path):
    geo = GeoInfo(None, (2.0, 0.0, 1.0, 0.0, -2.0, 9.0))
    write_envi(Cube(np.ones((2, 3, 1), np.float32), geo=geo), tmp_path / "a.hdr")
    assert read_envi(tmp_path / "a.hdr").geo == geo


def test_errors(tmp_path):
    cube = Cube(RNG.random((9, 11, 4)).astype(np.float32))
    write_envi(cube, tmp_path / "t.hdr")
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_envi(cube, tmp_path / "t.img")
    raw = (tmp_path / "t.img").read_bytes()
    (tmp_path / "t.img").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="truncated"):
        read_envi(tmp_path / "t.hdr")
    (tmp_path / "lonely.img").write_bytes(b"\0" * 8)
    with pytest.raises(FileFormatError, match="no ENVI header"):
        read_envi(tmp_path / "lonely.img")
    (tmp_path / "bad.hdr").write_text("not an envi header\n")
    with pytest.raises(FileFormatError, match="bad.hdr"):
        read_envi(tmp_path / "bad.hdr")
    with pytest.raises(InputError, match="int8"):
        write_envi(Cube(np.zeros((2, 2, 1), np.int8)), tmp_path / "i.hdr")
    with pytest.raises(InputError, match=".hdr or .img"):
        write_envi(cube, tmp_path / "x.bin")
    assert not (tmp_path / "i.hdr").exists()
