"""`make push` / `make pull` (issue 22, item 3): a run's outputs go to a DVC remote and come
back, byte for byte, into a workspace that has lost its cache, outputs and resume states (a
fresh clone), after which `dvc repro` has nothing to train."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, UP_TO_DATE, copy_workspace, dvc_status, run

pytestmark = pytest.mark.slow
RESTORED = ("data", "models")  # every DVC-cached output of the pipeline lives under these


def _digests(ws: Path) -> dict[str, str]:
    return {
        str(f.relative_to(ws)): hashlib.md5(f.read_bytes()).hexdigest()
        for top in RESTORED
        for f in sorted((ws / top).rglob("*"))
        if f.is_file()
    }


def test_push_then_pull_restores_every_output_byte_for_byte(smoke_ws, tmp_path):
    ws = copy_workspace(smoke_ws, tmp_path / "smoke")
    remote = tmp_path / "remote"
    before = _digests(ws)
    assert any(k.startswith("models/") for k in before) and len(before) > 20

    make = ["make", "-C", str(ROOT), f"RUN_DIR={ws}", f"DVC_REMOTE={remote}"]
    run([*make, "push"], ROOT)
    assert any(remote.rglob("*")), "nothing was pushed"
    assert "hubert-ee" in (ws / ".dvc" / "config.local").read_text()  # not in the tracked config
    for gone in (".dvc/cache", "checkpoints", *RESTORED):
        shutil.rmtree(ws / gone)

    run([*make, "pull"], ROOT)
    fingerprint = "data/corpus.json"  # not cached: the `corpus` stage rewrites it on every repro
    assert _digests(ws) == {k: v for k, v in before.items() if k != fingerprint}
    out = run(["dvc", "repro"], ws)
    ran = [ln for ln in out.splitlines() if ln.startswith("Running stage")]
    assert ran == ["Running stage 'corpus':"], out
    assert _digests(ws) == before
    assert dvc_status(ws) == UP_TO_DATE
