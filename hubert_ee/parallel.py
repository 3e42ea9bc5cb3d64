"""Per-shard work units on a local process pool or a Dask cluster (DESIGN §10: scale out on
engines a team already runs, not on a home-made scheduler).

A work unit is a picklable function applied to one job (one shard): it reads its inputs from
the shared file system and writes its own shard file, so the bytes on disk cannot depend on
which executor, which worker or which order ran it. Workers run torch with one intra-op thread:
N workers use N cores, and a worker computes exactly what the local pool computes.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Executor:
    """Where work units run: `local` (this process for one worker, else a forkserver pool) or
    `dask` (the scheduler at `address`, else a LocalCluster of `workers` processes)."""

    kind: Literal["local", "dask"] = "local"
    workers: int = 1
    address: str | None = None


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _unit(fn: Callable[[Any], Any], job: Any) -> Any:
    _one_thread()
    return fn(job)


def run_units(fn: Callable[[Any], Any], jobs: Sequence[Any], ex: Executor) -> Iterator[Any]:
    """Apply `fn` to every job; yield the results as they finish (in no fixed order: a result
    that matters must name its job)."""
    if not jobs:
        return
    if ex.kind == "dask":
        yield from _run_dask(fn, jobs, ex)
    elif ex.workers <= 1 or len(jobs) == 1:
        _one_thread()
        for job in jobs:
            yield fn(job)
    else:
        with mp.get_context("forkserver").Pool(min(ex.workers, len(jobs)), _one_thread) as pool:
            yield from pool.imap_unordered(fn, jobs)


def _run_dask(fn: Callable[[Any], Any], jobs: Sequence[Any], ex: Executor) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:  # pragma: no cover - distributed comes with prefect-dask
        raise ValueError(
            "orchestration.executor: dask needs the `distributed` package "
            "(pip install 'distributed' or prefect-dask)"
        ) from err
    if ex.address:
        client = Client(ex.address)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=max(1, ex.workers), threads_per_worker=1, processes=True,
            dashboard_address=None,
        )  # fmt: skip
        client = Client(cluster)
    try:
        futures = [client.submit(_unit, fn, job, pure=False) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
