"""The training engine: deterministic samples, checkpoints, exact resume (also after kill -9), validation,
TensorBoard logs, and DistributedDataParallel under torchrun (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hsfuse.data.patches import DegradationFamily, PatchSampler, load_training_scenes, split_rows, validation_pairs
from hsfuse.errors import FileFormatError, InputError
from hsfuse.models.checkpoint import load_model, read_card, resolve_checkpoint
from hsfuse.physics.spatial import blur, decimate, gaussian_psf
from hsfuse.training.loop import TrainOptions, train
from hsfuse.types import Cube

L, M, R = 6, 2, 2


def _scene(seed: int = 0, size: int = 24) -> Cube:
    g = np.random.default_rng(seed)
    base = g.random((size, size, 1)) * 0.5 + 0.5
    spectra = np.linspace(0.2, 1.0, L)[None, None] * base + 0.1 * g.random((size, size, L))
    return Cube(spectra.astype(np.float32), wavelengths=np.linspace(450, 700, L))


def _family(**kw) -> DegradationFamily:
    srf = torch.tensor([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.float64)
    return DegradationFamily(ratio=R, srfs=(srf,), **kw)


def _sampler(**kw) -> PatchSampler:
    scenes = load_training_scenes([_scene(0), _scene(1, 20)])
    return PatchSampler(scenes, _family(), patch_size=8, seed=3, **kw)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(resolve_checkpoint(path, prefer="last") / "model.safetensors"))


OPTS = dict(method="dbin", config="tiny", steps=7, batch_size=2, ckpt_every=3, val_every=3, log_every=1)


# ---------------------------------------------------------------------------------------------- samples


def test_samples_are_a_pure_function_of_the_index_and_follow_the_physics():
    s1, s2 = _sampler(), _sampler()
    a, b = s1.batch([5, 9]), s2.batch([5, 9])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(s1.sample(5)[2], s1.sample(6)[2])
    # without augmentation a sample's inputs are the documented degradation of its (scaled) target
    s = _sampler(augment=False)
    hsi, msi, target = s.sample(4)
    fam = s.family
    psf = gaussian_psf(2 * R + 1, fwhm=R)  # hsfuse preset: FWHM = r on (2r+1)^2, circular, offset (r-1)//2
    scene = int(np.random.default_rng([3, 4]).choice(2, p=s._weights))
    s_h, s_m = s.scales[scene]
    raw = (target * s_h).double()[None]
    expect_h = decimate(blur(raw, psf, boundary="circular"), ratio=R, offset=(R - 1) // 2)[0] / s_h
    assert torch.allclose(hsi.double(), expect_h, atol=1e-6)
    srf = fam.srfs[0] / fam.srfs[0].sum(1, keepdim=True)
    expect_m = torch.einsum("ml,lhw->mhw", srf, raw[0]) / s_m
    assert torch.allclose(msi.double(), expect_m, atol=1e-6)


def test_scales_are_band_maxima_of_the_whole_scene_inputs():
    s = _sampler()
    scene = s.scenes[0][None]  # (1, L, H, W), already max-normalised
    obs = s.family.nominal()
    y = obs.A(scene.double())
    assert torch.allclose(s.scales[0][0].flatten().double(), y.hsi.amax(dim=(0, 2, 3)), rtol=1e-6)
    assert torch.allclose(s.scales[0][1].flatten().double(), y.msi.amax(dim=(0, 2, 3)), rtol=1e-6)


def test_psf_width_and_srf_are_drawn_within_the_family():
    srf_a = torch.tensor([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.float64)
    srf_b = torch.tensor([[1.0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]], dtype=torch.float64)
    fam = DegradationFamily(ratio=R, srfs=(srf_a, srf_b), psf_fwhm_range=(0.5, 1.5))
    rng = np.random.default_rng(0)
    seen_srf, centres = set(), []
    for _ in range(40):
        obs = fam.draw(rng)
        seen_srf.add(tuple(obs.spectral.matrix[0].tolist()))
        centres.append(float(obs.spatial.psf[R, R]))
    assert len(seen_srf) == 2
    # the PSF centre weight decreases with FWHM: it must vary and stay between those of FWHM 0.5r and 1.5r
    lo, hi = float(gaussian_psf(2 * R + 1, fwhm=1.5 * R)[R, R]), float(gaussian_psf(2 * R + 1, fwhm=0.5 * R)[R, R])
    assert min(centres) >= lo - 1e-12 and max(centres) <= hi + 1e-12 and np.std(centres) > 0
    with pytest.raises(InputError, match="psf_fwhm_range"):
        DegradationFamily(ratio=R, srfs=(srf_a,), psf_fwhm_range=(2.0, 1.0))


def test_bad_training_data_is_refused_clearly(tmp_path):
    with pytest.raises(InputError, match="different band counts"):
        load_training_scenes([_scene(0), Cube(np.ones((8, 8, 3), np.float32))])
    with pytest.raises(InputError, match="smaller than the 32-pixel patch"):
        PatchSampler(load_training_scenes([_scene(0, 20)]), _family(), patch_size=32)
    with pytest.raises(InputError, match="multiple of the ratio"):
        PatchSampler(load_training_scenes([_scene(0)]), _family(), patch_size=7)
    with pytest.raises(InputError, match="synthetic:N"):
        load_training_scenes(["synthetic:many"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        load_training_scenes([tmp_path / "empty"])
    top, bottom = split_rows(_scene(0), bottom_fraction=0.25, multiple=2)
    assert top.shape[0] == 18 and bottom.shape[0] == 6


# ---------------------------------------------------------------------------------------------- runs


def test_run_writes_checkpoints_pointers_history_and_tensorboard(tmp_path):
    sampler = _sampler()
    val = validation_pairs([_scene(7, 16)], sampler.family)
    res = train(TrainOptions(**OPTS), sampler, run_dir=tmp_path / "run", validation=val)
    run = tmp_path / "run"
    assert res.steps_done == 7
    hist = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert hist == res.history
    assert [h["step"] for h in hist] == list(range(1, 8))  # log_every 1: a line per step
    assert all({"seconds", "loss", "lr"} <= set(h) for h in hist)
    validated = [h for h in hist if "psnr" in h]  # the metrics are merged into the lines of validation steps
    assert [h["step"] for h in validated] == [3, 6, 7]
    best = max(validated, key=lambda h: h["psnr"])
    assert res.best_metrics == {k: best[k] for k in res.best_metrics}
    assert json.loads((run / "best.json").read_text())["step"] == best["step"]
    assert json.loads((run / "last.json").read_text())["step"] == 7
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "step_0000007" in kept and len(kept) <= 3  # keep_last 2 + best
    assert not [p for p in run.rglob("*.tmp*")]
    card, _ = read_card(run)
    assert card.training["step"] == best["step"] and card.hsi_bands == L and card.ratio == R
    # the card's SRF is the one applied: the hsfuse preset normalises each MSI band's weights to sum to one
    assert np.allclose(np.sum(card.srf, axis=1), 1.0) and np.asarray(card.srf).shape == (M, L)
    net, _ = load_model(run, hsi_bands=L, msi_bands=M, ratio=R)
    assert not net.training
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert {"train/loss", "train/lr", "val/psnr", "val/sam"} <= set(acc.Tags()["scalars"])
    assert len(acc.Scalars("train/loss")) == 7
    assert "val/estimate" in acc.Tags()["images"]


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    train(TrainOptions(**OPTS), _sampler(), run_dir=tmp_path / "a")
    part = train(TrainOptions(**OPTS), _sampler(), run_dir=tmp_path / "b", stop_after=5)
    assert part.steps_done == 5 and json.loads((tmp_path / "b" / "last.json").read_text())["step"] == 3
    train(TrainOptions(**OPTS), _sampler(), run_dir=tmp_path / "b", resume=True)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "resumed run differs from the uninterrupted one"
    # and it did learn something: the weights moved from their initialisation
    torch.manual_seed(0)
    from hsfuse.models.catalog import build_model

    init = build_model("dbin", hsi_bands=L, msi_bands=M, ratio=R, config="tiny").state_dict()
    assert any(not torch.equal(init[k], wa[k]) for k in wa)


_KILL_SCRIPT = r"""
import sys, numpy as np, torch
sys.path.insert(0, {tests!r})
from test_training import _sampler, OPTS
from hsfuse.training.loop import TrainOptions, train
torch.set_num_threads(1)
opts = dict(OPTS, steps=40, ckpt_every=2)
train(TrainOptions(**opts), _sampler(), run_dir={run!r}, resume=True)
"""


def test_resume_after_kill_minus_9_gives_the_same_weights(tmp_path):
    torch_threads = torch.get_num_threads()
    for name in ("killed", "clean"):
        (tmp_path / f"{name}.py").write_text(_KILL_SCRIPT.format(tests=str(Path(__file__).parent),
                                                                  run=str(tmp_path / name)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "killed.py")], env=env)
    deadline = time.time() + 120
    last = tmp_path / "killed" / "last.json"
    while time.time() < deadline and not (last.is_file() and json.loads(last.read_text())["step"] >= 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.is_file(), "the job never wrote a checkpoint"
    killed_at = json.loads(last.read_text())["step"]
    assert killed_at < 40
    for name in ("killed", "clean"):  # resume the killed run; run the clean one uninterrupted
        subprocess.run([sys.executable, str(tmp_path / f"{name}.py")], env=env, check=True)
    assert not [p for p in (tmp_path / "killed").rglob("*.tmp*")]
    wa, wb = _weights(tmp_path / "clean"), _weights(tmp_path / "killed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa), f"run killed after step {killed_at} resumed differently"
    assert torch.get_num_threads() == torch_threads


def test_resume_tidies_what_a_kill_during_a_write_left(tmp_path):
    """Leftovers named as the atomic writers name them (a half-written checkpoint folder, a pointer's
    temporary) are removed on resume; the run then finishes normally."""
    opts = TrainOptions(**{**OPTS, "steps": 4, "ckpt_every": 2, "val_every": 2})
    run = tmp_path / "r"
    train(opts, _sampler(), run_dir=run, stop_after=3)
    half = run / "checkpoints" / ".step_0000004.0badcafe.tmp"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    (run / ".last.json.tmp").write_text("{")
    with open(run / "history.jsonl", "a") as fh:
        fh.write('{"step": 3, "seco')  # a history line cut short by the kill
    assert train(opts, _sampler(), run_dir=run).steps_done == 4
    assert not [p.name for p in run.rglob("*.tmp*")]
    assert json.loads((run / "last.json").read_text())["step"] == 4
    assert [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    (run / "run.json").write_text("{")
    with pytest.raises(FileFormatError, match="run.json is corrupt"):
        train(opts, _sampler(), run_dir=run)


def test_resume_accepts_configs_with_tuples(tmp_path):
    """DHIF-Net's config holds tuples (U-Net widths), which JSON stores as lists: resume must still match."""
    opts = TrainOptions(**{**OPTS, "method": "dhifnet", "steps": 2, "ckpt_every": 1})
    train(opts, _sampler(), run_dir=tmp_path / "r", stop_after=1)
    assert train(opts, _sampler(), run_dir=tmp_path / "r").steps_done == 2


