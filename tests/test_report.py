"""The HTML report (issue 19): its numbers against independent computations, and the page in a real browser.

The browser tests drive Debian's ``chromium`` headless through Selenium and ``chromedriver`` (``.ci/run`` installs
them; see the README). Without them the browser tests are skipped, except under CI (``CI=true``), where a missing
browser is a failure unless ``.ci/run`` said it could not install one (``HSFUSE_BROWSER_TESTS=0``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hsfuse.errors import InputError, OutputExistsError
from hsfuse.metrics.functional import psnr
from hsfuse.methods.registry import METHODS
from hsfuse.types import Cube
from hsfuse.viz.figures import COLOUR_INFRARED_NM, display_bands
from hsfuse.viz.report import ReportInputs, build_report, write_report

from conftest import simulated_pair

RATIO = 4


@pytest.fixture(scope="module")
def run():
    """A small simulated run: reference, LR HSI, MSI, physics and two fused results."""
    sim, _ = simulated_pair(48, 48, ratio=RATIO)
    y = sim.measurement()
    results = {}
    for name in ("bicubic", "gsa"):
        est = METHODS[name].run(y, sim.physics.float())
        results[name] = Cube.from_tensor(est, like=sim.hsi)
    return sim, results


def _inputs(sim, results, **kw):
    return ReportInputs(results=results, hsi=sim.hsi, msi=sim.msi, reference=sim.reference, physics=sim.physics,
                        options={"gsa": {"degrade": "physics"}}, seconds={"bicubic": 0.01, "gsa": 0.02}, **kw)


def _page_data(page: str) -> dict:
    m = re.search(r"<script type='application/json' id='hsfuse-data'>(.*?)</script>", page, re.S)
    return json.loads(m.group(1))


def _plotly_array(value) -> np.ndarray:
    """An array as Plotly writes it into the page: a list, or a typed array ``{dtype, bdata, shape}``."""
    if isinstance(value, dict):
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return out.reshape([int(n) for n in str(value.get("shape", out.size)).split(",")]).astype(float)
    return np.asarray([np.nan if v is None else v for v in np.ravel(value)], dtype=float).reshape(np.shape(value))


def _decode(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape)


# ------------------------------------------------------------------------------------------------ numbers


def test_display_bands_follow_the_wavelengths():
    wl = np.arange(400.0, 1001.0, 10.0)
    idx, name = display_bands(wl, wl.size)
    assert idx == (24, 15, 6) and name.startswith("true colour (640, 550, 460")
    nir = np.arange(520.0, 1001.0, 10.0)  # no blue band within 30 nm of 460: colour infrared
    idx, name = display_bands(nir, nir.size)
    assert [nir[i] for i in idx] == list(COLOUR_INFRARED_NM) and name.startswith("colour infrared")
    swir = np.arange(1000.0, 2500.0, 10.0)  # neither: bands at 3/4, 1/2, 1/4 of the range
    assert display_bands(swir, 150)[0] == (112, 74, 37)
    assert display_bands(None, 9)[0] == (6, 4, 2)


def test_report_is_self_contained_and_its_spectra_are_the_cubes(run, tmp_path):
    sim, results = run
    summary = write_report(tmp_path / "r.html", _inputs(sim, results))
    page = summary.path.read_text()
    assert summary.bytes == len(page.encode()) and summary.display_step == 1
    # nothing is fetched at view time: no external script, style or image
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=['\"]?https?:", page)
    data = _page_data(page)
    g = data["spectra"]
    assert g["step"] == summary.spectra_step == 1 and (g["rows"], g["cols"], g["bands"]) == (48, 48, 31)
    for name, cube in {"reference": sim.reference, **results}.items():
        assert np.array_equal(_decode(g["data"][name], (48, 48, 31)), cube.data.astype(np.float32)), name
    lr = _decode(g["data"]["LR HSI"], (48, 48, 31))
    rows, cols = np.meshgrid(np.arange(48) // RATIO, np.arange(48) // RATIO, indexing="ij")
    assert np.array_equal(lr, sim.hsi.data[rows, cols].astype(np.float32))
    assert data["wavelengths"] == [float(w) for w in sim.reference.wavelengths]


def test_error_maps_and_per_band_curves_match_independent_computations(run):
    sim, results = run
    page, step, _ = build_report(_inputs(sim, results))
    assert step == 1

    def figure(div_id):
        m = re.search(r'Plotly\.newPlot\(\s*"' + div_id + r'",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{', page, re.S)
        return json.loads(m.group(1))

    traces = {t["name"]: t for t in figure("errors")}
    x = sim.reference.data.astype(np.float64)
    for name, cube in results.items():  # the textbook formulas: RMS over bands, arccos of the normalised product
        y_ = cube.data.astype(np.float64)
        rmse = np.sqrt(np.mean((x - y_) ** 2, axis=2))
        cos = np.sum(x * y_, axis=2) / (np.linalg.norm(x, axis=2) * np.linalg.norm(y_, axis=2))
        sam = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        assert np.allclose(_plotly_array(traces[f"RMSE: {name}"]["z"]), rmse, atol=2e-6)
        assert np.allclose(_plotly_array(traces[f"SAM (deg): {name}"]["z"]), sam, atol=5e-4)
    curves = {t["name"]: _plotly_array(t["y"]) for t in figure("psnr")}
    ref = sim.reference.to_tensor(dtype=torch.float64)
    for name, cube in results.items():
        est = cube.to_tensor(dtype=torch.float64)
        per_band = [float(psnr(ref[:, b:b + 1], est[:, b:b + 1], data_range="band_max")[0])
                    for b in range(ref.shape[1])]
        assert np.allclose(curves[name], per_band, atol=1e-3), name


def test_large_inputs_are_read_decimated_within_the_budgets(tmp_path):
    g = np.random.default_rng(0)
    wl = np.linspace(400, 1000, 60)
    res = Cube(g.random((200, 160, 60)).astype(np.float32), wavelengths=wl)
    ref = Cube(g.random((200, 160, 60)).astype(np.float32), wavelengths=wl)
    page, step, sstep = build_report(ReportInputs(results={"x": res}, reference=ref), max_side=64, spectra_mb=0.5)
    assert step == 4  # ceil(200 / 64)
    data = _page_data(page)["spectra"]
    assert sstep == data["step"] >= step and 2 * data["rows"] * data["cols"] * 60 * 4 <= 0.5e6
    got = _decode(data["data"]["x"], (data["rows"], data["cols"], 60))
    assert np.array_equal(got, res.data[::sstep, ::sstep])


def test_bad_report_requests_are_refused(run, tmp_path):
    sim, results = run
    with pytest.raises(InputError, match="ending in .html"):
        write_report(tmp_path / "r.png", _inputs(sim, results))
    (tmp_path / "r.html").write_text("keep")
    with pytest.raises(OutputExistsError):
        write_report(tmp_path / "r.html", _inputs(sim, results))
    assert (tmp_path / "r.html").read_text() == "keep"
    with pytest.raises(InputError, match="share one shape"):
        build_report(ReportInputs(results={"a": sim.reference, "b": sim.hsi}))
    with pytest.raises(InputError, match="at least one result"):
        build_report(ReportInputs(results={}))


def test_report_command_on_a_demo_folder_and_on_files(tmp_path, capsys):
    from hsfuse.bench.demo import run_demo
    from hsfuse.cli import main
    from hsfuse.io import read_cube

    demo = tmp_path / "demo"
    run_demo(demo, size=32, methods=["bicubic", "gsa"])
    assert main(["report", str(demo), "-o", str(tmp_path / "a.html")]) == 0
    page = (tmp_path / "a.html").read_text()
    data = _page_data(page)["spectra"]
    ref = read_cube(demo / "reference.npz")
    grid = ref.data[::data["step"], ::data["step"]]
    assert np.array_equal(_decode(data["data"]["reference"], grid.shape), grid.astype(np.float32))
    rows = json.loads((demo / "metrics.json").read_text())["results"]
    assert all(f'<td data-v="{r["psnr"]!r}">' in page for r in rows)  # the demo's own metric rows
    # fused files with explicit inputs: the same result under its file name, errors against the reference
    assert main(["report", str(demo / "fused_gsa.npz"), "--reference", str(demo / "reference.npz"),
                 "--hsi", str(demo / "hsi.npz"), "--msi", str(demo / "msi.npz"), "--physics",
                 str(demo / "physics.json"), "-o", str(tmp_path / "b.html")]) == 0
    assert "RMSE: fused_gsa" in (tmp_path / "b.html").read_text()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "c.html")]) == 2
    assert "not found" in capsys.readouterr().err and not (tmp_path / "c.html").exists()


def test_fuse_report_carries_the_operators_fuse_used_and_leaves_off_grid_inputs_out(run, tmp_path):
    from hsfuse.cli import main
    from hsfuse.io import write_cube
    from hsfuse.physics.srf_library import srf_matrix
    from hsfuse.workflows.report import report_of_fused

    sim, results = run
    for name, cube in (("h", sim.hsi), ("m", sim.msi)):
        write_cube(cube, tmp_path / f"{name}.npz")
    assert main(["fuse", "--hsi", str(tmp_path / "h.npz"), "--msi", str(tmp_path / "m.npz"), "--method", "gsa",
                 "--srf", "nikon_d700_dhsis", "-o", str(tmp_path / "f.npz"), "--report", str(tmp_path / "f.html"),
                 "-q"]) == 0
    page = (tmp_path / "f.html").read_text()
    srf = _page_data(page)["srf"]  # the SRF of the page: the sensor's, rows summing to one as fuse used it
    matrix, _ = srf_matrix("nikon_d700_dhsis", sim.reference.wavelengths, normalize="none")
    expected = np.asarray(matrix) / np.asarray(matrix).sum(axis=1, keepdims=True)
    assert np.allclose(np.array(list(srf.values())), expected, atol=1e-12)
    assert "MSI consistency RMSE: f" in page and "HSI consistency RMSE: f" in page
    # an MSI on another grid than the result (a real pair's): the page shows the result alone and says why
    write_cube(Cube(sim.msi.data[:20, :20]), tmp_path / "m20.npz")
    report_of_fused(tmp_path / "f.npz", tmp_path / "g.html", hsi=tmp_path / "h.npz", msi=tmp_path / "m20.npz",
                    method="gsa", srf="nikon_d700_dhsis")
    page = (tmp_path / "g.html").read_text()
    assert "the page shows the result alone" in page and "Consistency with the inputs" not in page
    assert set(_page_data(page)["spectra"]["data"]) == {"f"}


def test_bench_writes_one_report_per_case_with_its_metric_rows(tmp_path, capsys):
    from hsfuse.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--case", "synthetic:nikon_d700_dhsis", "--methods", "bicubic", "gsa", "--ratios", "4",
                 "--report", "-o", str(out), "-q"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    page = (out / "report_synthetic_nikon_d700_dhsis_r4.html").read_text()
    for row in rows:  # the report's metric table holds the benchmark's own numbers
        assert f'<td data-v="{row["psnr"]!r}">' in page and f'<td data-v="{row["sam"]!r}">' in page
    capsys.readouterr()
    assert main(["bench", "--case", "synthetic:nikon_d700_dhsis", "--methods", "bicubic", "--ratios", "4",
                 "--report", "-o", str(out), "-q"]) == 2  # existing results and report: refused before running
    assert "exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ browser


def _browser_or_skip():
    if os.environ.get("HSFUSE_BROWSER_TESTS") == "0":
        pytest.skip(".ci/run could not install Chromium (it said so)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if not (chromium and driver):
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium, chromedriver or selenium is missing in CI; .ci/run installs them")
        pytest.skip("needs Debian's chromium and chromium-driver and the selenium package (see the README)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def _open(driver, path: Path) -> float:
    t0 = time.perf_counter()
    driver.get(path.resolve().as_uri())
    deadline = time.time() + 60
    while driver.execute_script("return document.body && document.body.dataset.ready") != "1":
        assert time.time() < deadline, "the report never finished loading"
        time.sleep(0.05)
    return time.perf_counter() - t0


def _not_blank(png: bytes) -> None:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    colours = np.unique(img.reshape(-1, 3).astype(np.uint8), axis=0)
    assert img.std() > 20 and len(colours) > 500, (img.std(), len(colours))


@pytest.mark.browser
def test_report_in_a_real_browser(run, tmp_path):
    sim, results = run
    path = write_report(tmp_path / "report.html", _inputs(sim, results)).path
    driver = _browser_or_skip()
    try:
        _open(driver, path)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        # click pixel (row 13, col 29) of the first composite panel, where Plotly's axes put it on screen
        row, col = 13, 29
        div = driver.find_element("id", "composites")
        x, y = driver.execute_script(
            "const d=document.getElementById('composites'), fl=d._fullLayout, xa=fl.xaxis, ya=fl.yaxis,"
            " r=d.getBoundingClientRect();"
            "return [r.left + xa._offset + xa.l2p(arguments[1]), r.top + ya._offset + ya.l2p(arguments[0])];",
            row, col)
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        click = ActionBuilder(driver)
        click.pointer_action.move_to_location(round(x), round(y))
        click.pointer_action.click()
        click.perform()
        deadline = time.time() + 10
        while driver.execute_script("const c=window.hsfuseLastClick; return c && [c.row, c.col]") != [row, col]:
            assert time.time() < deadline, driver.execute_script("return window.hsfuseLastClick")
            time.sleep(0.05)
        plotted = driver.execute_script(
            "const s=document.getElementById('spectrum'); return [s.layout.title.text, "
            "s.data.filter(t=>!t.name.startsWith('SRF')).map(t=>[t.name, t.y]), s.data[0].x]")
        title, traces, xs = plotted
        assert title == f"spectra at pixel (row {row}, col {col})"
        traces = dict(traces)
        for name, cube in {"reference": sim.reference, **results}.items():
            assert np.array_equal(np.float32(traces[name]), cube.data[row, col].astype(np.float32)), name
        assert np.array_equal(np.float32(traces["LR HSI"]), sim.hsi.data[row // RATIO, col // RATIO])
        assert np.allclose(xs, sim.reference.wavelengths)
        # zoom in one image figure: every other follows
        driver.execute_script("Plotly.relayout('composites', {'xaxis.range': [5, 20], 'yaxis.range': [30, 10]})")
        time.sleep(0.5)
        ranges = driver.execute_script("return ['errors','blink'].map(id=>document.getElementById(id)"
                                       "._fullLayout.xaxis.range)")
        # the same view: centred on the same point, holding the whole range asked for (a panel of another aspect
        # ratio widens it, as its axes keep square pixels)
        assert all(np.isclose(np.mean(r), 12.5) and min(r) <= 5 and max(r) >= 20 for r in ranges), ranges
        driver.execute_script("Plotly.relayout('composites', {'xaxis.autorange': true, 'yaxis.autorange': true})")
        time.sleep(0.5)
        for div_id in ("composites", "errors", "blink"):
            _not_blank(driver.find_element("id", div_id).screenshot_as_png)
        shot = os.environ.get("HSFUSE_REPORT_SCREENSHOT")
        if shot:  # the README's picture: `HSFUSE_REPORT_SCREENSHOT=docs/report.png pytest -k browser`
            from PIL import Image

            img = Image.open(io.BytesIO(div.screenshot_as_png)).convert("RGB")
            img.thumbnail((900, 900))
            img.save(shot, optimize=True)
    finally:
        driver.quit()
