"""The chunk grid of a large scene: HR chunks aligned to the ratio, LR halos, and chunk sizes from a memory budget.

An HR chunk is always ``r`` times an LR chunk (its rows and columns start at multiples of ``r``), so the LR pixel
``p`` and the HR block ``[r p, r p + r)`` fall in the same chunk and a method's decimation phase is the same in
every chunk as in the whole image. A *tile* is a chunk's core plus a halo of LR pixels on each side, clipped at
the image border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import check_positive_int, check_ratio
from ..errors import InputError

__all__ = ["Chunk", "ChunkGrid", "chunk_for_budget"]


@dataclass(frozen=True)
class Chunk:
    """One chunk: its index and LR windows ``(row0, row1, col0, col1)`` of the core and of the tile (core + halo)."""

    index: tuple[int, int]
    core: tuple[int, int, int, int]
    tile: tuple[int, int, int, int]

    def core_in_tile(self) -> tuple[int, int, int, int]:
        """The core's window relative to the tile's top-left corner (LR pixels)."""
        a, b, c, d = self.core
        return a - self.tile[0], b - self.tile[0], c - self.tile[2], d - self.tile[2]

    def hr(self, window: tuple[int, int, int, int], ratio: int) -> tuple[int, int, int, int]:
        """An LR window in HR pixels."""
        return tuple(ratio * v for v in window)  # type: ignore[return-value]


@dataclass(frozen=True)
class ChunkGrid:
    """The chunks of an LR image ``lr_shape = (h, w)`` at ``ratio``, ``chunk_lr`` LR pixels per side."""

    lr_shape: tuple[int, int]
    ratio: int
    chunk_lr: int

    def __post_init__(self) -> None:
        check_ratio(self.ratio)
        check_positive_int(self.chunk_lr, "chunk (LR pixels)")
        h, w = self.lr_shape
        check_positive_int(h, "HSI height")
        check_positive_int(w, "HSI width")

    @property
    def hr_shape(self) -> tuple[int, int]:
        return self.lr_shape[0] * self.ratio, self.lr_shape[1] * self.ratio

    @property
    def chunk_hr(self) -> int:
        return self.chunk_lr * self.ratio

    @property
    def counts(self) -> tuple[int, int]:
        """Chunks per column and per row."""
        return tuple(-(-n // self.chunk_lr) for n in self.lr_shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        a, b = self.counts
        return a * b

    def hr_chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Dask-style chunk sizes of the HR rows and columns."""
        out = []
        for n in self.lr_shape:
            sizes = [self.chunk_lr] * (n // self.chunk_lr) + ([n % self.chunk_lr] if n % self.chunk_lr else [])
            out.append(tuple(self.ratio * s for s in sizes))
        return out[0], out[1]

    def chunks(self, halo: int = 0, *, wrap: bool = False) -> list[Chunk]:
        """Every chunk (row-major) with a tile of ``halo`` LR pixels around the core, clipped to the image; with
        ``wrap`` (a periodic model) the tile keeps its full halo across the image border, whose pixels are then
        taken from the opposite side (indices modulo the image size)."""
        halo = check_positive_int(halo, "halo", minimum=0)
        h, w = self.lr_shape
        c = self.chunk_lr
        out = []
        for i, y0 in enumerate(range(0, h, c)):
            for j, x0 in enumerate(range(0, w, c)):
                y1, x1 = min(y0 + c, h), min(x0 + c, w)
                if wrap:
                    tile = (y0 - halo, y1 + halo, x0 - halo, x1 + halo)
                else:
                    tile = (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))
                out.append(Chunk((i, j), (y0, y1, x0, x1), tile))
        return out


def chunk_for_budget(*, memory_bytes: float, baseline_bytes: float, hsi_bands: int, msi_bands: int, ratio: int,
                     halo: int, working_set: float, concurrent: int, lr_shape: tuple[int, int],
                     usable: float = 0.75) -> int:
    """The largest chunk side (LR pixels) whose concurrent tasks fit the budget.

    One task holds about ``working_set * L + 24 m`` bytes per HR pixel of its tile (core plus ``halo`` LR pixels on
    each side; ``working_set``: the method's measured peak bytes per HR pixel per HSI band), and ``concurrent``
    tasks run at once; ``baseline_bytes`` (the process before any task: libraries, the inputs' metadata) and the
    share ``1 - usable`` of the rest are kept free for the scheduler, I/O buffers and the allocator (worker
    processes of a cluster keep more memory they freed: the engine passes 0.5 for them). Raises
    :class:`InputError` when not even a chunk of 8 LR pixels fits.
    """
    free = (memory_bytes - baseline_bytes) * usable
    per_hr_px = working_set * hsi_bands + 24.0 * msi_bands
    per_task = free / max(1, concurrent)
    side_hr = math.sqrt(max(per_task, 0.0) / per_hr_px)  # tile side in HR pixels
    chunk = int(side_hr // ratio) - 2 * halo
    if chunk < 8:
        need = baseline_bytes + concurrent * per_hr_px * (ratio * (8 + 2 * halo)) ** 2 / usable
        raise InputError(f"a memory budget of {memory_bytes / 2**30:.2f} GiB is too small for this method with "
                         f"{hsi_bands} bands and {concurrent} parallel task(s): it needs about {need / 2**30:.2f} GiB; "
                         "raise --memory-gb or use fewer workers/threads")
    chunk = min(chunk, max(lr_shape))
    if chunk >= 32:
        chunk -= chunk % 16  # tidy sizes: better FFT lengths and file blocks
    return chunk
