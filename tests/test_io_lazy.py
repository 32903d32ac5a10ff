"""Lazy (out-of-core) opening: open_lazy, cube_to_dataarray / dataarray_to_cube, write_zarr.

Independent sources: the eager readers (``read_cube``) on the same files, the cube written (for the formats only
``open_lazy`` reads: zarr, NetCDF, HDF5, written here with xarray / h5py), rioxarray's own coordinates of a
GeoTIFF, the transform of a window computed by hand, and the process's resident memory (psutil) while a window of
a 320 MB ENVI file is computed.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import sys
import warnings

import dask
import dask.array as dsa
import h5py
import numpy as np
import psutil
import pytest
import rioxarray
import xarray as xr
from rasterio.crs import CRS

from hsfuse.errors import FileFormatError, InputError, MissingDependencyError, OutputExistsError
from hsfuse.io import (
    cube_to_dataarray,
    dataarray_to_cube,
    open_lazy,
    read_cube,
    write_cave,
    write_envi,
    write_geotiff,
    write_mat,
    write_npy,
    write_npz,
    write_png,
    write_zarr,
)
from hsfuse.types import Cube, GeoInfo

RNG = np.random.default_rng(41)
H, W, B = 13, 11, 5
WL = np.array([450.0, 520.5, 600.0, 680.25, 790.0])
FWHM = np.array([9.0, 10.0, 11.5, 12.0, 14.0])
NAMES = ["blue", "green", "red", "red edge", "nir"]
GEO = GeoInfo("EPSG:32615", (30.0, 0.0, 500010.5, 0.0, -30.0, 4000020.25))
CHUNKS = ((B,), (4, 4, 4, 1), (4, 4, 3))


def _cube(dtype=np.float32, **fields) -> Cube:
    data = RNG.integers(1, 4000, (H, W, B)).astype(dtype)
    data[2, 3, :] = -1 if np.dtype(dtype).kind != "u" else 0
    base = dict(wavelengths=WL, fwhm=FWHM, band_names=NAMES, geo=GEO, nodata=-1.0, units="DN")
    base.update(fields)
    return Cube(data, **base)


# ------------------------------------------------------------------------------------ writers, one per case
# each returns (path, reference cube[, options]): the reference is None where read_cube reads the format (then
# read_cube's result is the reference), else the cube written


def _geotiff(d):
    return write_geotiff(_cube(), d / "a.tif"), None


def _envi(interleave):
    def make(d):
        return write_envi(_cube(), d / "a.hdr", interleave=interleave), None

    return make


def _envi_big_endian(d):
    hdr = write_envi(_cube(np.int16), d / "a.hdr", interleave="bil")
    img = d / "a.img"
    img.write_bytes(np.fromfile(img, np.int16).byteswap().tobytes())
    hdr.write_text(hdr.read_text().replace("byte order = 0", "byte order = 1"))
    return d / "a.img", None  # the data file's name works too


def _envi_rotated(d):
    geo = GeoInfo("EPSG:32615", (25.980762113533157, 15.0, 500000.0, 15.0, -25.980762113533157, 4000000.0))
    return write_envi(_cube(geo=geo), d / "a.hdr"), None


def _mat73(d):
    return write_mat(_cube(), d / "a.mat", version="7.3"), None


def _mat5(d):
    return write_mat(_cube(), d / "a.mat", version="5"), None


def _npy(d):
    return write_npy(_cube(), d / "a.npy"), None


def _npy_bhw(d):
    cube = _cube()
    np.save(d / "a.npy", np.moveaxis(cube.data, 2, 0))  # 5 x 13 x 11: bands first, which "auto" cannot tell
    return d / "a.npy", None, {"layout": "bhw"}


def _npz(d):
    return write_npz(_cube(), d / "a.npz"), None


def _png(d):
    cube = Cube(RNG.integers(0, 255, (H, W, 3)).astype(np.uint8), band_names=["R", "G", "B"])
    return write_png(cube, d / "a.png"), None


def _cave(d):
    return write_cave(Cube(RNG.integers(0, 65535, (H, W, B)).astype(np.uint16)), d / "scene_ms"), None


def _zarr(d):
    cube = _cube()
    return write_zarr(cube_to_dataarray(cube, chunks=(4, 4)), d / "a.zarr"), cube


def _netcdf(d):
    cube = _cube()
    cube_to_dataarray(cube).rename("radiance").to_netcdf(d / "a.nc", engine="h5netcdf")
    return d / "a.nc", cube


def _hdf5(d):
    cube = _cube(np.dtype(">f4"))  # big-endian in the file: read in native order
    with h5py.File(d / "a.h5", "w") as f:
        f.create_dataset("scene/cube", data=np.moveaxis(cube.data, 2, 0), chunks=(5, 3, 3))  # bands first
        f["scene/wavelengths_nm"] = WL
        f["scene/fwhm_nm"] = FWHM
        f["scene/cube"].attrs.update(nodata=-1.0, units="DN", crs=GEO.crs, transform=np.asarray(GEO.transform))
        f["scene/cube"].attrs["band_names"] = np.array(NAMES, dtype=h5py.string_dtype())
    return d / "a.h5", cube.replace(data=cube.data.astype(np.float32))


CASES = {
    "geotiff": _geotiff,
    "envi-bsq": _envi("bsq"),
    "envi-bil": _envi("bil"),
    "envi-bip": _envi("bip"),
    "envi-big-endian": _envi_big_endian,
    "envi-rotated": _envi_rotated,
    "mat-v7.3": _mat73,
    "mat-v5": _mat5,
    "npy": _npy,
    "npy-bhw": _npy_bhw,
    "npz": _npz,
    "png": _png,
    "cave": _cave,
    "zarr": _zarr,
    "netcdf": _netcdf,
    "hdf5": _hdf5,
}


def _assert_model(da, ref: Cube) -> None:
    """``da`` follows the data model and carries ``ref``'s metadata (read off the DataArray, not via a converter)."""
    assert da.dims == ("band", "y", "x")
    if ref.wavelengths is not None:
        np.testing.assert_array_equal(da["band"].values, ref.wavelengths)
        assert da["band"].dtype == np.float64 and da.attrs["wavelength_units"] == "nm"
    else:
        np.testing.assert_array_equal(da["band"].values, np.arange(ref.bands))
        assert "wavelength_units" not in da.attrs
    if ref.fwhm is not None:
        np.testing.assert_array_equal(da["fwhm"].values, ref.fwhm)
    else:
        assert "fwhm" not in da.coords
    if ref.band_names is not None:
        assert [str(v) for v in da["band_name"].values] == ref.band_names
    else:
        assert "band_name" not in da.coords
    assert da.attrs.get("units") == ref.units
    assert (da.rio.nodata is None) if ref.nodata is None else float(da.rio.nodata) == ref.nodata
    t = None if ref.geo is None else ref.geo.transform
    if ref.geo is not None and ref.geo.crs is not None:
        assert da.rio.crs == CRS.from_user_input(ref.geo.crs)
    else:
        assert da.rio.crs is None
    if t is not None:
        np.testing.assert_array_equal(np.fromstring(da["spatial_ref"].attrs["GeoTransform"], sep=" "),
                                      [t[2], t[0], t[1], t[5], t[3], t[4]])
    if t is not None and t[1] == t[3] == 0:  # pixel centres
        np.testing.assert_allclose(da["x"].values, t[2] + t[0] * (np.arange(da.sizes["x"]) + 0.5), rtol=0, atol=1e-6)
        np.testing.assert_allclose(da["y"].values, t[5] + t[4] * (np.arange(da.sizes["y"]) + 0.5), rtol=0, atol=1e-6)
    else:  # pixel indices
        np.testing.assert_array_equal(da["y"].values, np.arange(da.sizes["y"], dtype=np.float64))
        np.testing.assert_array_equal(da["x"].values, np.arange(da.sizes["x"], dtype=np.float64))
    assert da["x"].dtype == np.float64 and da["y"].dtype == np.float64


