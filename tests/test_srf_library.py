"""Tests for hsfuse.physics.srf_library: sensor responses, resampling onto HSI bands, the sensor registry.

Expected values come from independent sources: the shared SRF tables (exported from pyrsr / colour-science,
UDALN's published WorldView-2 table, MHF-net's and Akhtar's published Nikon matrices), CIE 15:2004 tabulated
colour-matching values, analytic Gaussian integrals, scipy quadrature and hand computations.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.io
from scipy.integrate import quad
from scipy.special import ndtr

from hsfuse.errors import FileFormatError, InputError, MissingDependencyError, OutputExistsError
from hsfuse.physics import srf_library as lib
from hsfuse.physics.srf_library import (
    SENSORS,
    SensorResponse,
    gaussian_response,
    get_sensor,
    list_sensors,
    load_response_csv,
    resample_response,
    response_coverage,
    save_response_csv,
    srf_matrix,
)

# Houston 2018 (GRSS DFC2018) CASI band centres in nm, 48 bands, from the scene's ENVI header (also listed in
# public loaders, e.g. TlseHypDataSet's Houston dataset class). The shared houston2018.npz only carries an
# approximate uniform 380-1050 nm grid, which is up to 6 nm off these.
CASI_DFC2018_NM = np.array([
    374.399994, 388.700012, 403.100006, 417.399994, 431.700012, 446.100006, 460.399994, 474.700012,
    489.000000, 503.399994, 517.700012, 532.000000, 546.299988, 560.599976, 574.900024, 589.200012,
    603.599976, 617.900024, 632.200012, 646.500000, 660.799988, 675.099976, 689.400024, 703.700012,
    718.000000, 732.299988, 746.599976, 760.900024, 775.200012, 789.500000, 803.799988, 818.099976,
    832.400024, 846.700012, 861.099976, 875.400024, 889.700012, 904.000000, 918.299988, 932.599976,
    946.900024, 961.200012, 975.500000, 989.799988, 1004.200012, 1018.500000, 1032.800049, 1047.099976,
])


def read_table(path):
    """Independent reader for the shared tidy CSVs: ``(header, array)`` with numpy only."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    header = lines[0].split(",")
    return header, np.array([[float(v) for v in line.split(",")] for line in lines[1:]])


@pytest.fixture(scope="module")
def srf_dir(data_root):
    return data_root / "srf"


