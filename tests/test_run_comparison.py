"""Two pipeline runs, one param changed: the MLflow parent runs are what a user compares."""

from __future__ import annotations

import pytest
import yaml
from conftest import BIN, run

from hubert_ee import run_report as rr
from hubert_ee.run_tracking import profile_of


def _set_param(path, section: str, key: str, value) -> None:
    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    params = yaml.safe_load(text)
    params[section][key] = value
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_two_runs_with_one_param_changed_compare_in_mlflow(smoke_ws):
    from mlflow.tracking import MlflowClient

    assert profile_of(smoke_ws) == "smoke"
    params_path = smoke_ws / "params.yaml"
    original = params_path.read_text()
    old = yaml.safe_load(original)["threshold_search"]["max_wer_increase_rel"]
    try:
        run([str(BIN / "hubert-ee"), "run", "--", "dvc", "repro"], smoke_ws)
        _set_param(params_path, "threshold_search", "max_wer_increase_rel", old + 0.05)
        out = run([str(BIN / "hubert-ee"), "run", "--", "dvc", "repro"], smoke_ws)
        assert "Running stage 'threshold_search'" in out  # only what the param feeds re-ran
        assert "Running stage 'distill'" not in out
    finally:
        params_path.write_text(original)
        run(["dvc", "repro"], smoke_ws)

    client = MlflowClient(f"sqlite:///{smoke_ws}/mlflow.db")
    exp = client.get_experiment_by_name("hubert-ee")
    parents = client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.run_name = 'pipeline' and tags.command = 'dvc repro'",
        order_by=["attributes.start_time DESC"],
    )
    second, first = parents[:2]
    key = "threshold_search/max_wer_increase_rel"
    assert float(first.data.params[key]) == pytest.approx(old)
    assert float(second.data.params[key]) == pytest.approx(old + 0.05)
    assert first.data.params["profile"] == second.data.params["profile"] == "smoke"
    assert first.data.tags["profile"] == "smoke" and len(first.data.tags["dvc_lock_sha256"]) == 64
    headline = rr.headline(rr.read_metrics(smoke_ws / "metrics"))
    assert headline and set(headline) <= set(first.data.metrics) & set(second.data.metrics)
    # the first run skipped every stage and still holds every figure; the second nests the
    # stages it ran: threshold_search, and summary, which reads its metrics
    nested = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{second.info.run_id}'"
    )
    assert {r.info.run_name for r in nested} == {"threshold_search", "summary"}
    assert (smoke_ws / "run_report.md").read_text().count("| threshold_search/") >= 2