def test_run_folder_conflicts_are_refused(tmp_path):
    train(TrainOptions(**{**OPTS, "steps": 2}), _sampler(), run_dir=tmp_path / "r")
    with pytest.raises(InputError, match="--resume"):
        train(TrainOptions(**{**OPTS, "steps": 2}), _sampler(), run_dir=tmp_path / "r", resume=False)
    with pytest.raises(InputError, match="different steps"):
        train(TrainOptions(**{**OPTS, "steps": 3}), _sampler(), run_dir=tmp_path / "r")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an hsfuse run"):
        train(TrainOptions(**OPTS), _sampler(), run_dir=tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="steps"):
        TrainOptions(method="dbin", steps=0)


def test_loading_a_checkpoint_for_other_data_names_both_layouts(tmp_path):
    train(TrainOptions(**{**OPTS, "steps": 1}), _sampler(), run_dir=tmp_path / "r")
    with pytest.raises(InputError, match=r"trained for 6 HSI bands, 2 MSI bands at ratio 2.*HSI bands 31"):
        load_model(tmp_path / "r", hsi_bands=31, msi_bands=M, ratio=R)
    with pytest.raises(InputError, match=r"ratio 4 \(checkpoint: 2\)"):
        load_model(tmp_path / "r", hsi_bands=L, msi_bands=M, ratio=4)
    folder = resolve_checkpoint(tmp_path / "r")
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match="corrupt"):
        load_model(folder)
    with pytest.raises(FileFormatError, match="no checkpoint"):
        load_model(tmp_path)
    with pytest.raises(FileFormatError, match="do not exist"):
        load_model(tmp_path / "missing")