def _quiet_srf_matrix(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return srf_matrix(*args, **kwargs)


# ------------------------------------------------------------------------------------------------------
# WorldView-2 on Houston 2018: which method made UDALN's table


def test_wv2_on_houston_reproduces_udaln_table_by_interpolation(srf_dir):
    _, wv2 = read_table(srf_dir / "worldview2_1nm.csv")  # 350-1100 nm at 1 nm, 8 MS bands + PAN
    table = np.loadtxt(srf_dir / "wv2_on_houston18_46x8.csv", delimiter=",", comments="#")  # (46, 8)
    sensor = load_response_csv(srf_dir / "worldview2_1nm.csv")
    centres = CASI_DFC2018_NM[2:]  # UDALN's 46 bands: the 48 CASI bands minus the first two (374, 389 nm)

    R, names = srf_matrix(sensor, centres, bands=list(range(8)), normalize="none", method="interp")
    assert names == ["Coastal", "Blue", "Green", "Yellow", "Red", "RedEdge", "NIR1", "NIR2"]
    assert R.shape == (8, 46)
    ours = R.T

    # Table cell (35, NIR1) = 0.507112 is a copy of the cell above (890 nm); the WorldView-2 NIR1 curve at
    # 904 nm is 0.018. The .xls in UDALN's repository has the same duplicate.
    assert table[35, 6] == table[34, 6]
    assert ours[35, 6] == pytest.approx(np.interp(904.0, wv2[:, 0], wv2[:, 7]), abs=1e-9)
    valid = np.ones_like(table, dtype=bool)
    valid[35, 6] = False

    # The table holds the 1 nm curve sampled at whole-nm wavelengths within 0.8 nm of the true centres
    # (found by matching every non-zero entry to the 1 nm CSV). So inside each band's lobe the difference
    # is bounded by 0.8 nm times the curve's steepest 1 nm step near the centre.
    slope = np.abs(np.diff(wv2[:, 1:9], axis=0))
    bound = np.empty_like(table)
    for i, c in enumerate(centres):
        near = (wv2[:-1, 0] <= c + 0.8) & (wv2[1:, 0] >= c - 0.8)
        bound[i] = 0.8 * slope[near].max(axis=0) + 1e-6
    lobe = (table > 0) & valid
    assert np.all(np.abs(ours - table)[lobe] <= bound[lobe])
    assert np.abs(ours - table)[lobe].max() == pytest.approx(0.0806, abs=5e-4)  # RedEdge at 703.7 nm
    # UDALN zeroed each band's out-of-lobe tail; those tails are below 2% of the peak in the 1 nm curves.
    assert np.all(ours[table == 0] < 0.02)

    # After each band's sum-normalisation (as UDALN uses it), with the tails and the duplicate treated alike:
    fixed = table.copy()
    fixed[35, 6] = ours[35, 6]
    lobe_only = np.where(table > 0, ours, 0.0)
    lobe_only[35, 6] = ours[35, 6]
    diff = lobe_only / lobe_only.sum(axis=0) - fixed / fixed.sum(axis=0)
    assert np.abs(diff).max() < 0.03

    # Alternatives are worse: a Gaussian band of FWHM = spacing, or the first 46 CASI bands.
    R_gauss, _ = srf_matrix(sensor, centres, bands=list(range(8)), normalize="none", method="gaussian")
    assert np.abs(R_gauss.T - table)[lobe].max() > 2 * np.abs(ours - table)[lobe].max()
    R_first, _ = _quiet_srf_matrix(sensor, CASI_DFC2018_NM[:46], bands=list(range(8)), normalize="none")
    assert np.abs(R_first.T - table).max() > 0.5


# ------------------------------------------------------------------------------------------------------
# Nikon D700 (create_F)


def test_nikon_d700_dhsis_equals_mhfnet_matrix(srf_dir):
    # MHF-net's "response coefficient.mat" (another code base) publishes the same matrix, columns summing to 1.
    mhf = scipy.io.loadmat(srf_dir / "nikon_d700_mhfnet_31x3.mat")["R"]  # (31, 3): R, G, B
    R, names = srf_matrix("nikon_d700_dhsis", np.arange(400.0, 701.0, 10.0), normalize="sum")
    assert names == ["R", "G", "B"]
    np.testing.assert_allclose(R, mhf.T, rtol=0, atol=1e-12)
    # Hand: the integer rows sum to 255, 203 and 251.
    raw, _ = srf_matrix("nikon_d700_dhsis", np.arange(400.0, 701.0, 10.0), normalize="none")
    np.testing.assert_array_equal(raw.sum(axis=1), [255, 203, 251])
    assert raw[0, 0] == 2 and raw[1, 13] == 21 and raw[2, 6] == 30


def test_nikon_d700_dhsis_differs_from_akhtar_matrix(srf_dir):
    header, akhtar = read_table(srf_dir / "nikon_d700_akhtar2014_3x31.csv")  # columns R, G, B (physical)
    assert header == ["wavelength_nm", "R", "G", "B"]
    A = akhtar[:, 1:].T
    A = A / A.sum(axis=1, keepdims=True)
    R, _ = srf_matrix("nikon_d700_dhsis", akhtar[:, 0], normalize="sum")
    diff = np.abs(R - A)
    # Not the same tabulation: the largest gap is G at 550 nm, by hand 0.020 / 0.164 - 18 / 203 = 0.0333.
    assert np.unravel_index(diff.argmax(), diff.shape) == (1, 15)
    assert diff.max() == pytest.approx(0.020 / 0.164 - 18 / 203, abs=1e-12)


def test_nikon_d700_dhsis_off_grid_is_linear_interpolation():
    raw, _ = srf_matrix("nikon_d700_dhsis", np.arange(405.0, 700.0, 10.0), normalize="none")
    F = np.array(lib._src.DHSIS_CREATE_F, dtype=float)
    np.testing.assert_allclose(raw, (F[:, :-1] + F[:, 1:]) / 2, atol=1e-12)  # midpoints, by hand


# ------------------------------------------------------------------------------------------------------
# package sensors vs the shared exports


@pytest.mark.parametrize("key, filename", [
    ("sentinel2a", "sentinel2a_msi_1nm.csv"),
    ("sentinel2b", "sentinel2b_msi_1nm.csv"),
    ("landsat8", "landsat8_oli_1nm.csv"),
])
def test_pyrsr_sensors_match_shared_exports(srf_dir, key, filename):
    header, table = read_table(srf_dir / filename)  # exported from pyrsr 0.8.0, 6 significant digits
    sensor = get_sensor(key)
    assert list(sensor.band_names) == header[1:]
    np.testing.assert_array_equal(sensor.wavelengths_nm, table[:, 0])
    np.testing.assert_allclose(sensor.responses, table[:, 1:], rtol=1e-5, atol=1e-6)
    assert "pyrsr" in sensor.source


def test_canon_from_colour_matches_shared_export(srf_dir):
    header, table = read_table(srf_dir / "canon_eos_5d_mark_ii.csv")
    sensor = get_sensor("canon_eos_5d_mark_ii")
    assert list(sensor.band_names) == header[1:] == ["R", "G", "B"]
    np.testing.assert_array_equal(sensor.wavelengths_nm, table[:, 0])
    np.testing.assert_allclose(sensor.responses, table[:, 1:], rtol=0, atol=1e-12)


def test_cie_observers_match_published_values():
    # CIE 15:2004 tables: 1931 2 deg x,y,z(450) = 0.3362, 0.0380, 1.77211; y(555) = 1; x(600) = 1.0622;
    # 1964 10 deg x,y(600) = 1.12399, 0.658341.
    s = get_sensor("cie1931")
    at = {float(w): row for w, row in zip(s.wavelengths_nm, s.responses)}
    np.testing.assert_allclose(at[450.0], [0.3362, 0.0380, 1.77211], atol=1e-6)
    assert at[555.0][1] == pytest.approx(1.0)
    assert at[600.0][0] == pytest.approx(1.0622)
    s10 = get_sensor("CIE-1964")
    at10 = {float(w): row for w, row in zip(s10.wavelengths_nm, s10.responses)}
    np.testing.assert_allclose(at10[600.0][:2], [1.12399, 0.658341], atol=1e-6)


def test_every_registered_sensor_loads():
    assert [k for k, _ in list_sensors()] == list(SENSORS)
    for key, description in list_sensors():
        assert description
        s = get_sensor(key)
        assert s.name == key
        assert s.responses.shape == (s.wavelengths_nm.size, len(s.band_names))
        assert np.all(np.diff(s.wavelengths_nm) > 0) and np.all(np.isfinite(s.responses))


def test_import_does_not_load_optional_packages():
    code = "import sys, hsfuse.physics.srf_library; print('pyrsr' in sys.modules, 'colour' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_missing_package_names_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrsr", None)  # makes "import pyrsr" raise ImportError
    with pytest.raises(MissingDependencyError, match="pip install pyrsr"):
        SENSORS["sentinel2a"]()


