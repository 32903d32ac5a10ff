"""Tiled inference: fuse a large pair tile by tile with overlapping, smoothly blended tiles.

A network's activations grow with the image (DHIF-Net's inference peaks at about 1.9 GiB at 512 x 512 x 31
on CPU, see benchmarks/results/networks.md; training, which stores activations, needs many times more).
:func:`tiled_forward` cuts the pair into tiles defined on the *low-resolution* grid (so every high-resolution
tile is aligned to the ratio and the decimation grid), runs the network on one tile at a time and blends the
overlapping outputs with a raised-cosine window. :func:`choose_tile` picks the largest tile that fits a memory
budget. Progress is reported through a plain ``callback(done, total)`` (:mod:`hsfuse.progress`); drawing a bar
is the caller's business (the command line does it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .._checks import check_pair, check_positive_int, check_ratio
from ..errors import InputError
from ..progress import ProgressFn

__all__ = ["tile_starts", "blend_ramp", "tile_window", "tiled_forward", "choose_tile", "NetFn", "ProgressFn"]

NetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _int_pair(value: int | tuple[int, int], name: str, *, minimum: int) -> tuple[int, int]:
    """An integer or a ``(rows, cols)`` pair of integers, each ``>= minimum``, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{name} must be an integer or a pair (rows, cols), got {value!r}")
        return (check_positive_int(value[0], name, minimum=minimum),
                check_positive_int(value[1], name, minimum=minimum))
    v = check_positive_int(value, name, minimum=minimum)
    return v, v


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of the tiles along one axis of ``length`` pixels (all in the same grid).

    Tiles start every ``tile - overlap`` pixels; the last one is shifted back to end at ``length`` (so it
    may overlap its neighbour by more than ``overlap``) rather than padding the image. An axis shorter than
    a tile gets one tile of the axis' length. E.g. ``tile_starts(11, 4, 1) == [0, 3, 6, 7]``.
    """
    length = check_positive_int(length, "length")
    tile = check_positive_int(tile, "tile")
    overlap = check_positive_int(overlap, "overlap", minimum=0)
    if tile <= 2 * overlap:
        raise InputError(f"tile ({tile}) must be larger than twice the overlap ({overlap}) so that every "
                         "tile keeps an interior")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_ramp(n: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
               ) -> torch.Tensor:
    """Rising raised-cosine ramp of ``n`` samples, strictly inside ``(0, 1)``.

    ``ramp[i] = sin^2(pi/2 * (i + 1/2) / n)``. The falling ramp of the neighbouring tile, ``ramp.flip(0)``,
    adds up with it to exactly one (``sin^2 + cos^2``), so tiles overlapping by exactly ``n`` pixels form a
    partition of unity; other overlaps are normalised by the weight sum.
    """
    i = torch.arange(n, dtype=torch.float64, device=device)
    return torch.sin(0.5 * math.pi * (i + 0.5) / n).square().to(dtype)


def tile_window(length: int, ramp: int, *, first: bool, last: bool, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """1-D blending weights of a tile of ``length`` pixels: ramps of ``ramp`` pixels at interior sides.

    A side on the image border (``first`` / ``last``) keeps weight 1, so the border is covered with full
    weight; every weight is > 0.
    """
    w = torch.ones(length, dtype=dtype, device=device)
    n = min(ramp, length // 2)
    if n > 0:
        up = blend_ramp(n, dtype=dtype, device=device)
        if not first:
            w[:n] = up
        if not last:
            w[length - n:] = up.flip(0)
    return w


def _net_device(net_fn: NetFn, device: torch.device | str | None, fallback: torch.device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if isinstance(net_fn, nn.Module):
        for p in net_fn.parameters():
            return p.device
    return fallback


def tiled_forward(net_fn: NetFn, hsi: torch.Tensor, msi: torch.Tensor, *, ratio: int,
                  tile: int | tuple[int, int], overlap: int | tuple[int, int],
                  progress: ProgressFn | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Run ``net_fn(hsi_tile, msi_tile)`` tile by tile and blend the outputs into ``(N, L', r H, r W)``.

    Tiles are ``tile`` x ``tile`` LR pixels (or ``(rows, cols)``) overlapping by ``overlap`` LR pixels;
    HR tile ``[r y0, r y1) x [r x0, r x1)`` pairs with LR tile ``[y0, y1) x [x0, x1)``. Each output tile is
    weighted by the separable window ``w(y) w(x)`` of :func:`tile_window` (raised-cosine ramps over the
    ``r * overlap`` HR pixels of each interior side, 1 elsewhere, > 0 everywhere) and::

        out = sum_tiles w * net(tile) / sum_tiles w

    Exactness: equals whole-image inference wherever the network's receptive field lies in a tile's
    interior weight-1 region; elsewhere it is a blend. Precisely, an HR pixel at least ``rho`` HR pixels
    (the network's receptive-field radius) from every *interior* edge of every tile that covers it gets the
    whole-image value up to float rounding, because every tile covering it computes that same value (tiles
    never pad the image: image borders are tile borders, and the last tile of a row/column is shifted back
    inside the image). With ``r * overlap > 2 rho`` every pixel has such a tile, but pixels also covered by a
    tile whose edge is nearer than ``rho`` are blends. Networks that normalise over the whole image (none of
    hsfuse's) are not covered by this guarantee.

    Memory: one tile pair, its output and the full-size output and 2-D weight sum. Tiles run under
    ``torch.no_grad()`` one at a time on ``device`` (default: the module's parameter device, else the input's
    device) and each output is moved back to the input's device.

    Args:
        net_fn: callable ``(hsi (N, L, th, tw), msi (N, m, r th, r tw)) -> (N, L', r th, r tw)``; a
            :class:`hsfuse.models.base.FusionNet` works as is.
        hsi: ``(N, L, H, W)``; msi: ``(N, m, r H, r W)``.
        ratio: the integer ratio ``r``.
        tile, overlap: in LR pixels; ``tile > 2 * overlap``, ``overlap >= 0``. A tile larger than the image
            is clipped to it.
        progress: optional ``callback(done, total)`` after each tile (:data:`hsfuse.progress.ProgressFn`).
        device: where ``net_fn`` runs.

    Example:
        >>> net = lambda h, m: torch.nn.functional.interpolate(h, scale_factor=2) + m.mean(1, keepdim=True)
        >>> hsi, msi = torch.rand(1, 3, 9, 7), torch.rand(1, 2, 18, 14)
        >>> torch.allclose(tiled_forward(net, hsi, msi, ratio=2, tile=4, overlap=1), net(hsi, msi))
        True
    """
    hsi, msi, r = check_pair(hsi, msi, ratio=ratio, who="tiled_forward")
    (th, tw), (oh, ow) = _int_pair(tile, "tile", minimum=1), _int_pair(overlap, "overlap", minimum=0)
    n, _, h, w = hsi.shape
    rows = tile_starts(h, th, oh)
    cols = tile_starts(w, tw, ow)
    th, tw = min(th, h), min(tw, w)
    out_device = hsi.device
    run_device = _net_device(net_fn, device, out_device)
    total = len(rows) * len(cols)

    out: torch.Tensor | None = None
    weight = torch.zeros(r * h, r * w, dtype=torch.float64, device=out_device)
    done = 0
    with torch.no_grad():
        for y0 in rows:
            wy = tile_window(r * th, r * oh, first=y0 == 0, last=y0 + th == h, dtype=torch.float64,
                             device=out_device)
            for x0 in cols:
                wx = tile_window(r * tw, r * ow, first=x0 == 0, last=x0 + tw == w, dtype=torch.float64,
                                 device=out_device)
                h_tile = hsi[:, :, y0:y0 + th, x0:x0 + tw].to(run_device)
                m_tile = msi[:, :, r * y0:r * (y0 + th), r * x0:r * (x0 + tw)].to(run_device)
                result = net_fn(h_tile, m_tile)
                if not isinstance(result, torch.Tensor) or result.ndim != 4 or result.shape[0] != n \
                        or tuple(result.shape[-2:]) != (r * th, r * tw):
                    got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
                    raise InputError(f"net_fn must return (N={n}, bands, {r * th}, {r * tw}) for a {th}x{tw} "
                                     f"LR tile, got {got}")
                result = result.to(out_device)
                if out is None:
                    out = torch.zeros(n, result.shape[1], r * h, r * w, dtype=result.dtype, device=out_device)
                win = wy[:, None] * wx[None, :]
                ys, xs = slice(r * y0, r * (y0 + th)), slice(r * x0, r * (x0 + tw))
                out[:, :, ys, xs] += result * win.to(result.dtype)
                weight[ys, xs] += win
                del result, h_tile, m_tile
                done += 1
                if progress is not None:
                    progress(done, total)
    if out is None:  # pragma: no cover - tile_starts always yields at least one tile per axis
        raise RuntimeError("no tile was processed")
    return out.div_(weight.to(out.dtype))


