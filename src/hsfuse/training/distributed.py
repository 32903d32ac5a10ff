"""Data-parallel training across processes (``torchrun``) with DistributedDataParallel.

``torchrun --nproc_per_node K -m hsfuse train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; :func:`setup` joins the process group (NCCL on GPUs, gloo on CPUs). Each process takes its
own slice of every global batch (see :mod:`hsfuse.data.patches`), DDP averages the gradients, so ``K``
processes with batch ``b`` take the same optimiser steps as one process with batch ``K * b`` (up to the order
of floating-point sums). Multi-node runs work the same way (``torchrun --nnodes N --node_rank ...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup", "barrier", "broadcast_flag", "cleanup"]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> DistInfo:
    """Join the process group described by torchrun's environment variables (single process if absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def barrier(info: DistInfo) -> None:
    """Wait until every process of the job gets here (nothing for a single process)."""
    if info.enabled:
        dist.barrier()


def broadcast_flag(info: DistInfo, value: bool) -> bool:
    """Rank 0's boolean, on every rank (a collective: every rank must call it at the same point)."""
    if not info.enabled:
        return value
    # NCCL moves CUDA tensors only; gloo moves CPU tensors
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1 if value else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def cleanup() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
