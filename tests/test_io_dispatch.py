"""read_cube / write_cube dispatch, FORMATS, describe().

Independent sources: the cube written (its own values), the shared data README (shapes), hand-computed
statistics of a tiny array for describe().
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from hsfuse.data.paths import shared_file
from hsfuse.errors import FileFormatError, InputError, OutputExistsError
from hsfuse.io import FORMATS, describe, read_cube, write_cube
from hsfuse.types import Cube, GeoInfo

RNG = np.random.default_rng(23)

# path name -> (format name, metadata the format keeps)
CASES = {
    "c.mat": ("mat", {"wavelengths"}),
    "c.hdr": ("envi", {"wavelengths", "geo", "nodata", "band_names"}),
    "c.img": ("envi", {"wavelengths", "geo", "nodata", "band_names"}),
    "c.tif": ("geotiff", {"wavelengths", "geo", "nodata", "band_names"}),
    "c.npy": ("npy", set()),
    "c.npz": ("npz", {"wavelengths", "geo", "nodata", "band_names"}),
    "c_ms": ("cave", set()),
    "c.png": ("image", set()),
}


def _cube(bands: int = 3) -> Cube:
    return Cube(
        RNG.integers(0, 60000, (7, 9, bands)).astype(np.uint16),
        wavelengths=np.linspace(450.0, 650.0, bands),
        geo=GeoInfo("EPSG:32631", (5.0, 0.0, 400000.0, 0.0, -5.0, 5500000.0)),
        nodata=0.0,
        band_names=[f"b{i}" for i in range(bands)],
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_by_extension(tmp_path, name):
    fmt, keeps = CASES[name]
    cube = _cube()
    out = write_cube(cube, tmp_path / name)
    back = read_cube(out)
    assert back.attrs["format"].startswith(fmt) or (fmt == "image" and back.attrs["format"] == "image")
    np.testing.assert_array_equal(back.data, cube.data)
    assert back.data.dtype == np.uint16
    if "wavelengths" in keeps:
        np.testing.assert_array_equal(back.wavelengths, cube.wavelengths)
    for field in ("geo", "nodata", "band_names"):
        if field in keeps:
            assert getattr(back, field) == getattr(cube, field)
    with pytest.raises(OutputExistsError):
        write_cube(cube, tmp_path / name)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporaries left


@pytest.mark.parametrize("name", ["t.mat", "t.hdr", "t.tif", "t.npy", "t.npz", "t.png", "t_ms"])
def test_truncated_file_is_a_format_error(tmp_path, name):
    cube = Cube(RNG.integers(0, 60000, (24, 24, 3)).astype(np.uint16))
    out = write_cube(cube, tmp_path / name)
    victim = {".hdr": tmp_path / "t.img", "": out / "t_ms_02.png"}.get(out.suffix, out)
    raw = victim.read_bytes()
    victim.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match=re.escape(victim.name)):
        read_cube(out)


def test_shared_scene_through_read_cube():
    cube = read_cube(shared_file("scenes", "paviaU_140x80x103_subset.mat"))
    np.testing.assert_array_equal(cube.data, np.load(shared_file("derived", "paviaU_subset.npz"))["cube"])
    hsi = read_cube(shared_file("derived", "houston2018.npz"), variable="hsi")
    assert hsi.shape == (128, 128, 48) and hsi.wavelengths.shape == (48,)


def test_errors(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        read_cube(tmp_path / "nothing.mat")
    (tmp_path / "a.xyz").write_bytes(b"1")
    with pytest.raises(FileFormatError, match=r"'\.xyz'.*\.mat.*\.npz"):
        read_cube(tmp_path / "a.xyz")
    with pytest.raises(FileFormatError, match="supported"):
        write_cube(_cube(), tmp_path / "b.xyz")
    write_cube(_cube(), tmp_path / "a.tif")
    with pytest.raises(InputError, match="variable="):
        read_cube(tmp_path / "a.tif", variable="x")
    with pytest.raises(InputError, match="layout="):
        read_cube(tmp_path / "a.tif", layout="bhw")
    with pytest.raises(InputError, match="unknown format"):
        read_cube(tmp_path / "a.tif", format="jpeg2000")
    with pytest.raises(InputError, match="wavelengths"):
        read_cube(tmp_path / "a.tif", wavelengths=[1.0, 2.0])


def test_format_override_and_wavelength_override(tmp_path):
    cube = _cube()
    write_cube(cube, tmp_path / "a.tif")
    as_image = read_cube(tmp_path / "a.tif", format="image")  # tifffile instead of rasterio
    np.testing.assert_array_equal(as_image.data, cube.data)
    new = read_cube(tmp_path / "a.tif", wavelengths=[500.0, 600.0, 700.0])
    np.testing.assert_array_equal(new.wavelengths, [500.0, 600.0, 700.0])
    write_cube(cube, tmp_path / "raw.bin", format="npy")
    np.testing.assert_array_equal(read_cube(tmp_path / "raw.bin", format="npy").data, cube.data)


def test_formats_table_documents_every_format():
    assert set(FORMATS) == {"mat", "envi", "geotiff", "npy", "npz", "cave", "image"}
    for info in FORMATS.values():
        assert info.description and info.keeps and callable(info.read) and callable(info.write)


def test_describe():
    data = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [-1.0, -1.0]]])  # (2, 2, 2); last pixel is nodata
    cube = Cube(
        data,
        wavelengths=[500.0, 510.0],
        fwhm=[4.0, 5.0],
        nodata=-1.0,
        geo=GeoInfo("EPSG:4326", (0.5, 0.0, 10.0, 0.0, -0.5, 50.0)),
        band_names=["x", "y"],
        attrs={"source": "mem.npz", "format": "npz", "variable": "cube"},
    )
    text = describe(cube)
    # valid pixels: values 1..6, mean 3.5 (hand computed), 3 of 4 pixels
    assert "2 x 2 x 2 (H x W x B)" in text
    assert "min 1, max 6, mean 3.5 over 3 of 4 pixels" in text
    assert "2 bands, 500 - 510 nm, mean step 10 nm" in text
    assert "fwhm:         4 - 5 nm" in text
    assert "EPSG:4326" in text and "(0.5, 0, 10, 0, -0.5, 50)" in text
    assert "nodata:       -1" in text and "x, y" in text and "mem.npz (npz, variable=cube)" in text
    plain = describe(Cube(np.zeros((1, 1, 1))))
    assert "wavelengths:  unknown" in plain and "crs:          none" in plain
