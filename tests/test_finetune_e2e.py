"""Fine-tuning as a user runs it: killed and resumed ends like an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ENV, run

pytestmark = pytest.mark.slow


def _cmd(params: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "tasks.finetune", "--params", str(params), "--domain", "read",
        "--encoder", "models/pretrain_iter2/encoder.safetensors", "--out", str(out / "model"),
        "--state", str(out / "state"), "--metrics", str(out / "metrics.json"),
        "--plots", str(out / "dev.csv"),
    ]  # fmt: skip


def test_finetune_sigkill_then_rerun_ends_like_an_uninterrupted_run(smoke_ws, tmp_path):
    p = yaml.safe_load((smoke_ws / "params.yaml").read_text())
    p["finetune"].update(max_steps=16, eval_every=4, patience=10, scratch_arm=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p))
    run(_cmd(params, tmp_path / "straight"), smoke_ws)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(params, killed), cwd=smoke_ws, env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 120
    states = killed / "state"  # the first lr probe's state appears first
    while (
        not any(states.glob("pretrained-lr*.pt")) and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    out = run(_cmd(params, killed), smoke_ws)
    assert "resumed from" in out
    m_resumed = json.loads((killed / "metrics.json").read_text())
    m_straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    # where the run picked up depends on which lr probe the kill hit; the rest must not
    assert m_resumed.pop("resumed_from_step") < 16
    m_straight.pop("resumed_from_step")
    for m in (m_resumed, m_straight):  # wall-clock figures differ between runs
        m.pop("train_audio_seconds_per_s")
        m["decoding"] = {k: v for k, v in m["decoding"].items() if "xrt" not in k}
    assert m_resumed == m_straight
    assert (killed / "dev.csv").read_text() == (tmp_path / "straight" / "dev.csv").read_text()
