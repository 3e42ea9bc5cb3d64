"""DVC experiments on a profile workspace (issue 19, item 3): a git workspace
(`make workspace PROFILE=smoke GIT=1`) takes `dvc exp run -S key=value`, re-runs only what the
param feeds, and `dvc exp show` lists each experiment's param and headline figures."""

from __future__ import annotations

import csv
import io
import subprocess

import pytest
from conftest import ROOT, UP_TO_DATE, copy_workspace, dvc_status, run

pytestmark = pytest.mark.slow
KEY = "threshold_search.max_wer_increase_rel"
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def test_two_point_sweep_with_dvc_exp_in_a_git_workspace(smoke_ws, tmp_path):
    # the smoke run's outputs and cache, so that the sweep re-runs only what the param feeds
    ws = copy_workspace(smoke_ws, tmp_path / "smoke", "--git")
    assert (ws / "hubert_ee").resolve() == ROOT / "hubert_ee" and (ws / ".git").is_dir()
    run(["dvc", "config", "--unset", "core.no_scm"], ws)  # the copied repo was made --no-scm
    assert dvc_status(ws) == UP_TO_DATE
    subprocess.run([*GIT, "add", "-A"], cwd=ws, check=True)
    subprocess.run([*GIT, "commit", "-qm", "baseline"], cwd=ws, check=True)
    tracked = subprocess.run(["git", "ls-files"], cwd=ws, capture_output=True, text=True).stdout
    assert "dvc.lock" in tracked and "metrics/threshold_search.json" in tracked
    assert "data/prepared" not in tracked and "mlflow.db" not in tracked

    for value in (0.1, 0.2):
        out = run(["dvc", "exp", "run", "-n", f"rel{value}", "-S", f"{KEY}={value}"], ws)
        assert "Running stage 'threshold_search'" in out
        assert "Running stage 'distill'" not in out and "Running stage 'prepare'" not in out
    show = run(
        ["dvc", "exp", "show", "--csv", "--drop", ".*", "--keep",
         rf"^(Experiment|{KEY}|threshold_search/speedup_measured|distill/wer/student_only/phone)$"],
        ws,
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(show[show.index("Experiment") :])))
    by_name = {r["Experiment"]: r for r in rows}
    assert {"rel0.1", "rel0.2"} <= set(by_name)
    assert [float(by_name[n][KEY]) for n in ("rel0.1", "rel0.2")] == [0.1, 0.2]
    for name in ("rel0.1", "rel0.2"):
        assert float(by_name[name]["threshold_search/speedup_measured"]) > 0
        # distill did not re-run: the same figure in both experiments
        assert (
            by_name[name]["distill/wer/student_only/phone"]
            == rows[0]["distill/wer/student_only/phone"]
        )
    print(show)
