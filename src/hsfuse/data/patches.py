"""Training samples for supervised fusion networks: random patches, simulated on the fly (Wald's protocol).

Every sample is a pure function of ``(seed, index)``: the scene, the crop, the flips and rotation, the PSF
width and SRF drawn from a :class:`DegradationFamily`, and the noise all come from a generator seeded with
``(seed, index)``. The training loop asks for sample indices ``step * global_batch + rank * batch + i``, so

* a run resumed at step ``s`` sees exactly the samples it would have seen (no data-loader state to save);
* ``K`` data-parallel processes with batch ``b`` see together exactly the batch ``K * b`` of one process.

Band scaling (see :func:`hsfuse.models.base.band_scales`): each scene's inputs are simulated once, whole,
with the nominal degradation; their per-band maxima scale that scene's patches, exactly as a whole image is
scaled at inference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._checks import check_ratio
from ..errors import InputError
from ..io import FORMATS, read_cube
from ..models.base import BandScaling, band_scales
from ..physics.noise import add_noise
from ..physics.observation import FusionObservation
from ..physics.spatial import SpatialDegradation, gaussian_psf
from ..physics.spectral import SpectralResponse, check_srf
from ..types import Cube
from .simulation import SIMULATION_PRESETS, SimulationPreset, crop_to_multiple

__all__ = ["load_training_scenes", "split_rows", "DegradationFamily", "PatchSampler", "ValidationPair",
           "validation_pairs"]


def _candidate_files(folder: Path) -> list[Path]:
    suffixes = {s for info in FORMATS.values() for s in info.suffixes} - {".img"}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def load_training_scenes(sources: Sequence[str | os.PathLike[str] | Cube], *, variable: str | None = None,
                         synthetic_wavelengths: Sequence[float] | None = None) -> list[Cube]:
    """Reference HSIs for training, each as float32 scaled to a maximum of 1 (its own global maximum).

    ``sources`` items: a :class:`Cube`; a file in any supported format; a folder (every supported file in
    it, or the folder itself if it is a CAVE scene folder of PNGs); or ``"synthetic:N"`` for ``N`` scenes of
    :func:`hsfuse.data.synthetic.synthetic_scene` (seeds 0..N-1) on ``synthetic_wavelengths`` (default: the
    first real scene's, else 400:10:700 nm). All scenes must have the same number of bands.
    """
    cubes: list[Cube] = []
    synthetic: list[int] = []
    for src in sources:
        if isinstance(src, Cube):
            cubes.append(src)
            continue
        text = str(src)
        if text.startswith("synthetic:"):
            try:
                synthetic.append(int(text.split(":", 1)[1]))
            except ValueError:
                raise InputError(f"'{text}': write synthetic:N with N the number of scenes, e.g. synthetic:8") from None
            continue
        p = Path(text)
        if p.is_dir() and not any(q.suffix.lower() == ".png" for q in p.rglob("*.png")):
            files = _candidate_files(p)
            if not files:
                raise InputError(f"folder {p} holds no image files of a supported format "
                                 f"({', '.join(sorted(FORMATS))})")
            cubes.extend(read_cube(f, variable=variable) for f in files)
        else:
            cubes.append(read_cube(p, variable=variable))
    if synthetic:
        from .synthetic import synthetic_scene

        wl = synthetic_wavelengths
        if wl is None and cubes and cubes[0].wavelengths is not None:
            wl = cubes[0].wavelengths
        seed = 0
        for n in synthetic:
            for _ in range(n):
                cubes.append(synthetic_scene(wavelengths_nm=wl, seed=seed))
                seed += 1
    if not cubes:
        raise InputError("no training scenes given; pass files, folders or synthetic:N")
    bands = {c.bands for c in cubes}
    if len(bands) != 1:
        raise InputError(f"training scenes have different band counts {sorted(bands)}; a network is built for one "
                         "band layout: train on scenes of one sensor")
    out = []
    for c in cubes:
        data = np.asarray(c.data, dtype=np.float32)
        if not np.isfinite(data).all():
            raise InputError(f"training scene {c.attrs.get('source', '?')} contains NaN/inf; fill or crop them")
        peak = float(data.max())
        if peak <= 0:
            raise InputError(f"training scene {c.attrs.get('source', '?')} is all zero or negative")
        out.append(c.replace(data=data / peak, attrs={**c.attrs, "train_scale": peak}))
    return out


def split_rows(cube: Cube, *, bottom_fraction: float, multiple: int = 1) -> tuple[Cube, Cube]:
    """Split a scene into a top part (training) and a bottom part (held out), cut at a multiple of ``multiple``.

    The held-out rows never enter a training patch; use them for validation or testing.
    """
    if not 0.0 < bottom_fraction < 1.0:
        raise InputError(f"bottom_fraction must be between 0 and 1, got {bottom_fraction}")
    H = cube.shape[0]
    cut = int(round(H * (1.0 - bottom_fraction) / multiple)) * multiple
    if cut <= 0 or cut >= H:
        raise InputError(f"a {H}-row scene cannot be split at fraction {bottom_fraction} on multiples of {multiple}")
    top = cube.replace(data=cube.data[:cut], attrs={**cube.attrs, "rows": [0, cut]})
    bottom = cube.replace(data=cube.data[cut:], attrs={**cube.attrs, "rows": [cut, H]})
    return top, bottom


@dataclass(frozen=True)
class DegradationFamily:
    """The degradations training samples are simulated with.

    Attributes:
        ratio: resolution ratio.
        srfs: one or more ``(m, L)`` SRF matrices (before the preset's normalisation); the first is nominal,
            the others are drawn uniformly per sample (e.g. several variants of one camera).
        preset: simulation preset (PSF shape, boundary, offset, SRF normalisation, noise).
        psf_fwhm_range: if given, each sample's Gaussian PSF FWHM is drawn uniformly from this range, in
            multiples of the ratio (the nominal PSF stays the preset's); support ``2r + 1``.
    """

    ratio: int
    srfs: tuple[torch.Tensor, ...]
    preset: SimulationPreset = field(default_factory=lambda: SIMULATION_PRESETS["hsfuse"])
    psf_fwhm_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_ratio(self.ratio)
        if not self.srfs:
            raise InputError("a degradation family needs at least one SRF")
        mats = tuple(check_srf(s) for s in self.srfs)
        if len({tuple(m.shape) for m in mats}) != 1:
            raise InputError(f"SRFs of a family must have one shape, got {[tuple(m.shape) for m in mats]}")
        object.__setattr__(self, "srfs", mats)
        if self.psf_fwhm_range is not None:
            lo, hi = (float(v) for v in self.psf_fwhm_range)
            if not 0 < lo <= hi:
                raise InputError(f"psf_fwhm_range must be 0 < low <= high (multiples of the ratio), got {lo}, {hi}")

    @property
    def msi_bands(self) -> int:
        return int(self.srfs[0].shape[0])

    @property
    def hsi_bands(self) -> int:
        return int(self.srfs[0].shape[1])

    def _observation(self, srf: torch.Tensor, psf: torch.Tensor) -> FusionObservation:
        r = self.ratio
        spatial = SpatialDegradation(ratio=r, psf=psf, offset=self.preset.offset_for(r), boundary=self.preset.boundary)
        return FusionObservation(spatial, SpectralResponse(srf, normalize=self.preset.srf_normalize))

    def nominal(self) -> FusionObservation:
        return self._observation(self.srfs[0], self.preset.psf(self.ratio))

    def draw(self, rng: np.random.Generator) -> FusionObservation:
        srf = self.srfs[int(rng.integers(len(self.srfs)))] if len(self.srfs) > 1 else self.srfs[0]
        if self.psf_fwhm_range is None:
            psf = self.preset.psf(self.ratio)
        else:
            fwhm = float(rng.uniform(*self.psf_fwhm_range)) * self.ratio
            psf = gaussian_psf(2 * self.ratio + 1, fwhm=fwhm)
        return self._observation(srf, psf)


def _simulate(z: torch.Tensor, obs: FusionObservation, preset: SimulationPreset, seed: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        y = obs.A(z.double())
        gen = torch.Generator().manual_seed(seed)
        hsi = add_noise(y.hsi, snr_db=preset.snr_hsi_db, generator=gen)
        msi = add_noise(y.msi, snr_db=preset.snr_msi_db, generator=gen)
    return hsi.float(), msi.float()


@dataclass
class ValidationPair:
    """A whole held-out scene, simulated with the nominal degradation, in scene units (not scaled)."""

    name: str
    reference: torch.Tensor  # (1, L, H, W)
    hsi: torch.Tensor  # (1, L, h, w)
    msi: torch.Tensor  # (1, m, H, W)


def validation_pairs(scenes: Sequence[Cube], family: DegradationFamily) -> list[ValidationPair]:
    """Simulate each held-out scene (centre-cropped to multiples of the ratio) with the nominal degradation."""
    out = []
    for i, cube in enumerate(scenes):
        ref = crop_to_multiple(cube, family.ratio).to_tensor()
        hsi, msi = _simulate(ref, family.nominal(), family.preset, seed=family.preset.seed + i)
        out.append(ValidationPair(str(cube.attrs.get("scene", cube.attrs.get("source", f"scene{i}"))), ref, hsi, msi))
    return out


class PatchSampler:
    """Deterministic random training samples ``(hsi, msi, target)`` from reference scenes.

    Args:
        scenes: reference HSIs ``(H, W, L)`` (see :func:`load_training_scenes`), each at least a patch in size.
        family: how samples are degraded.
        patch_size: high-resolution patch side in pixels, a multiple of the ratio.
        augment: random rot90 and flips (applied to the reference before simulation).
        band_scaling: how inputs and target are scaled (per scene, from the whole scene's nominal inputs).
        seed: base seed; sample ``i`` depends only on ``(seed, i)``.

    Example:
        >>> import torch
        >>> from hsfuse.types import Cube
        >>> fam = DegradationFamily(ratio=2, srfs=(torch.ones(2, 6),))
        >>> sampler = PatchSampler([Cube(np.random.rand(20, 20, 6).astype("float32"))], fam, patch_size=8)
        >>> [tuple(t.shape) for t in sampler.batch([0, 1])]
        [(2, 6, 4, 4), (2, 2, 8, 8), (2, 6, 8, 8)]
    """

    def __init__(self, scenes: Sequence[Cube], family: DegradationFamily, *, patch_size: int,
                 augment: bool = True, band_scaling: BandScaling = "band_max", seed: int = 0) -> None:
        r = family.ratio
        if patch_size % r or patch_size < r:
            raise InputError(f"patch_size {patch_size} must be a positive multiple of the ratio {r}")
        self.family = family
        self.patch_size = int(patch_size)
        self.augment = bool(augment)
        self.band_scaling = band_scaling
        self.seed = int(seed)
        self.scenes: list[torch.Tensor] = []
        self.scales: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i, cube in enumerate(scenes):
            if cube.bands != family.hsi_bands:
                raise InputError(f"training scene {i} has {cube.bands} bands but the SRF covers {family.hsi_bands}")
            H, W = cube.shape[:2]
            if H < patch_size or W < patch_size:
                raise InputError(f"training scene {i} ({H}x{W}) is smaller than the {patch_size}-pixel patch; "
                                 "use a smaller --patch-size")
            z = cube.to_tensor()
            self.scenes.append(z[0])
            zc = crop_to_multiple(cube, r).to_tensor()
            hsi, msi = _simulate(zc, family.nominal(), family.preset, seed=family.preset.seed)
            s_h, s_m = band_scales(hsi, msi, mode=band_scaling)
            self.scales.append((s_h[0], s_m[0]))
        if not self.scenes:
            raise InputError("no training scenes")
        areas = np.array([(z.shape[1] - patch_size + 1) * (z.shape[2] - patch_size + 1) for z in self.scenes], float)
        self._weights = areas / areas.sum()

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``index``: ``hsi (L, P/r, P/r)``, ``msi (m, P, P)``, ``target (L, P, P)``, scaled."""
        rng = np.random.default_rng([self.seed, int(index)])
        k = int(rng.choice(len(self.scenes), p=self._weights))
        z = self.scenes[k]
        P = self.patch_size
        top = int(rng.integers(z.shape[1] - P + 1))
        left = int(rng.integers(z.shape[2] - P + 1))
        patch = z[:, top:top + P, left:left + P]
        if self.augment:
            patch = torch.rot90(patch, int(rng.integers(4)), dims=(1, 2))
            if rng.random() < 0.5:
                patch = torch.flip(patch, dims=(2,))
        obs = self.family.draw(rng)
        hsi, msi = _simulate(patch[None], obs, self.family.preset, seed=int(rng.integers(2**31)))
        s_h, s_m = self.scales[k]
        return hsi[0] / s_h, msi[0] / s_m, patch.contiguous() / s_h

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stack :meth:`sample` over ``indices``."""
        parts = [self.sample(i) for i in indices]
        return tuple(torch.stack(t) for t in zip(*parts))  # type: ignore[return-value]
