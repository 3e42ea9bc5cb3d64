"""Resume states are only resumed by the unfinished run they belong to (issue: never stale)."""

from __future__ import annotations

from pathlib import Path

import torch

from hubert_ee.train.checkpointing import (
    COMPLETE_MARKER,
    begin_stage,
    complete_stage,
    load_state,
    save_state,
)


def _state(path: Path, key: str, step: int = 5) -> None:
    save_state(path, {"fingerprint": key, "step": step, "w": torch.ones(2)})


def test_matching_state_is_resumed(tmp_path):
    _state(tmp_path / "last.pt", "k1")
    state = load_state(tmp_path / "last.pt", "k1")
    assert state is not None and state["step"] == 5


def test_state_of_other_code_params_or_inputs_is_set_aside_not_deleted(tmp_path, capsys):
    _state(tmp_path / "last.pt", "old-key")
    assert load_state(tmp_path / "last.pt", "new-key") is None
    assert not (tmp_path / "last.pt").exists()
    assert (tmp_path / "last.pt.set-aside").exists()
    assert "made by other code, params or input data" in capsys.readouterr().out


def test_truncated_state_is_set_aside_with_its_reason(tmp_path, capsys):
    _state(tmp_path / "last.pt", "k1")
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[: len(data) // 3])
    assert load_state(tmp_path / "last.pt", "k1") is None
    out = capsys.readouterr().out
    assert "unreadable resume state" in out and "training starts fresh" in out
    assert (tmp_path / "last.pt.set-aside").exists()


def test_a_completed_stage_run_again_starts_fresh(tmp_path, capsys):
    _state(tmp_path / "pretrained.pt", "k1")
    _state(tmp_path / "scratch.pt", "k1")
    begin_stage(tmp_path)  # no marker: an interrupted run, states stay for resuming
    assert (tmp_path / "pretrained.pt").exists()
    complete_stage(tmp_path, "k1")
    assert (tmp_path / COMPLETE_MARKER).read_text().strip() == "k1"
    begin_stage(tmp_path)  # dvc repro -f, or a lost output: same inputs, run again
    assert not list(tmp_path.glob("*.pt"))
    assert sorted(p.name for p in tmp_path.glob("*.set-aside")) == [
        "pretrained.pt.set-aside",
        "scratch.pt.set-aside",
    ]
    assert not (tmp_path / COMPLETE_MARKER).exists()
    assert "forced re-run trains afresh" in capsys.readouterr().out
