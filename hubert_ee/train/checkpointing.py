"""Resumable training state: written atomically, read with `weights_only=True`.

The state holds the model, optimizer and scheduler, the RNG state, the data position
(epoch, batch) and a fingerprint of everything that defines the run; a state whose
fingerprint differs (changed params or data) is not resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)  # atomic: a kill leaves either the old or the new state, never half of one


def load_state(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The saved state if it belongs to this run, else None (with the reason printed)."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != expected_fingerprint:
        print(f"not resuming from {path}: it belongs to a different configuration or data")
        return None
    return state
