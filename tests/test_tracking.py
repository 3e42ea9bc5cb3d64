"""MLflow tracking from stage processes, and what happens when the store is down."""

import json
import subprocess
import sys

import pytest

from hubert_ee.tracking import EXPERIMENT, PARENT_ENV, StageTracker, flatten
from hubert_ee.tracking_relay import SPOOL_ENV, SpoolRelay


def _client(uri):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a/b": 1, "a/c/d": 2, "e": 3}


@pytest.mark.parametrize("background", [False, True])
def test_stage_run_logs_params_metrics_and_nests_under_a_parent(tmp_path, monkeypatch, background):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(PARENT_ENV, raising=False)
    with StageTracker("pipeline") as parent:
        pass
    monkeypatch.setenv(PARENT_ENV, parent.run_id)
    report = tmp_path / "kmeans_iter1.json"
    report.write_text("{}")
    params = {"kmeans": {"k": 100, "fit_fraction": 0.1}}
    with StageTracker("kmeans_iter1", params, background=background) as t:
        t.log_artifact(report)
        t.log_metrics(
            {"pnmi": 0.3, "pnmi/read": 0.45, "nested": {"x": 1}, "label": "text is skipped"}
        )
        for step in (1, 2, 3):
            t.log_metrics({"train/loss": 4.0 - step}, step=step)
    client = _client(uri)
    run = client.get_run(t.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "kmeans_iter1"
    assert run.data.params == {"kmeans/k": "100", "kmeans/fit_fraction": "0.1"}
    assert run.data.metrics["pnmi/read"] == 0.45 and run.data.metrics["nested/x"] == 1.0
    assert "label" not in run.data.metrics
    assert [m.value for m in client.get_metric_history(t.run_id, "train/loss")] == [3.0, 2.0, 1.0]
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert [a.path for a in client.list_artifacts(t.run_id)] == ["kmeans_iter1.json"]
    assert len(client.search_runs([run.info.experiment_id])) == 2  # no stray run of a thread


@pytest.mark.parametrize("background", [False, True])
def test_failed_stage_marks_the_run_failed(tmp_path, monkeypatch, background):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(PARENT_ENV, raising=False)
    with pytest.raises(RuntimeError), StageTracker("prepare", background=background) as t:
        raise RuntimeError("boom")
    assert _client(uri).get_run(t.run_id).info.status == "FAILED"


@pytest.mark.parametrize("background", [False, True])
def test_store_down_warns_once_and_the_stage_goes_on(monkeypatch, capsys, background):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    with StageTracker("prepare", {"seed": 1}, background=background) as t:
        t.log_metrics({"x": 1.0})
        t.log_artifact(__file__)
    assert not t.active
    err = capsys.readouterr().err
    assert err.count("MLflow tracking unavailable for stage prepare") == 1
    assert "still written to the DVC metrics files" in err


def test_tracking_off(monkeypatch):
    monkeypatch.setenv("HUBERT_EE_TRACKING", "off")
    with StageTracker("prepare") as t:
        t.log_metrics({"x": 1})
    assert not t.active and t.run_id is None


def _spooled_stage_env(tmp_path, monkeypatch) -> tuple[str, str]:
    """A parent run in a fresh store, and the environment a relaying pipeline gives stages."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(PARENT_ENV, raising=False)
    monkeypatch.delenv(SPOOL_ENV, raising=False)
    with StageTracker("pipeline") as parent:
        pass
    monkeypatch.setenv(PARENT_ENV, parent.run_id)
    monkeypatch.setenv(SPOOL_ENV, str(tmp_path / "spool"))
    return uri, parent.run_id


def test_a_spooled_stage_reaches_mlflow_through_the_relay(tmp_path, monkeypatch):
    uri, parent = _spooled_stage_env(tmp_path, monkeypatch)
    report = tmp_path / "kmeans_iter1.json"
    report.write_text('{"pnmi": 0.3}')
    with SpoolRelay(tmp_path / "spool", uri, EXPERIMENT, interval=0.05):
        with StageTracker("kmeans_iter1", {"kmeans": {"k": 100}}, background=True) as t:
            for step in (1, 2, 3):
                t.log_metrics({"train/loss": 4.0 - step}, step=step)
            t.log_artifact(report)
            t.log_metrics({"pnmi": 0.3})
        report.write_text("rewritten after the stage ended")  # the relay sends what was logged
    assert t.run_id is None  # the stage never talked to MLflow
    client = _client(uri)
    (run,) = [r for r in client.search_runs([client.get_run(parent).info.experiment_id])
              if r.info.run_name == "kmeans_iter1"]  # fmt: skip
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params == {"kmeans/k": "100"} and run.data.metrics["pnmi"] == 0.3
    rid = run.info.run_id
    assert [m.value for m in client.get_metric_history(rid, "train/loss")] == [3.0, 2.0, 1.0]
    assert [m.step for m in client.get_metric_history(rid, "train/loss")] == [1, 2, 3]
    (art,) = client.list_artifacts(rid)
    local = client.download_artifacts(rid, art.path, str(tmp_path / "dl"))
    assert art.path == "kmeans_iter1.json" and open(local).read() == '{"pnmi": 0.3}'
    assert run.info.start_time <= run.info.end_time
    assert not any((tmp_path / "spool").iterdir())  # forwarded files are gone


def test_a_spooling_stage_process_never_imports_mlflow(tmp_path, monkeypatch):
    _spooled_stage_env(tmp_path, monkeypatch)
    code = (
        "import sys\n"
        "from hubert_ee.tracking import StageTracker\n"
        "with StageTracker('prepare', {'seed': 1}, background=True) as t:\n"
        "    t.log_metrics({'hours': 1.5})\n"
        "print('mlflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    (spooled,) = (tmp_path / "spool").glob("*-prepare.jsonl")
    events = [json.loads(line)["event"] for line in spooled.read_text().splitlines()]
    assert events == ["start", "metrics", "end"]


def test_a_stage_that_died_is_ended_killed_and_a_store_that_is_down_keeps_the_spool(
    tmp_path, monkeypatch, capsys
):
    uri, _ = _spooled_stage_env(tmp_path, monkeypatch)
    t = StageTracker("distill", {"seed": 1})
    t.__enter__()
    t.log_metrics({"train/loss": 2.0}, step=1)  # ... and the process is killed: no end event
    down = SpoolRelay(tmp_path / "spool", "http://127.0.0.1:9", EXPERIMENT)
    down.drain(final=True)
    assert down.failed and "relay stopped" in capsys.readouterr().err
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1  # kept for the next relay
    SpoolRelay(tmp_path / "spool", uri, EXPERIMENT).drain(final=True)
    client = _client(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(EXPERIMENT).experiment_id], "attributes.run_name = 'distill'"
    )
    assert [r.info.status for r in runs] == ["KILLED"] and runs[0].data.metrics["train/loss"] == 2.0
    assert not list((tmp_path / "spool").glob("*.jsonl"))