def _fake_validation(monkeypatch, psnrs: list[float]) -> list[int]:
    """Replace the (slow) validation by one returning the given PSNRs in turn; returns the steps it ran at
    (counted by validation calls, in order)."""
    import hsfuse.training.loop as loop

    calls: list[int] = []

    def fake(net, pairs, **kw):
        calls.append(len(calls))
        psnr = psnrs[len(calls) - 1]
        return {"psnr": psnr, "sam": 1.0 / psnr}, None

    monkeypatch.setattr(loop, "_validate", fake)
    return calls


def test_ema_is_checkpointed_and_a_stopped_run_resumes_bit_identically(tmp_path):
    """``ema=0.99``: every checkpoint holds the averaged weights; a run stopped after 5 steps (last checkpoint
    at 3) and resumed ends with the raw and averaged weights of the uninterrupted run, bit for bit."""
    from safetensors.torch import load_file

    from hsfuse.training.engine import AVERAGED_NAME, load_averaged

    opts = TrainOptions(**{**OPTS, "ema": 0.99})
    a, b = tmp_path / "a", tmp_path / "b"
    train(opts, _sampler(), run_dir=a)
    assert train(opts, _sampler(), run_dir=b, stop_after=5).steps_done == 5
    assert json.loads((b / "last.json").read_text())["step"] == 3
    assert train(opts, _sampler(), run_dir=b).steps_done == 7
    for run in (a, b):
        assert all((c / AVERAGED_NAME).is_file() for c in (run / "checkpoints").iterdir())
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    last_a, last_b = resolve_checkpoint(a, prefer="last"), resolve_checkpoint(b, prefer="last")
    ea, eb = load_file(str(last_a / AVERAGED_NAME)), load_file(str(last_b / AVERAGED_NAME))
    assert ea.keys() == eb.keys() and all(torch.equal(ea[k], eb[k]) for k in ea), "averaged weights differ"
    assert int(ea["n_averaged"]) == 7
    avg = load_averaged(last_a)
    assert avg.keys() == wa.keys()
    assert any(not torch.equal(avg[k], wa[k]) for k in wa if wa[k].is_floating_point())  # not the raw weights
    run_json = json.loads((a / "run.json").read_text())
    assert run_json["ema"] == 0.99 and run_json["options"]["ema"] == 0.99
    assert json.loads((last_a / "model.json").read_text())["training"]["ema"] == 0.99
    with pytest.raises(InputError, match="different ema"):  # the average cannot be switched off mid-run
        train(TrainOptions(**{**OPTS, "steps": 7}), _sampler(), run_dir=b)
    with pytest.raises(InputError, match="ema"):
        TrainOptions(method="dbin", ema=1.0)


