"""Parity with the original MATLAB code, against numbers recorded by running that code in GNU Octave.

The independent source is ``benchmarks/results/classical/octave_parity.json``, written by
``benchmarks/reference/octave_parity.py`` (magamig/hif-benchmarking's GSA, SFIM, MTF-GLP and HySure's
``data_fusion.m``, run in Octave 7.3 with the MATLAB-semantics shims documented there). No Octave is needed here:
each test re-simulates the same pair (Pavia U, IKONOS B/G/R/NIR, r = 4, preset ``hsfuse``, clean; FUSE also on Jasper
Ridge and Indian Pines from ``octave_parity_<scene>.json``), runs hsfuse's
method with its default options, and compares its PSNR/SAM with the original's recorded ones (0.1 dB, 0.1 deg).

Only runs where parity holds are tested, and they are the ATTRIBUTION runs: the original code with its geometry
helpers replaced by hsfuse's documented choices (``*_aligned``: true PSF and decimation phase instead of
``imresize``/``gaussian_down_sample``/two-phase averaging; ``hysure_svd``: the SVD basis instead of VCA). The
as-published originals are 0.5 to 9 dB away (recorded in the same file, with the cause); those gaps are the
documented deviations, not tested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hsfuse.bench.runner import DEFAULT_CASES, prepare_case
from hsfuse.methods.registry import get_method
from hsfuse.metrics.functional import psnr, sam

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "classical" / "octave_parity.json"

#: the runs whose original (Octave) numbers hsfuse's defaults reproduce within 0.1 dB / 0.1 deg
PARITY_RUNS = ("gsa_aligned", "sfim_aligned", "glp_aligned", "hysure_svd")
PSNR_TOL_DB, SAM_TOL_DEG = 0.1, 0.1


def _recorded() -> dict:
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def pair():
    rec = _recorded()["protocol"]
    case = next(c for c in DEFAULT_CASES if c.scene == rec["scene"])
    sim = prepare_case(case, ratio=rec["ratio"], preset=rec["simulation_preset"], seed=rec["seed"])
    return sim.measurement(), sim.physics.to(dtype=torch.float32), sim.reference.to_tensor(dtype=torch.float64)


def test_recorded_protocol_is_the_one_recomputed():
    rec = _recorded()
    p = rec["protocol"]
    assert (p["scene"], p["ratio"], p["simulation_preset"], p["noise"]) == ("pavia_u", 4, "hsfuse", "none")
    runs = {r["method"]: r for r in rec["rows"]}
    for name in PARITY_RUNS:
        assert runs[name]["parity_0p1"], name


@pytest.mark.parametrize("run", PARITY_RUNS)
def test_hsfuse_matches_original(run, pair):
    y, physics, ref = pair
    row = next(r for r in _recorded()["rows"] if r["method"] == run)
    spec = get_method(row["hsfuse_method"])
    with torch.no_grad():
        est = spec.run(y, physics, options=spec.make_options(None), weights=None).to(torch.float64)
    got_psnr = float(psnr(ref, est, data_range="band_max", reduction="band_mean")[0])
    got_sam = float(sam(ref, est, unit="degrees", zero_pixels="exclude")[0])
    assert abs(got_psnr - row["original"]["psnr"]) <= PSNR_TOL_DB, (got_psnr, row["original"]["psnr"])
    assert abs(got_sam - row["original"]["sam"]) <= SAM_TOL_DEG, (got_sam, row["original"]["sam"])


#: FUSE's recorded Octave runs, one file per scene (same protocol, ``--methods fuse --scene S``)
FUSE_RESULTS = {"pavia_u": RESULTS, **{s: RESULTS.with_name(f"octave_parity_{s}.json")
                                        for s in ("jasper_ridge", "indian_pines")}}


@pytest.mark.parametrize("scene", sorted(FUSE_RESULTS))
def test_fuse_prior_original_reproduces_bayesian_fusion(scene):
    """The original BayesianFusion (true PSF/SRF/phase, Octave) against hsfuse's FUSE on three scenes:
    ``prior="original", subspace_dim=15`` (eigenvalue-scaled whitened prior at the wrapper's data scale, spline
    mean) reproduces it within 0.1 dB / 0.1 deg; the default (uniform prior in orthonormal coordinates) is
    recorded 3.4 dB below it on Pavia, 4.1 dB below on Jasper Ridge and 3.3 dB ABOVE it on Indian Pines, so it
    stays the default. Both hsfuse numbers are recomputed, so a change of either side is noticed."""
    rec = json.loads(FUSE_RESULTS[scene].read_text())
    p = rec["protocol"]
    assert (p["scene"], p["ratio"], p["noise"]) == (scene, 4, "none")
    case = next(c for c in DEFAULT_CASES if c.scene == scene)
    sim = prepare_case(case, ratio=p["ratio"], preset=p["simulation_preset"], seed=p["seed"])
    y, physics = sim.measurement(), sim.physics.to(dtype=torch.float32)
    ref = sim.reference.to_tensor(dtype=torch.float64)
    row = next(r for r in rec["rows"] if r["method"] == "fuse")
    variant = row["variants"]["original_prior"]
    assert variant["options"] == {"prior": "original", "subspace_dim": 15} and variant["parity_0p1"]
    spec = get_method("fuse")
    for options, want in ((variant["options"], row["original"]), (None, row["hsfuse"])):
        with torch.no_grad():
            est = spec.run(y, physics, options=spec.make_options(options), weights=None).to(torch.float64)
        got_psnr = float(psnr(ref, est, data_range="band_max", reduction="band_mean")[0])
        got_sam = float(sam(ref, est, unit="degrees", zero_pixels="exclude")[0])
        assert abs(got_psnr - want["psnr"]) <= PSNR_TOL_DB, (options, got_psnr, want["psnr"])
        assert abs(got_sam - want["sam"]) <= SAM_TOL_DEG, (options, got_sam, want["sam"])


def test_hysure_vca_basis_matches_the_original_over_seeds(pair):
    """HySure's demo basis is VCA (random): the original over Octave rand states 0-4 (recorded) against hsfuse's
    ``basis="vca"`` over seeds 0-4 (recomputed): the means agree within 0.1 dB / 0.1 deg."""
    y, physics, ref = pair
    row = next(r for r in _recorded()["rows"] if r["method"] == "hysure")
    orig = [row["original"], *row["original_over_seeds"]]
    assert len(orig) == 5
    spec = get_method("hysure")
    ours = []
    for seed in range(5):
        with torch.no_grad():
            est = spec.run(y, physics, options=spec.make_options({"basis": "vca", "seed": seed}),
                           weights=None).to(torch.float64)
        ours.append((float(psnr(ref, est, data_range="band_max", reduction="band_mean")[0]),
                     float(sam(ref, est, unit="degrees", zero_pixels="exclude")[0])))
    mean_psnr = sum(p for p, _ in ours) / 5
    mean_sam = sum(s for _, s in ours) / 5
    assert abs(mean_psnr - sum(o["psnr"] for o in orig) / 5) <= PSNR_TOL_DB
    assert abs(mean_sam - sum(o["sam"] for o in orig) / 5) <= SAM_TOL_DEG
    # the SVD default is a different basis, 0.5 dB below: the documented deviation, recorded
    assert row["gap"]["psnr_db"] < -0.3
