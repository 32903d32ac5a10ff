"""The large-scene engine: chunked fusion equals whole-image fusion, survives a kill -9, runs on a 2-worker
LocalCluster, and stays under a memory budget.

Independent sources: each method's whole-image function on the same tensors (the path every other test checks),
run in this process; the peak resident memory read from the kernel (``VmHWM`` of a fresh subprocess, reset at its
start).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hsfuse.chunked import ChunkGrid, chunk_for_budget, fuse_chunked
from hsfuse.errors import InputError
from hsfuse.methods import get_method
from hsfuse.physics import FusionObservation, SpatialDegradation

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim():
    """Pavia University (ROSIS, 103 bands) with IKONOS B, G, R, NIR at r = 4: a real scene, 136 x 80 HR."""
    from hsfuse.bench.runner import DEFAULT_CASES, prepare_case
    from hsfuse.data.paths import data_root

    if not (data_root() / "derived").is_dir():
        pytest.skip("shared data not found")
    return prepare_case(DEFAULT_CASES[0], ratio=4)


def _whole(name, y, physics, **options):
    with torch.no_grad():  # (a copy: nn.Module.float() converts in place)
        return get_method(name).function(y, copy.deepcopy(physics).float(), **options)[0].numpy()


def _psnr(x, ref):
    return float(np.mean([10 * np.log10(1.0 / np.mean((x[b] - ref[b]) ** 2)) for b in range(ref.shape[0])]))


def _arrays(sim):
    y = sim.measurement()
    return y, y.hsi[0].numpy(), y.msi[0].numpy()


def _with_boundary(physics, boundary):
    sp = physics.spatial
    return FusionObservation(SpatialDegradation(ratio=sp.ratio, psf=sp.psf, offset=sp.offset, boundary=boundary),
                             physics.spectral)


@pytest.mark.parametrize("name, options, boundary", [
    ("bicubic", {}, "circular"), ("bicubic", {"boundary": "circular"}, "circular"),
    ("bicubic", {"boundary": "reflect"}, "circular"),
    ("gsa", {}, "circular"), ("gsa", {}, "reflect"), ("gsa", {"degrade": "block_mean"}, "circular"),
])
def test_local_and_exactly_streamed_methods_equal_the_whole_image(sim, name, options, boundary):
    y, hsi, msi = _arrays(sim)
    physics = _with_boundary(sim.physics, boundary)
    whole = _whole(name, y, physics, **options)
    for chunk in (32, 48):  # 5 x 3 and 3 x 2 chunks, ragged last chunks
        res = fuse_chunked(hsi, msi, method=name, physics=physics, options=options, chunk=chunk)
        out = res.output.values
        assert out.shape == whole.shape and len(res.grid) > 1
        np.testing.assert_allclose(out, whole, rtol=0, atol=1e-5)


def test_fuse_tiles_are_within_a_hundredth_of_a_db(sim):
    y, hsi, msi = _arrays(sim)
    ref = sim.reference.data.transpose(2, 0, 1)
    whole = _whole("fuse", y, sim.physics)
    for chunk in (32, 48):
        out = fuse_chunked(hsi, msi, method="fuse", physics=sim.physics, chunk=chunk).output.values
        assert abs(_psnr(out, ref) - _psnr(whole, ref)) < 0.05
        assert np.abs(out - whole).max() < 1e-3


def test_fuse_noise_estimates_and_zero_border_renormalisation_stream_like_the_whole_image(sim):
    """lam="auto" streams the whole image's noise and prior weight exactly (same inputs to the solve: the difference
    is the tiles' own); border="pad" on zero-boundary physics renormalises each tile's border pixels as the whole."""
    from hsfuse.data.simulation import simulate

    zero = simulate(sim.reference, sim.physics.spectral, ratio=4, boundary="zero")
    y = zero.measurement()
    hsi, msi = y.hsi[0].numpy(), y.msi[0].numpy()
    whole = _whole("fuse", y, zero.physics, border="pad")
    out = fuse_chunked(hsi, msi, method="fuse", physics=zero.physics, options={"border": "pad"}, chunk=32).output.values
    ref = zero.reference.data.transpose(2, 0, 1)
    assert abs(_psnr(out, ref) - _psnr(whole, ref)) < 0.05
    assert np.abs(out - whole).max() < 2e-3


def test_output_keeps_wavelengths_grid_and_crs(sim):
    import rioxarray  # noqa: F401
    import xarray as xr

    y, hsi, msi = _arrays(sim)
    wl = sim.hsi.wavelengths
    h = xr.DataArray(hsi, dims=("band", "y", "x"), coords={"band": wl}, attrs={"wavelength_units": "nm"})
    m = xr.DataArray(msi, dims=("band", "y", "x"),
                     coords={"y": 4_000_000.0 - 10 * (np.arange(msi.shape[1]) + 0.5),
                             "x": 500_000.0 + 10 * (np.arange(msi.shape[2]) + 0.5)}).rio.write_crs("EPSG:32633")
    out = fuse_chunked(h, m, method="bicubic", physics=sim.physics, chunk=32).output
    assert out.dims == ("band", "y", "x") and out.attrs["wavelength_units"] == "nm"
    np.testing.assert_array_equal(out.coords["band"].values, wl)
    np.testing.assert_array_equal(out.coords["x"].values, m.coords["x"].values)
    assert out.rio.crs.to_epsg() == 32633 and out.rio.transform().a == 10.0


def test_grid_chunks_align_to_the_ratio_and_halos_clip_or_wrap():
    g = ChunkGrid(lr_shape=(10, 7), ratio=4, chunk_lr=4)
    assert g.counts == (3, 2) and len(g) == 6 and g.hr_chunks() == ((16, 16, 8), (16, 12))
    c = g.chunks(2)
    assert c[0].core == (0, 4, 0, 4) and c[0].tile == (0, 6, 0, 6) and c[0].core_in_tile() == (0, 4, 0, 4)
    assert c[-1].core == (8, 10, 4, 7) and c[-1].tile == (6, 10, 2, 7) and c[-1].core_in_tile() == (2, 4, 2, 5)
    w = g.chunks(2, wrap=True)
    assert w[0].tile == (-2, 6, -2, 6) and w[0].core_in_tile() == (2, 6, 2, 6)


def test_chunk_from_the_budget():
    # 1 GiB, 300 MiB in use: 0.75 * 724 MiB for 2 tasks; per HR pixel 40 * 100 + 24 * 8 bytes
    chunk = chunk_for_budget(memory_bytes=2**30, baseline_bytes=300 * 2**20, hsi_bands=100, msi_bands=8, ratio=4,
                             halo=2, working_set=40.0, concurrent=2, lr_shape=(4096, 4096))
    side = np.sqrt(0.75 * (2**30 - 300 * 2**20) / 2 / (40 * 100 + 24 * 8))  # the tile side in HR pixels
    assert chunk == (int(side // 4) - 4) // 16 * 16
    with pytest.raises(InputError, match="too small"):
        chunk_for_budget(memory_bytes=310 * 2**20, baseline_bytes=300 * 2**20, hsi_bands=200, msi_bands=8, ratio=4,
                         halo=2, working_set=40.0, concurrent=2, lr_shape=(100, 100))


def test_refusals(sim):
    y, hsi, msi = _arrays(sim)
    with pytest.raises(InputError, match="udaln cannot run on a chunked scene"):
        fuse_chunked(hsi, msi, method="udaln", physics=sim.physics, chunk=32)
    with pytest.raises(InputError, match="multiple of the ratio 4"):
        fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=30)
    with pytest.raises(InputError, match="the MSI must be"):
        fuse_chunked(hsi, msi[:, :-4], method="gsa", physics=sim.physics, chunk=32)


def test_streamed_zarr_output_and_geotiff(sim, tmp_path):
    import rasterio
    import xarray as xr

    y, hsi, msi = _arrays(sim)
    whole = _whole("gsa", y, sim.physics)
    res = fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=32, output=tmp_path / "f.zarr")
    assert res.output == tmp_path / "f.zarr" and not (tmp_path / ".f.zarr.partial").exists()
    np.testing.assert_allclose(xr.open_zarr(tmp_path / "f.zarr")["fused"].values, whole, atol=1e-5)
    fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=32, output=tmp_path / "f.tif")
    with rasterio.open(tmp_path / "f.tif") as src:
        assert src.profile["tiled"] and src.count == whole.shape[0]
        np.testing.assert_allclose(src.read(), whole, atol=1e-5)
    with pytest.raises(Exception, match="exists"):
        fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=32, output=tmp_path / "f.tif")


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import hsfuse.io.stream as stream
    from hsfuse.chunked import fuse_chunked
    from hsfuse.bench.runner import DEFAULT_CASES, prepare_case

    sim = prepare_case(DEFAULT_CASES[0], ratio=4)
    y = sim.measurement()
    real = stream.write_chunk
    count = [0]

    def write_then_die(*args, **kwargs):
        real(*args, **kwargs)
        count[0] += 1
        if count[0] == {kill_after}:
            os.kill(os.getpid(), signal.SIGKILL)

    stream.write_chunk = write_then_die
    fuse_chunked(y.hsi[0].numpy(), y.msi[0].numpy(), method="gsa", physics=sim.physics, chunk=16,
                 output={out!r}, threads=1)
""")


