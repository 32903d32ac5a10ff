"""The large-scene engine: chunked, out-of-core fusion as a Dask task graph.

``fuse_chunked(hsi, msi, method=..., physics=...)`` takes the two images as ``(band, y, x)`` arrays that need not
fit in memory (xarray ``DataArray`` s backed by dask, from :func:`hsfuse.io.lazy.open_lazy`; or NumPy/dask arrays)
and runs the method's chunked plan (:mod:`hsfuse.methods.chunking`):

1. **Grid.** HR chunks aligned to the ratio (:class:`~hsfuse.chunked.grid.ChunkGrid`), their side chosen from a
   memory budget and the method's measured working set unless given.
2. **Fit.** Each statistics pass of the method is one task per chunk (the tile = core + the pass's halo, read from
   the inputs by slicing their dask arrays) and a fixed-order tree of reductions, computed on the scheduler; the
   client turns the totals into the state (a few small matrices), which every apply task receives.
3. **Apply.** One task per chunk: the fused HR core, ``(L, r ch, r cw)``. Either assembled into a lazy output
   DataArray (nothing computed: ``output=None``), or streamed: each task writes its block into the output's zarr
   store and then a done marker (:class:`hsfuse.io.stream.PartialOutput`), so memory never holds more than the
   running tasks' tiles, and ``resume`` recomputes only chunks without a marker.

The graph runs on the local threaded scheduler, a ``LocalCluster`` (``workers=N``) or an existing cluster
(``scheduler=ADDRESS``), see :mod:`hsfuse.chunked.cluster`; tasks limit torch to one thread each.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._checks import check_positive_int
from ..errors import InputError
from ..methods.chunking import Chunked, State, Tile, combine
from ..methods.options import MethodOptions
from ..methods.registry import MethodSpec, get_method
from ..physics import FusionObservation
from ..progress import ProgressFn, reporter
from .cluster import Scheduler, limit_torch_threads, open_scheduler
from .grid import Chunk, ChunkGrid, chunk_for_budget

__all__ = ["fuse_chunked", "ChunkedResult", "plan_chunks", "process_rss"]


def process_rss() -> int:
    """Resident memory of this process and its children (bytes)."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


@dataclass
class ChunkedResult:
    """What :func:`fuse_chunked` produced: the output (a lazy DataArray, or the path written), the grid, the fitted
    state, timings and the scheduler used."""

    output: Any
    grid: ChunkGrid
    state: State | None  # None when a resumed run found its output already complete
    seconds: dict[str, float] = field(default_factory=dict)
    chunks_computed: int = 0
    scheduler: str = ""


def _as_dask(x: Any, label: str) -> Any:
    """``(band, y, x)`` dask array of a DataArray / dask / NumPy input."""
    import dask.array as da

    data = x if isinstance(x, (np.ndarray, da.Array)) else getattr(x, "data", x)
    if isinstance(data, da.Array):
        arr = data
    elif isinstance(data, np.ndarray):
        arr = da.from_array(data, chunks=(data.shape[0], 1024, 1024))
    else:
        raise InputError(f"the {label} must be an xarray DataArray, a dask array or a NumPy array (band, y, x), got "
                         f"{type(x).__name__}")
    if arr.ndim != 3:
        raise InputError(f"the {label} must be (band, y, x), got shape {arr.shape}")
    return arr


#: resident memory of a worker process once torch, dask and hsfuse are imported (measured: about 340 MiB)
WORKER_BASELINE_BYTES = 400 * 2**20


