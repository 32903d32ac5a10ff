"""HSI synthesis by unmixing and diffusion, as files: the workflow behind ``hsfuse synth``.

The stages of :mod:`hsfuse.synthesis` ("Unmixing Before Fusion", Yu et al., CVPR 2024) read and write folders
here, so each command of ``hsfuse synth`` can pick up the previous one's output:

1. ``train-unmixing``: :func:`hsfuse.synthesis.unmixing.train_unmixing` (a run folder); on a shared scene with
   reference endmembers, :func:`unmixing_accuracy` scores it.
2. ``unmix``: :func:`load_rgb_images` (files, folders or a bundled example; optional down-scaling and tiling
   that drops tiles touching no-data) and :func:`infer_folder` (one ``<name>.npz`` of abundances per image).
3. ``train-diffusion``: the abundance maps of one or more folders (:func:`load_abundance_folder`).
4. ``sample``: :func:`sample_to_folder`, one ``batch_NNNNN.npz`` per batch, resumable.
5. ``make``: :func:`make_dataset`, ``Y = E A`` into a dataset folder (:func:`hsfuse.synthesis.dataset.write_dataset`).
6. ``report``: :func:`realism`, the synthetic cubes against real ones (:mod:`hsfuse.metrics.realism`) with figures.

Every output folder is written atomically (a failed run leaves nothing half-written under the requested name),
except the sample folder, which fills batch by batch (each batch file written atomically) so that a killed
run keeps its finished batches.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_positive_int
from ..errors import InputError, MissingDependencyError, OutputExistsError
from ..io import read_cube
from ..io.atomic import atomic_output, atomic_output_dir, check_output_path
from ..io.rgb import IMAGE_SUFFIXES, read_image
from ..physics.transfer import Transfer, to_linear
from ..progress import ProgressFn, ProgressWithInfo, reporter
from ..types import Cube

__all__ = [
    "EXAMPLES",
    "load_rgb_images",
    "infer_folder",
    "load_abundance_folder",
    "sample_to_folder",
    "make_dataset",
    "realism",
    "reference_unmixing",
    "unmixing_accuracy",
    "precheck_run",
    "train_unmixing_from",
    "unmix_to_folder",
    "train_diffusion_from",
    "sample_from_weights",
    "SAMPLES_FILE",
    "INDEX_FILE",
]

Say = Callable[[str], None]
Progress = ProgressFn | ProgressWithInfo

EXAMPLES: dict[str, str] = {
    "skimage": "scikit-image's bundled colour photographs: astronaut, coffee, chelsea, rocket",
    "houston2018": "the real Houston 2018 RGB (512 x 512, 8-bit) from the shared data folder, with a black "
                   "no-data patch (use --tile to drop the tiles that touch it)",
}
_SKIMAGE_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")

INDEX_FILE = "index.json"
SAMPLES_FILE = "samples.json"
_BATCH = re.compile(r"^batch_(\d{5})\.npz$")
_REALISM_FILES = ("report.json", "report.md", "realism.png", "previews.png", "abundances.png")


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``data`` as JSON."""
    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(data), indent=2) + "\n")


# --------------------------------------------------------------------------------------------- RGB images


