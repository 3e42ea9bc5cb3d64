from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubert_ee.config import Params, profile_params, validate_params

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}


# `dvc status` of a workspace where nothing changed: the source-data fingerprint (stage `corpus`,
# `always_changed`) is the one stage DVC runs on every repro
UP_TO_DATE = {"corpus": ["always changed"]}


def dvc_status(cwd: Path) -> dict:
    """`dvc status --json`: changed stage → what changed ({} would mean nothing to run)."""
    proc = subprocess.run(
        ["dvc", "status", "--json"], cwd=cwd, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def smoke_ws(tmp_path_factory) -> Path:
    """A smoke-profile workspace after one full `dvc repro` (shared by the end-to-end tests)."""
    from hubert_ee.profiles import materialize

    ws = materialize(ROOT, "smoke", tmp_path_factory.mktemp("ws") / "smoke")
    run(["dvc", "init", "--no-scm", "-q"], ws)
    run(["dvc", "repro"], ws)
    return ws


def copy_workspace(smoke_ws: Path, ws: Path, *flags: str) -> Path:
    """A copy of the smoke run (outputs, cache, lock) whose code links point at this checkout;
    `flags` go to `hubert-ee workspace` (e.g. --git)."""
    import shutil

    from hubert_ee.cli import main

    shutil.copytree(
        smoke_ws, ws, symlinks=True,
        ignore=shutil.ignore_patterns("hubert_ee", "tasks", "flows", "mlflow.db", "mlartifacts"),
    )  # fmt: skip
    main(["workspace", "smoke", str(ws), "--root", str(ROOT), *flags])
    return ws


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def smoke_raw() -> dict:
    return profile_params(ROOT, "smoke")


@pytest.fixture
def smoke_params(smoke_raw) -> Params:
    return validate_params(smoke_raw)
