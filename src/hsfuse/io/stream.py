"""Outputs written chunk by chunk: a resumable zarr store, then (optionally) a tiled GeoTIFF or a COG.

A large result is never held in memory: each chunk is written as soon as it is computed, into a *partial folder*
next to the output, ``.NAME.partial/``::

    store.zarr/      the cube (band, y, x), zarr chunks = the engine's chunks (one writer per chunk, no locks)
    done/            one empty marker per finished chunk (``i-j``), made after its data is on disk
    run.json         what was run (method, options, inputs, chunking), checked by ``resume``
    state.pt         the fitted statistics (so a resumed run applies exactly the same state)

When every chunk is done the output appears under its name in one step: ``store.zarr`` (a ``.zarr`` output), or a
tiled GeoTIFF streamed block by block from it into ``out.tif`` (BigTIFF, optionally converted to a COG with GDAL's
COG driver), is marked finished (an empty ``finishing`` file) and renamed onto ``NAME`` as one unit with the
previous output (:func:`hsfuse.io.atomic.move_into_place`: old aside, new in, old deleted); the partial folder is
removed last. A run killed at any moment leaves either the previous output and the partial folder, which
``resume`` continues (only chunks without a marker are computed again), or, killed during that last step, a
partial folder marked finished: the next run on ``NAME`` (any run, resumed or not) first completes that step, so
``NAME`` is the complete new output; a resumed run then has nothing left to do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FileFormatError, InputError, OutputExistsError
from .atomic import check_output_path, move_into_place, recover_targets

__all__ = ["PartialOutput", "OUTPUT_SUFFIXES", "write_geotiff_from_zarr", "DATA_VARIABLE"]

#: suffixes of outputs the engine can stream to
OUTPUT_SUFFIXES = (".zarr", ".tif", ".tiff")
#: the data variable of a streamed zarr output
DATA_VARIABLE = "fused"


#: the temporary name zarr's local store writes a file under before renaming it (``NAME.<uuid4 hex>.partial``)
_ZARR_TEMP = re.compile(r"\.[0-9a-f]{32}\.partial$")


def _partial_dir(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


class PartialOutput:
    """The partial folder of one streamed output (module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, settings: dict[str, Any], overwrite: bool = False,
                 resume: bool = False) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in OUTPUT_SUFFIXES:
            raise InputError(f"a large-scene output must end in {', '.join(OUTPUT_SUFFIXES)} (zarr store or tiled "
                             f"GeoTIFF), got {self.path.name!r}")
        self.dir = _partial_dir(self.path)
        self.settings = json.loads(json.dumps(settings, default=str))
        self.resumed = False
        #: the interrupted run had computed everything (its last step is completed now): a resumed run is done
        self.complete = False
        self.derived: dict[str, Any] = {}
        recover_targets([self.path])
        finished = self._complete_interrupted_finish()
        if finished and resume:
            self.resumed = self.complete = True
            return
        check_output_path(self.path, overwrite=overwrite, folder=self.path.suffix.lower() == ".zarr")
        run = self.dir / "run.json"
        if self.dir.exists():
            if resume and run.is_file():
                try:
                    record = json.loads(run.read_text())
                except ValueError:
                    record = {}
                old, self.derived = record.get("settings"), record.get("derived", {})
                if old != self.settings:
                    diff = sorted(k for k in set(old or {}) | set(self.settings)
                                  if (old or {}).get(k) != self.settings.get(k))
                    raise InputError(f"the interrupted run in {self.dir} was made with different "
                                     f"{', '.join(diff) or 'settings'}; resume with the same inputs and options, or "
                                     "drop --resume to start again")
                self.resumed = True
            else:  # an interruption before run.json was written, or a stale run that is not resumed: nothing to keep
                shutil.rmtree(self.dir)
        elif resume:
            raise InputError(f"nothing to resume: no interrupted run of {self.path.name} (no {self.dir.name}); drop "
                             "--resume")
        if not self.resumed:
            (self.dir / "done").mkdir(parents=True)

    def _product(self) -> Path:
        """The finished output inside the partial folder: the store, or the GeoTIFF streamed from it."""
        return self.store if self.path.suffix.lower() == ".zarr" else self.dir / "out.tif"

    def _complete_interrupted_finish(self) -> bool:
        """If a run was killed during :meth:`finish` (its partial folder is marked finished), complete that step:
        move its product into place unless it already is, remove the partial folder. Returns whether it did."""
        if not (self.dir / "finishing").is_file():
            return False
        if self._product().exists():
            move_into_place([self._product()], [self.path])
        shutil.rmtree(self.dir, ignore_errors=True)
        warnings.warn(f"completed the last step of an interrupted run: {self.path} is its complete output",
                      stacklevel=3)
        return True

    @property
    def store(self) -> Path:
        return self.dir / "store.zarr"

    def start(self, template: Any, *, chunks: tuple[int, int, int], derived: dict[str, Any] | None = None) -> None:
        """Create the zarr store from a lazy template DataArray (metadata and coordinates only; no data written)
        and record the settings (and ``derived`` choices such as the chunk size, reused on resume); a resumed run
        keeps its store."""
        if self.resumed:
            return
        self.derived = dict(derived or {})
        import xarray as xr

        ds = xr.Dataset({DATA_VARIABLE: template})
        # keep the template's own encoding (rioxarray's grid_mapping link to spatial_ref lives there)
        encoding = {DATA_VARIABLE: {**{k: v for k, v in template.encoding.items() if k == "grid_mapping"},
                                    "chunks": chunks, "compressors": None, "_FillValue": None}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.to_zarr(self.store, mode="w", compute=False, encoding=encoding, consolidated=False)
        tmp = self.dir / "run.json.tmp"
        tmp.write_text(json.dumps({"settings": self.settings, "derived": self.derived}, indent=1, default=str))
        os.replace(tmp, self.dir / "run.json")

    def save_state(self, state: dict[str, Any]) -> None:
        import torch

        tmp = self.dir / "state.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.dir / "state.pt")

    def load_state(self) -> dict[str, Any] | None:
        import torch

        path = self.dir / "state.pt"
        if not (self.resumed and path.is_file()):
            return None
        try:
            return torch.load(path, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - a torn write of the state: fit again
            warnings.warn(f"{path} is unreadable ({exc}); the statistics are computed again", stacklevel=2)
            return None

    def done(self) -> set[tuple[int, int]]:
        out = set()
        for p in (self.dir / "done").iterdir() if (self.dir / "done").is_dir() else ():
            i, _, j = p.name.partition("-")
            if i.isdigit() and j.isdigit():
                out.add((int(i), int(j)))
        return out

    def finish(self, *, cog: bool = False, overwrite: bool = False) -> Path:
        """Move the complete store to the output name (or stream it into a GeoTIFF there); remove the partial."""
        import zarr

        # a run killed while zarr wrote a chunk left zarr's temporary (NAME.<32 hex>.partial) beside it; the chunk
        # itself was written again on resume, so the temporary goes
        for stale in [p for p in self.store.rglob("*.partial") if _ZARR_TEMP.search(p.name)]:
            stale.unlink(missing_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(self.store))  # one read opens it (xarray's default)
        if self.path.suffix.lower() != ".zarr":
            tmp = self.dir / "out.tmp.tif"  # renamed to out.tif once whole, so a finished product is never torn
            write_geotiff_from_zarr(self.store, tmp, cog=cog)
            os.replace(tmp, self._product())
        if (self.path.exists() or self.path.is_symlink()) and not overwrite:
            raise OutputExistsError(f"{self.path} exists; pass --overwrite to replace it")
        (self.dir / "finishing").touch()
        move_into_place([self._product()], [self.path])
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.path


def write_chunk(store: str | os.PathLike[str], block: np.ndarray, window: tuple[int, int, int, int],
                marker: str | os.PathLike[str]) -> tuple[int, int]:
    """Write ``block`` ``(B, rows, cols)`` into the store's data at HR ``window`` and then its done ``marker``."""
    import zarr

    y0, y1, x0, x1 = window
    arr = zarr.open_array(str(Path(store) / DATA_VARIABLE), mode="r+")
    arr[:, y0:y1, x0:x1] = block
    Path(marker).touch()
    return block.shape[1], block.shape[2]


def _blocks(shape: tuple[int, int], block: int) -> Iterable[tuple[int, int, int, int]]:
    h, w = shape
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            yield y0, min(y0 + block, h), x0, min(x0 + block, w)


def write_geotiff_from_zarr(store: str | os.PathLike[str], path: str | os.PathLike[str], *, cog: bool = False,
                            block: int = 512) -> Path:
    """Stream a zarr cube (written by the engine) into a tiled GeoTIFF at ``path`` (or a COG), ``block`` x ``block``
    pixels at a time: CRS, transform, no-data, band names and wavelengths/FWHM tags as :func:`hsfuse.io.write_geotiff`
    writes them. Memory: one block of all bands."""
    import rasterio
    import rioxarray  # noqa: F401 - registers the .rio accessor
    import xarray as xr

    ds = xr.open_zarr(str(store), consolidated=False, decode_coords="all")
    if DATA_VARIABLE not in ds:
        raise FileFormatError(f"{store} holds no '{DATA_VARIABLE}' array")
    da = ds[DATA_VARIABLE]
    bands, h, w = (int(n) for n in da.shape)
    profile: dict[str, Any] = {"driver": "GTiff", "height": h, "width": w, "count": bands,
                               "dtype": np.dtype(da.dtype).name, "tiled": True, "blockxsize": 256,
                               "blockysize": 256, "BIGTIFF": "YES" if bands * h * w * da.dtype.itemsize > 3.9e9
                               else "IF_SAFER", "interleave": "pixel" if bands <= 4 else "band"}
    crs = da.rio.crs if hasattr(da, "rio") else None
    if crs is not None:
        profile["crs"] = crs
        profile["transform"] = da.rio.transform(recalc=False)
    nodata = da.rio.nodata if hasattr(da, "rio") else None
    if nodata is None and np.dtype(da.dtype).kind == "f":
        nodata = float("nan")  # float outputs mark no-data (masked pixels) as NaN
    if nodata is not None:
        profile["nodata"] = nodata
    target = Path(path)
    plain = target.with_name(target.name + ".tiles.tif") if cog else target
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(str(plain), "w", **profile) as dst:
        if "wavelength_units" in da.attrs:
            dst.update_tags(wavelength_units="nm")
            fwhm = da.coords["fwhm"].values if "fwhm" in da.coords else None
            for i, wl in enumerate(da.coords["band"].values):
                tags = {"wavelength": repr(float(wl))}
                if fwhm is not None:
                    tags["fwhm"] = repr(float(fwhm[i]))
                dst.update_tags(i + 1, **tags)
        if "band_name" in da.coords:
            for i, name in enumerate(da.coords["band_name"].values):
                dst.set_band_description(i + 1, str(name))
        for y0, y1, x0, x1 in _blocks((h, w), block):
            dst.write(np.ascontiguousarray(da[:, y0:y1, x0:x1].values),
                      window=rasterio.windows.Window(x0, y0, x1 - x0, y1 - y0))
    if cog:
        from rasterio.shutil import copy as rio_copy

        rio_copy(str(plain), str(target), driver="COG", BIGTIFF="IF_SAFER", BLOCKSIZE=512,
                 OVERVIEW_RESAMPLING="AVERAGE")
        plain.unlink()
    return target