def _cpu_activation_bytes(module: nn.Module, hsi: torch.Tensor, msi: torch.Tensor) -> int:
    """Sum of the bytes of every leaf module's outputs during one forward, plus inputs and final output."""
    total = 0

    def hook(_mod: nn.Module, _inp: object, output: object) -> None:
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))

    handles = [m.register_forward_hook(hook) for m in module.modules() if not any(True for _ in m.children())]
    try:
        result = module(hsi, msi)
    finally:
        for handle in handles:
            handle.remove()
    return total + sum(t.numel() * t.element_size() for t in (hsi, msi, result))


def choose_tile(net_fn_or_module: NetFn | nn.Module, *, hsi_bands: int, msi_bands: int, ratio: int,
                memory_bytes: int, device: torch.device | str, overlap: int = 0, probe: int | None = None,
                dtype: torch.dtype = torch.float32) -> int:
    """The largest square LR tile whose estimated peak inference memory fits ``memory_bytes``.

    One probe forward on a ``probe x probe`` LR tile (random data; default ``ceil(64 / r)``, about 64x64 HR
    pixels, small enough to be quick on CPU, large enough that fixed GPU overheads do not dominate) gives a
    cost per HR pixel ``c``; the tile is ``floor(sqrt(memory_bytes / c) / r)`` LR pixels, i.e. memory is
    assumed to grow linearly with the pixel count (true for convolutional networks; the weights are not
    counted, they are resident anyway). Returns the tile side in LR pixels (it may exceed the image).

    - CUDA: ``c = (torch.cuda.max_memory_allocated - memory allocated before) / (r * probe)^2``, measured.
    - CPU: ``c`` = (bytes of the outputs of every leaf module during the probe forward + inputs + output) /
      (r * probe)^2. Under ``no_grad`` not all of these are alive at once, so for networks built from modules
      this over-estimates the peak (a safe, smaller tile); temporaries of functional calls that no module
      returns are not seen. A plain function (not an ``nn.Module``) cannot be measured on CPU.

    Raises :class:`InputError` if even a tile of ``2 * overlap + 1`` LR pixels does not fit.
    """
    r = check_ratio(ratio)
    hsi_bands = check_positive_int(hsi_bands, "hsi_bands")
    msi_bands = check_positive_int(msi_bands, "msi_bands")
    overlap = check_positive_int(overlap, "overlap", minimum=0)
    probe = -(-64 // r) if probe is None else check_positive_int(probe, "probe")
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, (int, float)) or memory_bytes <= 0:
        raise InputError(f"memory_bytes must be a positive number of bytes, got {memory_bytes!r}")
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    hsi = torch.rand(1, hsi_bands, probe, probe, generator=gen, dtype=dtype).to(dev)
    msi = torch.rand(1, msi_bands, r * probe, r * probe, generator=gen, dtype=dtype).to(dev)
    with torch.no_grad():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            before = torch.cuda.memory_allocated(dev)
            result = net_fn_or_module(hsi, msi)
            torch.cuda.synchronize(dev)
            used = torch.cuda.max_memory_allocated(dev) - before
            del result
        else:
            if not isinstance(net_fn_or_module, nn.Module):
                raise InputError("on CPU choose_tile estimates memory with forward hooks and needs an nn.Module, "
                                 f"got {type(net_fn_or_module).__name__}; pass the network itself")
            used = _cpu_activation_bytes(net_fn_or_module, hsi, msi)
    per_pixel = max(used, 1) / float((r * probe) ** 2)
    best = int(math.floor(math.sqrt(memory_bytes / per_pixel) / r))
    smallest = 2 * overlap + 1
    if best < smallest:
        need = per_pixel * (r * smallest) ** 2
        raise InputError(f"a memory budget of {memory_bytes:.4g} bytes is too small: the smallest tile "
                         f"({smallest} LR pixels for overlap {overlap}) needs about {need:.4g} bytes")
    return best
