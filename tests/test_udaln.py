"""UDALN (methods/udaln.py) and the projected learnable operators it trains (physics/learnable.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hsfuse.errors import InputError
from hsfuse.methods.registry import fuse
from hsfuse.methods.udaln import (
    SCHEDULES,
    SpectralUpsampler,
    Stage,
    UdalnOptions,
    UdalnSchedule,
    estimate_udaln,
    fit_udaln,
    fuse_udaln,
    gaussian_srf_init,
)
from hsfuse.physics import FusionObservation, SpatialDegradation, SpectralResponse, gaussian_psf
from hsfuse.physics.learnable import LearnableSpatialDegradation, LearnableSpectralResponse, project_simplex
from hsfuse.physics.learnable import support_from_srf
from hsfuse.physics.spatial import blur, blur_decimate, decimate
from hsfuse.types import FusionMeasurement


pytestmark = pytest.mark.usefixtures("one_thread")


def _plan(n1: int, n2: int, n3: int) -> UdalnSchedule:
    return UdalnSchedule(name=f"test-{n1}-{n2}-{n3}", stage1=Stage(iterations=n1, lr=1e-3, decay_start=n1 // 2),
                         stage2=Stage(iterations=n2, lr=1e-3, decay_start=2 * n2 // 3),
                         stage3=Stage(iterations=n3, lr=6e-5, decay_start=n3 // 3))


def _banded_srf(L: int, ranges: list[tuple[int, int]]) -> torch.Tensor:
    R = torch.zeros(len(ranges), L, dtype=torch.float64)
    for j, (lo, hi) in enumerate(ranges):
        t = torch.arange(lo, hi, dtype=torch.float64)
        R[j, lo:hi] = torch.exp(-((t - (lo + hi - 1) / 2) ** 2) / 4)
    return R / R.sum(dim=1, keepdim=True)


def _random_pair(*, L=12, H=32, r=4, seed=0):
    """Independent random bands and pixels: the stage-1 problem has the true operators as its unique solution."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(1, L, H, H, generator=g, dtype=torch.float64)
    R = _banded_srf(L, [(0, 5), (3, 9), (7, 12)])
    psf = gaussian_psf(r, fwhm=0.8 * r)
    obs = FusionObservation(SpatialDegradation(ratio=r, psf=psf), SpectralResponse(R))
    y = obs.A(X)
    return FusionMeasurement(y.hsi.float(), y.msi.float()), X, psf, R


# --------------------------------------------------------------------------------------------- operators


def _simplex_by_bisection(v: torch.Tensor) -> torch.Tensor:
    """Independent reference: find tau with sum(max(v - tau, 0)) = 1 by bisection."""
    lo, hi = float(v.min()) - 1.0, float(v.max())
    for _ in range(200):
        tau = 0.5 * (lo + hi)
        if float((v - tau).clamp_min(0).sum()) > 1.0:
            lo = tau
        else:
            hi = tau
    return (v - 0.5 * (lo + hi)).clamp_min(0)


def test_project_simplex_matches_bisection():
    g = torch.Generator().manual_seed(1)
    V = torch.randn(20, 9, generator=g, dtype=torch.float64) * 2
    P = project_simplex(V)
    for v, p in zip(V, P):
        torch.testing.assert_close(p, _simplex_by_bisection(v), atol=1e-10, rtol=0)
    mask = torch.rand(20, 9, generator=g) > 0.4
    mask[:, 0] = True
    Pm = project_simplex(V, mask=mask)
    assert torch.all(Pm[~mask] == 0)
    for v, p, m in zip(V, Pm, mask):
        torch.testing.assert_close(p[m], _simplex_by_bisection(v[m]), atol=1e-10, rtol=0)


def test_blur_decimate_equals_two_steps():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 24, 36, generator=g, dtype=torch.float64)
    cases = [(5, 4, 1, "circular"), (4, 4, 1, "reflect"), (7, 3, 2, "circular"), (2, 2, 0, "reflect")]
    for k, r, off, boundary in cases:
        psf = torch.rand(k, k, generator=g, dtype=torch.float64)
        torch.testing.assert_close(blur_decimate(x, psf, ratio=r, offset=off, boundary=boundary),
                                   decimate(blur(x, psf, boundary=boundary), ratio=r, offset=off), rtol=0, atol=1e-13)


