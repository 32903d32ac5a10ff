"""Where the task graph runs: Dask's local threaded scheduler, a ``LocalCluster`` of N worker processes, or an
existing cluster by address; and how many torch threads each task may use so workers do not oversubscribe cores.

* default: the local threaded scheduler with ``threads`` threads (default: the CPU count), torch limited to
  one thread per task (``threads`` tasks run at once, each on one core);
* ``workers=N``: a ``dask.distributed.LocalCluster`` of ``N`` processes with ``cores // N`` threads each, and torch
  at one thread per task in every worker;
* ``scheduler="tcp://host:8786"``: a client of an existing cluster (started e.g. with dask-jobqueue on SLURM or
  dask-kubernetes; see the README); each worker's torch threads are set to 1 per task in the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._checks import check_positive_int
from ..errors import InputError

__all__ = ["Scheduler", "open_scheduler", "limit_torch_threads"]


def limit_torch_threads(threads: int = 1) -> None:
    """Set torch's intra-op threads in this process (called inside every task: workers are separate processes)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@dataclass
class Scheduler:
    """What :func:`open_scheduler` gives: a distributed client (or ``None`` for the local scheduler), the number of
    tasks that run at once, and a description for reports."""

    client: Any
    concurrent: int
    description: str
    processes: int = 0  # worker processes started for this run (their libraries count against the memory budget)

    def compute(self, *objects: Any) -> tuple[Any, ...]:
        import dask

        if self.client is not None:
            return tuple(self.client.compute(list(objects), sync=True))
        return dask.compute(*objects, scheduler="threads", num_workers=self.concurrent)


@contextlib.contextmanager
def open_scheduler(*, workers: int | None = None, scheduler: str | None = None,
                   threads: int | None = None) -> Iterator[Scheduler]:
    """The scheduler for one run (module docstring); a ``LocalCluster`` is shut down on exit."""
    cores = os.cpu_count() or 1
    if workers is not None and scheduler is not None:
        raise InputError("give either --workers (a local cluster) or --scheduler (an existing cluster), not both")
    if scheduler is not None:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); start one (see the README, "
                             "'Large scenes') or check the address") from None
        try:
            n = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) or 1
            yield Scheduler(client, n, f"cluster {scheduler} ({n} threads)")
        finally:
            client.close()
        return
    if workers is not None:
        from distributed import Client, LocalCluster

        n = check_positive_int(workers, "workers")
        per = check_positive_int(threads, "threads") if threads is not None else max(1, cores // n)
        cluster = LocalCluster(n_workers=n, threads_per_worker=per, processes=True, dashboard_address=":0",
                               memory_limit=0, silence_logs=50)
        client = Client(cluster)
        try:
            yield Scheduler(client, n * per, f"LocalCluster({n} workers x {per} threads)", processes=n)
        finally:
            client.close()
            cluster.close()
        return
    n = check_positive_int(threads, "threads") if threads is not None else cores
    yield Scheduler(None, n, f"local threaded scheduler ({n} threads)")