def test_resume_after_kill_minus_9_equals_an_uninterrupted_run(sim, tmp_path):
    y, hsi, msi = _arrays(sim)
    out = tmp_path / "k.zarr"
    script = KILLED_RUN.format(tests=str(ROOT / "tests"), kill_after=7, out=str(out))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    partial = tmp_path / ".k.zarr.partial"
    assert not out.exists() and len(list((partial / "done").iterdir())) == 7
    with pytest.raises(InputError, match="interrupted"):  # a different method is not resumed into it
        fuse_chunked(hsi, msi, method="bicubic", physics=sim.physics, chunk=16, output=out, resume=True)
    seen = []
    res = fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=16, output=out, resume=True,
                       progress=lambda d, t: seen.append((d, t)))
    total = len(res.grid)
    assert res.chunks_computed == total - 7 and seen[0] == (7, total) and seen[-1] == (total, total)
    full = fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=16, output=tmp_path / "u.zarr")
    import xarray as xr

    a = xr.open_zarr(out)["fused"].values
    b = xr.open_zarr(full.output)["fused"].values
    np.testing.assert_array_equal(a, b)
    assert not partial.exists()


def test_two_worker_local_cluster_gives_the_same_result(sim, tmp_path):
    y, hsi, msi = _arrays(sim)
    local = fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=32, output=tmp_path / "a.zarr")
    cluster = fuse_chunked(hsi, msi, method="gsa", physics=sim.physics, chunk=32, output=tmp_path / "b.zarr",
                           workers=2)
    import xarray as xr

    assert "LocalCluster(2 workers" in cluster.scheduler
    np.testing.assert_array_equal(xr.open_zarr(local.output)["fused"].values,
                                  xr.open_zarr(cluster.output)["fused"].values)


