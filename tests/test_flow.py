"""The Prefect flow is a second door to dvc.yaml's DAG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ENV, ROOT, UP_TO_DATE, dvc_status

from flows.pipeline import stage_graph, topological


def _path_list(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def _expanded_stages(root: Path) -> dict[str, dict]:
    """dvc.yaml's stages with `foreach` expanded over its params list (finetune@read, ...)."""
    raw = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    out = {}
    for name, s in raw.items():
        if "foreach" not in s:
            out[name] = s
            continue
        value = params
        for key in s["foreach"].strip("${}").split("."):
            value = value[key]
        for item in value:
            text = yaml.safe_dump(s["do"]).replace("${item}", str(item))
            out[f"{name}@{item}"] = yaml.safe_load(text)
    return out


def test_every_dvc_stage_is_one_task_with_the_same_upstream_stages():
    stages = _expanded_stages(ROOT)
    outs = {
        name: _path_list(s.get("outs")) + _path_list(s.get("metrics")) + _path_list(s.get("plots"))
        for name, s in stages.items()
    }
    expected = {}
    for name, s in stages.items():
        deps = [Path(d) for d in _path_list(s.get("deps"))]
        expected[name] = {
            other
            for other, paths in outs.items()
            if any(
                d == Path(p) or Path(p) in d.parents or d in Path(p).parents
                for d in deps
                for p in paths
            )
        }
    graph = stage_graph(ROOT)
    assert graph == expected
    order = topological(graph)
    assert sorted(order) == sorted(stages)
    assert all(order.index(u) < order.index(s) for s in graph for u in graph[s])


def test_cycle_is_reported():
    with pytest.raises(ValueError, match="cycle"):
        topological({"a": {"b"}, "b": {"a"}})


@pytest.mark.slow
def test_flow_after_dvc_repro_recomputes_nothing_and_records_a_parent_run(smoke_ws, tmp_path):
    env = {
        **ENV,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "flows.pipeline", "--root", str(smoke_ws), "--no-register"],
        cwd=smoke_ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = dict(
        line.split(": ")
        for line in proc.stdout.splitlines()
        if line.count(": ") == 1 and not line.startswith(" ")
    )
    stages = _expanded_stages(smoke_ws)
    expected = {s: "ran" if s in UP_TO_DATE else "skipped" for s in stages}
    assert {s: outcomes.get(s) for s in stages} == expected
    assert dvc_status(smoke_ws) == UP_TO_DATE

    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{smoke_ws}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hubert-ee")
    # the flow's parent: other tests sharing smoke_ws may have left `hubert-ee run` parents
    parents = [
        r
        for r in client.search_runs(
            [exp.experiment_id], filter_string="attributes.run_name = 'pipeline'"
        )
        if "prefect_flow_run_id" in r.data.tags
    ]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    tags = parents[0].data.tags
    assert (
        tags["prefect_flow_run_id"]
        and len(tags["dvc_lock_sha256"]) == 64
        and "git_revision" in tags
    )
    assert os.path.exists(smoke_ws / "mlflow.db")
    # the headline figures are on the parent run even though every stage was skipped
    pnmi = json.loads((smoke_ws / "metrics" / "kmeans_iter1.json").read_text())["pnmi"]
    assert parents[0].data.metrics["kmeans_iter1/pnmi"] == pytest.approx(pnmi)
    assert any(k.startswith("threshold_search/") for k in parents[0].data.metrics)
    assert "| kmeans_iter1/pnmi |" in (smoke_ws / "run_report.md").read_text()
