"""Tests of hsfuse.data.synthetic: determinism, shapes, real spectra, the mixing model, errors.

Independent sources: the reflectance tables are read here straight from colour-science and interpolated
with numpy in the test; abundance and shading facts are checked against the definitions (sum to one,
pure pixel = shading x spectrum), not against printed outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from hsfuse.data.synthetic import (
    LAYOUTS,
    SCENES,
    named_scene,
    scene_names,
    spectral_library,
    synthetic_components,
    synthetic_scene,
)
from hsfuse.errors import InputError
from hsfuse.types import Cube

colour = pytest.importorskip("colour")

OHTA = "ColorChecker N Ohta"


def _ohta_table(name: str) -> tuple[np.ndarray, np.ndarray]:
    sd = colour.SDS_COLOURCHECKERS[OHTA][name]
    return np.asarray(sd.wavelengths, float), np.asarray(sd.values, float)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_shape_dtype_range_and_metadata(layout):
    cube = synthetic_scene(height=23, width=29, layout=layout, n_materials=5, seed=3)
    assert isinstance(cube, Cube)
    assert cube.shape == (23, 29, 31)
    assert cube.data.dtype == np.float32
    assert np.all(np.isfinite(cube.data))
    assert cube.data.min() >= 0.0 and cube.data.max() <= 1.0
    assert cube.data.max() > 0.05  # not blank
    np.testing.assert_array_equal(cube.wavelengths, np.arange(400.0, 701.0, 10.0))  # CAVE grid, by hand
    assert cube.units == "reflectance"
    assert cube.attrs["layout"] == layout and cube.attrs["seed"] == 3
    assert len(cube.attrs["materials"]) == 5 == len(set(cube.attrs["materials"]))
    assert set(cube.attrs["materials"]) <= set(colour.SDS_COLOURCHECKERS[OHTA].keys())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deterministic_in_seed(layout):
    a = synthetic_scene(height=17, width=21, layout=layout, n_materials=4, seed=11)
    b = synthetic_scene(height=17, width=21, layout=layout, n_materials=4, seed=11)
    c = synthetic_scene(height=17, width=21, layout=layout, n_materials=4, seed=12)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_default_call_is_the_documented_default():
    cube = synthetic_scene(height=16, width=16)
    same = synthetic_scene(height=16, width=16, layout="composite", n_materials=12, seed=0)
    np.testing.assert_array_equal(cube.data, same.data)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_mixing_model(layout):
    comp = synthetic_components(height=19, width=25, layout=layout, n_materials=6, seed=2)
    a = comp.abundances
    assert a.shape == (19, 25, 6) and comp.endmembers.shape == (6, 31)
    assert a.min() >= 0.0
    np.testing.assert_allclose(a.sum(axis=2), 1.0, atol=1e-12)
    assert comp.shading.min() > 0.0 and comp.shading.max() <= 1.0 + 1e-12
    cube = synthetic_scene(height=19, width=25, layout=layout, n_materials=6, seed=2)
    model = np.einsum("hw,hwk,kl->hwl", comp.shading, a, comp.endmembers)  # Z = s * sum_k a_k e_k
    np.testing.assert_allclose(cube.data, model, rtol=0, atol=1e-6)


def test_endmembers_are_the_packages_spectra_interpolated():
    wl = np.array([402.5, 431.0, 517.25, 600.0, 699.9, 778.0])
    comp = synthetic_components(height=8, width=8, wavelengths_nm=wl, n_materials=24, seed=0)
    assert sorted(comp.material_names) == sorted(colour.SDS_COLOURCHECKERS[OHTA].keys())
    for name, spectrum in zip(comp.material_names, comp.endmembers):
        table_wl, table = _ohta_table(name)
        np.testing.assert_allclose(spectrum, np.interp(wl, table_wl, table), rtol=0, atol=1e-12)


def test_on_grid_wavelengths_reproduce_tabulated_values():
    # 400:10:700 lies on the 5 nm tabulation, so no interpolation happens: values are the table's own.
    lib = spectral_library("colorchecker_ohta")
    table_wl, table = _ohta_table(lib.material_names[0])
    keep = np.isin(table_wl, np.arange(400.0, 701.0, 10.0))
    np.testing.assert_array_equal(lib.resample(np.arange(400.0, 701.0, 10.0))[0], table[keep])


def test_pure_region_pixel_is_shading_times_spectrum():
    comp = synthetic_components(height=31, width=27, layout="regions", n_materials=5, seed=4)
    cube = synthetic_scene(height=31, width=27, layout="regions", n_materials=5, seed=4)
    pure = comp.abundances.max(axis=2) > 1 - 1e-12
    assert pure.mean() > 0.5  # piecewise constant: most pixels are pure
    rows, cols = np.nonzero(pure)
    for r, c in zip(rows[::37], cols[::37]):
        k = int(np.argmax(comp.abundances[r, c]))
        table_wl, table = _ohta_table(comp.material_names[k])
        spectrum = np.interp(cube.wavelengths, table_wl, table)
        ratio = cube.data[r, c] / spectrum  # one illumination factor for every band
        np.testing.assert_allclose(ratio, ratio.mean(), rtol=2e-6)
        assert 0.8 - 1e-6 <= ratio.mean() <= 1.0 + 1e-6  # illumination_variation=0.2
    # Without illumination variation a pure pixel is exactly the spectrum (up to float32 rounding).
    flat = synthetic_scene(height=31, width=27, layout="regions", n_materials=5, seed=4, illumination_variation=0.0)
    r, c = rows[0], cols[0]
    k = int(np.argmax(comp.abundances[r, c]))
    table_wl, table = _ohta_table(comp.material_names[k])
    np.testing.assert_allclose(flat.data[r, c], np.interp(flat.wavelengths, table_wl, table), rtol=0, atol=1e-7)


def test_regions_have_antialiased_edges_and_mixture_is_mixed():
    regions = synthetic_components(height=33, width=33, layout="regions", n_materials=4, seed=1).abundances
    # Edge pixels are partial (between 0 and 1), so edges are anti-aliased, not jagged.
    partial = (regions.max(axis=2) < 1 - 1e-9).mean()
    assert 0.0 < partial < 0.5
    mixture = synthetic_components(height=33, width=33, layout="mixture", n_materials=4, seed=1).abundances
    assert (mixture.max(axis=2) < 0.99).mean() > 0.5
    assert np.all(mixture > 0)  # softmax never gives exactly 0


def test_custom_wavelengths_and_other_libraries():
    wl = np.arange(380.0, 781.0, 20.0)
    cube = synthetic_scene(height=9, width=11, wavelengths_nm=wl, seed=0)
    assert cube.shape == (9, 11, wl.size)
    np.testing.assert_array_equal(cube.wavelengths, wl)
    babel = synthetic_scene(height=9, width=11, wavelengths_nm=[400, 730], library="colorchecker_babel", seed=0)
    assert babel.bands == 2
    tcs = synthetic_components(height=9, width=11, wavelengths_nm=[360.0, 830.0], library="cie_tcs", n_materials=14)
    sd = colour.quality.datasets.SDS_TCS["CIE 1995"]
    for name, spectrum in zip(tcs.material_names, tcs.endmembers):
        np.testing.assert_allclose(spectrum, [sd[name].values[0], sd[name].values[-1]], atol=1e-12)
    single = synthetic_scene(height=8, width=8, wavelengths_nm=[550.0], seed=0)
    assert single.bands == 1


def test_named_scenes():
    names = scene_names()
    assert "default" in names and "tiny" in names and tuple(SCENES) == names
    tiny = named_scene("tiny")
    assert tiny.shape == (32, 32, 31)
    np.testing.assert_array_equal(tiny.data, synthetic_scene(**SCENES["tiny"]).data)
    assert named_scene("tiny", height=12).shape == (12, 32, 31)
    with pytest.raises(InputError, match="unknown synthetic scene"):
        named_scene("nope")
    with pytest.raises(InputError, match="synthetic_scene"):
        named_scene("tiny", colour="red")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(wavelengths_nm=[350.0, 500.0]), "covers only 380-780"),
        (dict(wavelengths_nm=[500.0, 790.0]), "covers only 380-780"),
        (dict(wavelengths_nm=[500.0, 740.0], library="colorchecker_babel"), "380-730"),
        (dict(wavelengths_nm=[500.0, 450.0]), "strictly increasing"),
        (dict(wavelengths_nm=[]), "empty"),
        (dict(wavelengths_nm=[500.0, np.nan]), "NaN"),
        (dict(wavelengths_nm="abc"), "1-D sequence"),
        (dict(layout="voronoi"), "unknown layout"),
        (dict(library="usgs"), "unknown spectral library"),
        (dict(n_materials=25), "only 24 spectra"),
        (dict(n_materials=1), ">= 2"),
        (dict(n_materials=3.0), "integer"),
        (dict(seed=-1), ">= 0"),
        (dict(seed=1.5), "integer"),
        (dict(height=3), ">= 4"),
        (dict(width=True), "integer"),
        (dict(illumination_variation=1.0), r"\[0, 1\)"),
        (dict(illumination_variation=-0.1), r"\[0, 1\)"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        synthetic_scene(**{"height": 8, "width": 8, **kwargs})
