"""The run report: which figures make the headline, and which way is better."""

from __future__ import annotations

import json
import subprocess

import pytest

from hubert_ee import run_report as rr
from hubert_ee.cli import main

RUN = {
    "kmeans_iter2": {"pnmi": 0.45, "pnmi_mfcc_same_k": 0.44, "domain_pnmi": 0.4, "k": 500},
    "finetune_read": {
        "wer": {"read": 0.3, "phone": 0.9},
        "wer_scratch": {"read": 0.35},
        "wer_lexicon": {"phone": 0.7},
        "wer_lm": {"phone": 0.68},
        "lr_choice": {"pretrained": {"chosen": 0.003}},  # not a headline figure
        "decoding": {"wer_beam": 0.29},
        "stopped_early": False,
    },
    "threshold_search": {"speedup_measured": 1.6, "wer_ee": 0.91, "criterion": "entropy"},
}


def test_headline_picks_the_figures_that_compare_runs():
    h = rr.headline(RUN)
    assert h == {
        "kmeans_iter2/pnmi": 0.45,
        "kmeans_iter2/domain_pnmi": 0.4,
        "kmeans_iter2/pnmi_mfcc_same_k": 0.44,
        "finetune_read/wer/phone": 0.9,
        "finetune_read/wer/read": 0.3,
        "finetune_read/wer_lexicon/phone": 0.7,
        "finetune_read/wer_lm/phone": 0.68,
        "finetune_read/wer_scratch/read": 0.35,
        "threshold_search/wer_ee": 0.91,
        "threshold_search/speedup_measured": 1.6,
    }
    assert list(h)[0].startswith("kmeans")  # report order follows the pipeline


def test_verdict_knows_which_way_is_better():
    assert rr.verdict("finetune_read/wer/read", 0.3, 0.4) == "better"
    assert rr.verdict("kmeans_iter2/domain_pnmi", 0.3, 0.4) == "better"
    assert rr.verdict("kmeans_iter2/pnmi", 0.3, 0.4) == "worse"
    assert rr.verdict("threshold_search/speedup_measured", 2.0, 1.6) == "better"
    assert rr.verdict("threshold_search/wer_ee", 0.5, 0.5) == "="
    assert rr.verdict("supernet/latency_rel", 0.4, 0.5) == "better"
    assert rr.verdict("supernet/params_subnet", 9e5, 8e5) == "worse"
    assert rr.verdict("supernet/dev_loss_chosen", 190.0, 191.0) == "better"


def test_table_keeps_figures_only_one_run_has():
    rows = rr.table({"a/wer": 0.2}, {"a/wer": 0.3, "b/pnmi": 0.4})
    assert rows == [["a/wer", "0.2", "0.3", "better"], ["b/pnmi", "—", "0.4", ""]]


def _write(root, run):
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    for stage, m in run.items():
        (root / "metrics" / f"{stage}.json").write_text(json.dumps(m))


def test_report_against_a_git_revision_and_markdown(tmp_path, capsys):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    _write(tmp_path, RUN)
    subprocess.run([*git, "-C", str(tmp_path), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "run 1"], check=True)
    better = json.loads(json.dumps(RUN))
    better["finetune_read"]["wer"]["read"] = 0.25
    _write(tmp_path, better)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "finetune_read.png").write_bytes(b"\x89PNG")
    out = tmp_path / "reports" / "run.md"
    main(["report", "--root", str(tmp_path), "--against", "HEAD", "--markdown", str(out)])
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("finetune_read/wer/read "))
    assert line.split() == ["finetune_read/wer/read", "0.25", "0.3", "better"]
    md = out.read_text()
    assert "| finetune_read/wer/read | 0.25 | 0.3 | better |" in md
    assert "![finetune_read](../plots/finetune_read.png)" in md
    with pytest.raises(SystemExit):  # a revision without metrics is a clear error
        main(["report", "--root", str(tmp_path), "--against", "no-such-rev"])
    assert "no metrics/ at git revision 'no-such-rev'" in capsys.readouterr().err


def test_a_tracked_run_is_one_parent_with_params_figures_and_exit_status(tmp_path, monkeypatch):
    import shutil
    import sys

    from conftest import ROOT
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("HUBERT_EE_TRACKING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    _write(tmp_path, RUN)
    monkeypatch.chdir(tmp_path)
    child = "import os; print(os.environ['HUBERT_EE_PARENT_RUN_ID'])"
    main(["run", "--root", str(tmp_path), "--", sys.executable, "-c", child])
    with pytest.raises(SystemExit) as failed:
        main(["run", "--root", str(tmp_path), "--", sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.value.code == 3
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("hubert-ee")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.status for r in runs] == ["FINISHED", "FAILED"]
    ok = runs[0]
    assert ok.data.params["profile"] == "default" and ok.data.tags["profile"] == "default"
    assert ok.data.params["finetune/max_batch_seconds"]  # the whole params, flattened
    assert ok.data.metrics["finetune_read/wer/read"] == pytest.approx(0.3)
    assert ok.data.tags["command"].endswith("print(os.environ['HUBERT_EE_PARENT_RUN_ID'])")
    assert "| kmeans_iter2/pnmi | 0.45 |" in (tmp_path / "run_report.md").read_text()


def test_report_reads_a_pipeline_run_or_the_champions_run_from_mlflow(
    tmp_path, monkeypatch, capsys
):
    import shutil
    import sys

    import mlflow
    from conftest import ROOT
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("HUBERT_EE_TRACKING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    _write(tmp_path, RUN)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):  # no registry yet: a clear error
        main(["report", "--root", str(tmp_path), "--champion"])
    assert "no champion in the registry" in capsys.readouterr().err
    child = "import os; print(os.environ['HUBERT_EE_PARENT_RUN_ID'])"
    main(["run", "--root", str(tmp_path), "--", sys.executable, "-c", child])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hubert-ee")
    (parent,) = client.search_runs([exp.experiment_id])
    _write(tmp_path, {"finetune_read": {"wer": {"read": 0.5}}})  # metrics/ moved on since
    capsys.readouterr()
    main(["report", "--root", str(tmp_path), "--run", parent.info.run_id])
    line = next(x for x in capsys.readouterr().out.splitlines() if "finetune_read/wer/read" in x)
    assert line.split() == ["finetune_read/wer/read", "0.3"]
    # the champion was registered by a `register` run nested under that pipeline run
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name="register", parent_run_id=parent.info.run_id) as reg:
        pass
    client.create_registered_model("hubert-ee")
    v = client.create_model_version("hubert-ee", (tmp_path / "m").as_uri(), reg.info.run_id)
    client.set_registered_model_alias("hubert-ee", "champion", v.version)
    main(["report", "--root", str(tmp_path), "--champion", "--against", str(tmp_path / "metrics")])
    out = capsys.readouterr().out
    assert f"champion v{v.version}" in out.splitlines()[0]
    line = next(x for x in out.splitlines() if x.startswith("finetune_read/wer/read "))
    assert line.split() == ["finetune_read/wer/read", "0.3", "0.5", "better"]
