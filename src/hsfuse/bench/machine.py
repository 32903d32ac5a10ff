"""Describe the machine a benchmark ran on, and measure peak memory of a piece of work."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["machine_description", "PeakMemory", "measure"]

T = TypeVar("T")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _total_memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_description(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, memory, threads, library versions and (if used) the GPU."""
    desc: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _total_memory_gib(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        desc["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return desc


def _release_free_memory() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``) so the next RSS growth is the new work's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class PeakMemory:
    """Peak resident-memory growth (CPU, sampled every ``interval`` s) or peak CUDA allocation."""

    bytes: int = 0
    kind: str = "rss"


def measure(fn: Callable[[], T], *, device: str = "cpu", interval: float = 0.002) -> tuple[T, float, PeakMemory]:
    """Run ``fn()`` and return ``(result, wall seconds, peak memory above the starting level)``.

    On CPU a background thread samples the process's resident set size (``/proc/self/statm``), so the figure
    counts every allocator (NumPy, PyTorch, BLAS); freed heap memory is first handed back to the OS
    (``malloc_trim``) so memory reused from earlier work still counts; short spikes between samples can be
    missed. On CUDA it is
    ``torch.cuda.max_memory_allocated`` above the memory allocated at the start.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        return out, wall, PeakMemory(torch.cuda.max_memory_allocated() - base, "cuda_allocated")
    _release_free_memory()
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        wall = time.perf_counter() - t0
        stop.set()
        thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    return out, wall, PeakMemory(peak[0] - base, "rss")
