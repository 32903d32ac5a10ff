"""Large scenes: chunked, out-of-core fusion at 1024^2, 2048^2 and 4096^2 HR pixels (200 bands, 8-band MSI, r = 4).

    python benchmarks/bench_large.py [--sizes 1024 2048 4096] [--methods bicubic gsa fuse] [--workers 1 2]
                                     [--cluster-sizes 1024 2048] [--memory-gb 4] [--work /tmp/hsfuse-bench-large]
                                     [-o benchmarks/results/large]

The scene is :mod:`hsfuse.data.large_scene` (closed-form land cover from real Jasper Ridge reflectance spectra,
200 bands over 410-1000 nm; Sentinel-2 B2-B8A as the MSI; Gaussian PSF of FWHM r), written once per size as zarr
stores (the realistic case: inputs read from files). Every run is one ``hsfuse fuse`` pipeline in a fresh
subprocess: open the inputs lazily, fit the method's statistics, fuse chunk by chunk and stream the result into a
zarr store (float32; 13.4 GB at 4096^2), with ``--memory-gb`` as the budget. Measured per run:

* wall time of the whole pipeline (opening, fit, apply, writing, finishing) and megapixels (HR) per second;
* peak resident memory of the whole process tree (the run's process and, with ``--workers``, its worker
  processes), sampled every 50 ms with psutil;
* for the default local threaded scheduler at every size, and for a ``LocalCluster`` of each ``--workers`` count at
  the ``--cluster-sizes``.

The whole-image baseline (read both inputs into memory, run the method on the whole image, write the result to
zarr) runs where the method's whole-image working set fits in half the machine's memory. Targets (issue 15): peak
memory <= 4 GB at 4096^2 for every method; time per pixel at 4096^2 within 1.3x of that at 1024^2; the chunked
pipeline within 2x of the whole-image time. Results: ``results.json`` / ``results.md`` with the machine described.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUN = r"""
import json, sys, threading, time
t0 = time.perf_counter()  # the wall time includes importing the libraries, as a user's run does
from hsfuse.chunked.engine import process_rss  # this process and its children (LocalCluster workers)

peak = [0]
stop = threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], process_rss())
        time.sleep(0.05)

threading.Thread(target=sample, daemon=True).start()
args = json.loads(sys.argv[1])
import numpy as np, torch
from hsfuse.workflows.fusion import fuse_scene, fuse
if args["mode"] == "chunked":
    res = fuse_scene(args["hsi"], args["msi"], method=args["method"], srf=args["srf"], bands=args["bands"],
                     output=args["out"], memory_gb=args["memory_gb"], workers=args["workers"])
    extra = {"chunk_hr": res.grid.chunk_hr, "chunks": len(res.grid), "scheduler": res.scheduler,
             "fit_s": res.seconds.get("fit"), "apply_s": res.seconds.get("apply"),
             "finish_s": res.seconds.get("finish")}
else:
    import xarray as xr
    from hsfuse.io.lazy import open_lazy
    h = open_lazy(args["hsi"]).load()
    m = open_lazy(args["msi"]).load()
    out = fuse(h.values.transpose(1, 2, 0), m.values.transpose(1, 2, 0), method=args["method"],
               srf=args["srf_matrix"] and np.asarray(args["srf_matrix"]))
    da = xr.DataArray(out.transpose(2, 0, 1), dims=("band", "y", "x"), name="fused")
    da.to_dataset().to_zarr(args["out"], mode="w", encoding={"fused": {"compressors": None,
                                                                        "chunks": (out.shape[2], 512, 512)}})
    extra = {}