def _assert_same_cube(got: Cube, ref: Cube) -> None:
    np.testing.assert_array_equal(got.data, ref.data)
    assert got.data.dtype == ref.data.dtype
    for name in ("wavelengths", "fwhm"):
        a, b = getattr(got, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert got.band_names == ref.band_names
    assert got.geo == ref.geo
    assert got.nodata == ref.nodata or (np.isnan(got.nodata) and np.isnan(ref.nodata))
    assert got.units == ref.units


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_format_opens_lazily_and_matches_the_eager_reader(tmp_path, case):
    path, written, *options = CASES[case](tmp_path)
    kwargs = options[0] if options else {}
    ref = read_cube(path, **kwargs) if written is None else written
    da = open_lazy(path, chunks=4, **kwargs)
    # (a) lazy: a dask array chunked (all bands, 4, 4)
    assert isinstance(da.data, dsa.Array)
    assert da.data.chunks == ((ref.bands,), (4, 4, 4, 1), (4, 4, 3))
    # (b) the values of the eager reader, band first, in its dtype; the metadata on the DataArray
    values = da.values
    np.testing.assert_array_equal(values, np.moveaxis(ref.data, 2, 0))
    assert values.dtype == ref.data.dtype and values.dtype.isnative
    _assert_model(da, ref)
    _assert_same_cube(dataarray_to_cube(da), ref)
    assert da.attrs["source"] == str(path if case != "envi-big-endian" else path.with_suffix(".hdr"))
    if written is None:
        assert da.attrs["format"] == ref.attrs["format"]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rioxarray's own use of Affine's `*`
def test_geotiff_coordinates_are_rioxarrays(tmp_path):
    path = write_geotiff(_cube(), tmp_path / "a.tif")
    ours = open_lazy(path)
    theirs = rioxarray.open_rasterio(path)
    np.testing.assert_array_equal(ours["x"].values, theirs["x"].values)
    np.testing.assert_array_equal(ours["y"].values, theirs["y"].values)
    assert ours.rio.transform() == theirs.rio.transform()
    assert ours.data.chunks == ((B,), (H,), (W,))  # natural blocks: the whole (small) strip image


def test_default_chunks_follow_the_files_blocks(tmp_path):
    cube = Cube(np.zeros((1100, 700, 2), np.float32))
    tiled = tmp_path / "t.tif"
    import rasterio

    profile = dict(driver="GTiff", height=1100, width=700, count=2, dtype="float32", tiled=True, blockxsize=256,
                   blockysize=256, crs="EPSG:32615", transform=rasterio.Affine(*GEO.transform))
    with rasterio.open(tiled, "w", **profile) as dst:
        dst.write(np.moveaxis(cube.data, 2, 0))
    assert open_lazy(tiled).data.chunks == ((2,), (512, 512, 76), (512, 188))  # tiles grouped to >= 512
    write_envi(cube, tmp_path / "e.hdr")
    assert open_lazy(tmp_path / "e.hdr").data.chunks == ((2,), (512, 512, 76), (512, 188))  # no blocks: 512
    assert open_lazy(tmp_path / "e.hdr", chunks=(600, 700)).data.chunks == ((2,), (600, 500), (700,))


# ------------------------------------------------------------------------------------ ENVI: memory-mapped


def test_envi_data_is_read_at_compute_time_one_window_at_a_time(tmp_path):
    cube = Cube(RNG.random((200, 300, 10)).astype(np.float32))
    hdr = write_envi(cube, tmp_path / "a.hdr", interleave="bip")
    da = open_lazy(hdr, chunks=64)
    # no copy of the data in the graph: it pickles (as for distributed workers) to a small fraction of the
    # 2.4 MB file (an ndarray, or an np.memmap, in the graph would pickle whole)
    assert len(pickle.dumps(da.data)) < 100_000
    # the file is read when computed, not when opened: change it on disk after opening
    on_disk = np.memmap(tmp_path / "a.img", dtype=np.float32, mode="r+", shape=(200, 300, 10))
    on_disk[:] = 7.0
    on_disk.flush()
    del on_disk
    window = da[:, 64:128, 0:64].values
    assert window.shape == (10, 64, 64) and np.all(window == 7.0)
    # a graph unpickled elsewhere reopens the file
    again = pickle.loads(pickle.dumps(da.data))
    assert np.all(again[:, :5, :5].compute(scheduler="synchronous") == 7.0)


def test_two_chunks_of_a_big_envi_file_stay_small_in_memory(tmp_path):
    lines, samples, bands = 4000, 4000, 10  # 320 MB of uint16, created sparse (nothing written but the header)
    (tmp_path / "big.hdr").write_text(
        f"ENVI\nsamples = {samples}\nlines = {lines}\nbands = {bands}\nheader offset = 0\nfile type = ENVI Standard\n"
        "data type = 12\ninterleave = bsq\nbyte order = 0\n"
    )
    with open(tmp_path / "big.img", "wb") as fh:
        fh.truncate(lines * samples * bands * 2)
    small = write_envi(Cube(np.zeros((8, 8, 2), np.uint16)), tmp_path / "small.hdr")
    open_lazy(small, chunks=4)[:, :4, :4].compute(scheduler="synchronous")  # warm up imports and caches
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss  # before opening: an opener that read the file would show here
    da = open_lazy(tmp_path / "big.hdr", chunks=256)
    assert da.shape == (bands, lines, samples) and da.dtype == np.uint16
    window = da[:, :256, :512].compute(scheduler="synchronous")  # two chunks
    grown = proc.memory_info().rss - before
    assert window.shape == (bands, 256, 512) and not window.any()
    assert grown < 48 * 2**20, f"RSS grew by {grown / 2**20:.0f} MB for two chunks of a 320 MB file"


# ------------------------------------------------------------------------------------ conversions


def _rich_cube(**fields) -> Cube:
    wkt = CRS.from_epsg(3035).to_wkt()  # a WKT crs string must come back verbatim
    base = dict(geo=GeoInfo(wkt, (10.0, 0.0, 4321000.0, 0.0, -10.0, 3210000.0)), attrs={"source": "x", "note": [1, 2]})
    base.update(fields)
    return _cube(np.float64, **base)


@pytest.mark.parametrize(
    "cube",
    [
        _rich_cube(),
        _rich_cube(geo=GeoInfo(None, (2.0, 0.5, 10.0, 0.5, -2.0, 20.0))),  # sheared, no CRS
        _rich_cube(geo=GeoInfo("EPSG:4326", None), nodata=np.nan, units=None),
        Cube(RNG.integers(0, 9, (H, W, B)).astype(np.int16)),  # no metadata at all
    ],
    ids=["wkt", "sheared", "crs-only", "bare"],
)
def test_cube_dataarray_round_trips(cube):
    da = cube_to_dataarray(cube, chunks=(4, 4))
    assert da.data.chunks == CHUNKS
    back = dataarray_to_cube(da)
    _assert_same_cube(back, cube)
    assert back.attrs == cube.attrs
    xr.testing.assert_identical(cube_to_dataarray(back, chunks=(4, 4)), da)


def test_a_window_gets_the_transform_of_its_place(tmp_path):
    da = open_lazy(write_geotiff(_cube(), tmp_path / "a.tif"), chunks=4)
    part = dataarray_to_cube(da.isel(y=slice(2, 9), x=slice(3, 8)))
    a, _, c, _, e, f = GEO.transform
    assert part.geo.transform == (a, 0.0, c + 3 * a, 0.0, e, f + 2 * e)
    np.testing.assert_array_equal(part.data, read_cube(tmp_path / "a.tif").data[2:9, 3:8])
    # rotated grids carry pixel indices, so windows keep their place too
    rot = open_lazy(_envi_rotated(tmp_path)[0])
    t = rot.rio.transform()
    window = dataarray_to_cube(rot.isel(y=slice(4, 6), x=slice(1, 3))).geo.transform
    np.testing.assert_allclose(window, tuple(t @ t.translation(1, 4))[:6], rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------ write_zarr


def test_write_zarr_round_trip_atomic_and_overwrite(tmp_path):
    da = open_lazy(write_geotiff(_cube(), tmp_path / "a.tif"), chunks=(4, 4))
    out = write_zarr(da, tmp_path / "s.zarr")
    back = open_lazy(out, chunks=4)
    assert back.data.chunks == CHUNKS

    def provenance_dropped(a):
        kept = {k: v for k, v in a.attrs.items() if k not in ("source", "format")}
        return a.drop_attrs(deep=False).assign_attrs(kept)

    xr.testing.assert_identical(provenance_dropped(back), provenance_dropped(da))
    assert back.attrs["source"] == str(out) and back.attrs["format"] == "zarr"
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_zarr(da, out)
    write_zarr(da * 0 + 3, out, overwrite=True)  # arithmetic drops attrs, not coordinates
    assert np.all(open_lazy(out).values == 3)
    # a folder that is not a zarr store is never replaced, even with overwrite=True
    (tmp_path / "mine.zarr").mkdir()
    (tmp_path / "mine.zarr" / "notes.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="notes.txt"):
        write_zarr(da, tmp_path / "mine.zarr", overwrite=True)
    # a failing computation leaves neither the store nor a temporary behind
    listing = sorted(os.listdir(tmp_path))

    def boom(block):
        raise RuntimeError("chunk failed")

    broken = da.copy(data=da.data.map_blocks(boom, dtype=da.dtype))
    with pytest.raises(RuntimeError, match="chunk failed"):
        write_zarr(broken, tmp_path / "b.zarr")
    assert sorted(os.listdir(tmp_path)) == listing
    with pytest.raises(InputError, match=r"\.zarr"):
        write_zarr(da, tmp_path / "s.tif")


def test_write_zarr_of_in_memory_data_and_a_bare_zarr_array(tmp_path):
    cube = _cube()
    eager = cube_to_dataarray(cube).compute()
    assert not isinstance(eager.data, dsa.Array)
    _assert_same_cube(dataarray_to_cube(open_lazy(write_zarr(eager, tmp_path / "m.zarr"))), cube)
    import zarr

    arr = zarr.create_array(str(tmp_path / "bare.zarr"), shape=(H, W, B), chunks=(8, 8, B), dtype="uint16")
    arr[:] = np.arange(H * W * B, dtype=np.uint16).reshape(H, W, B)
    arr.attrs.update(wavelengths_nm=WL.tolist(), band_names=NAMES, nodata=0, crs="EPSG:32615",
                     transform=list(GEO.transform))
    da = open_lazy(tmp_path / "bare.zarr", chunks=4)
    assert da.data.chunks == CHUNKS
    np.testing.assert_array_equal(da.values, np.moveaxis(arr[:], 2, 0))
    _assert_model(da, Cube(arr[:], wavelengths=WL, band_names=NAMES, nodata=0.0, geo=GEO))


# ------------------------------------------------------------------------------------ NetCDF in CF style


def test_cf_netcdf_with_named_dims_and_micrometres(tmp_path):
    data = RNG.random((B, H, W)).astype(np.float32)
    ds = xr.Dataset(
        {"reflectance": (("wavelength", "northing", "easting"), data, {"grid_mapping": "crs", "units": "1"})},
        coords={"wavelength": ("wavelength", WL / 1000.0, {"units": "micrometers"}),
                "northing": 4000000.0 - 30.0 * (np.arange(H) + 0.5), "easting": 500000.0 + 30.0 * (np.arange(W) + 0.5),
                "crs": ((), 0, {"crs_wkt": CRS.from_epsg(32615).to_wkt()})},
    )
    ds["reflectance"].encoding.update(_FillValue=None, chunksizes=(B, 5, 5))
    ds.to_netcdf(tmp_path / "cf.nc", engine="h5netcdf")
    da = open_lazy(tmp_path / "cf.nc")
    assert da.dims == ("band", "y", "x") and da.data.chunks == ((B,), (H,), (W,))  # 5x5 blocks grouped, capped
    np.testing.assert_allclose(da["band"].values, WL)
    np.testing.assert_array_equal(da.values, data)
    cube = dataarray_to_cube(da)
    assert cube.geo.crs == "EPSG:32615" and cube.units == "1" and cube.nodata is None
    np.testing.assert_allclose(cube.geo.transform, (30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0))


# ------------------------------------------------------------------------------------ errors


def test_errors_name_the_problem(tmp_path, monkeypatch):
    with pytest.raises(FileFormatError, match="not found"):
        open_lazy(tmp_path / "missing.tif")
    (tmp_path / "x.xyz").write_bytes(b"??")
    with pytest.raises(FileFormatError, match=r"'\.xyz'.*\.tif.*\.zarr.*\.nc"):
        open_lazy(tmp_path / "x.xyz")
    tif = write_geotiff(_cube(), tmp_path / "a.tif")
    with pytest.raises(InputError, match="variable= applies"):
        open_lazy(tif, variable="cube")
    with pytest.raises(InputError, match="layout= applies"):
        open_lazy(tif, layout="bhw")
    for bad in (0, 2.5, (4,), "4", True):
        with pytest.raises(InputError, match="chunks"):
            open_lazy(tif, chunks=bad)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["a"] = np.zeros((4, 5, 3), np.float32)
        f["b"] = np.zeros((6, 7, 2), np.float32)
        f["flat"] = np.zeros((4, 5), np.float32)
        f["z"] = np.zeros((4, 5, 3), np.complex64)
    with pytest.raises(FileFormatError, match=r"ambiguous: variables 'a' \(4x5x3 float32\), 'b' \(6x7x2 float32\)"):
        open_lazy(tmp_path / "m.h5")
    with pytest.raises(FileFormatError, match=r"no variable 'zz'.*'a' \(4x5x3 float32\).*'flat' \(4x5 float32\)"):
        open_lazy(tmp_path / "m.h5", variable="zz")
    with pytest.raises(FileFormatError, match="shape 4x5; expected a 3-D cube"):
        open_lazy(tmp_path / "m.h5", variable="flat")
    with pytest.raises(FileFormatError, match="expected real numbers"):
        open_lazy(tmp_path / "m.h5", variable="z")
    xr.Dataset({"a": (("y", "x"), np.zeros((3, 4)))}).to_netcdf(tmp_path / "flat.nc", engine="h5netcdf")
    with pytest.raises(FileFormatError, match=r"no 3-D numeric array.*'a' \(3x4"):
        open_lazy(tmp_path / "flat.nc")
    (tmp_path / "broken.nc").write_bytes(b"CDF\x01garbage")
    with pytest.raises(FileFormatError, match="broken.nc"):
        open_lazy(tmp_path / "broken.nc")
    with pytest.raises(InputError, match="DataArray"):
        dataarray_to_cube(np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="cannot tell which is the band axis"):
        dataarray_to_cube(xr.DataArray(np.zeros((2, 3, 4)), dims=("p", "q", "r")))
    with pytest.raises(InputError, match="Cube"):
        cube_to_dataarray(np.zeros((2, 3, 4)))
    write_zarr(cube_to_dataarray(_cube()), tmp_path / "s.zarr")
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(MissingDependencyError, match="pip install zarr"):
        open_lazy(tmp_path / "s.zarr")


def test_in_memory_formats_are_still_dask_arrays(tmp_path):
    path = write_npz(_cube(), tmp_path / "a.npz")
    da = open_lazy(path)
    assert isinstance(da.data, dsa.Array) and da.data.chunks == ((B,), (H,), (W,))
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(da.mean()) == pytest.approx(float(read_cube(path).data.mean()))
    shutil.rmtree(tmp_path)
