"""How a method runs on a scene cut into chunks: streamed statistics (*fit*) and a per-chunk *apply*.

The large-scene engine (:mod:`hsfuse.chunked`) cuts the high-resolution grid into chunks aligned to the ratio
(an LR chunk is exactly an HR chunk / r) and hands a method one :class:`Tile` at a time: the chunk's *core*
plus a halo of LR pixels on every side where the image has them. A method declares a :class:`Chunked` plan:

* ``passes``: zero or more :class:`StatsPass` es. Each computes, on every tile, sums over the tile's core
  (``partial``: a dict of float64 tensors, added across tiles by the engine in a fixed order), then
  ``finish`` turns the totals into the state the next pass or ``apply`` needs. Statistics of the whole image
  (GSA's band groups, regressions and covariances; FUSE's subspace; a network's band maxima) are so computed
  exactly, in one streaming pass each, with memory independent of the image size.
* ``apply(tile, physics, options, state) -> (1, L, r ch, r cw)``: the fused HR core of the tile, from the tile
  and the fitted state. A *local* method (a halo covering its footprint) gives exactly its whole-image result;
  a method whose solution is global (FUSE's FFT solve) gives it up to the tile edges' influence, which a wide
  halo (``apply_halo``) keeps away from the core.

Everything here is plain data and functions (picklable), so the engine can ship them to Dask workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

__all__ = ["Tile", "StatsPass", "Chunked", "State", "combine", "select"]

#: a fitted state or a dict of partial sums: names -> float64 tensors (or small Python values)
State = dict[str, Any]


@dataclass(frozen=True)
class Tile:
    """One chunk with its halo, as tensors.

    Attributes:
        hsi: ``(1, L, th, tw)`` LR tile (core plus halo where the image has it).
        msi: ``(1, m, r th, r tw)`` the matching HR tile.
        core: ``(row0, row1, col0, col1)`` of the core inside the LR tile.
        origin: LR ``(row, col)`` of the tile's top-left pixel in the whole image.
        image: the whole LR image's ``(h, w)``.
        ratio: ``r``.
        index: the chunk's ``(i, j)`` in the chunk grid (for seeding, messages).
        valid: ``(r th, r tw)`` boolean on the HR tile, ``False`` where a pixel is unusable (no-data, cloud, ... of
            either image; an HSI pixel marks its whole ``r x r`` block), or ``None`` when every pixel is usable. The
            engine has already filled unusable pixels with the images' band means, so the tensors are finite;
            statistics must skip them (:meth:`valid_hr_core`, :meth:`valid_lr_core`) and the engine writes no-data
            there in the result.
    """

    hsi: torch.Tensor
    msi: torch.Tensor
    core: tuple[int, int, int, int]
    origin: tuple[int, int]
    image: tuple[int, int]
    ratio: int
    index: tuple[int, int] = (0, 0)
    valid: torch.Tensor | None = None

    def valid_hr_core(self) -> torch.Tensor | None:
        """Flattened ``(N,)`` usable mask of the HR core pixels, or ``None`` (all usable)."""
        return None if self.valid is None else self.hr_core(self.valid).reshape(-1)

    def valid_lr_core(self, kernel_size: int | None = None, offset: int | None = None) -> torch.Tensor | None:
        """Flattened ``(n,)`` mask of the LR core pixels whose footprint (``r x r`` block, or the ``kernel_size``
        PSF support at the decimation ``offset``) is all usable, or ``None`` (all usable)."""
        if self.valid is None:
            return None
        from ..estimation.operators import lowres_valid

        k = self.ratio if kernel_size is None else kernel_size
        return self.lr_core(lowres_valid(self.valid, ratio=self.ratio, kernel_size=k, offset=offset)).reshape(-1)

    def image_pieces(self) -> list[tuple[int, int, int, int]]:
        """The LR windows ``(row0, row1, col0, col1)`` of the tile that are contiguous in the image: one for a tile
        inside the image, more for a tile whose halo wraps across the image border (its pieces from opposite sides).
        An operator with the image's own border rule (reflect, replicate, zero) applied to each piece separately
        sees that rule at the image border, as on the whole image; the pieces' other edges are tile edges."""
        def runs(start: int, length: int, size: int) -> list[tuple[int, int]]:
            cuts = [i for i in range(1, length) if (start + i) % size == 0]
            edges = [0, *cuts, length]
            return list(zip(edges[:-1], edges[1:]))

        th, tw = self.hsi.shape[-2:]
        return [(a, b, c, d) for a, b in runs(self.origin[0], th, self.image[0])
                for c, d in runs(self.origin[1], tw, self.image[1])]

    @property
    def core_hr(self) -> tuple[int, int, int, int]:
        """The core's ``(row0, row1, col0, col1)`` inside the HR tile."""
        r = self.ratio
        return tuple(r * v for v in self.core)  # type: ignore[return-value]

    def lr_core(self, x: torch.Tensor) -> torch.Tensor:
        """``x[..., core rows, core cols]`` for an LR-sized tensor."""
        a, b, c, d = self.core
        return x[..., a:b, c:d]

    def hr_core(self, x: torch.Tensor) -> torch.Tensor:
        """``x[..., core rows, core cols]`` for an HR-sized tensor."""
        a, b, c, d = self.core_hr
        return x[..., a:b, c:d]


