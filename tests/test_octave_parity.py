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

Also recorded: the same runs at 30 dB SNR on both images (``octave_parity_30db.json``, ``--snr-db 30``; hsfuse with
the recorded variants' EXPLICIT options, so the tests do not follow changes of hsfuse's defaults) and the random
methods CNMF (VCA), LTMR (k-means) and CSTF (VCA), whose parity is judged over seeds: the original over Octave rand
states 0-4 against hsfuse with the original's options over seeds 0-4 (means within 0.1 dB / 0.1 deg). Checking
the recorded means is fast; recomputing the five hsfuse runs is marked slow.
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
    mean) reproduces it within 0.1 dB / 0.1 deg; the then default (uniform prior lam = 1e-3 in orthonormal
    coordinates, pinned) is
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
    # the recorded hsfuse column is the default of its time, the uniform lam = 1e-3, pinned here (the default has
    # since become lam="auto", noise-aware)
    for options, want in ((variant["options"], row["original"]), ({"lam": 1e-3}, row["hsfuse"])):
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


# ------------------------------------------------------------------ noise, random methods (CNMF, LTMR, CSTF)
#: the same runs on the pair with white Gaussian noise at 30 dB SNR on both images (``--snr-db 30``)
NOISY_RESULTS = RESULTS.with_name("octave_parity_30db.json")
SCENE_RESULTS = {s: RESULTS.with_name(f"octave_parity_{s}.json") for s in ("jasper_ridge", "indian_pines")}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _pair_of(protocol: dict):
    case = next(c for c in DEFAULT_CASES if c.scene == protocol["scene"])
    sim = prepare_case(case, ratio=protocol["ratio"], preset=protocol["simulation_preset"], seed=protocol["seed"],
                       snr_db=protocol.get("snr_db"))
    return sim.measurement(), sim.physics.to(dtype=torch.float32), sim.reference.to_tensor(dtype=torch.float64)


def _scores(method: str, options: dict | None, y, physics, ref) -> tuple[float, float]:
    spec = get_method(method)
    with torch.no_grad():
        est = spec.run(y, physics, options=spec.make_options(options), weights=None).to(torch.float64)
    return (float(psnr(ref, est, data_range="band_max", reduction="band_mean")[0]),
            float(sam(ref, est, unit="degrees", zero_pixels="exclude")[0]))


@pytest.fixture(scope="module")
def noisy_pair():
    return _pair_of(_load(NOISY_RESULTS)["protocol"])


def test_noisy_protocol_is_the_one_recomputed(noisy_pair, pair):
    p = _load(NOISY_RESULTS)["protocol"]
    assert (p["scene"], p["ratio"], p["simulation_preset"], p["snr_db"]) == ("pavia_u", 4, "hsfuse", 30)
    assert p["noise"].startswith("white Gaussian, SNR 30 dB")
    y_noisy, y_clean = noisy_pair[0], pair[0]
    # the recorded pair is noisy: 30 dB on the HSI, residual power 1e-3 of the signal's
    ratio = float((y_noisy.hsi - y_clean.hsi).pow(2).mean() / y_clean.hsi.pow(2).mean())
    assert 0.8e-3 < ratio < 1.2e-3


#: deterministic runs at parity at 30 dB; hsfuse runs with the recorded variant's options, set explicitly (the
#: original's values, or hsfuse's geometry choices that the *_aligned originals are given), so a change of
#: hsfuse's defaults does not move these
NOISY_PARITY_RUNS = (("gsa_aligned", "pinned"), ("sfim_aligned", "pinned"), ("glp_aligned", "pinned"),
                     ("hysure_svd", "original_options"), ("fuse", "original_prior"))


@pytest.mark.parametrize(("run", "variant"), NOISY_PARITY_RUNS)
def test_hsfuse_matches_original_at_30db(run, variant, noisy_pair):
    y, physics, ref = noisy_pair
    row = next(r for r in _load(NOISY_RESULTS)["rows"] if r["method"] == run)
    options = row["variants"][variant]["options"]
    assert row["variants"][variant]["parity_0p1"]
    got_psnr, got_sam = _scores(row["hsfuse_method"], options, y, physics, ref)
    assert abs(got_psnr - row["original"]["psnr"]) <= PSNR_TOL_DB, (got_psnr, row["original"]["psnr"])
    assert abs(got_sam - row["original"]["sam"]) <= SAM_TOL_DEG, (got_sam, row["original"]["sam"])


