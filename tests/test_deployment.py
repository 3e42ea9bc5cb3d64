"""Issue 8 end to end: a real Prefect server, the served deployment, `prefect deployment run`.

Everything runs on 127.0.0.1 in a fresh smoke workspace; the processes the test starts are
stopped by PID (their whole process group) also when an assertion fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import ENV, ROOT, UP_TO_DATE, dvc_status, run

pytestmark = pytest.mark.slow
FLOW = "hubert-ee-pipeline"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _healthy(url: str) -> bool:
    return _get_ok(f"{url}/health")


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def hubert_ee_load(ws: Path):
    import hubert_ee

    return hubert_ee.load(ws / "models/exits")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _stage_runs(ws: Path) -> tuple[list, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{ws}/mlflow.db")
    exp = client.get_experiment_by_name("hubert-ee")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.info.run_name == "pipeline"]
    return parents, runs


def test_served_deployment_runs_the_dag_registers_and_is_idempotent(tmp_path):
    from hubert_ee.profiles import materialize

    ws = materialize(ROOT, "smoke", tmp_path / "ws")
    run(["dvc", "init", "--no-scm", "-q"], ws)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **ENV,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen] = []
    t_start = time.time()
    try:
        server = subprocess.Popen(
            [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=open(tmp_path / "server.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs.append(server)
        _wait(lambda: _healthy(api), 180, "the Prefect server", server)
        served = subprocess.Popen(
            [sys.executable, "-m", "flows.pipeline", "serve", "--root", str(ws), "--name", "it"],
            env=env, cwd=ROOT, stdout=open(tmp_path / "serve.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs.append(served)

        def deployed() -> bool:
            p = subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "inspect", f"{FLOW}/it"],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            return p.returncode == 0

        _wait(deployed, 120, "the served deployment", served)

        def trigger() -> str:
            p = subprocess.run(
                [str(bin_dir / "prefect"), "deployment", "run", f"{FLOW}/it", "--watch",
                 "--watch-timeout", "900"],
                env=env, capture_output=True, text=True, timeout=1000,
            )  # fmt: skip
            out = p.stdout + p.stderr
            assert p.returncode == 0 and "Completed" in out, (
                out + (tmp_path / "serve.log").read_text()
            )
            return out

        trigger()
        stages = [s for s in yaml.safe_load((ws / "dvc.yaml").read_text())["stages"]]
        assert dvc_status(ws) == UP_TO_DATE
        parents, runs = _stage_runs(ws)
        assert len(parents) == 1
        nested = [
            r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
        ]
        names = sorted(r.info.run_name for r in nested)
        expanded = [n for n in names if n != "register"]
        assert len(expanded) == len(set(expanded))  # every stage ran exactly once
        assert {"prepare", "distill", "exits", "threshold_search", "register"} <= set(names)
        assert len(expanded) >= len(stages)  # foreach stages expand to one run per item
        ts = json.loads((ws / "metrics/threshold_search.json").read_text())
        for key in ("criterion", "wer_full", "wer_ee", "speedup_measured", "speedup_flops",
                    "mean_exit_layer", "wer_teacher", "speedup_teacher_to_ee"):  # fmt: skip
            assert key in ts
        # The DESIGN §11 metrics reached MLflow too, on each stage's nested run.
        by_name = {r.info.run_name: r.data.metrics for r in nested}
        contract = {
            "prepare": ["hours/train/phone", "rejected"],
            "kmeans_iter1": ["pnmi", "phone_purity", "cluster_purity", "pnmi/read"],
            "pretrain_iter2": ["loss", "masked_acc", "steps", "audio_seconds_per_s"],
            "finetune@read": ["wer/read", "wer/phone", "cer/lecture", "wer_scratch/read", "params",
                              "wer_lexicon/phone", "cer_lexicon/read", "wer_lm/phone",
                              "cer_lm/read"],
            "supernet": ["params_subnet", "params_supernet", "budget_ms", "latency_rel"],
            "distill": ["wer/student_only/phone", "wer/unc_kd/phone", "wer/unc_kd_read/read",
                        "params_student", "params_teacher", "speed_ratio"],
            "threshold_search": ["wer_full", "wer_ee", "speedup_measured", "speedup_flops",
                                 "mean_exit_layer", "wer_teacher", "speedup_teacher_to_ee"],
        }  # fmt: skip
        for stage, keys in contract.items():
            assert set(keys) <= set(by_name[stage]), (stage, sorted(by_name[stage]))
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{ws}/mlflow.db")
        champion = client.get_model_version_by_alias("hubert-ee", "champion")
        versions = client.search_model_versions("name='hubert-ee'")
        assert len(versions) == 1 and champion.version == versions[0].version

        trigger()  # nothing changed: every stage skipped, nothing registered or promoted
        parents2, runs2 = _stage_runs(ws)
        assert len(parents2) == 2
        new_nested = [
            r
            for r in runs2
            if r.data.tags.get("mlflow.parentRunId") == parents2[0].info.run_id
            or r.data.tags.get("mlflow.parentRunId") == parents2[1].info.run_id
        ]
        assert len(new_nested) == len(nested)  # the second pipeline run started no stage
        assert len(client.search_model_versions("name='hubert-ee'")) == 1
        assert (
            client.get_model_version_by_alias("hubert-ee", "champion").version == champion.version
        )
        print(f"deployment integration test: {time.time() - t_start:.0f} s")

        # The champion answers HTTP requests through `mlflow models serve`.
        from hubert_ee.data.manifest import load_split

        test = load_split(ws / "data/prepared", "test")
        wav = str(ws / test[test["domain"] == "phone"]["path"].iloc[0])
        expected = hubert_ee_load(ws).transcribe(wav)[0].text
        mport = _free_port()
        serving = subprocess.Popen(
            [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/hubert-ee@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mport)],
            env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{ws}/mlflow.db"}, cwd=ws,
            stdout=open(tmp_path / "mlflow_serve.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        procs.append(serving)
        url = f"http://127.0.0.1:{mport}"
        _wait(lambda: _get_ok(f"{url}/ping"), 180, "mlflow models serve", serving)
        missing = str(tmp_path / "missing.wav")  # one bad input must not fail the request
        body = json.dumps({"dataframe_records": [{"path": wav}, {"path": missing}]}).encode()
        req = urllib.request.Request(
            f"{url}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())
        good, bad = answer["predictions"]
        assert good == {"text": expected, "error": None}
        assert bad["text"] is None and "no such file or folder" in bad["error"]
    finally:
        for p in reversed(procs):
            _stop(p)
