"""Where the torchrun children run: one node standalone, several at a c10d rendezvous."""

from __future__ import annotations

import sys

import pytest

from hubert_ee.train.distributed import Topology, torchrun_command


def test_one_node_is_standalone_and_several_meet_at_the_rendezvous():
    one = torchrun_command(Topology(nproc=4), "tasks.pretrain", ["--iteration", "1"])
    assert one == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node=4", "-m", "tasks.pretrain", "--iteration", "1"]  # fmt: skip
    two = torchrun_command(
        Topology(nproc=8, nnodes=2, rdzv_endpoint="node0:29400", node_rank=1, rdzv_id="job7"),
        "tasks.pretrain",
        [],
    )
    assert "--standalone" not in two
    assert two[3:9] == ["--nnodes=2", "--node_rank=1", "--rdzv_backend=c10d",
                        "--rdzv_endpoint=node0:29400", "--rdzv_id=job7",
                        "--nproc_per_node=8"]  # fmt: skip
    assert Topology(nproc=8, nnodes=2, rdzv_endpoint="x:1").world == 16


def test_environment_overrides_params_and_names_the_node(monkeypatch):
    for key in ("HUBERT_EE_NNODES", "HUBERT_EE_RDZV_ENDPOINT", "HUBERT_EE_RDZV_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HUBERT_EE_NODE_RANK", "0")
    assert Topology.from_env(2, 1, None) == Topology(nproc=2)
    monkeypatch.setenv("HUBERT_EE_NNODES", "3")
    monkeypatch.setenv("HUBERT_EE_RDZV_ENDPOINT", "10.0.0.1:29400")
    monkeypatch.setenv("HUBERT_EE_NODE_RANK", "2")
    t = Topology.from_env(2, 1, None)
    assert (t.nnodes, t.node_rank, t.rdzv_endpoint, t.world) == (3, 2, "10.0.0.1:29400", 6)


@pytest.mark.parametrize(
    ("nnodes", "endpoint", "rank", "message"),
    [
        (2, None, "0", "need a rendezvous"),
        (2, "h:1", "2", "node rank 2 of 2 nodes"),
        (2, "h:1", "-1", "node rank -1 of 2 nodes"),
    ],
)
def test_a_topology_that_cannot_meet_is_refused(monkeypatch, nnodes, endpoint, rank, message):
    for key in ("HUBERT_EE_NNODES", "HUBERT_EE_RDZV_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HUBERT_EE_NODE_RANK", rank)
    with pytest.raises(ValueError, match=message):
        Topology.from_env(1, nnodes, endpoint)