def _as_rgb(arr: np.ndarray, name: str, say: Say, band_names: Sequence[str] | None = None,
            transfer: Transfer = "linear") -> np.ndarray | None:
    """``(H, W, 3)`` float32 linear values from an image array (decoded per ``transfer``), or ``None`` (with a
    message) when it is not a colour image."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise InputError(f"image {name} has shape {a.shape}; expected H x W x channels")
    names = list(band_names) if band_names is not None else None
    if names == ["C", "M", "Y", "K"]:
        say(f"skipping {name}: a CMYK image (convert it to RGB first)")
        return None
    if a.shape[2] in (1, 2):
        say(f"skipping {name}: a grey image (the unmixing network needs colour)")
        return None
    if a.shape[2] == 4:
        a = a[:, :, :3]  # drop alpha
    elif a.shape[2] != 3:
        say(f"skipping {name}: {a.shape[2]} channels (expected RGB or RGBA)")
        return None
    if not np.isfinite(a).all():
        raise InputError(f"image {name} holds NaN/inf values")
    return to_linear(a, transfer).astype(np.float32)


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _example_images(example: str) -> list[tuple[str, np.ndarray, list[str] | None]]:
    if example == "skimage":
        try:
            from skimage import data as skdata
        except ImportError as exc:
            raise MissingDependencyError(
                'the skimage example needs scikit-image: pip install "hsfuse[synth]"') from exc
        return [(n, np.asarray(getattr(skdata, n)()), None) for n in _SKIMAGE_IMAGES]
    if example == "houston2018":
        from ..data.paths import shared_file

        with np.load(shared_file("derived", "houston2018.npz")) as z:
            return [("houston2018", np.asarray(z["rgb"]), None)]
    raise InputError(f"unknown example {example!r}; choose one of {', '.join(EXAMPLES)}")


def _area_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, c)`` resized by area averaging (``torch.nn.functional.interpolate(mode="area")``)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=size, mode="area")[0].permute(1, 2, 0).numpy()


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name or "image"


def load_rgb_images(sources: Sequence[str | os.PathLike[str]] = (), *, example: str | None = None,
                    scales: Sequence[float] = (1.0,), tile: int | None = None, transfer: Transfer = "linear",
                    say: Say | None = None) -> list[tuple[str, np.ndarray]]:
    """RGB images to unmix, as ``(name, (H, W, 3) float32)`` pairs (linear values, not scaled).

    Args:
        sources: image files or folders of images (PNG, JPEG, TIFF, BMP; :func:`hsfuse.io.rgb.read_image`).
            An alpha channel is dropped; grey (and CMYK) images are skipped with a message.
        example: ``"skimage"`` or ``"houston2018"`` (:data:`EXAMPLES`), added after ``sources``.
        scales: each image at each of these scales in ``(0, 1]`` (area averaging; ``1`` = as is). Several
            scales multiply the data: a 0.5 copy holds the same scene with coarser detail.
        tile: cut each (scaled) image into non-overlapping ``tile x tile`` windows from the top-left corner
            (the remainder at the right and bottom is left out) and drop every window that touches a no-data
            pixel: a pixel whose channels are all 0 in the original image (a down-scaled pixel touches no-data
            when any original pixel under it is no-data).
        transfer: ``"srgb"`` decodes gamma-encoded photographs (most 8-bit PNG/JPEG) to linear values first
            (:func:`hsfuse.physics.transfer.to_linear`), before any down-scaling: the network was trained on RGB
            simulated linearly from radiance. ``"linear"``: values as stored.
        say: where messages (skipped images, dropped tiles) go; default :func:`warnings.warn`.

    Names are the file stems (made unique), with ``_s<scale>`` when ``scales`` is not just ``(1,)`` and
    ``_t<index>`` (row-major window index, counting dropped windows) when tiling.
    """
    say = say or _warn
    scales = [float(s) for s in scales]
    if not scales or any(not (0 < s <= 1) for s in scales):
        raise InputError(f"scales must lie in (0, 1] (down-scaling only), got {scales}")
    if tile is not None:
        tile = check_positive_int(tile, "tile")
    raw: list[tuple[str, np.ndarray, list[str] | None]] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise InputError(f"{p} not found; give image files or folders of images")
        for f in (_image_files(p) if p.is_dir() else [p]):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{f} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
            cube = read_image(f)
            raw.append((f.stem, cube.data, cube.band_names))
    if example is not None:
        raw.extend(_example_images(example))
    if not raw:
        raise InputError("no RGB images given; pass image files/folders or an example")
    tag_scale = scales != [1.0]
    used: dict[str, int] = {}
    out: list[tuple[str, np.ndarray]] = []
    for stem, arr, names in raw:
        rgb = _as_rgb(arr, stem, say, names, transfer)
        if rgb is None:
            continue
        base = _safe_name(stem)
        if base in used:
            used[base] += 1
            base = f"{base}_{used[base]}"
        used.setdefault(base, 1)
        nodata = np.all(rgb == 0, axis=-1)
        H, W = rgb.shape[:2]
        for s in scales:
            name = f"{base}_s{s:g}" if tag_scale else base
            if s == 1.0:
                img, bad = rgb, nodata
            else:
                size = (max(1, int(round(H * s))), max(1, int(round(W * s))))
                img = _area_resize(rgb, size)
                bad = _area_resize(nodata[:, :, None].astype(np.float32), size)[:, :, 0] > 0
            if tile is None:
                out.append((name, img))
                continue
            h, w = img.shape[:2]
            rows, cols = h // tile, w // tile
            if rows == 0 or cols == 0:
                say(f"skipping {name}: {h}x{w} is smaller than a {tile}x{tile} tile")
                continue
            dropped = 0
            for i in range(rows):
                for j in range(cols):
                    window = (slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile))
                    if bad[window].any():
                        dropped += 1
                        continue
                    out.append((f"{name}_t{i * cols + j}", np.ascontiguousarray(img[window])))
            if dropped:
                say(f"{name}: dropped {dropped} of {rows * cols} tile(s) touching no-data pixels")
    if not out:
        raise InputError("no usable RGB image or tile is left (grey images are skipped; tiles touching no-data "
                         "are dropped)")
    return out


# --------------------------------------------------------------------------------------------- unmixing


def infer_folder(model: Any, images: Sequence[tuple[str, np.ndarray]], out: str | os.PathLike[str], *,
                 overwrite: bool = False, device: str = "cpu", settings: dict[str, Any] | None = None,
                 progress: Progress | None = None) -> Path:
    """Unmix each image with ``model`` (:class:`~hsfuse.synthesis.unmixing.UnmixingModel`) into folder ``out``.

    Writes ``<name>.npz`` (key ``abundances``, float32 ``H x W x K``) per image, ``index.json`` (names, shapes,
    the model's checkpoint, ``K``, ``settings``) and ``preview.png`` (the first image's maps), all in one atomic
    folder (an existing one is replaced only with ``overwrite`` and only if it holds such files alone).
    ``progress(done, total)`` counts images (a callback taking ``info`` also gets the image's name).
    """
    from ..synthesis.unmixing import infer_abundances
    from ..viz.synthesis_figures import plot_abundances

    if not images:
        raise InputError("no images to unmix")
    names = [n for n, _ in images]
    if len(set(names)) != len(names):
        raise InputError("image names repeat; give each image a distinct name")
    K = int(model.net.config.endmembers)
    report = reporter(progress)
    entries = []
    with atomic_output_dir(out, overwrite=overwrite,
                           replaceable=lambda p: p.suffix == ".npz" or p.name in (INDEX_FILE, "preview.png")) as tmp:
        for i, (name, rgb) in enumerate(images):
            a = infer_abundances(model, rgb, device=device).astype(np.float32)
            np.savez_compressed(tmp / f"{name}.npz", abundances=a)
            if i == 0:
                plot_abundances(a, tmp / "preview.png")
            entries.append({"name": name, "file": f"{name}.npz", "shape": list(a.shape)})
            report(i + 1, len(images), info=name)
        index = {"format": "hsfuse-abundance-maps", "model": str(Path(model.path).resolve()), "K": K,
                 "images": entries, "settings": settings or {}}
        (tmp / INDEX_FILE).write_text(json.dumps(_jsonable(index), indent=2) + "\n")
    return Path(out)


def load_abundance_folder(path: str | os.PathLike[str]) -> list[np.ndarray]:
    """Every abundance map in a folder (or one ``.npz`` file), as float32 ``H x W x K`` arrays.

    Reads each ``*.npz`` holding the key ``abundances``, in name order: a 3-D array is one map, a 4-D one
    (``N x H x W x K``, a sample batch) ``N`` maps. Works on the output of ``hsfuse synth unmix`` and ``sample``
    and on a synthetic dataset (its ``abundances/`` subfolder, or the dataset folder itself). An unfinished
    sample folder is refused (resume it first).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"abundance folder {p} not found")
    if p.is_file():
        files = [p]
    else:
        files = sorted(f for f in p.glob("*.npz") if not f.name.startswith("."))
        if not files and (p / "abundances").is_dir():
            p = p / "abundances"
            files = sorted(f for f in p.glob("*.npz") if not f.name.startswith("."))
        meta = p / SAMPLES_FILE
        if meta.is_file():
            try:
                complete = bool(json.loads(meta.read_text()).get("complete"))
            except ValueError:
                complete = False
            if not complete:
                raise InputError(f"sampling into {p} did not finish; rerun 'hsfuse synth sample' with --resume and "
                                 "the same options first")
    maps: list[np.ndarray] = []
    for f in files:
        try:
            with np.load(f) as z:
                if "abundances" not in z.files:
                    continue
                a = np.asarray(z["abundances"], dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read abundances from {f}: {exc}") from None
        if a.ndim == 3:
            maps.append(a)
        elif a.ndim == 4:
            maps.extend(a[i] for i in range(a.shape[0]))
        else:
            raise InputError(f"{f}: abundances must be H x W x K or N x H x W x K, got shape {a.shape}")
    if not maps:
        raise InputError(f"no abundance maps (.npz files with key 'abundances') in {path}; pass a folder written "
                         "by 'hsfuse synth unmix' or 'hsfuse synth sample', or a synthetic dataset")
    return maps


# --------------------------------------------------------------------------------------------- sampling


def _sample_settings(model: Any, *, n: int, size: int, sampler: str, steps: int, eta: float, seed: int,
                     batch: int) -> dict[str, Any]:
    return {"format": "hsfuse-abundance-samples", "weights": str(Path(model.path).resolve()),
            "K": int(model.net.channels), "n": int(n), "size": int(size), "sampler": sampler, "steps": int(steps),
            "eta": float(eta), "seed": int(seed), "batch": int(batch)}


def _read_batch(path: Path, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """A finished batch file's stats, or ``None`` when it is unreadable or of the wrong shape."""
    try:
        with np.load(path) as z:
            if tuple(z["abundances"].shape) != shape:
                return None
            return {k: float(z[k]) for k in ("raw_min", "raw_max_sum_error", "raw_fraction_invalid", "seconds")}
    except (OSError, ValueError, KeyError):
        return None


def sample_to_folder(model: Any, out: str | os.PathLike[str], *, n: int, size: int, sampler: str = "ddim",
                     steps: int = 50, eta: float = 0.0, seed: int = 0, batch: int = 8, device: str = "cpu",
                     resume: bool = False, overwrite: bool = False, progress: Progress | None = None,
                     say: Say | None = None) -> dict[str, Any]:
    """Draw ``n`` abundance maps ``size x size`` into folder ``out``, one file per batch; resumable.

    ``samples.json`` (the settings and the weights' checkpoint) is written first, then ``batch_00000.npz``,
    ``batch_00001.npz``, ... (keys ``abundances`` ``(b, size, size, K)``, ``raw_min``, ``raw_max_sum_error``,
    ``raw_fraction_invalid``, ``seconds``), each atomically. Batch ``b`` is
    ``sample_abundances(model, n=b_count, seed=seed + b, batch=b_count)``, the same maps as one uninterrupted
    call, so a resumed folder equals an uninterrupted one. At the end ``samples.json`` gets ``complete: true``
    and totals.

    Folder rules: a new or empty folder is filled; with ``resume`` a folder holding the same settings
    continues (batches present are kept), different settings are refused; otherwise an existing sample folder is
    refused unless ``overwrite`` (then its files are deleted first); a folder holding other files is always
    refused. Returns the final ``samples.json`` content. ``progress(done, total)`` counts denoiser evaluations of
    the batches still to draw.
    """
    from ..synthesis.diffusion import sample_abundances

    say = say or (lambda _m: None)
    if sampler not in ("ddim", "ancestral"):
        raise InputError(f"sampler must be 'ddim' or 'ancestral', got {sampler!r}")
    n, batch, steps, size = (check_positive_int(v, label) for label, v in
                             (("n", n), ("batch", batch), ("steps", steps), ("size", size)))
    if not 0 <= eta <= 1:
        raise InputError(f"eta must lie in [0, 1], got {eta}")
    m = model.net.config.multiple
    if size % m:
        raise InputError(f"size must be a multiple of {m} for this denoiser, got {size}")
    settings = _sample_settings(model, n=n, size=size, sampler=sampler, steps=steps, eta=eta, seed=seed,
                                batch=batch)
    folder = check_output_path(out, overwrite=True, folder=True)  # existing-folder rules are handled below
    meta_path = folder / SAMPLES_FILE
    if folder.is_dir():
        entries = [e for e in folder.iterdir() if not e.name.startswith(".")]
        ours = [e for e in entries if e.name == SAMPLES_FILE or _BATCH.match(e.name)]
        foreign = sorted(e.name for e in entries if e not in ours)
        if foreign:
            raise OutputExistsError(f"{folder} holds files that 'hsfuse synth sample' did not write "
                                    f"({', '.join(foreign[:5])}); choose an empty or new folder")
        if ours and resume:
            if not meta_path.is_file():
                raise InputError(f"{folder} holds sample batches but no {SAMPLES_FILE}; cannot tell their settings, "
                                 "so they cannot be resumed: remove them or choose another folder")
            try:
                old = json.loads(meta_path.read_text())
            except ValueError as exc:
                raise InputError(f"{meta_path} is corrupt ({exc}); remove the folder or choose another") from None
            diff = [k for k in settings if old.get(k) != settings[k]]
            if diff:
                shown = ", ".join(f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in diff)
                raise InputError(f"{folder} holds samples made with different settings ({shown}); resume with the "
                                 "same options, or pass --overwrite without --resume to start again")
        elif ours:
            if not overwrite:
                raise OutputExistsError(f"{folder} already holds samples; pass --resume to continue them or "
                                        "--overwrite to replace them")
            for e in ours:
                e.unlink()
            for e in folder.iterdir():  # temporaries of a killed run
                if e.name.startswith(".") and ".tmp" in e.name and e.is_file():
                    e.unlink()
    else:
        folder.mkdir()
    _write_json(meta_path, {**settings, "complete": False})

    counts = [min(batch, n - s) for s in range(0, n, batch)]
    stats: dict[int, dict[str, Any]] = {}
    todo = []
    K = settings["K"]
    for b, count in enumerate(counts):
        path = folder / f"batch_{b:05d}.npz"
        found = _read_batch(path, (count, size, size, K)) if path.is_file() else None
        if found is None:
            todo.append(b)
        else:
            stats[b] = found
    if stats:
        say(f"resuming: {len(stats)} of {len(counts)} batch(es) already in {folder}")
    per: list[int] = []  # denoiser evaluations per batch, learnt from the first callback
    outer = reporter(progress)

    for done_batches, b in enumerate(todo):
        count = counts[b]

        def report(i: int, total: int, done_batches: int = done_batches, b: int = b) -> None:
            if not per:
                per.append(total)
            outer(done_batches * per[0] + i, per[0] * len(todo), info=f"batch {b + 1} of {len(counts)}")

        result = sample_abundances(model, n=count, size=size, sampler=sampler, steps=steps, eta=eta,
                                   seed=seed + b, batch=count, device=device, progress=report)
        row = {"raw_min": result.raw_min, "raw_max_sum_error": result.raw_max_sum_error,
               "raw_fraction_invalid": result.raw_fraction_invalid, "seconds": result.seconds}
        with atomic_output(folder / f"batch_{b:05d}.npz", overwrite=True) as tmp:
            np.savez_compressed(tmp, abundances=result.abundances.astype(np.float32),
                                **{k: np.float64(v) for k, v in row.items()})
        stats[b] = row
    total_n = float(sum(counts))
    meta = {**settings, "complete": True, "batches": len(counts),
            "files": [f"batch_{b:05d}.npz" for b in range(len(counts))],
            "raw_min": min(s["raw_min"] for s in stats.values()),
            "raw_max_sum_error": max(s["raw_max_sum_error"] for s in stats.values()),
            "raw_fraction_invalid": sum(stats[b]["raw_fraction_invalid"] * c for b, c in enumerate(counts)) / total_n,
            "seconds": sum(s["seconds"] for s in stats.values())}
    _write_json(meta_path, meta)
    return meta


# --------------------------------------------------------------------------------------------- dataset


def _source_info(folder: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"path": str(folder.resolve())}
    for name in (SAMPLES_FILE, INDEX_FILE):
        f = (folder if folder.is_dir() else folder.parent) / name
        if f.is_file():
            try:
                meta = json.loads(f.read_text())
            except ValueError:
                continue
            info["kind"] = "samples" if name == SAMPLES_FILE else "unmixed RGB"
            info["settings"] = {k: v for k, v in meta.items() if k not in ("files", "images")}
    return info


def make_dataset(unmixing_run: str | os.PathLike[str], abundance_dir: str | os.PathLike[str],
                 out: str | os.PathLike[str], *, ext: str = "npz", msi_sensor: str | None = None,
                 msi_bands: Sequence[str] | None = None, drop_uncovered: bool = False,
                 overwrite: bool = False) -> Path:
    """Synthesise ``Y = E A`` with the unmixing model's endmembers for every map in ``abundance_dir``.

    The dataset folder (:func:`hsfuse.synthesis.dataset.write_dataset`) stores the model's wavelengths and in
    ``dataset.json`` where the endmembers and abundances came from.
    """
    from ..synthesis.diffusion import check_abundances
    from ..synthesis.unmixing import load_unmixing
    from ..synthesis.dataset import write_dataset

    check_output_path(out, overwrite=overwrite, folder=True)
    model = load_unmixing(unmixing_run)
    maps = check_abundances(load_abundance_folder(abundance_dir))
    K = model.endmembers.shape[1]
    if maps[0].shape[-1] != K:
        raise InputError(f"the abundance maps have K = {maps[0].shape[-1]} but the unmixing model has {K} "
                         "endmembers; use the unmixing run the abundances came from")
    training = model.card.get("training", {})
    provenance = {
        "endmember_source": {"unmixing": str(Path(model.path).resolve()), "step": training.get("step"),
                             "scenes": training.get("scenes"),
                             "response": model.card.get("response", {}).get("source")},
        "abundance_source": {**_source_info(Path(abundance_dir)), "maps": len(maps)},
    }
    return write_dataset(out, endmembers=model.endmembers, abundances=maps, wavelengths_nm=model.wavelengths_nm,
                         ext=ext, msi_sensor=msi_sensor, msi_bands=msi_bands, drop_uncovered=drop_uncovered,
                         provenance=provenance, overwrite=overwrite)


# --------------------------------------------------------------------------------------------- realism


def _dataset_cubes(folder: Path) -> tuple[list[Cube], list[np.ndarray] | None, dict[str, Any]]:
    from ..synthesis.dataset import DATASET_FILE

    meta_path = folder / DATASET_FILE
    if not meta_path.is_file():
        raise InputError(f"{folder} is not a synthetic dataset (no {DATASET_FILE}); pass a folder made by "
                         "'hsfuse synth make'")
    meta = json.loads(meta_path.read_text())
    names, ext = meta.get("files") or [], meta.get("ext", "npz")
    if not names:
        raise InputError(f"{meta_path} lists no cubes")
    cubes = [read_cube(folder / "hsi" / f"{n}.{ext}") for n in names]
    abundances = None
    if all((folder / "abundances" / f"{n}.npz").is_file() for n in names):
        abundances = []
        for n in names:
            with np.load(folder / "abundances" / f"{n}.npz") as z:
                abundances.append(np.asarray(z["abundances"], dtype=np.float32))
    return cubes, abundances, meta


def realism(synthetic_dir: str | os.PathLike[str], real: Sequence[str | os.PathLike[str] | Cube] | None,
            out: str | os.PathLike[str], *, scenes: Sequence[str] = (), n_components: int = 5,
            max_pixels: int = 20000, seed: int = 0, overwrite: bool = False) -> dict[str, Any]:
    """Compare a synthetic dataset with real HSIs and write the report folder ``out``.

    Args:
        synthetic_dir: a dataset folder from :func:`make_dataset` (its ``hsi/`` cubes and ``abundances/``).
        real: real HSI files or folders (each scaled to a maximum of 1,
            :func:`hsfuse.data.patches.load_training_scenes`), or ``None``.
        scenes: shared scene names (:func:`hsfuse.data.scenes.load_scene`, also max-scaled); with ``real`` or
            instead of it.
        n_components, max_pixels, seed: :func:`hsfuse.metrics.realism.realism_report`.

    Writes ``report.json`` (the report, plus the inputs), ``report.md``, ``realism.png``, ``previews.png``
    (up to 8 synthetic cubes) and ``abundances.png`` (the first cube's maps), atomically. Returns the JSON.
    """
    from ..data.patches import load_training_scenes
    from ..data.scenes import load_scene
    from ..metrics.realism import realism_report
    from ..viz.synthesis_figures import plot_abundances, plot_previews, plot_realism

    check_output_path(out, overwrite=overwrite, folder=True)
    folder = Path(synthetic_dir)
    cubes, abundances, meta = _dataset_cubes(folder)
    real_cubes: list[Cube] = [load_scene(s) for s in scenes]
    if real:
        real_cubes += load_training_scenes(list(real))
    if not real_cubes:
        raise InputError("no real HSIs to compare with; give real files/folders or shared scene names")
    wl = cubes[0].wavelengths
    for c in real_cubes:
        if c.bands != cubes[0].bands:
            raise InputError(f"the synthetic cubes have {cubes[0].bands} bands but real "
                             f"{c.attrs.get('scene', c.attrs.get('source', '?'))} has {c.bands}; compare with real "
                             "data of the sensor the unmixing model was trained on")
        if wl is not None and c.wavelengths is not None and np.abs(c.wavelengths - wl).max() > 1.0:
            raise InputError(f"real {c.attrs.get('scene', c.attrs.get('source', '?'))} has other band wavelengths "
                             "than the synthetic cubes (more than 1 nm apart); compare data of the same sensor")
    report = realism_report([c.data for c in cubes], [c.data for c in real_cubes], wavelengths_nm=wl,
                            abundances=abundances, n_components=n_components, max_pixels=max_pixels, seed=seed)
    result = report.to_dict()
    result["inputs"] = {"synthetic": str(folder.resolve()), "synthetic_cubes": len(cubes),
                        "real": [str(c.attrs.get("scene") or c.attrs.get("source", "?")) for c in real_cubes],
                        "n_components": n_components, "max_pixels": max_pixels, "seed": seed,
                        "dataset": {"msi_sensor": meta.get("msi_sensor"), **meta.get("provenance", {})}}
    with atomic_output_dir(out, overwrite=overwrite, replaceable=lambda p: p.name in _REALISM_FILES) as tmp:
        (tmp / "report.json").write_text(json.dumps(_jsonable(result), indent=2) + "\n")
        title = (f"# Realism of {folder.name}: {len(cubes)} synthetic cube(s) vs "
                 f"{', '.join(result['inputs']['real'])}\n\n")
        (tmp / "report.md").write_text(title + report.to_markdown())
        plot_realism(report, tmp / "realism.png")
        plot_previews([c.data for c in cubes[:8]], tmp / "previews.png", wavelengths_nm=wl)
        if abundances:
            plot_abundances(abundances[0], tmp / "abundances.png")
    return result


# --------------------------------------------------------------------------------------------- accuracy


def reference_unmixing(scene_name: str) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """A shared scene's reference endmembers ``(C, Kr)``, abundances ``(H, W, Kr)`` and names, or ``None``."""
    from ..data.paths import shared_file
    from ..data.scenes import SCENES

    if scene_name not in SCENES:
        raise InputError(f"unknown scene {scene_name!r}; known scenes: {', '.join(sorted(SCENES))}")
    with np.load(shared_file(*SCENES[scene_name].file.split("/"))) as z:
        if "endmembers" not in z.files or "abundances" not in z.files:
            return None
        e = np.asarray(z["endmembers"], dtype=np.float64)
        a = np.asarray(z["abundances"], dtype=np.float64)
        names = [str(n) for n in z["endmember_names"]] if "endmember_names" in z.files else \
            [f"endmember_{k}" for k in range(e.shape[1])]
    return e, a, names


def unmixing_accuracy(model: Any, scene_name: str, *, device: str = "cpu") -> dict[str, Any]:
    """Score an unmixing model on a shared scene with reference unmixing (``jasper_ridge``, ``samson``).

    The scene (max-scaled, :func:`hsfuse.data.scenes.load_scene`) is seen through the model's own RGB response
    (its card), the abundances are inferred, the learned endmembers are matched to the reference ones
    (:func:`hsfuse.synthesis.unmixing.match_endmembers`, spectral angles), and for the matched pairs the
    abundance RMSE (reference vs inferred map) is computed, per pair and over all matched maps. The
    reconstruction ``E A`` (learned endmembers, inferred abundances) is compared with the scene by PSNR with
    peak 1 (the scene's maximum).
    """
    from ..data.scenes import load_scene
    from ..synthesis.unmixing import RGBResponse, infer_abundances, match_endmembers, simulate_rgb

    ref = reference_unmixing(scene_name)
    if ref is None:
        raise InputError(f"scene {scene_name!r} has no reference endmembers/abundances; use jasper_ridge or samson")
    ref_e, ref_a, names = ref
    scene = load_scene(scene_name)
    C = int(model.net.hsi_bands)
    if scene.bands != C or ref_e.shape[0] != C:
        raise InputError(f"the unmixing model has {C} bands but scene {scene_name!r} has {scene.bands}; score it on "
                         "a scene of the sensor it was trained on")
    wl = model.wavelengths_nm
    if wl is not None and scene.wavelengths is not None and np.abs(wl - scene.wavelengths).max() > 1.0:
        raise InputError(f"the unmixing model's wavelengths differ from scene {scene_name!r}'s")
    response = RGBResponse.from_dict(model.card.get("response") or {})
    rgb = simulate_rgb(np.asarray(scene.data, dtype=np.float32), response)
    a = infer_abundances(model, rgb, device=device).astype(np.float64)
    e = model.endmembers.astype(np.float64)
    match = match_endmembers(e, ref_e)
    pairs = sorted(match["pairs"].items())
    per = [float(np.sqrt(np.mean((ref_a[..., r] - a[..., j]) ** 2))) for r, j in pairs]
    overall = float(np.sqrt(np.mean([(ref_a[..., r] - a[..., j]) ** 2 for r, j in pairs])))
    recon = a @ e.T
    mse = float(np.mean((recon - np.asarray(scene.data, dtype=np.float64)) ** 2))
    psnr = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
    return {
        "scene": scene_name,
        "model": str(Path(model.path)),
        "endmembers_learned": int(e.shape[1]),
        "endmembers_reference": int(ref_e.shape[1]),
        "pairs": [{"reference": names[r], "reference_index": r, "learned_index": j, "sad_deg": s,
                   "abundance_rmse": p}
                  for (r, j), s, p in zip(pairs, match["sad_deg"], per)],
        "sad_deg": match["sad_deg"],
        "mean_sad_deg": match["mean_sad_deg"],
        "abundance_rmse": overall,
        "reconstruction_psnr_db": psnr,
        "response": response.source,
    }



# --------------------------------------------------------------------------------------------- one call per command


def precheck_run(run_dir: str | os.PathLike[str], *, resume: bool, command: str) -> None:
    """Refuse an existing run (without ``resume``) or a foreign folder before reading any data."""
    if not resume:
        from ..training.engine import check_run_dir

        check_run_dir(Path(run_dir), {}, resume=False, keys=(), command=command)


def train_unmixing_from(run_dir: str | os.PathLike[str], *, scenes: Sequence[str] = (),
                        data: Sequence[str | os.PathLike[str]] = (), sensor: str | None = None,
                        rgb_bands: Sequence[int] | None = None, options: Any = None, resume: bool = False,
                        progress: Progress | None = None, say: Say = lambda _m: None) -> tuple[Any, dict | None]:
    """``hsfuse synth train-unmixing``: train on shared ``scenes`` or HSI files/folders ``data`` with the RGB of
    ``sensor`` (default Canon EOS 5D Mark II) or three HSI bands; return the run result and, for one shared scene
    with reference unmixing, its accuracy (also written to ``RUN/accuracy.json``)."""
    from ..data.patches import load_training_scenes
    from ..data.scenes import load_scene
    from ..synthesis.unmixing import UnmixingTrainOptions, load_unmixing, rgb_response, train_unmixing

    precheck_run(run_dir, resume=resume, command="hsfuse synth train-unmixing")
    options = options or UnmixingTrainOptions()
    cubes = [load_scene(n) for n in scenes] if scenes else load_training_scenes(list(data))
    response = rgb_response(cubes[0].wavelengths, sensor=sensor or "canon_eos_5d_mark_ii", bands=rgb_bands)
    first = cubes[0]
    say(f"training the unmixing network ({options.config} config, K = {options.net_config().endmembers}) on "
        f"{len(cubes)} scene(s), {first.bands} bands, RGB from {response.source}, {options.steps} steps -> {run_dir}")
    result = train_unmixing(cubes, response=response, run_dir=run_dir, options=options, resume=resume,
                            progress=progress)
    say(f"done: {result.steps_done} steps in {result.seconds:.1f} s; weights: {result.last}")
    accuracy = None
    if len(scenes) == 1 and reference_unmixing(scenes[0]) is not None:
        device = options.device or "cpu"
        try:
            accuracy = unmixing_accuracy(load_unmixing(run_dir, device=device), scenes[0], device=device)
        except InputError as exc:
            say(f"no accuracy against the reference unmixing: {exc}")
        else:
            _write_json(Path(run_dir) / "accuracy.json", accuracy)
    return result, accuracy


def unmix_to_folder(weights: str | os.PathLike[str], out: str | os.PathLike[str], *,
                    rgb: Sequence[str | os.PathLike[str]] = (), example: str | None = None,
                    scales: Sequence[float] = (1.0,), tile: int | None = None, transfer: Transfer = "linear",
                    device: str = "cpu", overwrite: bool = False, progress: Progress | None = None,
                    say: Say = lambda _m: None) -> int:
    """``hsfuse synth unmix``: abundance maps of RGB images with a trained unmixing network; returns the image
    count (see :func:`load_rgb_images` and :func:`infer_folder`)."""
    from ..synthesis.unmixing import load_unmixing

    check_output_path(out, overwrite=overwrite, folder=True)
    model = load_unmixing(weights, device=device)
    images = load_rgb_images(rgb, example=example, scales=scales, tile=tile, transfer=transfer, say=say)
    say(f"unmixing {len(images)} image(s) into K = {model.net.config.endmembers} abundance maps with {model.path}")
    settings = {"rgb": [str(r) for r in rgb] or None, "example": example, "scales": list(scales), "tile": tile,
                "rgb_transfer": transfer}
    infer_folder(model, images, out, overwrite=overwrite, device=device, settings=settings, progress=progress)
    return len(images)


def train_diffusion_from(folders: Sequence[str | os.PathLike[str]], run_dir: str | os.PathLike[str], *,
                         options: Any = None, resume: bool = False, progress: Progress | None = None,
                         say: Say = lambda _m: None) -> Any:
    """``hsfuse synth train-diffusion``: the abundance diffusion model on the maps of ``folders``."""
    from ..synthesis.diffusion import DiffusionTrainOptions, train_diffusion

    precheck_run(run_dir, resume=resume, command="hsfuse synth train-diffusion")
    options = options or DiffusionTrainOptions()
    maps: list[np.ndarray] = []
    for folder in folders:
        maps.extend(load_abundance_folder(folder))
    description = {"abundances": [str(Path(f).resolve()) for f in folders], "maps": len(maps)}
    say(f"training the abundance diffusion model ({options.config} config) on {len(maps)} map(s) with "
        f"K = {maps[0].shape[-1]}, crops {options.crop}px, {options.steps} steps -> {run_dir}")
    result = train_diffusion(maps, run_dir=run_dir, options=options, description=description, resume=resume,
                             progress=progress)
    say(f"done: {result.steps_done} steps in {result.seconds:.1f} s; weights: {result.last}")
    return result


def sample_from_weights(weights: str | os.PathLike[str], out: str | os.PathLike[str], *, device: str = "cpu",
                        say: Say = lambda _m: None, **kwargs: Any) -> dict[str, Any]:
    """``hsfuse synth sample``: load a trained diffusion model and :func:`sample_to_folder` with ``kwargs``."""
    from ..synthesis.diffusion import load_diffusion

    model = load_diffusion(weights, device=device)
    say(f"sampling {kwargs.get('n')} abundance map(s) {kwargs.get('size')}x{kwargs.get('size')} with {model.path}")
    return sample_to_folder(model, out, device=device, say=say, **kwargs)
