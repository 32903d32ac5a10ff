"""MATLAB .mat reading/writing (v5 via scipy, v7.3 via h5py).

Independent sources: files written directly with scipy.io.savemat / h5py (in MATLAB's v7.3 layout: an
H x W x B array stored as a (B, W, H) HDF5 dataset), files read back directly with scipy/h5py, and the shared
``derived/*.npz`` copies of the shared ``scenes/*.mat`` files.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import scipy.io

from hsfuse.data.paths import shared_file
from hsfuse.errors import FileFormatError, InputError, OutputExistsError
from hsfuse.io.mat import read_mat, write_mat
from hsfuse.types import Cube

RNG = np.random.default_rng(7)


def _cube(shape=(5, 7, 3), dtype=np.float32) -> np.ndarray:
    return RNG.random(shape).astype(dtype) if np.dtype(dtype).kind == "f" else RNG.integers(0, 900, shape).astype(dtype)


def _write_v73(path, arrays: dict[str, np.ndarray]) -> None:
    """A v7.3-style file as MATLAB writes it: each array's axes reversed on disk, MATLAB_class attribute."""
    classes = {"float64": "double", "float32": "single", "uint16": "uint16", "uint8": "uint8"}
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in arrays.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(arr.T))
            ds.attrs["MATLAB_class"] = np.bytes_(classes[arr.dtype.name])


# --------------------------------------------------------------------------------------------- shared data


def test_shared_pavia_scene_equals_derived_npz():
    cube = read_mat(shared_file("scenes", "paviaU_140x80x103_subset.mat"))
    ref = np.load(shared_file("derived", "paviaU_subset.npz"))["cube"]
    assert cube.shape == (140, 80, 103)
    assert cube.data.dtype == ref.dtype
    np.testing.assert_array_equal(cube.data, ref)
    assert cube.attrs["variable"] == "paviaU" and cube.attrs["format"] == "mat-v5"


def test_shared_houston_is_ambiguous_until_variable_given():
    path = shared_file("scenes", "houston2018_hs128x128x48_rgb512.mat")
    with pytest.raises(FileFormatError, match=r"ambiguous.*'hyprImg' \(128x128x48.*'rgbImg' \(512x512x3.*variable="):
        read_mat(path)
    hsi = read_mat(path, variable="hyprImg")
    np.testing.assert_array_equal(hsi.data, np.load(shared_file("derived", "houston2018.npz"))["hsi"])


def test_shared_zhu_format_is_a_clear_error_and_its_hint_is_right():
    path = shared_file("scenes", "jasper_ridge_100x100x198_with_gt.mat")
    with pytest.raises(FileFormatError, match=r"no 3-D.*bands x pixels.*order='F'"):
        read_mat(path)
    with pytest.raises(FileFormatError, match=r"2-D \(198x10000\), not a cube"):
        read_mat(path, variable="Y")
    # the reshape the message suggests gives the README's H x W x B cube
    y = scipy.io.loadmat(str(path))["Y"]
    ref = np.load(shared_file("derived", "jasper_ridge.npz"))["cube"]
    np.testing.assert_array_equal(np.reshape(y.T, (100, 100, 198), order="F"), ref)


# --------------------------------------------------------------------------------------------- v5


def test_v5_file_from_scipy(tmp_path):
    data = _cube((5, 7, 3), np.uint16)
    wl_um = np.array([[0.45, 0.55, 0.65]])
    scipy.io.savemat(tmp_path / "a.mat", {"img": data, "wavelengths": wl_um, "fwhm": np.array([[0.01, 0.02, 0.03]])})
    cube = read_mat(tmp_path / "a.mat")
    np.testing.assert_array_equal(cube.data, data)
    assert cube.data.dtype == np.uint16
    np.testing.assert_allclose(cube.wavelengths, [450.0, 550.0, 650.0])  # micrometres -> nm
    np.testing.assert_allclose(cube.fwhm, [10.0, 20.0, 30.0])  # same unit as the wavelengths
    assert "micrometres" in cube.attrs["wavelength_note"]


