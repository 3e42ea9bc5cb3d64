"""Resumable training state: written atomically, read with `weights_only=True`.

The state holds the model, optimizer and scheduler, the RNG state, the data position
(epoch, batch) and a fingerprint of everything that defines the run: the stage's code version,
the content of its inputs and its params (see `hubert_ee.provenance`). A state is resumed only
by the run it belongs to, and only while that run has not completed:

- a state whose fingerprint differs (other code, params or input data) is set aside;
- an unreadable state (a truncated file) is set aside with the reason, never a traceback;
- once a stage has written its outputs it marks its state folder complete; a later run of the
  same stage (`dvc repro -f`, a lost output) sets the old states aside and trains afresh.

"Set aside" renames `<name>` to `<name>.set-aside` (the previous one is replaced), so nothing is
deleted that a user may still want, and training starts from step 0.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

COMPLETE_MARKER = "COMPLETE"


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)  # atomic: a kill leaves either the old or the new state, never half of one


def set_aside(path: Path, why: str) -> None:
    aside = path.with_name(path.name + ".set-aside")
    try:
        path.replace(aside)
    except FileNotFoundError:  # another rank moved it first
        return
    print(f"not resuming from {path}: {why}; moved to {aside.name}, training starts fresh")


def load_state(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The saved state if it belongs to this run, else None (the state is set aside)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a truncated file
        set_aside(path, f"unreadable resume state ({type(err).__name__}: {err})")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
        set_aside(path, "it was made by other code, params or input data")
        return None
    return state


def begin_stage(state_dir: Path) -> None:
    """Before a stage trains: if its last run completed, this is a forced or repeated run, and
    what it left is not to be resumed."""
    marker = state_dir / COMPLETE_MARKER
    if not marker.exists():
        return
    for state in sorted(state_dir.glob("*.pt")):
        set_aside(state, "the stage's last run completed (a forced re-run trains afresh)")
    marker.unlink(missing_ok=True)


def complete_stage(state_dir: Path, key: str) -> None:
    """After a stage wrote every output: its states must not be resumed by a later run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / COMPLETE_MARKER).write_text(key + "\n")