def test_learnable_operators_refuse_bad_init():
    with pytest.raises(InputError, match="non-negative"):
        LearnableSpatialDegradation(ratio=2, init=-torch.ones(2, 2))
    with pytest.raises(InputError, match="support"):
        LearnableSpectralResponse(msi_bands=2, hsi_bands=3, support=torch.tensor([[True, False, False],
                                                                                   [False, False, False]]))


# --------------------------------------------------------------------------------------------- the paper's pieces


def test_paper_schedule_is_the_released_run():
    # checkpoint folder of the released Houston run: S1=0.001_20000_10000_S2=0.001_30000_20000_S3=6e-05_15000_5000
    p = SCHEDULES["paper"]
    assert (p.stage1.lr, p.stage1.iterations, p.stage1.decay_start) == (1e-3, 20000, 10000)
    assert (p.stage2.lr, p.stage2.iterations, p.stage2.decay_start) == (1e-3, 30000, 20000)
    assert (p.stage3.lr, p.stage3.iterations, p.stage3.decay_start) == (6e-5, 15000, 5000)
    assert p.iterations == 65000


def test_stage_learning_rate_rule_by_hand():
    # train_all_special.py: after iteration i >= d the lr drops by lr0 / (n - d + 1); n=5, d=2 -> steps of 1/4
    s = Stage(iterations=5, lr=1.0, decay_start=2)
    assert [s.lr_at(i) for i in range(1, 6)] == [1.0, 1.0, 0.75, 0.5, 0.25]
    with pytest.raises(InputError):
        Stage(iterations=5, lr=1.0, decay_start=6)


def test_spectral_upsampler_widths_and_equivalence_with_1x1_convs():
    # spectral_upsample.py: num_ups = int(log2(C / Cm)); WorldView-2 (8) -> Houston (46): 8 -> 16 -> 32 -> 46
    net = SpectralUpsampler(msi_bands=8, hsi_bands=46)
    widths = [(m.in_features, m.out_features) for m in net.layers if isinstance(m, torch.nn.Linear)]
    assert widths == [(8, 16), (16, 32), (32, 46)]
    net = SpectralUpsampler(msi_bands=3, hsi_bands=31)  # 3 -> 6 -> 12 -> 24 -> 31
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 6), (6, 12), (12, 24), (24, 31)]
    z = torch.rand(2, 3, 5, 7)
    ref = z
    for m in linears:  # the authors' form: 1x1 convolutions, LeakyReLU(0.2) after every layer
        ref = F.leaky_relu(F.conv2d(ref, m.weight[:, :, None, None], m.bias), 0.2)
    torch.testing.assert_close(net(z), ref)


def test_gaussian_srf_init_by_formula():
    support = torch.zeros(2, 10, dtype=torch.bool)
    support[0, 1:6] = True
    support[1, 4:10] = True
    init = gaussian_srf_init(support)
    t = torch.arange(5, dtype=torch.float64) - 2.0  # spectral_downsample.py: ogrid[-t:t+1], sigma 3.5
    g = torch.exp(-(t**2) / (2 * 3.5**2))
    torch.testing.assert_close(init[0, 1:6], g / g.sum())
    assert torch.all(init[0, :1] == 0) and torch.all(init[0, 6:] == 0)
    t = torch.arange(6, dtype=torch.float64) - 2.5
    g = torch.exp(-(t**2) / (2 * 3.5**2))
    torch.testing.assert_close(init[1, 4:], g / g.sum())


# --------------------------------------------------------------------------------------------- fitting


def test_stage1_recovers_known_psf_and_srf():
    # noise-free, exact model, independent random bands: the true (PSF, SRF) is the unique zero of the stage-1
    # loss, so the estimate must approach it; 1e-3 relative is ~100x the error measured after 600 iterations
    y, _, psf, R = _random_pair()
    ops = estimate_udaln(y, support=support_from_srf(R), srf_normalize="sum", iterations=600)
    assert float((ops.psf - psf).norm() / psf.norm()) < 1e-3
    assert float((ops.srf - R).norm() / R.norm()) < 1e-3
    assert ops.method == "udaln" and ops.ratio == 4 and ops.offset == 1


def test_constraints_stay_valid_through_all_stages():
    y, _, _, R = _random_pair(seed=3)
    support = support_from_srf(R)
    for normalize in ("sum", "none"):
        seen = []

        def check(record, model):
            psf, srf = model.spatial.psf.detach(), model.spectral.matrix.detach()
            assert float(psf.min()) >= 0 and abs(float(psf.sum()) - 1) < 1e-5
            assert float(srf.min()) >= 0 and torch.all(srf[~support] == 0)
            if normalize == "sum":
                torch.testing.assert_close(srf.sum(dim=1), torch.ones(3), atol=1e-5, rtol=0)
            seen.append(record["stage"])

        fit_udaln(y, schedule=_plan(30, 30, 20), support=support, srf_normalize=normalize, monitor_every=1,
                  callback=check)
        assert seen.count(1) == 30 and seen.count(2) == 30 and seen.count(3) == 20