# ------------------------------------------------------------------------------------------------------
# resampling math


def test_interp_of_gaussian_band_matches_formula():
    c, fwhm = 550.3, 31.0
    s = gaussian_response([c], fwhm)  # default grid: step fwhm / 50
    hsi = np.arange(480.05, 620.0, 0.37)
    R = s.resample(hsi, normalize="none", method="interp")
    exact = np.exp(-4 * math.log(2) * (hsi - c) ** 2 / fwhm**2)
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    h = np.diff(s.wavelengths_nm).max()
    np.testing.assert_allclose(R[0], exact, atol=h**2 / 8 / sigma**2)  # linear-interpolation error bound
    assert s.responses.max() == pytest.approx(1.0, abs=1e-6)


def test_gaussian_method_matches_analytic_convolution():
    c, fwhm_s = 612.0, 25.0
    sigma_s = fwhm_s / (2 * math.sqrt(2 * math.log(2)))
    s = gaussian_response([c], fwhm_s, wavelengths_nm=np.arange(450.0, 780.0, 0.1))
    hsi = np.linspace(560.0, 660.0, 13)
    fwhm_h = np.linspace(6.0, 18.0, 13)
    sigma_h = fwhm_h / (2 * math.sqrt(2 * math.log(2)))
    R = s.resample(hsi, hsi_fwhm=fwhm_h, normalize="none", method="gaussian")
    var = sigma_s**2 + sigma_h**2  # Gaussian (peak 1) * unit-area Gaussian
    exact = sigma_s / np.sqrt(var) * np.exp(-((hsi - c) ** 2) / (2 * var))
    np.testing.assert_allclose(R[0], exact, atol=1e-5)


