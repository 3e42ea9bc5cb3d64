"""Per-shard work on a Dask cluster (issue 22, item 1): `orchestration.executor: dask` writes
the same feature and label stores, byte for byte, as the local pool of the smoke run."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ENV

from hubert_ee.parallel import Executor, run_units

pytestmark = pytest.mark.slow


def _digests(store: Path) -> dict[str, str]:
    return {
        str(f.relative_to(store)): hashlib.md5(f.read_bytes()).hexdigest()
        for f in sorted(store.rglob("*"))
        if f.is_file()
    }


def _square(x: int) -> int:
    return x * x


def test_every_executor_runs_every_unit_once():
    jobs = list(range(7))
    for ex in (Executor("local", 1), Executor("local", 2), Executor("dask", 2)):
        assert sorted(run_units(_square, jobs, ex)) == [x * x for x in jobs], ex
    assert list(run_units(_square, [], Executor("dask", 2))) == []


def test_dask_and_local_pool_write_identical_feature_and_label_stores(smoke_ws, tmp_path):
    p = yaml.safe_load((smoke_ws / "params.yaml").read_text())
    p["num_workers"] = 2
    p["orchestration"].update(executor="dask", dask_address=None)  # a 2-worker LocalCluster
    params = tmp_path / "dask.yaml"
    params.write_text(yaml.safe_dump(p))
    common = ["--params", str(params), "--manifests", "data/prepared"]
    out = tmp_path / "out"
    stages = [
        ["tasks.features", "--iteration", "1", "--out", f"{out}/features/iter1"],
        ["tasks.kmeans", "--iteration", "1", "--features", f"{out}/features/iter1",
         "--out", f"{out}/labels/iter1"],
        ["tasks.features", "--iteration", "2", "--checkpoint",
         "models/pretrain_iter1/encoder.safetensors", "--out", f"{out}/features/iter2"],
        ["tasks.kmeans", "--iteration", "2", "--features", f"{out}/features/iter2",
         "--out", f"{out}/labels/iter2"],
    ]  # fmt: skip
    for i, stage in enumerate(stages):
        metrics = ["--metrics", str(tmp_path / f"m{i}.json")]
        proc = subprocess.run(
            [sys.executable, "-m", *stage, *common, *metrics], cwd=smoke_ws, capture_output=True,
            text=True, env={**ENV, "HUBERT_EE_TRACKING": "off"},  # not in the smoke run's MLflow
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for store in ("features/iter1", "labels/iter1", "features/iter2", "labels/iter2"):
        local, dask = _digests(smoke_ws / "data" / store), _digests(out / store)
        assert len(local) > 4 and dask == local, store
