"""``hsfuse.fuse``: the library front door on NumPy arrays, Cubes, tensors and files.

Independent source of the numbers: the method functions called directly on the simulation's tensors and
physics (the path every earlier test and benchmark uses), which the front door must reproduce exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hsfuse
from hsfuse.errors import InputError
from hsfuse.io import write_cube
from hsfuse.methods import METHODS, fuse, get_method
from hsfuse.physics.serialize import observation_to_dict
from hsfuse.types import Cube, GeoInfo

from conftest import simulated_pair

DIRECT = sorted(n for n, s in METHODS.items() if s.direct)
RATIO = 4


@pytest.fixture(scope="module")
def sim():
    s, matrix = simulated_pair(32, 40, ratio=RATIO)
    s.msi.geo = GeoInfo("EPSG:32633", (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0))
    return s, matrix


def _direct(name, s):
    """The method's function on the simulation's tensors: the reference result."""
    with torch.no_grad():
        return get_method(name).function(s.measurement(), s.physics.float())[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("name", DIRECT)
def test_numpy_arrays_give_the_direct_result(name, sim):
    s, matrix = sim
    out = hsfuse.fuse(s.hsi.data, s.msi.data, method=name, srf=matrix, psf=s.physics.spatial.psf)
    assert isinstance(out, np.ndarray) and out.shape == s.reference.shape
    np.testing.assert_allclose(out, _direct(name, s), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", DIRECT)
def test_cubes_give_a_cube_with_hsi_wavelengths_and_msi_grid(name, sim):
    s, _ = sim
    out = hsfuse.fuse(s.hsi, s.msi, method=name, srf="nikon_d700_dhsis")
    assert isinstance(out, Cube)
    np.testing.assert_array_equal(out.wavelengths, s.hsi.wavelengths)
    assert out.geo == s.msi.geo and out.attrs["method"] == name
    np.testing.assert_allclose(out.data, _direct(name, s), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", DIRECT)
def test_files_give_a_cube(name, sim, tmp_path):
    s, _ = sim
    hsi, msi, physics = tmp_path / "hsi.npz", tmp_path / "msi.tif", tmp_path / "physics.json"
    write_cube(s.hsi, hsi)
    write_cube(s.msi, msi)
    import json

    physics.write_text(json.dumps(observation_to_dict(s.physics)))
    out = hsfuse.fuse(hsi, str(msi), method=name, physics=physics)
    assert isinstance(out, Cube) and out.geo.crs is not None
    np.testing.assert_allclose(out.data, _direct(name, s), rtol=0, atol=1e-6)


def test_tensors_in_tensor_out(sim):
    s, _ = sim
    y = s.measurement()
    out = hsfuse.fuse(y.hsi, y.msi, method="fuse", physics=s.physics)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 31, 32, 40)


def test_options_as_keywords_or_dataclass(sim):
    s, matrix = sim
    a = hsfuse.fuse(s.hsi.data, s.msi.data, method="fuse", srf=matrix, subspace_dim=4, lam=1e-2)
    b = hsfuse.fuse(s.hsi.data, s.msi.data, method="fuse", srf=matrix,
                    options=get_method("fuse").options(subspace_dim=4, lam=1e-2))
    np.testing.assert_array_equal(a, b)
    with torch.no_grad():
        c = get_method("fuse").function(s.measurement(), s.physics.float(), subspace_dim=4, lam=1e-2)
    np.testing.assert_allclose(a, c[0].permute(1, 2, 0).numpy(), atol=1e-6)


def test_registry_fuse_without_physics_for_methods_that_need_none(sim):
    s, _ = sim
    y = s.measurement()
    z = fuse("gsa", y, None)  # was an AttributeError
    np.testing.assert_allclose(z[0].permute(1, 2, 0).numpy(), _direct("gsa", s), atol=1e-6)
    with pytest.raises(InputError, match="needs the observation operators"):
        fuse("fuse", y, None)


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="fuse"), "needs the MSI's spectral response"),
    (dict(method="nosuch"), "unknown fusion method 'nosuch'"),
    (dict(method="fuse", srf="nikon_d700_dhsis", nosuch=1), "has no option\\(s\\) nosuch; its options are: "
     "subspace_dim, subspace, lam"),
    (dict(method="fuse", srf="nikon_d700_dhsis", subspace_dim="ten"), "subspace_dim of method 'fuse' must be int"),
    (dict(method="gsa", ratio=3), "ratio 3 disagrees with the image sizes"),
    (dict(method="fuse", srf=np.ones((3, 30))), "has shape \\(3, 30\\); it needs \\(m, 31\\)"),
    (dict(method="fuse", srf="nikon_d700_dhsis", psf="gaussian:width=2"), "PSF option 'width=2' not understood"),
    (dict(method="dbin"), "trained network: pass weights="),
    (dict(method="gsa", weights="x"), "weights are for trained networks"),
])
def test_one_clear_error_per_problem(sim, kwargs, match):
    s, _ = sim
    with pytest.raises(InputError, match=match):
        hsfuse.fuse(s.hsi, s.msi, **kwargs)


def test_named_sensor_needs_wavelengths(sim):
    s, _ = sim
    with pytest.raises(InputError, match="has no band wavelengths"):
        hsfuse.fuse(s.hsi.data, s.msi.data, method="fuse", srf="nikon_d700_dhsis")


def test_sizes_that_are_not_a_ratio(sim):
    s, _ = sim
    with pytest.raises(InputError, match="not related by one integer ratio"):
        hsfuse.fuse(s.hsi.data, s.msi.data[:-1], method="gsa")


def test_nodata_is_refused_with_the_fix(sim):
    s, _ = sim
    data = s.hsi.data.copy()
    data[0, 0, :] = np.nan
    with pytest.raises(InputError, match="1 no-data or NaN pixel"):
        hsfuse.fuse(data, s.msi.data, method="gsa")


def test_progress_callback_for_a_method_without_its_own(sim):
    s, _ = sim
    seen = []
    hsfuse.fuse(s.hsi.data, s.msi.data, method="gsa", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 1), (1, 1)]