def test_the_best_checkpoint_survives_keep_last_pruning(tmp_path, monkeypatch):
    """Validation at steps 2, 4, 6, 8 makes step 2 the best; with a checkpoint every step and keep_last 1 the
    later steps are pruned, but step 2's checkpoint stays and best.json still resolves to it."""
    _fake_validation(monkeypatch, [40.0, 35.0, 30.0, 25.0])
    opts = TrainOptions(**{**OPTS, "steps": 8, "ckpt_every": 1, "val_every": 2, "keep_last": 1})
    run = tmp_path / "r"
    res = train(opts, _sampler(), run_dir=run, validation=validation_pairs([_scene(7, 16)], _sampler().family))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002", "step_0000008"]
    assert json.loads((run / "best.json").read_text())["step"] == 2
    assert resolve_checkpoint(run, prefer="best") == run / "checkpoints" / "step_0000002" == res.best
    assert res.best_metrics["psnr"] == 40.0
    assert read_card(run)[0].training["metrics"]["psnr"] == 40.0
    assert json.loads((run / "summary.json").read_text())["best"] == str(res.best)
    assert [h["step"] for h in res.history if "psnr" in h] == [2, 4, 6, 8]


def test_history_has_log_lines_with_validation_merged_in(tmp_path, monkeypatch):
    """The history rule: a line every log_every steps, at the last step and at each validation step, holding
    the means of loss and lr since the previous line (checked against a run logging every step) and the
    validation metrics of that step."""
    _fake_validation(monkeypatch, [20.0, 21.0, 22.0, 23.0])
    val = validation_pairs([_scene(7, 16)], _sampler().family)
    every = train(TrainOptions(**{**OPTS, "val_every": 100}), _sampler(), run_dir=tmp_path / "every").history
    res = train(TrainOptions(**{**OPTS, "log_every": 3, "val_every": 2}), _sampler(), run_dir=tmp_path / "r",
                validation=val)
    assert [h["step"] for h in res.history] == [2, 3, 4, 6, 7]
    assert [h.get("psnr") for h in res.history] == [20.0, None, 21.0, 22.0, 23.0]
    loss = {h["step"]: h["loss"] for h in every}
    for start, h in zip([0, 2, 3, 4, 6], res.history):
        expect = np.mean([loss[s] for s in range(start + 1, h["step"] + 1)])
        assert h["loss"] == pytest.approx(expect, rel=1e-12)


