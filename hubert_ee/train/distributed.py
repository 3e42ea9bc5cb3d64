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


@dataclass(frozen=True)
class Topology:
    """Where the torchrun children run: `nproc` per node on `nnodes` nodes that meet at a c10d
    rendezvous on `rdzv_endpoint` (host:port of any one node; not needed on one node)."""

    nproc: int
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    node_rank: int = 0
    rdzv_id: str = "hubert-ee"

    @classmethod
    def from_env(cls, nproc: int, nnodes: int, rdzv_endpoint: str | None) -> Topology:
        """params' values, overridden by HUBERT_EE_NNODES, HUBERT_EE_RDZV_ENDPOINT, and per node
        HUBERT_EE_NODE_RANK and HUBERT_EE_RDZV_ID (one params file serves every node; a node's
        rank and the job's id are the launcher's business, as in a SLURM or k8s job spec)."""
        env = os.environ
        topo = cls(
            nproc=nproc,
            nnodes=int(env.get("HUBERT_EE_NNODES", nnodes)),
            rdzv_endpoint=env.get("HUBERT_EE_RDZV_ENDPOINT", rdzv_endpoint) or None,
            node_rank=int(env.get("HUBERT_EE_NODE_RANK", 0)),
            rdzv_id=env.get("HUBERT_EE_RDZV_ID", "hubert-ee"),
        )
        if topo.nnodes < 1 or not 0 <= topo.node_rank < topo.nnodes:
            raise ValueError(
                f"node rank {topo.node_rank} of {topo.nnodes} nodes: need 0 <= rank < nnodes "
                "(HUBERT_EE_NODE_RANK, HUBERT_EE_NNODES / pretrain.nnodes)"
            )
        if topo.nnodes > 1 and not topo.rdzv_endpoint:
            raise ValueError(
                f"{topo.nnodes} nodes need a rendezvous: set pretrain.rdzv_endpoint or "
                "HUBERT_EE_RDZV_ENDPOINT to host:port of one node that every node can reach"
            )
        return topo

    @property
    def world(self) -> int:
        return self.nproc * self.nnodes


def torchrun_command(topo: Topology, module: str, argv: list[str]) -> list[str]:
    """`python -m torch.distributed.run ... -m module argv`: standalone on one node, a c10d
    rendezvous across several (each node runs the same command with its own node rank)."""
    if topo.nnodes == 1:
        where = ["--standalone"]
    else:
        where = [f"--nnodes={topo.nnodes}", f"--node_rank={topo.node_rank}",
                 "--rdzv_backend=c10d", f"--rdzv_endpoint={topo.rdzv_endpoint}",
                 f"--rdzv_id={topo.rdzv_id}"]  # fmt: skip
    return [sys.executable, "-m", "torch.distributed.run", *where,
            f"--nproc_per_node={topo.nproc}", "-m", module, *argv]  # fmt: skip


def relaunch_under_torchrun(topo: Topology, module: str) -> None:
    """Replace this process by torchrun running `module` with the same arguments (see
    `torchrun_command`); one process in all, or a process already started by torchrun
    (WORLD_SIZE set), goes on."""
    if topo.world <= 1 or "WORLD_SIZE" in os.environ:
        return
    cmd = torchrun_command(topo, module, sys.argv[1:])
    print("launching:", " ".join(cmd), flush=True)
    os.execv(sys.executable, cmd)