def plan_chunks(spec: MethodSpec, physics: FusionObservation, options: MethodOptions, *, lr_shape: tuple[int, int],
                hsi_bands: int, msi_bands: int, chunk: int | None, memory_gb: float, concurrent: int,
                processes: int = 0) -> ChunkGrid:
    """The chunk grid: ``chunk`` HR pixels per side (a multiple of the ratio), or the largest that fits
    ``memory_gb`` with ``concurrent`` tasks running (:func:`~hsfuse.chunked.grid.chunk_for_budget`); ``processes``
    worker processes of a local cluster add their libraries' memory to this process's."""
    plan = _plan(spec)
    r = physics.ratio
    halo = max([plan.apply_halo(r, physics, options)] + [p.halo(r, physics, options) for p in plan.passes])
    if chunk is not None:
        chunk = check_positive_int(chunk, "chunk")
        if chunk % r:
            raise InputError(f"the chunk side ({chunk} HR pixels) must be a multiple of the ratio {r}")
        chunk_lr = chunk // r
    else:
        chunk_lr = chunk_for_budget(memory_bytes=memory_gb * 2**30,
                                    baseline_bytes=process_rss() + processes * WORKER_BASELINE_BYTES,
                                    hsi_bands=hsi_bands, msi_bands=msi_bands, ratio=r, halo=halo,
                                    working_set=plan.working_set, concurrent=concurrent, lr_shape=lr_shape,
                                    usable=0.5 if processes else 0.75)
    return ChunkGrid(lr_shape=lr_shape, ratio=r, chunk_lr=chunk_lr)


def _plan(spec: MethodSpec) -> Chunked:
    if spec.chunked is None:
        raise InputError(f"{spec.name} cannot run on a chunked scene (it fits a model to the whole pair at once); run "
                         "it on the whole image (hsfuse fuse without --chunk/--workers/--memory-gb, or crop the scene)")
    return spec.chunked


# --------------------------------------------------------------------------------------------- tasks (run on workers)


def _fill(x: np.ndarray, means: np.ndarray | None) -> np.ndarray:
    """Non-finite values (no-data) replaced by the band's mean over the usable pixels of the whole image."""
    if means is None:
        return x
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    x = np.array(x, dtype=np.float64)
    x[bad] = np.broadcast_to(means[:, None, None], x.shape)[bad]
    return x


def _tile(hsi: np.ndarray, msi: np.ndarray, unusable: np.ndarray | None, chunk: Chunk, *, ratio: int,
          image: tuple[int, int], dtype: torch.dtype, fill: State | None,
          physics: FusionObservation | None = None) -> Tile:
    """The tile as tensors. With a mask, no-data (non-finite) values are filled with the band means of the usable
    pixels, and unusable MSI pixels (clouds...) with the HSI seen through the SRF (cubic-upsampled), so no method
    (an FFT solve in particular) sees garbage; statistics skip them through ``Tile.valid``."""
    means_h = None if fill is None else fill["mean_h"]
    means_m = None if fill is None else fill["mean_m"]
    # torch.tensor copies into torch's (aligned) allocations: BLAS results then do not depend on where the
    # scheduler happened to place the input buffers, so the fitted statistics are bitwise reproducible
    h = torch.tensor(_fill(np.asarray(hsi), means_h), dtype=dtype)[None]
    m = torch.tensor(_fill(np.asarray(msi), means_m), dtype=dtype)[None]
    valid = None
    if unusable is not None:
        bad = torch.from_numpy(np.asarray(unusable, bool))
        valid = ~bad
        if physics is not None and bool(bad.any()):
            from ..physics.interpolation import upsample_cubic

            up = upsample_cubic(h.double(), ratio=ratio, offset=physics.spatial.offset)
            guess = physics.spectral.A(up.to(physics.spectral.matrix.dtype)).to(dtype)
            m = torch.where(bad[None, None], guess, m)
    return Tile(hsi=h, msi=m, core=chunk.core_in_tile(), origin=(chunk.tile[0], chunk.tile[2]), image=image,
                ratio=ratio, index=chunk.index, valid=valid)


