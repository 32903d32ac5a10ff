"""Small validation helpers used at public boundaries (internal)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .types import infer_ratio

__all__ = ["check_image_tensor", "check_device", "check_ratio", "check_finite", "check_positive_int", "parse_positive_int",
           "check_pair", "pair_ratio"]


def check_image_tensor(x: Any, name: str, *, channels: int | None = None) -> torch.Tensor:
    """Return ``x`` as a ``(N, C, H, W)`` floating tensor, or raise :class:`InputError` naming the problem.

    A ``(C, H, W)`` tensor is not accepted silently: callers add the batch axis explicitly.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(
            f"{name} must have shape (N, C, H, W) (batch, bands, height, width), got {tuple(x.shape)}; "
            "add a batch axis with x[None] or convert a H x W x B cube with Cube.to_tensor()"
        )
    if x.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(x.shape)})")
    if channels is not None and x.shape[1] != channels:
        raise InputError(f"{name} must have {channels} bands (dim 1), got {x.shape[1]} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def check_device(device: str | torch.device, *, allowed: tuple[str, ...] = ("cpu", "cuda"),
                 who: str | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`, or :class:`InputError` if it is not a device name, is not among
    ``allowed`` (``who`` runs only there) or is a CUDA device on a machine without one. Called before any work."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device {device!r} is not a device name; use cpu or cuda[:N]") from None
    if dev.type not in allowed:
        raise InputError(f"{who or 'this'} runs on {', '.join(allowed)}, not {dev.type}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r} requested but no CUDA GPU is available; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(device)!r} requested but this machine has {torch.cuda.device_count()} "
                             "CUDA GPU(s)")
    return dev


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int >= minimum`` or raise :class:`InputError` naming ``name``.

    Python and NumPy integers are accepted; booleans, floats (even ``4.0``: a float where a count is expected is
    usually a mistake) and anything below ``minimum`` are not. This is the one integer checker of the package
    (options, tile sizes, step counts); the command line parses its text with :func:`parse_positive_int`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_weight(value: Any, name: str, *, allow_zero: bool) -> float:
    """Return ``value`` as a finite float that is ``> 0`` (``>= 0`` with ``allow_zero``), else raise InputError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def parse_positive_int(text: str, name: str, *, minimum: int = 1) -> int:
    """An integer ``>= minimum`` from command-line text (``"4"``; ``"4.0"`` is accepted, ``"2.5"`` is not)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise InputError(f"{name} must be an integer >= {minimum}, got {text!r}")
    return check_positive_int(int(number), name, minimum=minimum)


def check_ratio(ratio: Any, name: str = "ratio") -> int:
    """Return ``ratio`` as a positive ``int`` or raise :class:`InputError` (2.0 is accepted, 2.5 is not)."""
    message = f"{name} must be a positive integer (the HSI/MSI resolution ratio), got {ratio!r}"
    if isinstance(ratio, bool):
        raise InputError(message)
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise InputError(message) from None
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise InputError(message)
    return int(value)


def check_finite(x: torch.Tensor | np.ndarray, name: str) -> None:
    """Raise :class:`InputError` if ``x`` contains NaN or infinity, saying how many and where to look."""
    bad = ~torch.isfinite(x) if isinstance(x, torch.Tensor) else ~np.isfinite(x)
    count = int(bad.sum())
    if count:
        raise InputError(
            f"{name} contains {count} NaN/inf value(s); replace or mask them (e.g. fill no-data pixels) "
            "before fusion"
        )


def check_pair(hsi: Any, msi: Any, *, ratio: Any = None, hsi_bands: int | None = None, msi_bands: int | None = None,
               single: bool = False, finite: bool = False, who: str = "fusion") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate one measurement pair; return ``(hsi, msi, r)`` as floating ``(N, ., ., .)`` tensors and the ratio.

    The one validation path for an HSI/MSI pair (methods, estimators, networks, workflows), with one set of
    messages:

    * both are ``(N, C, H, W)`` tensors (NumPy arrays accepted) with the same batch ``N`` (``single``: ``N == 1``,
      for methods that fit one pair at a time);
    * ``hsi_bands`` / ``msi_bands``, when given, are the band counts the caller's operators expect;
    * the MSI grid refines the HSI grid by one integer ratio ``r`` in both directions; ``ratio``, when given, must
      equal it;
    * ``finite``: neither contains NaN or infinity.

    ``who`` names the caller in the messages (e.g. ``"UDALN"``).
    """
    h = check_image_tensor(hsi, "low-resolution HSI", channels=hsi_bands)
    m = check_image_tensor(msi, "multispectral image", channels=msi_bands)
    if h.shape[0] != m.shape[0]:
        raise InputError(f"{who}: the HSI batch ({h.shape[0]}) and the MSI batch ({m.shape[0]}) differ; give one MSI "
                         "per HSI")
    if single and h.shape[0] != 1:
        raise InputError(f"{who} fits one image pair at a time, got a batch of {h.shape[0]}; call it once per pair")
    r = pair_ratio(tuple(h.shape[-2:]), tuple(m.shape[-2:]), ratio, who=who)
    if finite:
        check_finite(h, "low-resolution HSI")
        check_finite(m, "multispectral image")
    return h, m, r


def pair_ratio(hsi_hw: tuple[int, int], msi_hw: tuple[int, int], ratio: Any = None, *, who: str | None = None) -> int:
    """The integer ratio of an HSI grid ``(h, w)`` and an MSI grid ``(H, W)`` (:func:`hsfuse.types.infer_ratio`);
    ``ratio``, when given, must equal it. ``who`` prefixes the messages (``"UDALN: ..."``). The one ratio check of
    :func:`check_pair` and of the workflows that hold cubes or lazy arrays instead of tensors."""
    prefix = f"{who}: " if who else ""
    try:
        r = infer_ratio(hsi_hw, msi_hw)
    except InputError as exc:
        raise InputError(f"{prefix}{exc}") from None
    if ratio is not None and check_ratio(ratio) != r:
        (lh, lw), (H, W) = hsi_hw, msi_hw
        raise InputError(f"{prefix}ratio {ratio} disagrees with the image sizes: HSI {lh}x{lw} and MSI {H}x{W} give "
                         f"ratio {r}; drop the ratio or crop the images")
    return r
