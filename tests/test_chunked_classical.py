"""Large-scene plans of the classical methods MTF-GLP-HS, CNMF and LTMR (issue 17 item 8).

GLP's plan is exact: the chunked result equals the whole-image function's on the same tensors (the path the other
tests check), whatever the chunking and the physics' boundary. CNMF's and LTMR's plans approximate the whole image
(their endmember / subspace fits are whole-image statistics, their abundance / ADMM solves run per overlapping
tile): the PSNR gap to the whole-image result against the reference is bounded by what was measured (module
docstrings of :mod:`hsfuse.methods.cnmf` / :mod:`hsfuse.methods.ltmr`, chunked sections). Scene: the Pavia
University case of ``tests/test_chunked.py`` (140 x 80 HR, 103 bands, IKONOS B, G, R, NIR, r = 4).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hsfuse.chunked import fuse_chunked
from hsfuse.errors import InputError
from hsfuse.methods import get_method
from hsfuse.methods.cnmf import CNMF_CHUNKED
from hsfuse.methods.glp import GLP_CHUNKED
from hsfuse.methods.ltmr import LTMR_CHUNKED
from hsfuse.physics import FusionObservation, SpatialDegradation


@pytest.fixture(scope="module")
def sim(pavia_r4):
    """Pavia University (ROSIS, 103 bands) with IKONOS B, G, R, NIR at r = 4 (the shared ``pavia_r4`` case)."""
    return pavia_r4


def _whole(name, y, physics, **options):
    with torch.no_grad():  # (a copy: nn.Module.float() converts in place)
        return get_method(name).function(y, copy.deepcopy(physics).float(), **options)[0].numpy()


def _psnr(x, ref):
    return float(np.mean([10 * np.log10(1.0 / np.mean((x[b] - ref[b]) ** 2)) for b in range(ref.shape[0])]))


def _with_boundary(physics, boundary):
    sp = physics.spatial
    return FusionObservation(SpatialDegradation(ratio=sp.ratio, psf=sp.psf, offset=sp.offset, boundary=boundary),
                             physics.spectral)


#: bound on |chunked - whole| PSNR of CSTF; measured (peak-1 PSNR): 1 outer iteration, 8 chunks -0.01 dB; defaults,
#: 4 chunks +0.14 dB, 8 chunks -0.01 dB
CSTF_GAP_DB = 0.3


def test_registry_declares_the_plans():
    for name, plan, exact in (("glp", GLP_CHUNKED, True), ("cnmf", CNMF_CHUNKED, False),
                              ("ltmr", LTMR_CHUNKED, False)):
        spec = get_method(name)
        assert spec.chunked is plan and plan.exact is exact and spec.locality == "global"


# --------------------------------------------------------------------------------------------- GLP: exact


@pytest.mark.parametrize("boundary, options", [
    ("circular", {}),
    ("reflect", {}),  # U23 wraps around the image, the low-pass reflects: both rules on the same tile
    ("zero", {"lowpass": "gaussian", "degrade": "block_mean", "clip": "none"}),
    ("reflect", {"synthesis": "select", "clip": "nonnegative"}),
])
def test_glp_chunked_equals_the_whole_image(sim, boundary, options):
    y = sim.measurement()
    physics = _with_boundary(sim.physics, boundary)
    whole = _whole("glp", y, physics, **options)
    res = fuse_chunked(y.hsi[0].numpy(), y.msi[0].numpy(), method="glp", physics=physics, options=options, chunk=48)
    assert len(res.grid) == 6  # 3 x 2 chunks, ragged last ones
    np.testing.assert_allclose(res.output.values, whole, rtol=0, atol=1e-6)  # measured 1.2e-7 (float32 rounding)


def test_glp_halo_wider_than_the_image_wraps_several_times(sim):
    """A 10 x 10 LR crop in 3 x 3 chunks: the apply halo (9 LR pixels) wraps around the image more than once."""
    y = sim.measurement()
    from hsfuse.types import FusionMeasurement

    crop = FusionMeasurement(hsi=y.hsi[..., :10, :10].contiguous(), msi=y.msi[..., :40, :40].contiguous())
    for boundary in ("circular", "reflect"):
        physics = _with_boundary(sim.physics, boundary)
        whole = _whole("glp", crop, physics)
        res = fuse_chunked(crop.hsi[0].numpy(), crop.msi[0].numpy(), method="glp", physics=physics, chunk=16)
        halo = GLP_CHUNKED.apply_halo(4, physics, get_method("glp").make_options({}))
        assert len(res.grid) == 9 and 4 + 2 * halo > 2 * 10  # a tile is longer than twice the image
        np.testing.assert_allclose(res.output.values, whole, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------- CNMF: approximate


def test_cnmf_chunked_is_within_a_measured_gap_of_the_whole_image(sim):
    y = sim.measurement()
    ref = sim.reference.data.transpose(2, 0, 1)
    options = {"endmembers": 12, "inner_iterations": 100}
    whole = _whole("cnmf", y, sim.physics, **options)
    hsi, msi = y.hsi[0].numpy(), y.msi[0].numpy()
    four = fuse_chunked(hsi, msi, method="cnmf", physics=sim.physics, options=options, chunk=72)
    assert len(four.grid) == 4
    gap = _psnr(four.output.values, ref) - _psnr(whole, ref)
    # measured +0.16 dB here (the tiles' LR abundances get 3 I1 updates with the final W_h^0, the whole image's
    # come from its joint NMF; +0.42 at I1 = 30, +0.11 dB (4 chunks) and +0.03 dB (8 chunks) at the defaults); no
    # seams: the difference within 4 pixels of a chunk border is that elsewhere (9.1e-4 vs 8.5e-4 mean abs)
    assert -0.1 < gap < 0.3, gap
    # the endmember fit (pass 1) sees every LR pixel in raster order: the same whatever the chunking
    eight = fuse_chunked(hsi, msi, method="cnmf", physics=sim.physics, options=options, chunk=40)
    torch.testing.assert_close(four.state["w_init"], eight.state["w_init"], rtol=1e-9, atol=1e-12)
    with pytest.raises(InputError, match="one outer iteration"):
        fuse_chunked(hsi, msi, method="cnmf", physics=sim.physics, options={"outer_iterations": 2}, chunk=72)


# --------------------------------------------------------------------------------------------- LTMR: approximate


def test_ltmr_chunked_is_within_a_measured_gap_of_the_whole_image(sim):
    y = sim.measurement()
    ref = sim.reference.data.transpose(2, 0, 1)
    hsi, msi = y.hsi[0].numpy(), y.msi[0].numpy()
    # without the low-rank prior (eta = 0) only the tiles' periodic solves differ: the halo keeps that out
    options = {"iterations": 5, "clusters": 40, "eta": 0.0}
    whole = _whole("ltmr", y, sim.physics, **options)
    out = fuse_chunked(hsi, msi, method="ltmr", physics=sim.physics, options=options, chunk=72).output.values
    assert np.abs(out - whole).max() < 1e-4  # measured 4e-6
    # with it, the per-tile k-means groups differ from the whole image's
    options = {"iterations": 5, "clusters": 40}
    whole = _whole("ltmr", y, sim.physics, **options)
    res = fuse_chunked(hsi, msi, method="ltmr", physics=sim.physics, options=options, chunk=72)
    assert len(res.grid) == 4
    gap = _psnr(res.output.values, ref) - _psnr(whole, ref)
    assert abs(gap) < 0.3, gap  # measured -0.09 dB (4 chunks), +0.04 dB (8 chunks) at the defaults of eta = 1e-3
    if options.get("eta", "auto") == "auto":  # the noise-aware weight, streamed exactly
        from hsfuse.methods.ltmr import noise_aware_eta

        assert res.state["eta"] == pytest.approx(float(noise_aware_eta(y.hsi)[0]), rel=1e-9)
    with pytest.raises(InputError, match="circular"):
        fuse_chunked(hsi, msi, method="ltmr", physics=_with_boundary(sim.physics, "reflect"), options=options,
                     chunk=72)


def test_cstf_chunked_is_within_a_measured_gap_of_the_whole_image(sim):
    """CSTF per overlapping tile (own dictionaries): measured gap on 4 chunks below; whole image 41.97 dB."""
    from hsfuse.methods.cstf import CSTF_CHUNKED

    assert get_method("cstf").chunked is CSTF_CHUNKED and not CSTF_CHUNKED.exact
    y = sim.measurement()
    ref = sim.reference.data.transpose(2, 0, 1)
    hsi, msi = y.hsi[0].numpy(), y.msi[0].numpy()
    options = {"iterations": 1}
    whole = _whole("cstf", y, sim.physics, **options)
    res = fuse_chunked(hsi, msi, method="cstf", physics=sim.physics, options=options, chunk=72)
    assert len(res.grid) == 4
    gap = _psnr(res.output.values, ref) - _psnr(whole, ref)
    assert abs(gap) < CSTF_GAP_DB, gap
    with pytest.raises(InputError, match="circular"):
        fuse_chunked(hsi, msi, method="cstf", physics=_with_boundary(sim.physics, "reflect"), options=options,
                     chunk=72)


# --------------------------------------------------------------------------------------------- CLI, lazy scene


def test_cli_fuses_a_lazily_read_scene_with_glp_chunk_by_chunk(tmp_path, capsys):
    import rasterio

    import hsfuse
    from hsfuse.cli import main
    from hsfuse.data.large_scene import LargeScene, write_large_pair
    from hsfuse.io.lazy import dataarray_to_cube, open_lazy

    pair = write_large_pair(tmp_path, LargeScene(height=96, width=96, bands=40, seed=2), ratio=4, chunk=32,
                            overwrite=True)
    out = tmp_path / "glp.tif"
    argv = ["fuse", "--hsi", str(pair["hsi"]), "--msi", str(pair["msi"]), "--method", "glp", "--srf", "sentinel2a",
            "--bands", "B2,B3,B4,B5,B6,B7,B8,B8A", "--chunk", "32", "-q", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    whole = hsfuse.fuse(dataarray_to_cube(open_lazy(pair["hsi"])), dataarray_to_cube(open_lazy(pair["msi"])),
                        method="glp")  # in memory, on the whole image (GLP uses no SRF)
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32633 and src.count == 40
        np.testing.assert_allclose(src.read(), np.moveaxis(whole.data, 2, 0), rtol=0, atol=1e-6)  # measured 6e-8