def _means_task(hsi: np.ndarray, msi: np.ndarray, unusable: np.ndarray, chunk: Chunk, ratio: int) -> State:
    """Sums and counts of the finite, usable values of each band in the chunk's core (for the no-data fill)."""
    a, b, c, d = chunk.core_in_tile()
    bad = np.asarray(unusable, bool)[ratio * a:ratio * b, ratio * c:ratio * d]
    bad_lr = bad.reshape(b - a, ratio, d - c, ratio).all(axis=(1, 3))
    h = np.asarray(hsi)[:, a:b, c:d].astype(np.float64)
    m = np.asarray(msi)[:, ratio * a:ratio * b, ratio * c:ratio * d].astype(np.float64)
    ok_h = np.isfinite(h) & ~bad_lr[None]
    ok_m = np.isfinite(m) & ~bad[None]
    return {"sum_h": torch.from_numpy(np.where(ok_h, h, 0).sum(axis=(1, 2))),
            "n_h": torch.from_numpy(ok_h.sum(axis=(1, 2)).astype(np.float64)),
            "sum_m": torch.from_numpy(np.where(ok_m, m, 0).sum(axis=(1, 2))),
            "n_m": torch.from_numpy(ok_m.sum(axis=(1, 2)).astype(np.float64))}


def _partial_task(hsi: np.ndarray, msi: np.ndarray, unusable: np.ndarray | None, chunk: Chunk, method: str,
                  pass_index: int, physics: FusionObservation, options: MethodOptions, state: State,
                  image: tuple[int, int], threads: int) -> State:
    limit_torch_threads(threads)
    plan = _plan(get_method(method))
    tile = _tile(hsi, msi, unusable, chunk, ratio=physics.ratio, image=image, dtype=torch.float64,
                 fill=state.get("fill"), physics=physics)
    with torch.no_grad():
        return plan.passes[pass_index].partial(tile, physics, options, state)


def _apply_task(hsi: np.ndarray, msi: np.ndarray, unusable: np.ndarray | None, chunk: Chunk, method: str,
                physics: FusionObservation, options: MethodOptions, state: State, image: tuple[int, int],
                threads: int, out_dtype: str) -> np.ndarray:
    limit_torch_threads(threads)
    plan = _plan(get_method(method))
    tile = _tile(hsi, msi, unusable, chunk, ratio=physics.ratio, image=image, dtype=torch.float32,
                 fill=state.get("fill"), physics=physics)
    with torch.no_grad():
        out = plan.apply(tile, physics, options, state)
    block = out[0].cpu().numpy().astype(out_dtype, copy=False)
    if unusable is not None:  # no-data where any input is unusable
        a, b, c, d = tile.core_hr
        block = np.where(np.asarray(unusable, bool)[a:b, c:d][None], np.nan, block).astype(out_dtype, copy=False)
    return np.ascontiguousarray(block)


def _write_task(block: np.ndarray, store: str, window: tuple[int, int, int, int], marker: str) -> int:
    from ..io.stream import write_chunk

    write_chunk(store, block, window, marker)
    return 1


# --------------------------------------------------------------------------------------------- the graph


def _window(arr: Any, rows: tuple[int, int], cols: tuple[int, int]) -> Any:
    """``arr[:, rows, cols]`` for a window that may cross the image border (indices taken modulo the size)."""
    (a, b), (c, d) = rows, cols
    n, m = arr.shape[1:]
    if a >= 0 and b <= n and c >= 0 and d <= m:
        return arr[:, a:b, c:d]
    out = arr
    if a < 0 or b > n:
        out = out[:, np.arange(a, b) % n, :]
    else:
        out = out[:, a:b, :]
    if c < 0 or d > m:
        out = out[:, :, np.arange(c, d) % m]
    else:
        out = out[:, :, c:d]
    return out


def _tiles(hsi: Any, msi: Any, mask: Any, grid: ChunkGrid, halo: int, *, wrap: bool = False
           ) -> list[tuple[Chunk, Any, Any, Any]]:
    """``(chunk, HSI tile, MSI tile, mask tile or None)`` for every chunk (dask slices: nothing read yet)."""
    r = grid.ratio
    out = []
    for c in grid.chunks(halo, wrap=wrap):
        y0, y1, x0, x1 = c.tile
        hr = (r * y0, r * y1), (r * x0, r * x1)
        k = None if mask is None else _window(mask[None], *hr)[0]
        out.append((c, _window(hsi, (y0, y1), (x0, x1)), _window(msi, *hr), k))
    return out