def test_progress_callback_gets_counts_and_an_info_text(tmp_path):
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, *, info: str = "") -> None:
        seen.append((done, total, info))

    train(TrainOptions(**OPTS), _sampler(), run_dir=tmp_path / "r", progress=progress, stop_after=5)
    assert seen[0] == (0, 7, "") and seen[-1][:2] == (5, 7)
    seen.clear()
    train(TrainOptions(**OPTS), _sampler(), run_dir=tmp_path / "r", progress=progress)
    assert seen[0][:2] == (3, 7)  # resumed from the checkpoint at step 3
    assert [d for d, _, _ in seen] == list(range(3, 8)) and {t for _, t, _ in seen} == {7}
    assert re.fullmatch(r"loss \S+  lr \S+", seen[-1][2]), seen[-1]
    plain: list[tuple[int, int]] = []  # a plain two-argument callback gets the counts alone
    train(TrainOptions(**{**OPTS, "steps": 2}), _sampler(), run_dir=tmp_path / "p",
          progress=lambda done, total: plain.append((done, total)))
    assert plain == [(0, 2), (1, 2), (2, 2)]


def test_options_take_strict_integers():
    assert type(TrainOptions(method="dbin", steps=np.int64(5)).steps) is int
    for bad in (5.0, True, "5"):
        with pytest.raises(InputError, match="steps must be an integer >= 1"):
            TrainOptions(method="dbin", steps=bad)
    with pytest.raises(InputError, match="keep_last"):
        TrainOptions(method="dbin", keep_last=0)
    with pytest.raises(InputError, match="batch_size"):
        TrainOptions(method="dbin", batch_size=2.0)


