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


def _worker_threads() -> dict[str, str]:
    """Under pytest-xdist, each worker's stages get an equal share of the cores
    (`hubert_ee.device.cpu_threads` reads OMP_NUM_THREADS): N workers that each ran every stage
    on all cores would oversubscribe the machine N times."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1 or "OMP_NUM_THREADS" in os.environ:
        return {}
    from hubert_ee.device import cpu_threads  # OMP_NUM_THREADS is unset here: the CPU set

    return {"OMP_NUM_THREADS": str(max(1, cpu_threads() // workers))}


ENV = {
    **os.environ,
    **_worker_threads(),
    "DVC_NO_ANALYTICS": "1",
    "PATH": f"{BIN}:{os.environ['PATH']}",
}


def pytest_configure(config) -> None:
    if threads := _worker_threads():
        import torch

        os.environ.update(threads)  # stages that tests run in-process read it too
        torch.set_num_threads(int(threads["OMP_NUM_THREADS"]))


# The longest end-to-end files, longest first (their durations in a 2-worker CI run): `make
# test` hands files out in collection order (--no-loadscope-reorder), and one of these handed
# out last would leave the other workers idle while it runs.
LONGEST_FIRST = (
    "test_new_data.py",
    "test_faults.py",
    "test_deployment.py",
    "test_prepare_e2e.py",
    "test_w2v2_e2e.py",
    "test_executors.py",
    "test_dvc_experiments.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """The longest files first, then the other end-to-end (slow) files, then the unit tests."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        if item.path.name in LONGEST_FIRST:
            return LONGEST_FIRST.index(item.path.name)
        return len(LONGEST_FIRST) + (item.path not in slow_files)

    items.sort(key=rank)  # stable: the tests of a file stay together and in order


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