def test_gaussian_method_integrates_coarse_table_exactly():
    x = np.array([400.0, 410.0, 425.0, 440.0, 470.0, 480.0])
    f = np.array([[0.0, 0.2], [0.5, 0.0], [1.0, 0.3], [0.4, 1.0], [0.1, 0.6], [0.0, 0.0]])
    hsi = np.array([405.0, 431.0, 452.5, 478.0])
    fwhm = np.array([8.0, 12.0, 20.0, 5.0])
    R = resample_response(x, f, hsi, hsi_fwhm=fwhm, method="gaussian", normalize="none")
    for i in range(2):
        for l_ in range(4):
            s = fwhm[l_] / (2 * math.sqrt(2 * math.log(2)))
            ref = quad(lambda t: np.interp(t, x, f[:, i]) * math.exp(-0.5 * ((t - hsi[l_]) / s) ** 2)
                       / (s * math.sqrt(2 * math.pi)), x[0], x[-1], points=x[1:-1], epsabs=1e-13, limit=200)[0]
            assert R[i, l_] == pytest.approx(ref, abs=1e-10)


def test_gaussian_default_fwhm_is_band_spacing_and_sum_normalisation():
    s = gaussian_response([500.0, 600.0], [30.0, 50.0])
    hsi = np.arange(440.0, 671.0, 7.0)
    a = s.resample(hsi, method="gaussian")
    b = s.resample(hsi, hsi_fwhm=7.0, method="gaussian")
    np.testing.assert_allclose(a, b, atol=1e-15)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)


def test_interp_hand_values_and_layout():
    R = resample_response([400.0, 500.0, 600.0], [[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]], [650.0, 450.0, 500.0],
                          normalize="none", band_names=["tri", "flat"])
    np.testing.assert_allclose(R, [[0.0, 0.5, 1.0], [0.0, 1.0, 1.0]])  # 650 nm is outside: zero


# ------------------------------------------------------------------------------------------------------
# coverage


def test_coverage_hand_values():
    # triangle 400-600 nm against bands 400, 450, 500 (span 375-525): inside area (50 + 21.875) of 100
    cov = response_coverage([400.0, 500.0, 600.0], [[0.0], [1.0], [0.0]], [400.0, 450.0, 500.0])
    assert cov[0] == pytest.approx(0.71875)
    # with a 10 nm gap left by removed bands (widths = spacing to the nearer neighbour)
    cov = response_coverage([400.0, 500.0, 600.0], [[0.0], [1.0], [0.0]], [450.0, 460.0, 540.0, 550.0])
    # inside: 445-465 and 535-555 -> (0.45+0.65)/2*20 + (0.65+0.45)/2*20 = 22 of 100
    assert cov[0] == pytest.approx(0.22)


def test_sentinel2_swir_bands_against_vnir_hsi():
    hsi = np.arange(400.0, 1001.0, 10.0)
    with pytest.raises(InputError) as err:
        srf_matrix("sentinel2a", hsi)
    text = str(err.value)
    for band in ("B10", "B11", "B12"):
        assert band in text
    assert "395-1005 nm" in text and "drop_uncovered" in text  # HSI span by hand: 400 - 5 to 1000 + 5
    with pytest.warns(UserWarning, match="dropped: B10, B11, B12"):
        R, names = srf_matrix("sentinel2a", hsi, drop_uncovered=True)
    assert names == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9"]
    assert R.shape == (10, 61)