# ---------------------------------------------------------------------------------------------- DDP

_DDP_SCRIPT = r"""
import sys, torch
sys.path.insert(0, {tests!r})
from test_training import _sampler, OPTS
from hsfuse.training import distributed
from hsfuse.training.loop import TrainOptions, train
torch.set_num_threads(1)
opts = dict(OPTS, steps=4, batch_size={batch}, val_every=100, ckpt_every=100)
train(TrainOptions(**opts), _sampler(), run_dir={run!r})
distributed.cleanup()
"""


def test_two_process_ddp_matches_one_process_with_the_combined_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    (tmp_path / "ddp.py").write_text(_DDP_SCRIPT.format(tests=str(Path(__file__).parent), batch=1,
                                                        run=str(tmp_path / "ddp")))
    (tmp_path / "one.py").write_text(_DDP_SCRIPT.format(tests=str(Path(__file__).parent), batch=2,
                                                        run=str(tmp_path / "one")))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(tmp_path / "ddp.py")], env=env, check=True, timeout=300)
    subprocess.run([sys.executable, str(tmp_path / "one.py")], env=env, check=True, timeout=300)
    run = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert run["world_size"] == 2 and run["batch_size"] == 1
    wd, w1 = _weights(tmp_path / "ddp"), _weights(tmp_path / "one")
    # DDP averages the two ranks' mean-loss gradients = the gradient of the mean over both samples; Adam then
    # takes identical steps up to float summation order
    for k in w1:
        assert torch.allclose(wd[k], w1[k], rtol=1e-4, atol=1e-6), k


# ---------------------------------------------------------------------------------------------- fine-tuning


def test_init_from_starts_from_the_given_weights(tmp_path):
    """Fine-tuning: a run with ``init_from`` starts from the source's weights, not a fresh initialisation; the
    source must be the same method/config/layout."""
    sampler = _sampler()
    base = dict(method="dbin", config="tiny", batch_size=2, ckpt_every=10, val_every=10, log_every=1)
    train(TrainOptions(steps=3, **base), sampler, run_dir=tmp_path / "pre")
    pre = _weights(tmp_path / "pre")
    # lr 1e-12: one Adam step moves each weight by about 1e-12, so the result is the source's weights
    train(TrainOptions(steps=1, lr=1e-12, init_from=str(tmp_path / "pre"), seed=5, **base), sampler,
          run_dir=tmp_path / "ft")
    train(TrainOptions(steps=1, lr=1e-12, seed=5, **base), sampler, run_dir=tmp_path / "fresh")
    ft, fresh = _weights(tmp_path / "ft"), _weights(tmp_path / "fresh")
    assert all(torch.allclose(ft[k], pre[k], atol=1e-9) for k in pre)
    assert any(not torch.allclose(fresh[k], pre[k], atol=1e-3) for k in pre)
    with pytest.raises(InputError, match="pre-train with the same method and config"):
        train(TrainOptions(steps=1, method="edbin", config="tiny", batch_size=2, init_from=str(tmp_path / "pre")),
              sampler, run_dir=tmp_path / "bad")


def test_run_folder_parents_are_created_but_not_through_a_file(tmp_path):
    sampler = _sampler()
    opts = TrainOptions(method="dbin", config="tiny", steps=1, batch_size=2)
    res = train(opts, sampler, run_dir=tmp_path / "runs" / "deep" / "run")
    assert (res.run_dir / "last.json").is_file()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        train(opts, sampler, run_dir=tmp_path / "afile" / "run")
