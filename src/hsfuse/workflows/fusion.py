"""The front door: ``hsfuse.fuse`` on NumPy arrays, cubes, tensors or files, and ``hsfuse fuse`` on files.

:func:`fuse` turns what a user has into the measurement tensors and the observation operators (one path for
Python and the command line: :func:`hsfuse.physics.specs.build_observation`), runs the method through its
:class:`~hsfuse.methods.registry.MethodSpec` and returns the result as the kind it was given. :func:`fuse_to_file`
is the ``hsfuse fuse`` command: every input and option checked before any work, the output written atomically.

Example:
    >>> import numpy as np, hsfuse
    >>> hsi, msi = np.random.rand(8, 8, 31), np.random.rand(32, 32, 3)
    >>> hsfuse.fuse(hsi, msi, method="gsa").shape
    (32, 32, 31)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._checks import check_pair, pair_ratio
from ..errors import InputError
from ..io import check_float_output, read_cube, write_cube
from ..io.atomic import check_output_path
from ..methods.options import MethodOptions
from ..methods.registry import MethodSpec, get_method
from ..physics import FusionObservation
from ..physics.spatial import Boundary
from ..physics.specs import PsfSpec, SrfSpec, build_observation
from ..progress import ProgressFn
from ..types import Cube, FusionMeasurement

__all__ = ["fuse", "fuse_scene", "fuse_to_file", "ImageLike", "FusionInputs", "prepare_inputs", "ENGINE_OPTIONS"]

#: what :func:`fuse` accepts for each image: ``H x W x bands`` array, :class:`Cube`, ``(N, bands, H, W)`` tensor,
#: or a file path (any format :func:`hsfuse.io.read_cube` reads)
ImageLike = np.ndarray | Cube | torch.Tensor | str | os.PathLike


@dataclass
class FusionInputs:
    """A pair made ready for a method: tensors, operators, the method, and what the result should look like."""

    y: FusionMeasurement
    physics: FusionObservation
    spec: MethodSpec
    options: MethodOptions
    ratio: int
    hsi: Cube | None  # the HSI as a cube (None for tensor input): wavelengths for the output
    msi: Cube | None  # the MSI as a cube: georeferencing for the output
    kind: Literal["array", "cube", "tensor", "file"]


def _as_cube(x: Any, label: str, *, variable: str | None, layout: str) -> tuple[Cube | torch.Tensor, str]:
    if isinstance(x, Cube):
        return x, "cube"
    if isinstance(x, torch.Tensor):
        return x, "tensor"
    if isinstance(x, (str, os.PathLike)):
        return read_cube(x, variable=variable, layout=layout), "file"  # type: ignore[arg-type]
    if isinstance(x, np.ndarray):
        if x.ndim not in (2, 3):
            raise InputError(f"the {label} array must be H x W x bands (or H x W for one band), got shape {x.shape}")
        return Cube(x), "array"
    raise InputError(f"the {label} must be a NumPy array (H x W x bands), a Cube, a torch tensor (N, bands, H, W) or "
                     f"a file path, got {type(x).__name__}")


def _usable(cube: Cube, label: str) -> None:
    bad = int((~cube.valid_mask()).sum())
    if bad:
        raise InputError(f"the {label} has {bad} no-data or NaN pixel(s); fill or crop them before fusion (hsfuse "
                         "pair masks them for the blind workflow)")


def prepare_inputs(hsi: ImageLike, msi: ImageLike, *, method: str, ratio: int | None = None, srf: SrfSpec | None = None,
                   psf: PsfSpec = None, physics: str | os.PathLike[str] | FusionObservation | None = None,
                   bands: Sequence[str] | None = None, srf_normalize: Literal["sum", "none"] = "sum",
                   offset: int | None = None, boundary: Boundary = "circular",
                   options: Mapping[str, Any] | MethodOptions | None = None, hsi_variable: str | None = None,
                   msi_variable: str | None = None, layout: str = "auto") -> FusionInputs:
    """Everything :func:`fuse` checks and builds before running the method (no method work is done)."""
    spec = get_method(method)
    opts = spec.make_options(options)
    h, kind_h = _as_cube(hsi, "HSI", variable=hsi_variable, layout=layout)
    m, kind_m = _as_cube(msi, "MSI", variable=msi_variable, layout=layout)
    if (kind_h == "tensor") != (kind_m == "tensor"):
        raise InputError("give both images as torch tensors (N, bands, H, W), or neither")
    wavelengths = fwhm = None
    if isinstance(h, Cube) and isinstance(m, Cube):
        _usable(h, "HSI")
        _usable(m, "MSI")
        hsi_t, msi_t = h.to_tensor(), m.to_tensor()
        wavelengths, fwhm = h.wavelengths, h.fwhm
    else:
        hsi_t, msi_t = h, m  # type: ignore[assignment]
    hsi_t, msi_t, r = check_pair(hsi_t, msi_t, ratio=ratio, finite=True, who="hsfuse.fuse")
    obs = build_observation(hsi_bands=hsi_t.shape[1], msi_bands=msi_t.shape[1], ratio=r, wavelengths=wavelengths,
                            fwhm=fwhm, srf=srf, psf=psf, physics=physics, bands=bands, srf_normalize=srf_normalize,
                            offset=offset, boundary=boundary, needs_srf=spec.needs_srf)
    dtype = hsi_t.dtype if hsi_t.dtype in (torch.float32, torch.float64) and kind_h == "tensor" else torch.float32
    y = FusionMeasurement(hsi_t.to(dtype), msi_t.to(dtype))
    kind: Any = kind_h if kind_h == kind_m else ("file" if "file" in (kind_h, kind_m) else "cube")
    obs = copy.deepcopy(obs) if isinstance(physics, FusionObservation) else obs  # .to() converts in place
    return FusionInputs(y=y, physics=obs.to(dtype=dtype), spec=spec, options=opts, ratio=r,
                        hsi=h if isinstance(h, Cube) else None, msi=m if isinstance(m, Cube) else None, kind=kind)


def _output(z: torch.Tensor, inputs: FusionInputs) -> Any:
    if inputs.kind == "tensor":
        return z
    attrs = {"method": inputs.spec.name, "ratio": inputs.ratio}
    for label, cube in (("hsi", inputs.hsi), ("msi", inputs.msi)):
        if cube is not None and cube.attrs.get("source"):
            attrs[label] = str(cube.attrs["source"])
    cube = Cube.from_tensor(z.detach().cpu(), like=inputs.hsi, geo=inputs.msi.geo if inputs.msi else None,
                            nodata=None, attrs=attrs)
    return cube.data if inputs.kind == "array" else cube


def fuse(hsi: ImageLike, msi: ImageLike, *, method: str, ratio: int | None = None, srf: SrfSpec | None = None,
         psf: PsfSpec = None, physics: str | os.PathLike[str] | FusionObservation | None = None,
         bands: Sequence[str] | None = None, srf_normalize: Literal["sum", "none"] = "sum", offset: int | None = None,
         boundary: Boundary = "circular", weights: str | os.PathLike[str] | None = None, device: str | None = None,
         progress: ProgressFn | None = None, options: Mapping[str, Any] | MethodOptions | None = None,
         **option_values: Any) -> Any:
    """Fuse a low-resolution HSI with a high-resolution MSI/RGB using ``method``; return the high-resolution HSI.

    ``Z = method(Y_h, Y_m)`` under ``Y_h = S(B * Z)``, ``Y_m = R Z`` (``B``: PSF, ``S``: decimation by the ratio
    ``r``, ``R``: SRF), see the README's conventions.

    Args:
        hsi, msi: the pair as NumPy arrays ``h x w x L`` and ``H x W x m`` (``H = r h``), :class:`Cube` s, torch
            tensors ``(N, L, h, w)`` / ``(N, m, H, W)``, file paths (any format of :func:`hsfuse.io.read_cube`), or
            xarray DataArrays ``(band, y, x)`` (e.g. :func:`hsfuse.io.lazy.open_lazy`; lazy in, lazy out).
        method: a name from ``hsfuse methods`` (:data:`hsfuse.methods.METHODS`).
        ratio: checked against the image sizes when given (they define it).
        srf: the MSI's spectral response (methods that need it): a sensor name (``hsfuse srf list``), a response
            CSV, an ``(m, L)`` matrix (array or ``.npy``) or a ``SensorResponse``; named sensors need the HSI's
            wavelengths (a Cube or a file that stores them). ``bands`` selects sensor bands by name.
        psf: ``None`` (Gaussian of FWHM ``r``), ``"gaussian:fwhm=F[,size=K]"``, ``"gaussian:sigma=S"``, a kernel file
            or a ``k x k`` array.
        physics: a ``physics.json`` (``hsfuse simulate`` / ``hsfuse estimate``) or a ``FusionObservation`` instead
            of ``srf``/``psf``/``offset``.
        srf_normalize: ``"sum"`` (each SRF row sums to one, default) or ``"none"`` (the matrix carries a gain).
        offset, boundary: decimation offset (default ``(r - 1) // 2``) and blur boundary of the model.
        weights: a trained checkpoint (networks). device: ``"cpu"``, ``"cuda"``...
        progress: ``callback(done, total)`` for long methods (tiles, iterations).
        options / **option_values: the method's options (``hsfuse methods NAME`` lists them), as an options
            dataclass, a mapping or keywords; unknown names and wrong types are refused.

    Returns:
        The same kind as the inputs: an ``H x W x L`` float32 array for arrays; a :class:`Cube` with the HSI's
        wavelengths and the MSI's georeferencing for cubes and files; an ``(N, L, H, W)`` tensor for tensors; a
        lazy ``(band, y, x)`` xarray DataArray for DataArrays (large scenes: :func:`fuse_scene` runs the method's
        statistics now and leaves every chunk of the result to be computed, or written with ``.to_zarr``, later).

    Raises:
        InputError: a missing or inconsistent piece (sizes, bands, SRF, PSF, options), naming the fix.
    """
    if options is not None and option_values:
        raise InputError("give the method's options either as options=... or as keywords, not both")
    from ..io.products import product_type

    products = [str(x) for x in (hsi, msi) if isinstance(x, (str, os.PathLike)) and product_type(x) is not None]
    if products:
        raise InputError(f"{', '.join(products)} {'is a product' if len(products) == 1 else 'are products'} (its own "
                         "grid, masks, sensor): fuse products with hsfuse.fuse_products(hsi, msi, output, method=...), "
                         "which matches the grids, corrects the co-registration and applies the masks")
    if _is_dataarray(hsi) or _is_dataarray(msi):
        return fuse_scene(hsi, msi, method=method, ratio=ratio, srf=srf, psf=psf, physics=physics, bands=bands,
                          srf_normalize=srf_normalize, offset=offset, boundary=boundary, weights=weights,
                          options=options if options is not None else option_values, progress=progress).output
    inputs = prepare_inputs(hsi, msi, method=method, ratio=ratio, srf=srf, psf=psf, physics=physics, bands=bands,
                            srf_normalize=srf_normalize, offset=offset, boundary=boundary,
                            options=options if options is not None else option_values)
    inputs.spec.check_runtime(weights=weights, device=device)
    with torch.no_grad():
        z = inputs.spec.run(inputs.y, inputs.physics, options=inputs.options, weights=weights, device=device,
                            progress=progress)
    return _output(z, inputs)


def _is_dataarray(x: Any) -> bool:
    return type(x).__name__ == "DataArray" and hasattr(x, "dims")


def _wavelengths(da: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    if da.attrs.get("wavelength_units") != "nm":
        return None, None
    fwhm = np.asarray(da.coords["fwhm"].values, dtype=np.float64) if "fwhm" in da.coords else None
    return np.asarray(da.coords["band"].values, dtype=np.float64), fwhm


def fuse_scene(hsi: Any, msi: Any, *, method: str, ratio: int | None = None, srf: SrfSpec | None = None,
               psf: PsfSpec = None, physics: str | os.PathLike[str] | FusionObservation | None = None,
               bands: Sequence[str] | None = None, srf_normalize: Literal["sum", "none"] = "sum",
               offset: int | None = None, boundary: Boundary = "circular", weights: str | os.PathLike[str] | None = None,
               options: Mapping[str, Any] | MethodOptions | None = None, output: str | os.PathLike[str] | None = None,
               chunk: int | None = None, memory_gb: float | None = None, workers: int | None = None,
               scheduler: str | None = None, threads: int | None = None, overwrite: bool = False,
               resume: bool = False, cog: bool = False, settings: dict[str, Any] | None = None,
               progress: ProgressFn | None = None, say: Callable[[str], None] = lambda _m: None,
               stop_after: int | None = None) -> Any:
    """A scene of any size through the large-scene engine (:func:`hsfuse.chunked.fuse_chunked`).

    ``hsi`` / ``msi`` are ``(band, y, x)`` DataArrays (lazy or not; :func:`hsfuse.io.lazy.open_lazy`) or file paths
    (opened lazily). The operators are built as for :func:`fuse` (wavelengths from the band coordinate). With
    ``output=None`` the result is a lazy DataArray; with a ``.zarr`` / ``.tif`` path it is written chunk by chunk
    (``resume`` continues an interrupted run). Returns the engine's :class:`~hsfuse.chunked.ChunkedResult`.
    """
    from ..chunked import fuse_chunked
    from ..io.lazy import cube_to_dataarray, open_lazy

    spec = get_method(method)
    opts = spec.make_options(options)
    spec.check_runtime(weights=weights)

    def lazy(x: Any, label: str) -> Any:
        if _is_dataarray(x):
            if x.ndim != 3:
                raise InputError(f"the {label} DataArray must have dims (band, y, x), got {x.dims}")
            return x
        if isinstance(x, Cube):
            return cube_to_dataarray(x)
        if isinstance(x, (str, os.PathLike)):
            return open_lazy(x)
        raise InputError(f"the {label} of a large scene must be an xarray DataArray (band, y, x), a Cube or a file "
                         f"path, got {type(x).__name__}")

    h, m = lazy(hsi, "HSI"), lazy(msi, "MSI")
    (L, lh, lw), (mb, H, W) = h.shape, m.shape
    r = pair_ratio((lh, lw), (H, W), ratio)
    wavelengths, fwhm = _wavelengths(h)
    obs = build_observation(hsi_bands=L, msi_bands=mb, ratio=r, wavelengths=wavelengths, fwhm=fwhm, srf=srf, psf=psf,
                            physics=physics, bands=bands, srf_normalize=srf_normalize, offset=offset,
                            boundary=boundary, needs_srf=spec.needs_srf)
    say(f"fusing {lh}x{lw}x{L} with {H}x{W}x{mb} (ratio {r}) using {spec.name}, chunk by chunk")
    return fuse_chunked(h, m, method=spec.name, physics=obs, options=opts, weights=weights, chunk=chunk,
                        memory_gb=4.0 if memory_gb is None else float(memory_gb), workers=workers, scheduler=scheduler, threads=threads, output=output,
                        overwrite=overwrite, resume=resume, cog=cog, settings=settings, progress=progress,
                        stop_after=stop_after)


def fuse_to_file(hsi: str | os.PathLike[str], msi: str | os.PathLike[str], output: str | os.PathLike[str], *,
                 method: str, overwrite: bool = False, hsi_variable: str | None = None,
                 msi_variable: str | None = None, layout: str = "auto", weights: str | os.PathLike[str] | None = None,
                 device: str | None = None, progress: ProgressFn | None = None,
                 options: Mapping[str, Any] | MethodOptions | None = None,
                 say: Callable[[str], None] = lambda _m: None, large: Mapping[str, Any] | None = None,
                 real: Mapping[str, Any] | None = None, **physics_args: Any) -> tuple[Path, Cube | None]:
    """``hsfuse fuse``: read both files, fuse (as :func:`fuse`), write ``output`` atomically; return its path and cube.

    The output path, the checkpoint, the images, the operators and the options are all checked before the method
    runs; ``physics_args`` are :func:`fuse`'s ``ratio``, ``srf``, ``psf``, ``physics``, ``bands``, ``srf_normalize``,
    ``offset``, ``boundary``.

    Real pairs: when either input is a product (EnMAP, PRISMA, EMIT, DESIS, Sentinel-2, Landsat) or both are
    georeferenced rasters on grids that differ, or ``real`` (``coregister``, ``mask``, ``mask_reasons``) is given,
    :func:`hsfuse.workflows.products.fuse_products` runs: grids compared and the MSI warped onto the fused grid,
    co-registration corrected, masks applied, a quality summary written beside the output.

    Large scenes: with ``large`` (the engine's ``chunk``, ``memory_gb``, ``workers``, ``scheduler``, ``threads``,
    ``resume``, ``cog``), or a ``.zarr`` output, or when the method's whole-image working set would exceed
    ``memory_gb`` (default 4 GiB), the inputs are opened lazily and the result is streamed chunk by chunk
    (:func:`fuse_scene`); the returned cube is then ``None``.
    """
    large = dict(large or {})
    if large.get("resume") and not _wants_engine(output, large):
        raise InputError("--resume continues an interrupted large-scene run; give the same --chunk/--workers/"
                         "--memory-gb options or a .zarr output as that run")
    check_output_path(output, overwrite=overwrite, folder=Path(output).suffix.lower() == ".zarr")
    if Path(output).suffix.lower() != ".zarr":
        check_float_output(output, overwrite=overwrite)  # a format that cannot hold the result: before any work
    spec = get_method(method)
    spec.make_options(options)
    spec.check_runtime(weights=weights, device=device)
    if weights is not None:
        from ..models.checkpoint import read_card

        read_card(weights)  # a missing or corrupt checkpoint is reported before reading the images
    real = dict(real or {})
    lazy = _open_pair_lazily(hsi, msi, hsi_variable, msi_variable, layout)  # once, for the routing decisions below
    if _is_real_pair(hsi, msi, lazy) or any(v is not None for v in real.values()):
        from .products import fuse_products

        if physics_args.get("physics") is not None or physics_args.get("offset") is not None:
            raise InputError("a pair of products (or of rasters on their own grids) gets its operators from the "
                             "products' metadata; --physics and --offset are for images already on matching grids")
        result = fuse_products(hsi, msi, output, method=method, options=options, srf=physics_args.get("srf"),
                               bands=physics_args.get("bands"), psf=physics_args.get("psf"),
                               ratio=physics_args.get("ratio"), weights=weights, overwrite=overwrite,
                               progress=progress, say=say,
                               **{k: v for k, v in real.items() if v is not None},
                               **{k: v for k, v in large.items() if v is not None})
        return result.output, None
    if _wants_engine(output, large) or _too_big(spec, lazy, large):
        if lazy is None:  # unreadable lazily: open again to report why
            from ..io.lazy import open_lazy

            lazy = (open_lazy(hsi, variable=hsi_variable, layout=layout),
                    open_lazy(msi, variable=msi_variable, layout=layout))
        h, m = lazy
        settings = {"hsi": str(Path(hsi).resolve()), "msi": str(Path(msi).resolve()),
                    "physics": {k: str(v) for k, v in physics_args.items() if v is not None}}
        result = fuse_scene(h, m, method=method, weights=weights, options=options, output=output,
                            overwrite=overwrite, progress=progress, say=say, settings=settings, **physics_args,
                            **large)
        say(f"{len(result.grid)} chunks of {result.grid.chunk_hr} HR pixels on the {result.scheduler}; fit "
            f"{result.seconds.get('fit', 0):.1f} s, apply {result.seconds.get('apply', 0):.1f} s")
        return Path(result.output), None
    inputs = prepare_inputs(hsi, msi, method=method, options=options, hsi_variable=hsi_variable,
                            msi_variable=msi_variable, layout=layout, **physics_args)
    if inputs.spec.needs_psf and physics_args.get("psf") is None and physics_args.get("physics") is None:
        say(f"no PSF given: assuming a Gaussian PSF with FWHM = {inputs.ratio} pixels (the hsfuse default)")
    (_, L, h, w), (_, m, H, W) = inputs.y.hsi.shape, inputs.y.msi.shape
    say(f"fusing {h}x{w}x{L} with {H}x{W}x{m} (ratio {inputs.ratio}) using {inputs.spec.name}")
    with torch.no_grad():
        z = inputs.spec.run(inputs.y, inputs.physics, options=inputs.options, weights=weights, device=device,
                            progress=progress)
    cube = _output(z, inputs)
    cube.attrs.update({"hsi": str(hsi), "msi": str(msi)})
    return write_cube(cube, output, overwrite=overwrite), cube


#: the engine options of :func:`fuse_to_file` that mean "run it chunk by chunk"
ENGINE_OPTIONS = ("chunk", "workers", "scheduler", "threads", "resume", "cog")


def _wants_engine(output: str | os.PathLike[str], large: Mapping[str, Any]) -> bool:
    return Path(output).suffix.lower() == ".zarr" or any(large.get(k) for k in ENGINE_OPTIONS)


def _open_pair_lazily(hsi: Any, msi: Any, hsi_variable: str | None, msi_variable: str | None,
                      layout: str) -> tuple[Any, Any] | None:
    """Both inputs as lazy DataArrays (metadata only), or ``None`` when either cannot be opened lazily (the
    in-memory path then reports the problem with its own message)."""
    from ..io.lazy import open_lazy

    try:
        return (open_lazy(hsi, variable=hsi_variable, layout=layout),
                open_lazy(msi, variable=msi_variable, layout=layout))
    except Exception:  # noqa: BLE001 - unreadable lazily: the ordinary path reports it
        return None


def _too_big(spec: MethodSpec, lazy: tuple[Any, Any] | None, large: Mapping[str, Any]) -> bool:
    """Whether the method's whole-image working set would exceed the memory budget (shapes read lazily)."""
    if spec.chunked is None or lazy is None:
        return False
    h, m = lazy
    need = spec.chunked.working_set * h.shape[0] * m.shape[1] * m.shape[2]
    return need > float(large.get("memory_gb") or 4.0) * 2**30


def _is_real_pair(hsi: Any, msi: Any, lazy: tuple[Any, Any] | None) -> bool:
    """Either input is a product, or both are georeferenced on grids that are not already a pair: same CRS, the MSI
    exactly ``r`` times the HSI in pixels and size, origins within one MSI pixel (the model's decimation phase, e.g.
    what ``hsfuse simulate`` writes, is not a grid mismatch)."""
    from ..io.products import product_type

    if product_type(hsi) is not None or product_type(msi) is not None:
        return True
    if lazy is None:
        return False
    try:
        from ..geo import grid_of

        h, m = grid_of(lazy[0], "HSI"), grid_of(lazy[1], "MSI")
    except Exception:  # noqa: BLE001 - not georeferenced: an ordinary pair
        return False
    (hh, hw), (mh, mw) = h.shape, m.shape
    aligned = (h.crs == m.crs and mh % hh == 0 and mw % hw == 0 and mh // hh == mw // hw
               and np.allclose(np.asarray(h.transform)[[0, 1, 3, 4]] / (mh // hh), np.asarray(m.transform)[[0, 1, 3, 4]],
                               rtol=1e-6, atol=0)
               and abs(h.transform[2] - m.transform[2]) <= abs(m.transform[0]) + 1e-9
               and abs(h.transform[5] - m.transform[5]) <= abs(m.transform[4]) + 1e-9)
    return not aligned
