"""Model checkpoints: weights in safetensors plus a JSON card with everything needed to rebuild and use them.

A checkpoint is a folder::

    model.safetensors     the network's state dict (tensors only, no pickle)
    model.json            the card: method, architecture options, bands, wavelengths, ratio, SRF, simulation
                          preset, band scaling, training step and metrics, hsfuse version

Folders are written whole to a temporary name and renamed into place, so a crash (even ``kill -9``) never
leaves a half-written checkpoint. :func:`load_model` accepts the checkpoint folder, its ``model.safetensors``,
or a training run folder (whose ``best.json`` / ``last.json`` point at a checkpoint).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import FileFormatError, InputError, MissingDependencyError
from ..io.atomic import atomic_output_dir
from .base import FusionNet

__all__ = ["ModelCard", "save_model", "save_weights_folder", "load_model", "read_card", "resolve_checkpoint", "write_pointer",
           "remove_pointer_temporaries", "cpu_state_dict", "CARD_NAME", "WEIGHTS_NAME"]

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "hsfuse-model"
FORMAT_VERSION = 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hsfuse")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


@dataclass
class ModelCard:
    """What a checkpoint's weights are for.

    Attributes:
        method: registry name of the network (``hsfuse.models.catalog.MODELS``).
        config: architecture options (the config dataclass as a dict).
        hsi_bands, msi_bands, ratio: the data layout the network was built for.
        wavelengths_nm: HSI band centres of the training data, if known.
        msi_band_names: names of the MSI bands, if known.
        srf: the nominal ``(m, L)`` SRF used to simulate training data, as applied (after the preset's
            normalisation), if known.
        preset: the simulation preset (as a dict) of the training data.
        band_scaling: input scaling mode (see :func:`hsfuse.models.base.band_scales`).
        training: step, metrics, data description.
    """

    method: str
    config: dict[str, Any]
    hsi_bands: int
    msi_bands: int
    ratio: int
    band_scaling: str = "band_max"
    wavelengths_nm: list[float] | None = None
    msi_band_names: list[str] | None = None
    srf: list[list[float]] | None = None
    preset: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)
    hsfuse_version: str = field(default_factory=_version)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False, default=float)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str) -> ModelCard:
        if values.get("format") != FORMAT:
            raise FileFormatError(f"{where} is not an hsfuse model card (format {values.get('format')!r})")
        if int(values.get("format_version", 0)) > FORMAT_VERSION:
            raise FileFormatError(f"{where} has card format {values['format_version']}, newer than this hsfuse "
                                  f"understands ({FORMAT_VERSION}); upgrade hsfuse")
        known = set(cls.__dataclass_fields__)
        missing = {"method", "config", "hsi_bands", "msi_bands", "ratio"} - set(values)
        if missing:
            raise FileFormatError(f"{where} lacks {', '.join(sorted(missing))}; the checkpoint is incomplete")
        return cls(**{k: v for k, v in values.items() if k in known})


def save_model(net: FusionNet, card: ModelCard, path: str | os.PathLike[str], *, overwrite: bool = False,
               extra: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write ``net``'s weights and ``card`` as a checkpoint folder at ``path`` (atomically).

    ``extra`` maps further file names to writer callbacks ``write(path)`` (the training engine stores its
    optimiser state this way); they land in the same folder in the same atomic rename.
    """
    return save_weights_folder(net, card.to_json(), path, method=card.method, overwrite=overwrite, extra=extra)


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` as contiguous CPU copies, the form safetensors stores."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def save_weights_folder(net: torch.nn.Module, card_json: str, path: str | os.PathLike[str], *, method: str,
                        overwrite: bool = False, extra: Mapping[str, Callable[[Path], None]] | None = None) -> Path:
    """Write any module's ``state_dict`` (safetensors) and a JSON card as a checkpoint folder, atomically.

    The folder layout of :func:`save_model`, for networks whose card is not a fusion :class:`ModelCard`
    (the synthesis stages'); ``method`` goes into the safetensors metadata.
    """
    try:
        from safetensors.torch import save_file
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise MissingDependencyError("saving weights needs safetensors: pip install safetensors") from exc
    module = net.module if hasattr(net, "module") else net
    state = cpu_state_dict(module)
    with atomic_output_dir(path, overwrite=overwrite,
                           replaceable=lambda p: p.name in {CARD_NAME, WEIGHTS_NAME, *(extra or {})}) as tmp:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": FORMAT, "method": method})
        (tmp / CARD_NAME).write_text(card_json)
        names = [WEIGHTS_NAME, CARD_NAME]
        for name, write in (extra or {}).items():
            write(tmp / name)
            names.append(name)
        for name in names:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
    return Path(path)


def write_pointer(run_dir: Path, name: str, target: Path, info: dict[str, Any]) -> None:
    """Atomically (re)write ``run_dir/name`` (e.g. ``best.json``) pointing at checkpoint folder ``target``."""
    payload = {"checkpoint": os.path.relpath(target, run_dir), **info}
    tmp = _pointer_temporary(run_dir, name)
    with open(tmp, "w") as fh:
        fh.write(json.dumps(payload, indent=2, allow_nan=False, default=float))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, run_dir / name)


def _pointer_temporary(run_dir: Path, name: str) -> Path:
    return run_dir / f".{name}.tmp"


def remove_pointer_temporaries(run_dir: Path) -> None:
    """Delete what :func:`write_pointer` calls killed before their rename left in ``run_dir``."""
    for stale in run_dir.glob(_pointer_temporary(Path(), "*.json").name):
        stale.unlink()


def resolve_checkpoint(path: str | os.PathLike[str], *, prefer: str = "best") -> Path:
    """The checkpoint folder that ``path`` names (a checkpoint folder, its weights file, or a run folder)."""
    p = Path(path)
    if not p.exists():
        raise FileFormatError(f"weights {p} do not exist; pass a checkpoint folder, its {WEIGHTS_NAME}, or a "
                              "training run folder made by 'hsfuse train'")
    if p.is_file():
        if p.suffix != ".safetensors":
            raise FileFormatError(f"{p} is not a .safetensors weights file or a checkpoint folder")
        p = p.parent
    if (p / CARD_NAME).is_file():
        return p
    for name in (f"{prefer}.json", "best.json", "last.json"):
        pointer = p / name
        if pointer.is_file():
            try:
                target = p / json.loads(pointer.read_text())["checkpoint"]
            except (ValueError, KeyError) as exc:
                raise FileFormatError(f"{pointer} is corrupt ({exc}); delete it and point at a checkpoint folder "
                                      "under checkpoints/") from exc
            if (target / CARD_NAME).is_file():
                return target
    raise FileFormatError(f"{p} holds no checkpoint ({CARD_NAME} + {WEIGHTS_NAME}) and no best.json/last.json; "
                          "pass a checkpoint folder made by 'hsfuse train'")


def read_card(path: str | os.PathLike[str]) -> tuple[ModelCard, Path]:
    """The :class:`ModelCard` of the checkpoint at ``path`` and the checkpoint folder."""
    folder = resolve_checkpoint(path)
    where = str(folder / CARD_NAME)
    try:
        values = json.loads((folder / CARD_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"cannot read {where}: {exc}; the checkpoint is corrupt") from exc
    if not isinstance(values, dict):
        raise FileFormatError(f"{where} is not a JSON object; the checkpoint is corrupt")
    return ModelCard.from_dict(values, where=where), folder


def load_model(path: str | os.PathLike[str], *, hsi_bands: int | None = None, msi_bands: int | None = None,
               ratio: int | None = None, device: str | torch.device = "cpu") -> tuple[FusionNet, ModelCard]:
    """Rebuild the network of a checkpoint and load its weights, in eval mode on ``device``.

    ``hsi_bands``, ``msi_bands`` and ``ratio`` (when given) are the data's; a checkpoint built for other values
    is refused with one message naming both.
    """
    from .catalog import build_model

    card, folder = read_card(path)
    wanted = {"HSI bands": (hsi_bands, card.hsi_bands), "MSI bands": (msi_bands, card.msi_bands),
              "ratio": (ratio, card.ratio)}
    wrong = [f"{k} {have} (checkpoint: {want})" for k, (have, want) in wanted.items()
             if have is not None and int(have) != int(want)]
    if wrong:
        raise InputError(
            f"checkpoint {folder} was trained for {card.hsi_bands} HSI bands, {card.msi_bands} MSI bands at ratio "
            f"{card.ratio}, but the data has {', '.join(wrong)}; train a {card.method} model for this data "
            "with 'hsfuse train' or use a matching checkpoint")
    net = build_model(card.method, hsi_bands=card.hsi_bands, msi_bands=card.msi_bands, ratio=card.ratio,
                      config=dict(card.config))
    try:
        from safetensors.torch import load_file

        state = load_file(str(folder / WEIGHTS_NAME))
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise MissingDependencyError("loading weights needs safetensors: pip install safetensors") from exc
    except Exception as exc:
        raise FileFormatError(f"cannot read {folder / WEIGHTS_NAME}: {exc}; the weights file is corrupt") from exc
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise FileFormatError(f"weights in {folder} do not fit a {card.method} network with the card's options "
                              f"({str(exc).splitlines()[0]})") from exc
    return net.to(device).eval(), card