@dataclass(frozen=True)
class StatsPass:
    """One streaming pass over the tiles.

    Attributes:
        halo: LR pixels of halo each tile needs for ``partial`` (as a function of the ratio and physics).
        partial: ``partial(tile, physics, options, state) -> {name: float64 tensor}``, sums over the core only.
        finish: ``finish(totals, physics, options, state) -> state`` (the updated state).
        reduce: how the engine combines partials across tiles: ``"sum"`` or ``"max"`` (element-wise).
        wrap: ``wrap(physics, options)``: the tile's halo continues across the image border periodically (the
            pass applies a circular operator, which the whole image wraps around); else the halo is clipped there.
    """

    halo: Callable[[int, Any, Any], int]
    partial: Callable[[Tile, Any, Any, State], State]
    finish: Callable[[State, Any, Any, State], State]
    reduce: Literal["sum", "max"] = "sum"
    wrap: Callable[[Any, Any], bool] = lambda physics, options: False


@dataclass(frozen=True)
class Chunked:
    """A method's chunked plan (module docstring).

    Attributes:
        passes: the statistics passes, run in order before ``apply``.
        apply_halo: LR pixels of halo ``apply`` needs (``halo(ratio, physics, options)``).
        apply: ``apply(tile, physics, options, state) -> (1, L, r ch, r cw)`` float tensor, the fused core.
        apply_wrap: ``apply_wrap(physics, options)``: the apply tiles' halos wrap around the image (see
            :class:`StatsPass`).
        exact: ``apply`` reproduces the whole-image result (up to floating point) when the halo covers the method's
            footprint; ``False`` for solvers whose tiles only approximate the whole-image solution.
        working_set: peak bytes per HR pixel per HSI band of one ``apply`` (measured on a 512 x 512 x 200 tile with
            the peak-RSS mark, ``VmHWM``: bicubic 10.8, GSA 43.9 (float64 statistics of the upsampled bands), FUSE
            5.2; the plans round them up; the engine sizes chunks from it and a memory budget).
    """

    passes: tuple[StatsPass, ...]
    apply_halo: Callable[[int, Any, Any], int]
    apply: Callable[[Tile, Any, Any, State], torch.Tensor]
    exact: bool = True
    working_set: float = 64.0
    apply_wrap: Callable[[Any, Any], bool] = lambda physics, options: False


def combine(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, how: Literal["sum", "max"] = "sum"
            ) -> State | None:
    """The key-wise sum (or maximum) of two partial dicts (``None`` is the empty one)."""
    if a is None:
        return None if b is None else dict(b)
    if b is None:
        return dict(a)
    if set(a) != set(b):
        raise ValueError(f"partials with different keys: {sorted(a)} vs {sorted(b)}")
    if how == "max":
        return {k: torch.maximum(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a}
    return {k: a[k] + b[k] for k in a}


def select(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """``x[:, keep]`` for a ``(C, n)`` matrix of pixels (all of them when ``keep`` is ``None``)."""
    return x if keep is None else x[:, keep]
