"""Pretraining as a user runs it: killed and resumed, under torchrun with 2 gloo ranks, and as
2 nodes meeting at a c10d rendezvous."""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ENV, run

pytestmark = pytest.mark.slow


def _params(ws: Path, tmp: Path, name: str, **pretrain) -> Path:
    p = yaml.safe_load((ws / "params.yaml").read_text())
    p["pretrain"].update(pretrain)
    # No dropout: the DDP comparison needs the same computation on every rank.
    p["model"]["overrides"].update(dropout=0.0, attention_dropout=0.0, projection_dropout=0.0)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def _cmd(params: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "tasks.pretrain", "--params", str(params), "--iteration", "1",
        "--labels", "data/labels/iter1", "--out", str(out / "model"), "--state", str(out / "state"),
        "--metrics", str(out / "metrics.json"), "--plots", str(out / "steps.csv"),
    ]  # fmt: skip


def _history(out: Path) -> list[dict]:
    with open(out / "steps.csv") as f:
        return list(csv.DictReader(f))


def test_sigkill_then_rerun_ends_like_an_uninterrupted_run(smoke_ws, tmp_path):
    params = _params(smoke_ws, tmp_path, "resume", max_steps=30, checkpoint_every=5, log_every=5)
    run(_cmd(params, tmp_path / "straight"), smoke_ws)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(params, killed),
        cwd=smoke_ws,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while (
        not (killed / "state" / "last.pt").exists()
        and time.time() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "metrics.json").exists()

    out = run(_cmd(params, killed), smoke_ws)
    m_resumed = json.loads((killed / "metrics.json").read_text())
    m_straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert 0 < m_resumed["resumed_from_step"] < 30 and "resumed from" in out
    assert m_resumed["steps"] == m_straight["steps"] == 30
    assert _history(killed) == _history(tmp_path / "straight")  # every step's loss, bit for bit
    assert (
        m_resumed["loss"] == m_straight["loss"]
        and m_resumed["masked_acc"] == m_straight["masked_acc"]
    )


def test_stale_state_from_other_params_is_not_resumed(smoke_ws, tmp_path):
    a = _params(smoke_ws, tmp_path, "a", max_steps=4, checkpoint_every=2)
    run(_cmd(a, tmp_path / "run"), smoke_ws)
    b = _params(smoke_ws, tmp_path, "b", max_steps=4, checkpoint_every=2, lr=1e-4)
    out = run(_cmd(b, tmp_path / "run"), smoke_ws)
    assert "not resuming" in out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["resumed_from_step"] == 0


@pytest.fixture(scope="module")
def one_process_grad_accum_2(smoke_ws, tmp_path_factory) -> list[dict]:
    """8 steps of one process with grad_accum 2: what 2 ranks of 1 micro-batch must reproduce."""
    tmp = tmp_path_factory.mktemp("single")
    single = _params(smoke_ws, tmp, "single", max_steps=8, grad_accum=2, log_every=1)
    run(_cmd(single, tmp / "single"), smoke_ws)
    return _history(tmp / "single")


def _same_steps(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) == 8
    for ra, rb in zip(a, b, strict=True):
        # Same data, masks and global batch; only the gradient reduction order differs.
        assert float(ra["loss"]) == pytest.approx(float(rb["loss"]), abs=2e-3)
        assert float(ra["masked_acc"]) == pytest.approx(float(rb["masked_acc"]), abs=2e-2)