def test_masked_pixels_have_no_influence():
    y, _, _, R = _random_pair(seed=4)
    valid = torch.ones(32, 32, dtype=torch.bool)
    valid[8:20, 4:14] = False
    garbage = y.msi.clone()
    garbage[..., 8:20, 4:14] = 7.5  # finite nonsense under the mask
    plan = _plan(40, 40, 20)
    a = fit_udaln(y, schedule=plan, valid=valid)
    b = fit_udaln(FusionMeasurement(y.hsi, garbage), schedule=plan, valid=valid)
    torch.testing.assert_close(a.operators.psf, b.operators.psf, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.operators.srf, b.operators.srf, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.estimate[..., valid], b.estimate[..., valid], rtol=0, atol=1e-6)
    c = fit_udaln(FusionMeasurement(y.hsi, garbage), schedule=plan)  # without the mask the garbage matters
    assert float((c.operators.psf - a.operators.psf).abs().max()) > 1e-4


def test_known_operators_are_used_as_given():
    y, _, psf, R = _random_pair(seed=5)
    spatial = SpatialDegradation(ratio=4, psf=psf)
    spectral = SpectralResponse(R)
    res = fit_udaln(y, schedule=_plan(50, 20, 10), known_psf=spatial, known_srf=spectral, monitor_every=5)
    torch.testing.assert_close(res.operators.psf, psf)
    torch.testing.assert_close(res.operators.srf, R)
    assert {r["stage"] for r in res.history} == {2, 3}  # nothing to learn in stage 1
    assert res.iterations == 30


def test_early_stopping_and_callback_stop():
    y, _, _, _ = _random_pair(seed=6)
    res = fit_udaln(y, schedule=_plan(200, 200, 200), monitor_every=10, tol_db=1e3, patience=2)
    # a tolerance no stage can meet: each stage ends after patience + 1 records
    assert [r["stage"] for r in res.history] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert res.iterations == 90 and res.stopped == "converged"
    res = fit_udaln(y, schedule=_plan(200, 200, 200), monitor_every=10,
                    callback=lambda rec, model: rec["iteration"] >= 250)
    assert res.stopped == "callback" and res.iterations == 250


def test_fit_beats_bicubic_on_a_real_scene(data_root):
    from hsfuse.data.scenes import load_scene
    from hsfuse.data.simulation import simulate
    from hsfuse.metrics.functional import psnr
    from hsfuse.physics.srf_library import srf_matrix

    cube = load_scene("pavia_u")
    cube = type(cube)(cube.data[:48, :48], wavelengths=cube.wavelengths)
    matrix, names = srf_matrix(str(data_root / "srf" / "ikonos_5nm.csv"), cube.wavelengths,
                               bands=["Blue", "Green", "Red", "NIR"], normalize="none")
    sim = simulate(cube, matrix, ratio=4, preset="udaln", srf_band_names=names)
    y = sim.measurement()
    ref = sim.reference.to_tensor()
    est = fuse("udaln", y, sim.physics, schedule=_plan(300, 600, 100))
    floor = fuse("bicubic", y, sim.physics)
    gain = float(psnr(ref, est, data_range=1.0)) - float(psnr(ref, floor, data_range=1.0))
    assert gain > 2.0, f"UDALN only {gain:.2f} dB above bicubic"


def test_fits_under_no_grad():
    # 'hsfuse fuse' calls every method under torch.no_grad(); UDALN must still optimise
    y, _, _, R = _random_pair(seed=7)
    physics = FusionObservation(SpatialDegradation(ratio=4), SpectralResponse(R))
    with torch.no_grad():
        res = fit_udaln(y, schedule=_plan(20, 20, 5), monitor_every=5)
        assert not torch.is_grad_enabled()
        est = fuse("udaln", y, physics, schedule=_plan(5, 5, 5))
    stage1 = [r["loss"] for r in res.history if r["stage"] == 1]
    assert stage1[-1] < stage1[0]
    assert est.shape == (1, 12, 32, 32) and torch.isfinite(est).all()