def _tree(items: list[Any], how: str) -> Any:
    """A balanced, fixed-order tree of delayed ``combine`` calls (deterministic summation order)."""
    from dask import delayed

    while len(items) > 1:
        items = [delayed(combine, pure=True)(items[i], items[i + 1], how) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _fit(spec: MethodSpec, plan: Chunked, hsi: Any, msi: Any, mask: Any, grid: ChunkGrid,
         physics: FusionObservation, options: MethodOptions, state: State, sched: Scheduler, threads: int,
         report: Callable[..., None]) -> State:
    from dask import delayed

    image = grid.lr_shape
    if mask is not None:  # the band means of the usable pixels, to fill no-data before any method sees it
        parts = [delayed(_means_task, pure=True)(h, m, k, c, grid.ratio) for c, h, m, k in
                 _tiles(hsi, msi, mask, grid, 0)]
        (t,) = sched.compute(_tree(parts, "sum"))
        if not bool((t["n_h"] > 0).all()) or not bool((t["n_m"] > 0).all()):
            raise InputError("no usable pixel is left in some band after masking (no-data, clouds, ...); check the "
                             "masks or crop the scene to where both images see the ground")
        state = {**state, "fill": {"mean_h": (t["sum_h"] / t["n_h"]).numpy(), "mean_m": (t["sum_m"] / t["n_m"]).numpy()}}
    for k, stats in enumerate(plan.passes):
        halo = stats.halo(grid.ratio, physics, options)
        wrap = stats.wrap(physics, options)
        parts = [delayed(_partial_task, pure=True)(h, m, mk, c, spec.name, k, physics, options, state, image, threads)
                 for c, h, m, mk in _tiles(hsi, msi, mask, grid, halo, wrap=wrap)]
        report(k, len(plan.passes) + 1, info=f"fitting: pass {k + 1} of {len(plan.passes)} over {len(parts)} chunks")
        (totals,) = sched.compute(_tree(parts, stats.reduce))
        state = stats.finish(totals, physics, options, state)
    return state


def _coords(hsi: Any, msi: Any, bands: int) -> dict[str, Any]:
    coords: dict[str, Any] = {}
    if hasattr(hsi, "coords") and "band" in hsi.coords:
        coords["band"] = hsi.coords["band"].values
        for extra in ("fwhm", "band_name"):
            if extra in hsi.coords:
                coords[extra] = ("band", hsi.coords[extra].values)
    else:
        coords["band"] = np.arange(bands)
    for axis in ("y", "x"):
        if hasattr(msi, "coords") and axis in msi.coords:
            coords[axis] = msi.coords[axis].values
    return coords


def _template(lazy: Any, hsi: Any, msi: Any) -> Any:
    """The output as a DataArray: HSI bands (wavelengths, FWHM), MSI grid (coordinates, CRS, transform)."""
    import xarray as xr

    da = xr.DataArray(lazy, dims=("band", "y", "x"), coords=_coords(hsi, msi, lazy.shape[0]), name="fused")
    if hasattr(hsi, "attrs") and "wavelength_units" in hsi.attrs:
        da.attrs["wavelength_units"] = hsi.attrs["wavelength_units"]
    if hasattr(msi, "rio"):
        import rioxarray  # noqa: F401 - registers the .rio accessor

        try:
            crs = msi.rio.crs
        except Exception:  # noqa: BLE001 - no spatial metadata
            crs = None
        if crs is not None:
            da = da.rio.write_crs(crs)
            da = da.rio.write_transform(msi.rio.transform(recalc=False))
    return da


def fuse_chunked(hsi: Any, msi: Any, *, method: str, physics: FusionObservation,
                 options: MethodOptions | dict[str, Any] | None = None, weights: str | os.PathLike[str] | None = None,
                 mask: Any = None,
                 chunk: int | None = None, memory_gb: float = 4.0, workers: int | None = None,
                 scheduler: str | None = None, threads: int | None = None, output: str | os.PathLike[str] | None = None,
                 overwrite: bool = False, resume: bool = False, cog: bool = False, out_dtype: str = "float32",
                 settings: dict[str, Any] | None = None, progress: ProgressFn | None = None,
                 stop_after: int | None = None) -> ChunkedResult:
    """Fuse a scene of any size chunk by chunk (module docstring).

    Args:
        hsi, msi: ``(L, h, w)`` and ``(m, H, W)`` arrays with ``H = r h`` (DataArrays keep their coordinates, CRS
            and transform for the output).
        method: a method with a chunked plan (``hsfuse methods``). physics: its operators (``ratio`` included).
        options: the method's options. weights: a checkpoint (networks).
        mask: ``(H, W)`` boolean on the MSI grid, ``True`` where a pixel is unusable (no-data, cloud, shadow... of
            either image; mark an HSI pixel's whole ``r x r`` block). The method's statistics skip those pixels;
            before the method sees a tile, non-finite values are filled with the band means of the usable pixels
            and unusable MSI pixels with the HSI seen through the SRF; the result is no-data (NaN) there. Without a
            mask the inputs must be finite.
        chunk: HR chunk side (a multiple of ``r``); default: the largest that fits ``memory_gb`` (GiB, the whole
            process) with the scheduler's concurrent tasks.
        workers, scheduler, threads: where the graph runs (:func:`~hsfuse.chunked.cluster.open_scheduler`).
        output: ``None`` for a lazy DataArray, or a ``.zarr`` / ``.tif`` path written chunk by chunk (atomically:
            the file appears complete or not at all); ``overwrite``, ``resume``, ``cog`` as in
            :class:`hsfuse.io.stream.PartialOutput`. settings: what identifies the run for ``resume``.
        progress: ``callback(done, total)`` over the chunks written (and the fit passes, with ``info``).
        stop_after: stop (as if killed) after this many chunks were written; for tests.

    Returns:
        :class:`ChunkedResult`.
    """
    import dask.array as da
    from dask import delayed

    spec = get_method(method)
    plan = _plan(spec)
    opts = spec.make_options(options)
    spec.check_runtime(weights=weights)
    h_arr, m_arr = _as_dask(hsi, "HSI"), _as_dask(msi, "MSI")
    (L, lh, lw), (m, H, W) = h_arr.shape, m_arr.shape
    k_arr = None
    if mask is not None:
        k_arr = _as_dask(mask[None] if getattr(mask, "ndim", 0) == 2 else mask, "mask")[0]
        if k_arr.shape != (H, W):
            raise InputError(f"the mask is {k_arr.shape[0]}x{k_arr.shape[1]} but the MSI grid is {H}x{W}")
        k_arr = k_arr.astype(bool)
    r = physics.ratio
    if (H, W) != (r * lh, r * lw):
        raise InputError(f"the HSI is {lh}x{lw} and the MSI {H}x{W}: at ratio {r} the MSI must be {r * lh}x{r * lw}; "
                         "crop the images so that MSI = ratio x HSI")
    if physics.spectral.hsi_bands != L or physics.spectral.msi_bands != m:
        raise InputError(f"the physics is for {physics.spectral.hsi_bands} HSI and {physics.spectral.msi_bands} MSI "
                         f"bands, the images have {L} and {m}")
    report = reporter(progress)
    seconds: dict[str, float] = {}
    partial = None
    if output is not None:
        from ..io.stream import PartialOutput

        partial = PartialOutput(output, settings={"method": spec.name, "options": {
            k: v for k, v in opts.as_kwargs().items() if not isinstance(v, torch.Tensor)}, "chunk": chunk,
            "hsi_shape": [L, lh, lw], "msi_shape": [m, H, W], "out_dtype": out_dtype, **(settings or {})},
            overwrite=overwrite, resume=resume)
    with open_scheduler(workers=workers, scheduler=scheduler, threads=threads) as sched:
        grid = plan_chunks(spec, physics, opts, lr_shape=(lh, lw), hsi_bands=L, msi_bands=m, chunk=chunk,
                           memory_gb=memory_gb, concurrent=sched.concurrent, processes=sched.processes)
        if partial is not None and partial.complete:  # the resumed run had finished all but its last rename
            return ChunkedResult(partial.path, grid, None, seconds, 0, sched.description)
        if partial is not None and partial.resumed and partial.derived.get("chunk_lr"):
            grid = ChunkGrid(lr_shape=(lh, lw), ratio=r, chunk_lr=int(partial.derived["chunk_lr"]))  # as first run
        t0 = time.perf_counter()
        state: State | None = partial.load_state() if partial is not None else None
        if state is None:
            state = _fit(spec, plan, h_arr, m_arr, k_arr, grid, physics, opts,
                         {"weights": None if weights is None else str(weights)}, sched, 1, report)
            if partial is not None:
                partial.save_state(state)
        seconds["fit"] = time.perf_counter() - t0
        halo = plan.apply_halo(r, physics, opts)
        physics32 = copy.deepcopy(physics).float()  # nn.Module.float() converts in place: never the caller's
        tiles = _tiles(h_arr, m_arr, k_arr, grid, halo, wrap=plan.apply_wrap(physics, opts))
        blocks = [delayed(_apply_task, pure=True)(hh, mm, kk, c, spec.name, physics32, opts, state, (lh, lw), 1,
                                                  out_dtype)
                  for c, hh, mm, kk in tiles]
        t0 = time.perf_counter()
        if partial is None:
            rows, cols = grid.counts
            arrays = []
            for i in range(rows):
                row = []
                for j in range(cols):
                    c = tiles[i * cols + j][0]
                    y0, y1, x0, x1 = c.hr(c.core, r)
                    row.append(da.from_delayed(blocks[i * cols + j], dtype=out_dtype, shape=(L, y1 - y0, x1 - x0)))
                arrays.append(row)
            out = _template(da.block(arrays), hsi, msi)
            return ChunkedResult(out, grid, state, seconds, 0, sched.description)
        template = _template(da.zeros((L, H, W), dtype=out_dtype, chunks=(L, *grid.hr_chunks())), hsi, msi)
        partial.start(template, chunks=(L, grid.chunk_hr, grid.chunk_hr), derived={"chunk_lr": grid.chunk_lr})
        done = partial.done()
        todo = [(c, b) for (c, _, _, _), b in zip(tiles, blocks) if c.index not in done]
        if stop_after is not None:
            todo = todo[:max(0, stop_after - len(done))]
        writes = [delayed(_write_task, pure=False)(b, str(partial.store), c.hr(c.core, r),
                                                   str(partial.dir / "done" / f"{c.index[0]}-{c.index[1]}"))
                  for c, b in todo]
        total = len(tiles)
        report(len(done), total, info=f"{spec.name}: {len(done)} of {total} chunks already written")
        _run_each(sched, writes, lambda n: report(len(done) + n, total, info=f"{spec.name}: chunks"))
        seconds["apply"] = time.perf_counter() - t0
        if stop_after is not None and len(done) + len(todo) < total:
            return ChunkedResult(None, grid, state, seconds, len(todo), sched.description)
        t0 = time.perf_counter()
        path = partial.finish(cog=cog, overwrite=overwrite)
        seconds["finish"] = time.perf_counter() - t0
        return ChunkedResult(Path(path), grid, state, seconds, len(todo), sched.description)


def _run_each(sched: Scheduler, tasks: list[Any], on_done: Callable[[int], None]) -> None:
    """Compute ``tasks``, calling ``on_done(count)`` as each finishes."""
    if not tasks:
        return
    if sched.client is not None:
        from distributed import as_completed

        futures = sched.client.compute(tasks)
        for count, future in enumerate(as_completed(futures), start=1):
            future.result()
            on_done(count)
        return
    import dask
    from dask.callbacks import Callback

    keys = {t.key for t in tasks}
    counter = [0]

    class _Count(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if key in keys:
                counter[0] += 1
                on_done(counter[0])

    with _Count():
        dask.compute(*tasks, scheduler="threads", num_workers=sched.concurrent)