BUDGET_RUN = textwrap.dedent("""
    from pathlib import Path
    Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS mark starts here (ru_maxrss would be inherited)
    import json
    import numpy as np
    from hsfuse.chunked import fuse_chunked
    from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse
    import torch

    rng = np.random.default_rng(0)
    L, m, r, H = 100, 8, 4, 640
    hsi = rng.random((L, H // r, H // r), dtype=np.float32)
    msi = rng.random((m, H, H), dtype=np.float32)
    obs = FusionObservation(SpatialDegradation(ratio=r), SpectralResponse(torch.rand(m, L, dtype=torch.float64),
                                                                           normalize="sum"))
    res = fuse_chunked(hsi, msi, method="gsa", physics=obs, memory_gb={budget}, output={out!r}, threads=2)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({{"peak": hwm * 1024,
                       "chunk": res.grid.chunk_hr, "chunks": len(res.grid)}}))
""")


def test_a_run_under_a_tight_memory_budget_stays_under_it(tmp_path):
    budget = 0.75  # GiB; the whole-image GSA of this 640 x 640 x 100 result would need about 2 GiB
    script = BUDGET_RUN.format(budget=budget, out=str(tmp_path / "b.zarr"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["chunks"] > 1, report
    assert report["peak"] < budget * 2**30, f"peak RSS {report['peak'] / 2**30:.2f} GiB over {budget} GiB ({report})"


@pytest.fixture(scope="module")
def scene_pair(tmp_path_factory):
    """A 96 x 96 HR pair of the large synthetic scene as zarr stores (EPSG:32633, 200 -> 40 bands for speed)."""
    from hsfuse.data.large_scene import LargeScene, write_large_pair

    folder = tmp_path_factory.mktemp("scene")
    return write_large_pair(folder, LargeScene(height=96, width=96, bands=40, seed=2), ratio=4, chunk=32,
                            overwrite=True)


def test_api_lazy_in_lazy_out(scene_pair):
    import hsfuse
    from hsfuse.io.lazy import dataarray_to_cube, open_lazy

    hsi, msi = open_lazy(scene_pair["hsi"]), open_lazy(scene_pair["msi"])
    out = hsfuse.fuse(hsi, msi, method="gsa")
    assert type(out).__name__ == "DataArray" and hasattr(out.data, "dask")  # nothing computed yet
    whole = hsfuse.fuse(dataarray_to_cube(hsi), dataarray_to_cube(msi), method="gsa")  # the in-memory path
    np.testing.assert_allclose(np.moveaxis(out.values, 0, 2), whole.data, atol=1e-5)
    assert out.rio.crs.to_epsg() == 32633 and out.attrs["wavelength_units"] == "nm"


def test_cli_streams_a_georeferenced_geotiff_and_resumes_only_what_was_interrupted(scene_pair, tmp_path, capsys):
    import rasterio

    from hsfuse.cli import main

    out = tmp_path / "f.tif"
    argv = ["fuse", "--hsi", str(scene_pair["hsi"]), "--msi", str(scene_pair["msi"]), "--method", "fuse", "--srf",
            "sentinel2a", "--bands", "B2,B3,B4,B5,B6,B7,B8,B8A", "--chunk", "32", "-q", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32633 and src.transform.a == 10.0 and src.count == 40 and src.profile["tiled"]
        assert float(src.tags(1)["wavelength"]) == pytest.approx(410.0)
    assert main(argv) == 2 and "exists" in capsys.readouterr().err  # refused, output untouched
    assert main([*argv[:-2], "--resume", "-o", str(tmp_path / "g.tif")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["info", str(scene_pair["msi"])]) == 0
    assert "chunks:" in capsys.readouterr().out


def test_networks_run_chunk_by_chunk_with_whole_image_band_scaling(sim, tmp_path):
    from hsfuse.models.catalog import build_model
    from hsfuse.models.checkpoint import ModelCard, save_model
    from hsfuse.models.inference import fuse_with_network

    y, hsi, msi = _arrays(sim)
    torch.manual_seed(0)
    net = build_model("dbin", hsi_bands=hsi.shape[0], msi_bands=msi.shape[0], ratio=4, config="tiny")
    save_model(net, ModelCard(method="dbin", config=net.config_dict(), hsi_bands=hsi.shape[0],
                              msi_bands=msi.shape[0], ratio=4, band_scaling="band_max"), tmp_path / "ckpt")
    whole = fuse_with_network(y, sim.physics, weights=tmp_path / "ckpt", method="dbin", tile=None)[0].numpy()
    one = fuse_chunked(hsi, msi, method="dbin", physics=sim.physics, weights=tmp_path / "ckpt", chunk=140)
    np.testing.assert_allclose(one.output.values, whole, rtol=1e-4, atol=1e-5)  # one chunk: the same computation
    many = fuse_chunked(hsi, msi, method="dbin", physics=sim.physics, weights=tmp_path / "ckpt", chunk=32)
    out = many.output.values
    assert len(many.grid) > 1 and np.isfinite(out).all()
    # the scaling is the whole image's (never a tile's): far from seams the chunks reproduce the whole image
    rel = np.sqrt(np.mean((out - whole) ** 2)) / np.sqrt(np.mean(whole ** 2))
    assert rel < 0.05, rel


@pytest.mark.parametrize("name", ["gsa", "fuse", "bicubic"])
def test_masked_pixels_are_ignored_and_written_as_nodata(sim, name):
    """Garbage (NaN, huge values) under the mask changes nothing outside it: the statistics skip masked pixels and
    the fill uses the usable pixels' band means; masked pixels come out NaN."""
    y, hsi, msi = _arrays(sim)
    mask = np.zeros(msi.shape[1:], bool)
    mask[40:72, 24:52] = True  # an MSI cloud, aligned to whole HSI pixels
    mask[100:104, 60:64] = True  # and one HSI no-data pixel's block
    a_h, a_m = hsi.copy(), msi.copy()
    a_m[:, mask] = 5.0  # bright cloud
    a_h[:, 25, 15] = np.nan  # HSI no-data
    b_m = a_m.copy()
    b_m[:, mask] = 123.0  # other garbage
    b_h = a_h.copy()
    ra = fuse_chunked(a_h, a_m, method=name, physics=sim.physics, chunk=32, mask=mask).output.values
    rb = fuse_chunked(b_h, b_m, method=name, physics=sim.physics, chunk=32, mask=mask).output.values
    assert np.isnan(ra[:, mask]).all() and np.isfinite(ra[:, ~mask]).all()
    if name == "bicubic":  # no MSI involved: identical
        np.testing.assert_array_equal(ra[:, ~mask], rb[:, ~mask])
    else:  # the statistics are identical; only pixels whose tile sees the garbage through the apply may differ
        far = ~np.isin(np.arange(msi.shape[1]), np.arange(20, 92))[:, None] & np.ones(msi.shape[2], bool)[None]
        np.testing.assert_allclose(ra[:, far], rb[:, far], atol=1e-5)
