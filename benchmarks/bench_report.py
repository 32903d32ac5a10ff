"""The HTML report: its size, build time and load time in Chromium, for the demo and a 4096 x 4096 x 200 result.

    python benchmarks/bench_report.py [--size 4096] [--work /tmp/hsfuse-bench-large] [--repeats 3]
                                      [-o benchmarks/results/report/results] [--overwrite]

* **demo**: ``hsfuse demo`` (128 x 128 x 31, seven methods, reference) and its ``report.html``.
* **large**: the large-scene benchmark's scene (:mod:`hsfuse.data.large_scene`, ``SIZE^2`` HR pixels, 200 bands,
  Sentinel-2 B2-B8A, ratio 4; written once to ``WORK/sceneSIZE``, shared with ``bench_large.py``) fused with
  bicubic by ``hsfuse fuse`` chunk by chunk into a zarr store, then ``hsfuse report`` of that result with the
  inputs and the operators (decimated reads; no reference).

Measured: the page's size; the time to build and write it (with the peak resident memory of that process); the
time Chromium (headless, Selenium) takes from navigation to the page's ``data-ready`` mark (all figures drawn and
the first spectrum plotted), the median of ``--repeats`` fresh loads. Results: ``OUT.json`` / ``OUT.md`` with the
machine described.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BANDS = "B2,B3,B4,B5,B6,B7,B8,B8A"

BUILD = r"""
import json, sys, threading, time, psutil
from hsfuse.workflows.report import report_of_fused, write_run_report
peak = [0]
proc = psutil.Process()
def sample():
    while True:
        peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
if args.get("srf"):  # as 'hsfuse fuse --report' makes it
    s = report_of_fused(args["runs"][0], args["out"], hsi=args["hsi"], msi=args["msi"], method=args["method"],
                        srf=args["srf"], bands=args["bands"].split(","), overwrite=True)
else:
    s = write_run_report(args["runs"], args["out"], overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": s.bytes, "display_step": s.display_step,
                  "spectra_step": s.spectra_step, "peak_rss_mib": peak[0] / 2**20}))
"""


def _load_times(page: Path, repeats: int) -> list[float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    times = []
    for _ in range(repeats):
        opts = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
            opts.add_argument(arg)
        opts.binary_location = shutil.which("chromium") or "chromium"
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=opts)
        try:
            t0 = time.perf_counter()
            driver.get(page.resolve().as_uri())
            while driver.execute_script("return document.body && document.body.dataset.ready") != "1":
                if time.perf_counter() - t0 > 300:
                    raise RuntimeError(f"{page} did not finish loading in 300 s")
                time.sleep(0.02)
            times.append(time.perf_counter() - t0)
        finally:
            driver.quit()
    return times


def _build(args: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", BUILD, json.dumps(args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--work", default="/tmp/hsfuse-bench-large")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("-o", "--out", default="benchmarks/results/report/results")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    from hsfuse.bench.machine import machine_description
    from hsfuse.bench.runner import check_result_paths, write_json_markdown
    from hsfuse.data.large_scene import LargeScene, write_large_pair

    check_result_paths(args.out, overwrite=args.overwrite)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    demo = work / "demo"
    if not (demo / "metrics.json").is_file():
        subprocess.run(["hsfuse", "demo", "-o", str(demo), "--overwrite"], check=True, capture_output=True)
    built = _build({"runs": [str(demo)], "out": str(work / "demo_report.html")})
    rows.append({"case": "demo 128x128x31, 7 methods, reference", **built,
                 "load_s": statistics.median(_load_times(work / "demo_report.html", args.repeats))})
    print(rows[-1], flush=True)
    folder = work / f"scene{args.size}"
    if not (folder / "hsi.zarr").exists():
        folder.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        write_large_pair(folder, LargeScene(height=args.size, width=args.size, bands=200, seed=0), ratio=4,
                         chunk=512, overwrite=True)
        print(f"inputs {args.size}^2 written in {time.perf_counter() - t0:.1f} s", flush=True)
    result = work / f"report_bicubic_{args.size}.zarr"
    if not result.exists():
        t0 = time.perf_counter()
        subprocess.run(["hsfuse", "fuse", "--hsi", str(folder / "hsi.zarr"), "--msi", str(folder / "msi.zarr"),
                        "--method", "bicubic", "--ratio", "4", "-o", str(result), "-q"], check=True)
        print(f"bicubic {args.size}^2 fused in {time.perf_counter() - t0:.1f} s", flush=True)
    page = work / f"report_{args.size}.html"
    built = _build({"runs": [str(result)], "out": str(page), "hsi": str(folder / "hsi.zarr"),
                    "msi": str(folder / "msi.zarr"), "srf": "sentinel2a", "bands": BANDS, "method": "bicubic"})
    rows.append({"case": f"{args.size}x{args.size}x200 bicubic result (zarr, "
                         f"{args.size ** 2 * 200 * 4 / 1e9:.1f} GB), inputs, operators", **built,
                 "load_s": statistics.median(_load_times(page, args.repeats))})
    print(rows[-1], flush=True)
    machine = machine_description()
    lines = ["# HTML report: size, build and load time", "",
             f"Machine: {machine.get('cpu')}, {machine.get('logical_cores')} cores, {machine.get('memory_gib')} GiB; "
             f"Chromium headless via Selenium, median of {args.repeats} loads (navigation to data-ready).", "",
             "| case | size (MB) | build (s) | build peak RSS (MiB) | image step | spectra step | load (s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['bytes'] / 1e6:.1f} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
                     f"{r['display_step']} | {r['spectra_step']} | {r['load_s']:.2f} |")
    write_json_markdown(args.out, {"machine": machine, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
