"""MLflow tracking from stage processes, and what happens when the store is down."""

import pytest

from hubert_ee.tracking import PARENT_ENV, StageTracker, flatten


def _client(uri):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a/b": 1, "a/c/d": 2, "e": 3}


def test_stage_run_logs_params_metrics_and_nests_under_a_parent(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(PARENT_ENV, raising=False)
    with StageTracker("pipeline") as parent:
        pass
    monkeypatch.setenv(PARENT_ENV, parent.run_id)
    with StageTracker("kmeans_iter1", {"kmeans": {"k": 100, "fit_fraction": 0.1}}) as t:
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


def test_failed_stage_marks_the_run_failed(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(PARENT_ENV, raising=False)
    with pytest.raises(RuntimeError), StageTracker("prepare") as t:
        raise RuntimeError("boom")
    assert _client(uri).get_run(t.run_id).info.status == "FAILED"


def test_store_down_warns_once_and_the_stage_goes_on(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    with StageTracker("prepare", {"seed": 1}) as t:
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
