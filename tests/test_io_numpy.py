"""NumPy .npy/.npz reading and writing.

Independent sources: arrays saved/loaded directly with numpy, and the shapes/dtypes listed in the shared
data README (``/work/shared/data/README.md``, "Scenes" table).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hsfuse.data.paths import shared_file
from hsfuse.errors import FileFormatError, InputError, OutputExistsError
from hsfuse.io.numpy_io import read_npy, read_npz, write_npy, write_npz
from hsfuse.types import Cube, GeoInfo

RNG = np.random.default_rng(11)


# README table: derived file -> (array, shape, dtype)
README = {
    "paviaU_subset.npz": (None, (140, 80, 103), np.uint16),
    "indian_pines_subset.npz": (None, (70, 70, 200), np.uint16),
    "jasper_ridge.npz": (None, (100, 100, 198), np.uint16),
    "samson.npz": (None, (95, 95, 156), np.float32),
    "moffett.npz": (None, (50, 50, 159), np.float32),
    "houston2018.npz": ("hsi", (128, 128, 48), np.uint16),
    "worldview2_ms_pan.npz": (None, (320, 320, 8), np.uint16),
}


@pytest.mark.parametrize("name", sorted(README))
def test_shared_derived_npz_load(name):
    variable, shape, dtype = README[name]
    cube = read_npz(shared_file("derived", name), variable=variable)
    assert cube.shape == shape and cube.data.dtype == dtype
    with np.load(shared_file("derived", name)) as z:
        np.testing.assert_array_equal(cube.data, z[variable or ("cube" if "cube" in z.files else "ms")])
        if "wavelengths_nm" in z.files and z["wavelengths_nm"].shape[0] == shape[2]:
            np.testing.assert_array_equal(cube.wavelengths, z["wavelengths_nm"])


def test_shared_houston_ambiguous_without_variable():
    with pytest.raises(FileFormatError, match=r"ambiguous.*'hsi' \(128x128x48.*'rgb' \(512x512x3"):
        read_npz(shared_file("derived", "houston2018.npz"))
    rgb = read_npz(shared_file("derived", "houston2018.npz"), variable="rgb")
    assert rgb.shape == (512, 512, 3) and rgb.wavelengths is None  # 48 wavelengths do not fit 3 bands


def test_npz_round_trip_every_field(tmp_path):
    data = RNG.integers(0, 4000, (5, 7, 4)).astype(np.int32)
    cube = Cube(
        data,
        wavelengths=[401.5, 450.0, 500.0, 620.25],
        fwhm=[5.0, 6.0, 7.0, 8.0],
        geo=GeoInfo("EPSG:32633", (2.5, 0.0, 300000.0, 0.0, -2.5, 5000000.0)),
        nodata=-1.0,
        units="DN",
        band_names=["b1", "b 2", "b,3", "b4"],
    )
    write_npz(cube, tmp_path / "c.npz")
    back = read_npz(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.data, data)
    assert back.data.dtype == np.int32
    np.testing.assert_array_equal(back.wavelengths, cube.wavelengths)
    np.testing.assert_array_equal(back.fwhm, cube.fwhm)
    assert back.geo == cube.geo and back.nodata == -1.0 and back.units == "DN"
    assert back.band_names == cube.band_names
    with np.load(tmp_path / "c.npz") as z:  # the documented keys, read by numpy itself
        assert set(z.files) == {"cube", "wavelengths_nm", "fwhm_nm", "band_names", "nodata", "units", "crs", "transform"}
        np.testing.assert_array_equal(z["cube"], data)
    assert os.listdir(tmp_path) == ["c.npz"]


def test_npz_keys_and_units(tmp_path):
    data = RNG.random((5, 7, 3))
    np.savez(tmp_path / "a.npz", data=data, wavelengths_um=np.array([0.5, 0.6, 0.7]), fwhm=np.array([0.01] * 3))
    c = read_npz(tmp_path / "a.npz")
    np.testing.assert_array_equal(c.data, data)
    np.testing.assert_allclose(c.wavelengths, [500.0, 600.0, 700.0])
    np.testing.assert_allclose(c.fwhm, [10.0] * 3)
    np.savez(tmp_path / "b.npz", only=data, other=np.zeros(4))
    assert read_npz(tmp_path / "b.npz").attrs["variable"] == "only"
    with pytest.raises(FileFormatError, match=r"no array 'x'.*'only' \(5x7x3"):
        read_npz(tmp_path / "b.npz", variable="x")
    np.savez(tmp_path / "c.npz", flat=np.zeros((4, 5)))
    with pytest.raises(FileFormatError, match="no 3-D"):
        read_npz(tmp_path / "c.npz")


def test_npy_round_trip_layout_and_mmap(tmp_path):
    data = RNG.random((11, 13, 9)).astype(np.float32)
    write_npy(Cube(data, wavelengths=np.arange(9) + 400.0), tmp_path / "a.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), data)  # array only, as numpy reads it
    back = read_npy(tmp_path / "a.npy", mmap=True)
    np.testing.assert_array_equal(back.data, data)
    assert back.wavelengths is None and back.data.dtype == np.float32
    np.save(tmp_path / "b.npy", np.moveaxis(data, 2, 0))
    np.testing.assert_array_equal(read_npy(tmp_path / "b.npy", layout="bhw").data, data)
    # auto: 9 wavelengths confirm that the first axis (9) holds the bands
    back = read_npy(tmp_path / "b.npy", wavelengths=np.arange(9) + 400.0)
    np.testing.assert_array_equal(back.data, data)
    assert back.attrs["layout"] == "bhw"


@pytest.mark.parametrize(
    "array, error, match",
    [
        (np.zeros((0, 4, 3)), InputError, "empty"),
        (np.zeros((4, 5)), FileFormatError, "3-D"),
        (np.array([["a", "b"], ["c", "d"]]).reshape(2, 2, 1), FileFormatError, "real numbers"),
    ],
)
def test_npy_bad_content(tmp_path, array, error, match):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(error, match=match):
        read_npy(tmp_path / "x.npy")


def test_npy_object_array_refused_without_running_pickle(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="o.npy"):
        read_npy(tmp_path / "o.npy")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_truncated(tmp_path, suffix):
    cube = Cube(RNG.random((9, 11, 5)))
    path = tmp_path / f"t{suffix}"
    (write_npy if suffix == ".npy" else write_npz)(cube, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match=f"t{suffix}"):
        (read_npy if suffix == ".npy" else read_npz)(path)


def test_write_refusals(tmp_path):
    cube = Cube(RNG.random((3, 4, 2)))
    write_npz(cube, tmp_path / "a.npz")
    with pytest.raises(OutputExistsError):
        write_npz(cube, tmp_path / "a.npz")
    with pytest.raises(InputError, match="other than"):
        write_npz(cube, tmp_path / "b.npz", variable="nodata")
    with pytest.raises(FileFormatError, match="not found"):
        read_npy(tmp_path / "missing.npy")
