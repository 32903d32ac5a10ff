"""Two grids: the fused grid is the HSI grid refined by an integer ratio (integer, 1.5, 29.8 m, offset grids),
refusals (no overlap, no CRS, rotated HSI), and the lazy warp onto it across CRSs.

Independent source: an analytic field f(x, y) of map coordinates, sampled at each grid's pixel centres (through
pyproj for another CRS); the warped values are compared with f at the target centres.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pyproj import Transformer

from hsfuse.errors import InputError
from hsfuse.geo import grid_of, plan_grids, warp_to_grid

X0, Y0 = 500_000.0, 4_000_020.0  # UTM 33N (EPSG:32633)


def _da(shape, pixel, *, x0=X0, y0=Y0, crs="EPSG:32633", bands=2, values=None):
    import rioxarray  # noqa: F401
    from affine import Affine

    h, w = shape
    data = np.zeros((bands, h, w), np.float32) if values is None else values
    da = xr.DataArray(data, dims=("band", "y", "x"),
                      coords={"band": np.arange(bands), "y": y0 - pixel * (np.arange(h) + 0.5),
                              "x": x0 + pixel * (np.arange(w) + 0.5)})
    return da.rio.write_crs(crs).rio.write_transform(Affine(pixel, 0, x0, 0, -pixel, y0))


def field(x, y):
    return np.sin(x / 53.0) + np.cos(y / 71.0) + 0.001 * (x - X0)


@pytest.mark.parametrize("hsi_px, msi_px, ratio, target_px", [
    (30.0, 10.0, 3, 10.0),      # integer
    (30.0, 20.0, 2, 15.0),      # 1.5: the 20 m bands go to 15 m, never coarser than their own pixel
    (29.8, 10.0, 3, 29.8 / 3),  # a 29.8 m product grid: within 1 % of 3
    (60.0, 10.0, 6, 10.0),
])
def test_the_ratio_from_the_pixel_sizes(hsi_px, msi_px, ratio, target_px):
    hsi = _da((20, 20), hsi_px)
    msi = _da((int(20 * hsi_px / msi_px) + 2, int(20 * hsi_px / msi_px) + 2), msi_px)
    plan = plan_grids(hsi, msi)
    assert plan.ratio == ratio and plan.target.pixel_size[0] == pytest.approx(target_px)
    assert plan.target.crs == "EPSG:32633" and plan.hsi_window == (0, 20, 0, 20)
    assert plan.target.transform[2] == pytest.approx(X0) and plan.target.shape == (20 * ratio, 20 * ratio)


def test_offset_grids_crop_to_whole_hsi_pixels_and_keep_the_hsi_phase():
    hsi = _da((20, 20), 60.0)
    msi = _da((100, 100), 10.0, x0=X0 + 65.0, y0=Y0 - 125.0)  # starts inside HSI pixel column 1, row 2
    plan = plan_grids(hsi, msi)
    r0, r1, c0, c1 = plan.hsi_window
    assert (r0, c0) == (3, 2)  # the first HSI pixels entirely inside the MSI
    assert plan.target.transform[2] == pytest.approx(X0 + 60.0 * c0)  # on the HSI's pixel corners, not the MSI's
    assert 60 * r0 >= 125 and 60 * r1 <= 1125 and 60 * c0 >= 65 and 60 * c1 <= 1065  # inside the MSI
    assert (r1, c1) == (18, 17)


def test_refusals():
    hsi = _da((10, 10), 30.0)
    with pytest.raises(InputError, match="do not overlap"):
        plan_grids(hsi, _da((30, 30), 10.0, x0=X0 + 10_000))
    plain = xr.DataArray(np.zeros((2, 30, 30), np.float32), dims=("band", "y", "x"))
    with pytest.raises(InputError, match="the MSI has no coordinate reference system"):
        plan_grids(hsi, plain)
    with pytest.raises(InputError, match="the HSI has no coordinate reference system"):
        plan_grids(plain, hsi)
    with pytest.raises(InputError, match="nothing to fuse"):
        plan_grids(hsi, _da((10, 10), 30.0))


def test_warp_from_geographic_onto_the_fused_utm_grid():
    to_geo = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)
    lon0, lat0 = to_geo.transform(X0 - 200, Y0 + 200)
    dlon, dlat = 10.0 / 78_000, 10.0 / 111_000  # about 10 m at 36 N
    h, w = 90, 100
    lons = lon0 + dlon * (np.arange(w) + 0.5)
    lats = lat0 - dlat * (np.arange(h) + 0.5)
    gx, gy = to_utm.transform(*np.meshgrid(lons, lats))
    values = np.stack([field(gx, gy), 2 * field(gx, gy)]).astype(np.float32)
    import rioxarray  # noqa: F401
    from affine import Affine

    msi = xr.DataArray(values, dims=("band", "y", "x"), coords={"band": [0, 1], "y": lats, "x": lons})
    msi = msi.rio.write_crs("EPSG:4326").rio.write_transform(Affine(dlon, 0, lon0, 0, -dlat, lat0))
    hsi = _da((20, 20), 30.0)
    plan = plan_grids(hsi, msi)
    assert plan.ratio == 3 and not plan.same_grid
    warped = warp_to_grid(msi, plan.target, chunk=16)
    assert hasattr(warped.data, "dask") and warped.rio.crs.to_epsg() == 32633
    c = plan.target.coords()
    tx, ty = np.meshgrid(c["x"], c["y"])
    err = np.abs(warped.values[0] - field(tx, ty))
    inner = err[4:-4, 4:-4]
    assert np.nanmax(inner) < 0.02, np.nanmax(inner)  # cubic resampling of a smooth field
    shifted = warp_to_grid(msi, plan.target, chunk=16, shift=(0.0, 1.0))  # one target pixel to the east
    np.testing.assert_allclose(shifted.values[0][8:-8, 9:-8], warped.values[0][8:-8, 8:-9], atol=0.02)


def test_masks_warp_with_nearest_and_are_unusable_outside_the_source():
    hsi = _da((10, 10), 30.0)
    mask = _da((40, 40), 10.0, bands=1)[0].astype(bool)
    mask[5:9, 7:12] = True
    plan = plan_grids(hsi, _da((40, 40), 10.0))
    warped = warp_to_grid(mask, plan.target, chunk=8).values
    np.testing.assert_array_equal(warped, mask.values[:30, :30])
    assert grid_of(mask, "mask").shape == (40, 40)
