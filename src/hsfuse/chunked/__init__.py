"""Scenes of any size: chunked, out-of-core fusion on Dask (:mod:`.engine`), the chunk grid (:mod:`.grid`) and
where the task graph runs (:mod:`.cluster`)."""

from .cluster import Scheduler, open_scheduler
from .engine import ChunkedResult, fuse_chunked, plan_chunks, process_rss
from .grid import Chunk, ChunkGrid, chunk_for_budget

__all__ = ["Chunk", "ChunkGrid", "ChunkedResult", "Scheduler", "chunk_for_budget", "fuse_chunked", "open_scheduler",
           "plan_chunks", "process_rss"]