def test_partial_coverage_warns_and_mostly_outside_is_uncovered():
    s = gaussian_response([1000.0], 40.0, names=["edge"], wavelengths_nm=np.arange(850.0, 1150.0, 0.05))
    sigma = 40.0 / (2 * math.sqrt(2 * math.log(2)))
    hsi = np.arange(400.0, 1001.0, 10.0)  # covers up to 1005 nm
    assert s.coverage(hsi)[0] == pytest.approx(ndtr(5.0 / sigma), abs=1e-6)  # ~0.62
    with pytest.warns(UserWarning, match="partly outside"):
        srf_matrix(s, hsi)
    hsi2 = np.arange(400.0, 991.0, 10.0)  # up to 995 nm: ndtr(-5 / sigma) ~ 0.38 < 0.5
    assert s.coverage(hsi2)[0] == pytest.approx(ndtr(-5.0 / sigma), abs=1e-6)
    with pytest.raises(InputError, match="no band of this sensor"):
        srf_matrix(s, hsi2, drop_uncovered=True)
    with pytest.warns(UserWarning, match="38% inside"):
        R, names = srf_matrix(s, hsi2, min_coverage=0.3)
    assert names == ["edge"]


def test_band_in_a_removed_gap_is_uncovered():
    s = gaussian_response([550.0, 750.0], 10.0, names=["in", "gap"])
    hsi = np.concatenate([np.arange(400.0, 701.0, 10.0), np.arange(800.0, 901.0, 10.0)])
    with pytest.raises(InputError, match=r"gap \(7\d\d-7\d\d nm, 0% .*395-705, 795-905 nm"):
        srf_matrix(s, hsi)


def test_narrow_band_between_centres_needs_gaussian():
    x, f = [403.0, 404.0, 406.0, 407.0], [[0.0], [1.0], [1.0], [0.0]]
    with pytest.raises(InputError, match="method='gaussian'"):
        resample_response(x, f, [400.0, 410.0])
    s = SensorResponse("box", x, f, ("box",))
    with pytest.raises(InputError, match="method='gaussian'"):
        srf_matrix(s, [400.0, 410.0])
    R, _ = srf_matrix(s, [400.0, 410.0], method="gaussian")
    np.testing.assert_allclose(R, [[0.5, 0.5]], atol=1e-12)  # symmetric about 405 nm


# ------------------------------------------------------------------------------------------------------
# SensorResponse and select


def test_sensor_response_validation():
    x = np.array([400.0, 500.0, 600.0])
    f = np.array([[0.0, 1.0], [1.0, 0.5], [0.0, 0.0]])
    with pytest.raises(InputError, match="transposed"):
        SensorResponse("t", x, f.T)
    with pytest.raises(InputError, match=r"\(3, m\)"):
        SensorResponse("t", x, f[:2])
    with pytest.raises(InputError, match="1-D"):
        SensorResponse("t", x[:, None], f)
    with pytest.raises(InputError, match="micrometres"):
        SensorResponse("t", x / 1000, f)
    with pytest.raises(InputError, match="strictly increasing"):
        SensorResponse("t", x[::-1], f)
    with pytest.raises(InputError, match="single band"):
        SensorResponse("t", x, f[:, 0])
    with pytest.raises(InputError, match="non-negative"):
        SensorResponse("t", x, np.array([[0.0, 1.0], [1.0, 0.5], [-0.2, 0.0]]))
    with pytest.raises(InputError, match="duplicate"):
        SensorResponse("t", x, f, ("a", "a"))
    with pytest.raises(InputError, match="never positive"):
        SensorResponse("t", x, np.zeros((3, 1)))
    s = SensorResponse("t", x, f)
    assert s.band_names == ("B1", "B2")
    with pytest.raises(ValueError):
        s.responses[0, 0] = 5.0  # read-only
    assert s.centers_nm[0] == pytest.approx(500.0)  # symmetric triangle


def test_select_by_name_and_index():
    s = SensorResponse("s", [400.0, 500.0, 600.0], np.eye(3), ("Blue", "Green", "PAN"))
    assert s.select(["PAN", "Blue"]).band_names == ("PAN", "Blue")
    np.testing.assert_array_equal(s.select([0, -2]).responses, np.eye(3)[:, [0, 1]])
    assert s.select("Green").band_names == ("Green",)
    with pytest.raises(InputError, match="did you mean Green"):
        s.select(["Gren"])
    with pytest.raises(InputError, match="out of range"):
        s.select([3])
    with pytest.raises(InputError, match="twice"):
        s.select([0, "Blue"])
    with pytest.raises(InputError):
        s.select([True])
    with pytest.raises(InputError, match="at least one"):
        s.select([])


