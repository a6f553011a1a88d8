"""The local process pool that writes planned shards in parallel (one task per shard).

Workers get the :class:`~components.transform.records.WorkerState` once, when
they start (inherited on fork, pickled on spawn), and each task names only its
shard. Fork starts workers in milliseconds; once TensorFlow is imported in this
process forking is unsafe, so spawn is used then.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait

from components.core.log import get_logger, progress

from .records import STAGE, WorkerState
from .shards import ShardResult, ShardTask, write_shard

__all__ = ["run_in_pool", "worker_count"]

_STATE: WorkerState | None = None


def _init_worker(state: WorkerState) -> None:
    global _STATE
    _STATE = state


def _write_planned(task: ShardTask) -> ShardResult:
    st = _STATE
    assert st is not None, "worker state not initialised"
    return write_shard(st, task)


def worker_count(requested: int, tasks: int) -> int:
    """Worker processes to start.

    Args:
        requested: ``transform.num_workers`` (0: one per available core).
        tasks: planned shards.

    Returns:
        At least 1, at most one per shard.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or cores, tasks))


def run_in_pool(tasks: list[ShardTask], state: WorkerState, workers: int) -> Iterator[ShardResult]:
    """Writes the shards over a process pool (in this process when ``workers`` is 1).

    Args:
        tasks: the planned shards (largest first balances the pool).
        state: the images and options.
        workers: worker processes.

    Yields:
        Each shard's result as it completes; a worker's error is re-raised and the rest cancelled.
    """
    log = get_logger(STAGE)
    if workers <= 1:
        yield from progress((write_shard(state, t) for t in tasks), len(tasks), "writing shards", log)
        return
    ctx = mp.get_context("spawn" if "tensorflow" in sys.modules or sys.platform != "linux" else "fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(state,)) as pool:
        futures: list[Future[ShardResult]] = [pool.submit(_write_planned, t) for t in tasks]
        try:
            yield from progress(_completed(futures), len(futures), "writing shards", log)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _completed(futures: list[Future[ShardResult]]) -> Iterator[ShardResult]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for f in done:
            yield f.result()  # re-raises a worker's error