@pytest.mark.parametrize("version", ["5", "7.3"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int16])
def test_round_trip(tmp_path, version, dtype):
    data = _cube((5, 7, 4), dtype)
    cube = Cube(data, wavelengths=[400.0, 500.5, 600.0, 700.0], fwhm=[9.0, 10.0, 11.0, 12.5])
    out = write_mat(cube, tmp_path / "c.mat", version=version)
    back = read_mat(out)
    np.testing.assert_array_equal(back.data, data)
    assert back.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.wavelengths, cube.wavelengths)
    np.testing.assert_array_equal(back.fwhm, cube.fwhm)
    assert back.attrs["format"] == ("mat-v5" if version == "5" else "mat-v7.3")
    assert os.listdir(tmp_path) == ["c.mat"]


def test_v5_written_file_read_by_scipy(tmp_path):
    data = _cube((5, 7, 3), np.float64)
    write_mat(Cube(data, wavelengths=[1.0, 2.0, 3.0]), tmp_path / "c.mat", variable="X")
    m = scipy.io.loadmat(tmp_path / "c.mat")
    np.testing.assert_array_equal(m["X"], data)
    np.testing.assert_array_equal(m["wavelengths_nm"], [[1.0, 2.0, 3.0]])  # 1 x B row vector


def test_v73_axis_order_as_matlab_stores_it(tmp_path):
    data = _cube((5, 7, 3), np.float64)  # H=5, W=7, B=3
    _write_v73(tmp_path / "a.mat", {"cube": data, "wavelengths_nm": np.array([[450.0, 550.0, 650.0]])})
    with h5py.File(tmp_path / "a.mat", "r+") as f:
        assert f["cube"].shape == (3, 7, 5)  # what MATLAB writes for a 5x7x3 array
        name = f.create_dataset("label", data=np.frombuffer(b"a\0b\0c\0", np.uint16).reshape(3, 1, 1))
        name.attrs["MATLAB_class"] = np.bytes_("char")  # a 3-D char array is not a cube candidate
    cube = read_mat(tmp_path / "a.mat")
    assert cube.shape == (5, 7, 3)
    np.testing.assert_array_equal(cube.data, data)
    np.testing.assert_array_equal(cube.wavelengths, [450.0, 550.0, 650.0])
    assert cube.attrs["format"] == "mat-v7.3"
    with pytest.raises(FileFormatError, match="class 'char'"):
        read_mat(tmp_path / "a.mat", variable="label")


def test_v73_written_file_layout_and_header(tmp_path):
    data = _cube((5, 7, 3), np.float32)
    write_mat(Cube(data), tmp_path / "c.mat", version="7.3", variable="ref")
    raw = (tmp_path / "c.mat").read_bytes()
    assert raw.startswith(b"MATLAB 7.3 MAT-file")  # MATLAB's 128-byte header in the HDF5 user block
    assert raw[124:128] == b"\x00\x02IM"  # version 0x0200, little-endian marker
    with h5py.File(tmp_path / "c.mat", "r") as f:
        assert f["ref"].shape == (3, 7, 5)
        np.testing.assert_array_equal(f["ref"][()], data.T)
        assert f["ref"].attrs["MATLAB_class"] == b"single"


# --------------------------------------------------------------------------------------------- choice, layout


def test_missing_variable_lists_candidates(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"a": _cube(), "b": np.zeros((2, 2))})
    with pytest.raises(FileFormatError, match=r"no variable 'zz'.*'a' \(5x7x3.*'b' \(2x2"):
        read_mat(tmp_path / "a.mat", variable="zz")


def test_ambiguous_variables(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"a": _cube((5, 7, 3)), "b": _cube((6, 8, 4))})
    with pytest.raises(FileFormatError, match=r"ambiguous: variables 'a' \(5x7x3 single\), 'b' \(6x8x4 single\)"):
        read_mat(tmp_path / "a.mat")
    assert read_mat(tmp_path / "a.mat", variable="b").shape == (6, 8, 4)