def test_hsi_argument_errors():
    s = gaussian_response([500.0], 30.0)
    with pytest.raises(InputError, match="1-D"):
        s.resample(np.arange(400.0, 601.0, 10.0)[:, None])
    with pytest.raises(InputError, match="micrometres"):
        s.resample(np.arange(0.4, 0.61, 0.01))
    with pytest.raises(InputError, match="one FWHM per band"):
        s.resample(np.arange(400.0, 601.0, 10.0), hsi_fwhm=np.ones(5), method="gaussian")
    with pytest.raises(InputError, match="hsi_fwhm"):
        s.resample([500.0])
    with pytest.raises(InputError, match="repeated"):
        s.resample([500.0, 500.0, 510.0])
    with pytest.raises(InputError, match="method"):
        s.resample(np.arange(400.0, 601.0, 10.0), method="nearest")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="normalize"):
        s.resample(np.arange(400.0, 601.0, 10.0), normalize="max")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="min_coverage"):
        srf_matrix(s, np.arange(400.0, 601.0, 10.0), min_coverage=0.0)


# ------------------------------------------------------------------------------------------------------
# registry and CSV files


def test_get_sensor_names_and_errors(srf_dir):
    assert get_sensor("Sentinel-2A") is get_sensor("sentinel2a")  # forgiving spelling, cached
    with pytest.raises(InputError, match="Did you mean canon_eos_5d_mark_ii.*Known sensors: sentinel2a"):
        get_sensor("canon")
    with pytest.raises(InputError, match="unknown sensor"):
        get_sensor("worldview9")
    s = get_sensor(str(srf_dir / "ikonos_5nm.csv"))
    assert s.band_names == ("Blue", "Green", "Red", "NIR", "PAN") and s.name == "ikonos_5nm"


def test_csv_round_trip_and_units(tmp_path):
    s = gaussian_response([450.0, 650.0], 40.0, names=["a", "b"], wavelengths_nm=np.arange(380.0, 721.0, 5.0))
    path = save_response_csv(s, tmp_path / "g.csv")
    back = load_response_csv(path)
    assert back.band_names == ("a", "b") and back.name == "g"
    np.testing.assert_allclose(back.responses, s.responses, rtol=1e-9)
    np.testing.assert_allclose(back.wavelengths_nm, s.wavelengths_nm)
    with pytest.raises(OutputExistsError):
        save_response_csv(s, path)

    (tmp_path / "um.csv").write_text("# micrometres\nwavelength_um,X\n0.40,0\n0.45,1\n0.50,0\n")
    np.testing.assert_allclose(load_response_csv(tmp_path / "um.csv").wavelengths_nm, [400.0, 450.0, 500.0])
    (tmp_path / "plain.csv").write_text("wavelength,X\n0.40,0\n0.45,1\n0.50,0\n")
    np.testing.assert_allclose(load_response_csv(tmp_path / "plain.csv").wavelengths_nm, [400.0, 450.0, 500.0])
    (tmp_path / "plain_nm.csv").write_text("wavelength,X\n400,0\n450,1\n500,0\n")
    np.testing.assert_allclose(load_response_csv(tmp_path / "plain_nm.csv").wavelengths_nm, [400.0, 450.0, 500.0])


@pytest.mark.parametrize("content, message", [
    ("wavelength_nm,X\n400,0\n450,one\n500,0\n", r"line 3, column 'X': 'one' is not a number"),
    ("wavelength_nm,X,Y\n400,0,1\n450,1\n500,0,1\n", r"line 3: 2 columns, the header has 3"),
    ("wavelength_nm,X\n400,0\n450,1\n450,0\n", r"line 4: wavelength 450 does not increase"),
    ("400,0\n450,1\n", r"line 1: expected a header"),
    ("# only a comment\n", r"no header line"),
    ("wavelength_nm,X\n", r"no data rows"),
    ("wavelength_nm\n400\n", r"at least one band column"),
    ("wavelength_nm,X\n0.4,0\n0.5,1\n", r"rename the column to wavelength_um"),
    ("wavelength_nm,X\n400,0\n450,nan\n", r"not a finite number"),
    ("wavelength_nm,X\n400,0\n450,-1\n500,0\n", r"never positive"),
])
def test_malformed_csv(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=message):
        load_response_csv(path)


def test_missing_csv(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        get_sensor(str(tmp_path / "nope.csv"))