#: random runs (VCA in CNMF and CSTF, k-means in LTMR) at parity over seeds: the original over Octave rand states
#: 0..n-1 (recorded; n = 5, 20 for Jasper Ridge's CNMF) and hsfuse with every option set EXPLICITLY to the
#: original's value (the recorded ``original_options_seed*`` variants) over seeds 0..n-1 agree in mean within
#: 0.1 dB / 0.1 deg
RANDOM_PARITY = (
    ("pavia_u", RESULTS, "cnmf_aligned"), ("pavia_u", RESULTS, "ltmr"),
    ("pavia_u", RESULTS, "cstf"),
    ("pavia_u_30db", NOISY_RESULTS, "cnmf_aligned"), ("pavia_u_30db", NOISY_RESULTS, "ltmr"),
    ("pavia_u_30db", NOISY_RESULTS, "cstf"),
    ("indian_pines", SCENE_RESULTS["indian_pines"], "cnmf_aligned"),
    ("indian_pines", SCENE_RESULTS["indian_pines"], "ltmr"),
    ("jasper_ridge", SCENE_RESULTS["jasper_ridge"], "cnmf_aligned"),
    ("jasper_ridge", SCENE_RESULTS["jasper_ridge"], "ltmr"),
)
_RANDOM_IDS = [f"{name}-{run}" for name, _, run in RANDOM_PARITY]


def _seed_variants(row: dict) -> list[dict]:
    return [v for k, v in row["variants"].items() if k.startswith("original_options_seed")]


@pytest.mark.parametrize(("name", "path", "run"), RANDOM_PARITY, ids=_RANDOM_IDS)
def test_random_run_recorded_at_parity_over_seeds(name, path, run):
    """The recorded means (no recomputation): n Octave states, n hsfuse seeds with the original's options."""
    row = next(r for r in _load(path)["rows"] if r["method"] == run)
    orig = [row["original"], *row["original_over_seeds"]]
    ours = _seed_variants(row)
    n = len(orig)
    assert n >= 5 and len(ours) == n
    s = row["over_seeds"]
    assert s["parity_0p1"], s
    assert abs(sum(o["psnr"] for o in orig) / n - s["original_psnr_mean"]) < 1e-9
    assert abs(sum(v["psnr"] for v in ours) / n - s["hsfuse_psnr_mean"]) < 1e-9
    assert abs(s["hsfuse_psnr_mean"] - s["original_psnr_mean"]) <= PSNR_TOL_DB
    assert abs(s["hsfuse_sam_mean"] - s["original_sam_mean"]) <= SAM_TOL_DEG


@pytest.mark.parametrize(("path", "run"), [(RESULTS, "cnmf_aligned"), (NOISY_RESULTS, "cnmf_aligned"),
                                         (RESULTS, "cstf"), (NOISY_RESULTS, "cstf")],
                         ids=["cnmf-clean", "cnmf-30db", "cstf-clean", "cstf-30db"])
def test_seed0_reproduces_the_recorded_run(path, run):
    """Fast check (one hsfuse run, a few seconds) that the recorded hsfuse side of a random comparison is still
    what hsfuse computes: seed 0 with the original's options reproduces its recorded PSNR / SAM (the five-seed mean
    against the original's is recomputed by the slow test below)."""
    rec = _load(path)
    row = next(r for r in rec["rows"] if r["method"] == run)
    want = row["variants"]["original_options_seed0"]
    got_psnr, got_sam = _scores(row["hsfuse_method"], want["options"], *_pair_of(rec["protocol"]))
    assert abs(got_psnr - want["psnr"]) <= 0.02, (got_psnr, want["psnr"])
    assert abs(got_sam - want["sam"]) <= 0.02, (got_sam, want["sam"])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "path", "run"), RANDOM_PARITY, ids=_RANDOM_IDS)
def test_random_run_matches_original_over_seeds(name, path, run):
    """Recomputed: hsfuse over seeds 0..n-1 with the recorded original options against the original's recorded
    mean over Octave rand states 0..n-1 (slow: n runs; CNMF and CSTF a few seconds each, LTMR about 10 s)."""
    rec = _load(path)
    row = next(r for r in rec["rows"] if r["method"] == run)
    orig = [row["original"], *row["original_over_seeds"]]
    y, physics, ref = _pair_of(rec["protocol"])
    ours = [_scores(row["hsfuse_method"], v["options"], y, physics, ref) for v in _seed_variants(row)]
    n = len(orig)
    assert len(ours) == n
    assert abs(sum(p for p, _ in ours) / n - sum(o["psnr"] for o in orig) / n) <= PSNR_TOL_DB
    assert abs(sum(s for _, s in ours) / n - sum(o["sam"] for o in orig) / n) <= SAM_TOL_DEG