wall = time.perf_counter() - t0
stop.set()
time.sleep(0.06)
print(json.dumps({"wall_s": wall, "peak_gb": peak[0] / 2**30, **extra}))
"""

BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A"]
#: whole-image working sets (peak bytes per HR pixel per band above the inputs), measured once at 512^2 x 200 with
#: VmHWM (bicubic 10.7, GSA 45.5, FUSE 5.4); used only to skip whole-image runs that cannot fit in memory
WHOLE_WORKING_SET = {"bicubic": 11.0, "gsa": 46.0, "fuse": 5.5}


def _run(args: dict[str, Any], timeout: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", RUN, json.dumps(args)], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _srf_matrix(hsi_path: Path) -> list[list[float]]:
    from hsfuse.io.lazy import open_lazy
    from hsfuse.physics.srf_library import srf_matrix

    h = open_lazy(hsi_path)
    matrix, _ = srf_matrix("sentinel2a", h.coords["band"].values, hsi_fwhm=h.coords["fwhm"].values, bands=BANDS,
                           normalize="none")
    return matrix.tolist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048, 4096])
    p.add_argument("--methods", nargs="+", default=["bicubic", "gsa", "fuse"])
    p.add_argument("--workers", nargs="*", type=int, default=[1, 2], help="LocalCluster worker counts to compare")
    p.add_argument("--cluster-sizes", nargs="*", type=int, default=[1024, 2048],
                   help="sizes at which the LocalCluster runs are made (each costs a full run)")
    p.add_argument("--memory-gb", type=float, default=4.0)
    p.add_argument("--work", default="/tmp/hsfuse-bench-large", help="scratch folder for inputs and outputs")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("-o", "--output", default="benchmarks/results/large")
    p.add_argument("--report-only", action="store_true", help="rewrite results.md from results.json (no runs)")
    args = p.parse_args()
    if args.report_only:
        saved = json.loads((Path(args.output) / "results.json").read_text())
        _write(Path(args.output), saved["rows"], saved["settings"], saved["machine"], args.memory_gb)
        return

    from hsfuse.bench.machine import machine_description
    from hsfuse.data.large_scene import LargeScene, write_large_pair

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    total_gb = (machine_description().get("memory_gib") or 24.0)
    for size in args.sizes:
        folder = work / f"scene{size}"
        if not (folder / "hsi.zarr").exists():
            folder.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            write_large_pair(folder, LargeScene(height=size, width=size, bands=200, seed=0), ratio=4, chunk=512,
                             overwrite=True)
            print(f"inputs {size}^2 written in {time.perf_counter() - t0:.1f} s", flush=True)
        srf = _srf_matrix(folder / "hsi.zarr")
        for method in args.methods:
            configs: list[tuple[str, int | None]] = [("chunked", None)]
            if size in args.cluster_sizes:
                configs += [("chunked", w) for w in args.workers]
            whole_gb = WHOLE_WORKING_SET[method] * 200 * size * size / 2**30
            if whole_gb < total_gb / 2:
                configs.insert(0, ("whole", None))
            for mode, workers in configs:
                out = work / f"out_{method}_{size}.zarr"
                shutil.rmtree(out, ignore_errors=True)
                spec = {"mode": mode, "method": method, "hsi": str(folder / "hsi.zarr"), "msi": str(folder / "msi.zarr"),
                        "srf": "sentinel2a", "bands": BANDS, "srf_matrix": srf, "out": str(out),
                        "memory_gb": args.memory_gb, "workers": workers}
                result = _run(spec, args.timeout)
                shutil.rmtree(out, ignore_errors=True)
                row = {"size": size, "method": method, "mode": mode,
                       "scheduler": "whole image" if mode == "whole" else
                       ("local threads" if workers is None else f"LocalCluster x{workers}"), **result}
                if "wall_s" in result:
                    row["mpix_per_s"] = size * size / 1e6 / result["wall_s"]
                    row["ns_per_px_band"] = result["wall_s"] / (size * size * 200) * 1e9
                rows.append(row)
                print(json.dumps(row), flush=True)
    machine = machine_description()
    settings = {"sizes": args.sizes, "methods": args.methods, "workers": args.workers,
                "cluster_sizes": args.cluster_sizes, "memory_gb": args.memory_gb,
                "bands": 200, "msi": "sentinel2a " + ",".join(BANDS), "ratio": 4, "inputs": "zarr (uncompressed)",
                "output": "zarr, float32, uncompressed"}
    _write(out_dir, rows, settings, machine, args.memory_gb)
    print(f"wrote {out_dir}/results.json, results.md")


def _write(out_dir: Path, rows: list[dict[str, Any]], settings: dict[str, Any], machine: dict[str, Any],
           budget: float) -> None:
    from hsfuse.bench.runner import markdown_table

    targets = _targets(rows, budget)
    (out_dir / "results.json").write_text(json.dumps({"machine": machine, "settings": settings, "rows": rows,
                                                      "targets": targets}, indent=1) + "\n")
    cols = ["size", "method", "scheduler", "wall_s", "peak_gb", "mpix_per_s", "ns_per_px_band", "chunk_hr", "chunks",
            "fit_s", "apply_s", "finish_s", "error"]
    text = ["# Large scenes: chunked fusion (bench_large.py)", "",
            "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), "",
            "Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()), "",
            markdown_table(rows, [c for c in cols if any(c in r for r in rows)]), "## Targets", "",
            markdown_table(targets) if targets else "(not enough runs)", ""]
    (out_dir / "results.md").write_text("\n".join(text))


def _targets(rows: list[dict[str, Any]], budget: float) -> list[dict[str, Any]]:
    out = []
    ok = [r for r in rows if "wall_s" in r]
    for method in sorted({r["method"] for r in ok}):
        local = {r["size"]: r for r in ok if r["method"] == method and r["mode"] == "chunked"
                 and str(r["scheduler"]).startswith("local threaded")}
        whole = {r["size"]: r for r in ok if r["method"] == method and r["mode"] == "whole"}
        big, small = max(local, default=None), min(local, default=None)
        row: dict[str, Any] = {"method": method}
        if big is not None:
            peak = max(r["peak_gb"] for r in ok if r["method"] == method and r["size"] == big and r["mode"] != "whole")
            row.update({"largest": big, "peak_gb_at_largest": peak, "peak_ok": peak <= budget})
        if big is not None and small is not None and big != small:
            ratio = local[big]["ns_per_px_band"] / local[small]["ns_per_px_band"]
            row.update({"time_per_px_ratio": ratio, "ratio_ok": ratio <= 1.3})
        common = sorted(set(whole) & set(local))
        if common:
            s = common[-1]
            ratio = local[s]["wall_s"] / whole[s]["wall_s"]
            row.update({"whole_size": s, "chunked_over_whole": ratio, "whole_ok": ratio <= 2.0})
        out.append(row)
    return out


if __name__ == "__main__":
    main()