def test_layout_option_and_auto(tmp_path):
    hwb = _cube((5, 7, 9))
    bhw = np.ascontiguousarray(np.moveaxis(hwb, 2, 0))  # (9, 5, 7)
    scipy.io.savemat(tmp_path / "b.mat", {"x": bhw})
    np.testing.assert_array_equal(read_mat(tmp_path / "b.mat", layout="bhw").data, hwb)
    assert read_mat(tmp_path / "b.mat", layout="hwb").shape == (9, 5, 7)
    # auto: a first axis under a quarter of both others is the band axis
    small_first = _cube((3, 17, 19))
    scipy.io.savemat(tmp_path / "c.mat", {"x": small_first})
    c = read_mat(tmp_path / "c.mat")
    assert c.shape == (17, 19, 3) and c.attrs["layout"] == "bhw"
    # auto: a wavelength vector of the first axis's length confirms B x H x W
    scipy.io.savemat(tmp_path / "d.mat", {"x": bhw, "wl": np.linspace(400, 700, 9)[None]})
    d = read_mat(tmp_path / "d.mat")
    np.testing.assert_array_equal(d.data, hwb)
    assert d.wavelengths.shape == (9,)
    # auto: square spatial axes confirm the layout (70 x 70 x 200 like Indian Pines)
    scipy.io.savemat(tmp_path / "e.mat", {"x": _cube((6, 6, 20))})
    assert read_mat(tmp_path / "e.mat").shape == (6, 6, 20)


def test_auto_layout_refuses_when_band_axis_is_the_longest(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"x": _cube((11, 13, 40))})
    with pytest.raises(FileFormatError, match="layout="):
        read_mat(tmp_path / "a.mat")
    assert read_mat(tmp_path / "a.mat", layout="hwb").shape == (11, 13, 40)
    assert read_mat(tmp_path / "a.mat", wavelengths=np.arange(40) + 400.0).shape == (11, 13, 40)


def test_bad_layout_and_wavelength_count(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"x": _cube((5, 7, 3))})
    with pytest.raises(InputError, match="layout must be"):
        read_mat(tmp_path / "a.mat", layout="whb")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="wavelengths"):
        read_mat(tmp_path / "a.mat", wavelengths=[400.0, 500.0])


def test_wavelength_vector_of_wrong_length_is_ignored_with_note(tmp_path):
    scipy.io.savemat(tmp_path / "a.mat", {"x": _cube((5, 7, 3)), "wavelengths_nm": np.arange(10.0)})
    c = read_mat(tmp_path / "a.mat")
    assert c.wavelengths is None and "ignored" in c.attrs["wavelength_note"]


# --------------------------------------------------------------------------------------------- errors


def test_non_numeric_complex_and_empty(tmp_path):
    scipy.io.savemat(
        tmp_path / "a.mat",
        {"name": "abc", "z": (RNG.random((3, 4, 5)) + 1j).astype(np.complex128), "e": np.zeros((0, 3, 4))},
    )
    with pytest.raises(FileFormatError, match="'name'"):
        read_mat(tmp_path / "a.mat", variable="name")
    with pytest.raises(FileFormatError, match="real numbers"):
        read_mat(tmp_path / "a.mat", variable="z")
    with pytest.raises(InputError, match="empty"):
        read_mat(tmp_path / "a.mat", variable="e")


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_truncated_file(tmp_path, version):
    path = write_mat(Cube(_cube((9, 11, 5), np.float64)), tmp_path / "t.mat", version=version, compress=False)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="t.mat"):
        read_mat(path)


def test_garbage_and_missing_file(tmp_path):
    (tmp_path / "g.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(FileFormatError, match="g.mat"):
        read_mat(tmp_path / "g.mat")
    with pytest.raises(FileFormatError, match="not found"):
        read_mat(tmp_path / "missing.mat")


def test_write_refusals(tmp_path):
    cube = Cube(_cube())
    write_mat(cube, tmp_path / "a.mat")
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_mat(cube, tmp_path / "a.mat")
    write_mat(cube, tmp_path / "a.mat", overwrite=True)
    with pytest.raises(InputError, match="version"):
        write_mat(cube, tmp_path / "b.mat", version="6")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="identifier"):
        write_mat(cube, tmp_path / "b.mat", variable="1bad")
    with pytest.raises(InputError, match="Cube"):
        write_mat(np.zeros((2, 2, 2)), tmp_path / "b.mat")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["a.mat"]