def test_bad_input_is_refused():
    y, _, _, R = _random_pair()
    with pytest.raises(InputError, match="UDALN fits one image pair at a time, got a batch of 2"):
        fit_udaln(FusionMeasurement(y.hsi.repeat(2, 1, 1, 1), y.msi.repeat(2, 1, 1, 1)), schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="UDALN: ratio 3 disagrees with the image sizes"):
        fit_udaln(y, ratio=3, schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="support must be a boolean"):
        fit_udaln(y, support=torch.ones(2, 12, dtype=torch.bool), schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="unknown UDALN schedule"):
        fit_udaln(y, schedule="slow")
    bad = y.msi.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(InputError, match="multispectral image contains 1 NaN/inf"):
        fit_udaln(FusionMeasurement(y.hsi, bad), schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="valid must be a boolean"):
        fit_udaln(y, valid=torch.ones(8, 8, dtype=torch.bool), schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="tol_db"):
        fit_udaln(y, tol_db=-1.0, schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="pass physics"):  # (the registry's fuse builds a default physics)
        fuse_udaln(y, None, learn_psf=False)
    for kwargs, text in [(dict(monitor_every=0), "monitor_every must be an integer >= 1, got 0"),
                         (dict(patience=2.0), "patience must be an integer >= 1, got 2.0"),
                         (dict(seed=True), "seed must be an integer >= 0, got True")]:
        with pytest.raises(InputError, match=text):
            fit_udaln(y, schedule=_plan(1, 1, 1), **kwargs)
    with pytest.raises(InputError, match="iterations must be an integer >= 1, got 0"):
        estimate_udaln(y, iterations=0)
    with pytest.raises(InputError, match="FusionMeasurement"):
        fit_udaln((y.hsi, y.msi), schedule=_plan(1, 1, 1))
    with pytest.raises(InputError, match="stage iterations must be an integer >= 0"):
        Stage(iterations=2.0, lr=1e-3, decay_start=0)


# --------------------------------------------------------------------------------------------- progress, options


def test_progress_with_info_counts_every_iteration_and_names_the_stage():
    y, _, _, _ = _random_pair(seed=8)
    calls = []

    def progress(done, total, *, info=""):
        calls.append((done, total, info))

    fit_udaln(y, schedule=_plan(6, 4, 2), monitor_every=3, progress=progress)
    assert [(d, t) for d, t, _ in calls] == [(i, 12) for i in range(1, 13)]
    assert calls[-1][:2] == (12, 12)
    assert all(info.startswith(f"stage {stage}/3") for (_, _, info), stage in zip(calls, [1] * 6 + [2] * 4 + [3] * 2))
    # loss and fit appear from the stage's first monitoring point on (read there only: no extra device sync)
    assert calls[0][2] == "stage 1/3" and "loss" not in calls[1][2]
    assert "loss" in calls[2][2] and calls[2][2].endswith(" dB") and "fit" in calls[2][2]
    assert calls[6][2] == "stage 2/3"


def test_plain_two_argument_progress_and_early_stops_end_at_total():
    y, _, psf, R = _random_pair(seed=9)
    calls = []
    res = fit_udaln(y, schedule=_plan(200, 200, 200), monitor_every=10, tol_db=1e3, patience=2,
                    progress=lambda done, total: calls.append((done, total)))
    assert res.stopped == "converged" and res.iterations == 90
    assert calls[-1] == (600, 600) and all(t == 600 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never goes back
    # both operators known: stage 1 is skipped and does not count
    calls.clear()
    fit_udaln(y, schedule=_plan(5, 3, 2), known_psf=SpatialDegradation(ratio=4, psf=psf),
              known_srf=SpectralResponse(R), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 5) for i in range(1, 6)]
    # the estimator and the registry entry pass it on
    calls.clear()
    estimate_udaln(y, iterations=4, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 4) for i in range(1, 5)]
    calls.clear()
    physics = FusionObservation(SpatialDegradation(ratio=4), SpectralResponse(R))
    fuse_udaln(y, physics, schedule=_plan(2, 2, 2), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6, 6)


def test_options_dataclass_matches_fuse_udaln():
    import dataclasses
    import inspect

    from hsfuse.methods.options import RUNTIME_ARGUMENTS

    params = inspect.signature(fuse_udaln).parameters
    keyword = {n: p.default for n, p in params.items()
               if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in RUNTIME_ARGUMENTS}
    fields = {f.name: f.default for f in dataclasses.fields(UdalnOptions)}
    assert fields == keyword
    assert all(UdalnOptions.field_help().values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        UdalnOptions().seed = 3