def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(
    smoke_ws, tmp_path, one_process_grad_accum_2
):
    ddp = _params(
        smoke_ws,
        tmp_path,
        "ddp",
        max_steps=8,
        grad_accum=1,
        launcher="torchrun",
        nproc=2,
        log_every=1,
    )
    out = run(_cmd(ddp, tmp_path / "ddp"), smoke_ws)
    assert "torch.distributed.run" in out and "on 2 x cpu" in out
    m = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert m["world_size"] == 2
    _same_steps(one_process_grad_accum_2, _history(tmp_path / "ddp"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_at_a_c10d_rendezvous_match_one_process(
    smoke_ws, tmp_path, one_process_grad_accum_2
):
    """Two launches of the same command, told apart only by HUBERT_EE_NODE_RANK, as two
    machines of a SLURM job would be."""
    params = _params(
        smoke_ws,
        tmp_path,
        "nodes",
        max_steps=8,
        grad_accum=1,
        launcher="torchrun",
        nproc=1,
        nnodes=2,
        rdzv_endpoint=f"127.0.0.1:{_free_port()}",
        log_every=1,
    )
    nodes = [
        subprocess.Popen(
            _cmd(params, tmp_path / "nodes"),
            cwd=smoke_ws,
            env={**ENV, "HUBERT_EE_NODE_RANK": str(rank), "HUBERT_EE_RDZV_ID": tmp_path.name},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(logs)
    assert all("--nnodes=2" in log and "--rdzv_backend=c10d" in log for log in logs)
    m = json.loads((tmp_path / "nodes" / "metrics.json").read_text())
    assert m["world_size"] == 2
    _same_steps(one_process_grad_accum_2, _history(tmp_path / "nodes"))


def test_a_node_rank_outside_the_job_is_refused_before_any_work(smoke_ws, tmp_path):
    params = _params(smoke_ws, tmp_path, "bad", launcher="torchrun", nnodes=2,
                     rdzv_endpoint="127.0.0.1:1")  # fmt: skip
    res = subprocess.run(
        _cmd(params, tmp_path / "bad"), cwd=smoke_ws, capture_output=True, text=True,
        env={**ENV, "HUBERT_EE_NODE_RANK": "2"},
    )  # fmt: skip
    assert res.returncode != 0
    assert "node rank 2 of 2 nodes" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "bad").exists()


def test_init_checkpoint_with_zero_steps_imports_the_weights(smoke_ws, tmp_path):
    """The documented way to skip pretraining: torchaudio-layout weights in, encoder out."""
    import torch

    from hubert_ee.config import load_params
    from hubert_ee.models.checkpoint import load_encoder
    from hubert_ee.models.encoder import HubertEncoder

    cfg = load_params(smoke_ws / "params.yaml").model.encoder_config()
    torch.manual_seed(123)
    public = HubertEncoder(cfg).state_dict()
    layout = {f"wav2vec2.{k}": v for k, v in public.items() if k != "mask_embedding"}
    layout["mask_generator.mask_embedding"] = public["mask_embedding"]
    torch.save(layout, tmp_path / "public.pt")  # torchaudio's HuBERTPretrainModel layout
    p = yaml.safe_load((smoke_ws / "params.yaml").read_text())
    p["model"]["init_checkpoint"] = str(tmp_path / "public.pt")
    p["pretrain"]["max_steps"] = 0
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(p))
    run(_cmd(tmp_path / "p.yaml", tmp_path / "out"), smoke_ws)
    imported = load_encoder(tmp_path / "out/model/encoder.safetensors").state_dict()
    assert imported.keys() == public.keys()
    assert all(torch.equal(imported[k], public[k]) for k in public)
    m = json.loads((tmp_path / "out/metrics.json").read_text())
    assert m["steps"] == 0 and m["loss"] is None and 0 <= m["masked_acc"] <= 1


def test_wav2vec2_objective_reads_no_labels_and_its_encoder_fine_tunes_unchanged(
    smoke_ws, tmp_path
):
    import torch

    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.models.checkpoint import checkpoint_metadata, load_encoder
    from hubert_ee.models.ctc_model import CTCModel

    params = _params(smoke_ws, tmp_path, "w2v2", max_steps=6, log_every=1, objective="wav2vec2")
    cmd = _cmd(params, tmp_path / "w2v2")
    del cmd[cmd.index("--labels") : cmd.index("--labels") + 2]  # it needs none
    out = run(cmd, smoke_ws)
    assert "wav2vec 2.0 (100 distractors)" in out
    m = json.loads((tmp_path / "w2v2" / "metrics.json").read_text())
    assert m["objective"] == "wav2vec2" and m["steps"] == 6 and m["chance_acc"] == round(1 / 101, 4)
    assert all(float(r["loss"]) > 0 for r in _history(tmp_path / "w2v2"))
    path = tmp_path / "w2v2" / "model" / "encoder.safetensors"
    assert checkpoint_metadata(path)["objective"] == "wav2vec2"
    model = CTCModel(load_encoder(path), CharVocab())  # what finetune builds from any encoder
    res = model(torch.randn(1, 16000), torch.tensor([16000]))
    assert res.logits.shape[-1] == len(CharVocab()) and torch.isfinite(res.logits).all()
