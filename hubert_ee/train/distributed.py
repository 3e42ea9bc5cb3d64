"""torchrun/DDP helpers: NCCL on GPUs, gloo on CPU; a plain process is rank 0 of 1."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local, device)


def all_sum(values: list[float], d: Dist) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(
        values, dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu"
    )
    dist.all_reduce(t)
    return t.tolist()


def all_mean(values: list[float], d: Dist) -> list[float]:
    return [v / d.world for v in all_sum(values, d)]


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def relaunch_under_torchrun(nproc: int, module: str) -> None:
    """Replace this process by `torchrun --standalone` running `module` with the same arguments
    on `nproc` processes; a process already started by torchrun (WORLD_SIZE set) goes on."""
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", module, *sys.argv[1:]]  # fmt: skip
    print("launching:", " ".join(cmd), flush=True)
    os.execv(sys.executable, cmd)
