"""benchmarks/gpu_profile.py: the DAG runner for a GPU box without DVC."""

import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_profile  # noqa: E402


def test_stages_come_in_dvc_yaml_order_with_foreach_expanded_as_dvc_does(root):
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    params = {"data": {"teacher_domains": ["read", "lecture"]}}
    stages = gpu_profile.expand_stages(dvc, params)
    names = [n for n, _ in stages]
    assert names.index("pretrain_iter2") < names.index("finetune@read") < names.index("distill")
    assert names[names.index("finetune@read") + 1] == "finetune@lecture"
    cmd = dict(stages)["finetune@lecture"]
    assert "--domain lecture" in cmd and "${item}" not in cmd
    assert "tasks.finetune" in gpu_profile.stage_modules(stages)


def test_preflight_names_what_is_missing():
    assert gpu_profile.preflight(["json"]) == [] or all(
        p.startswith("beam search") for p in gpu_profile.preflight(["json"])
    )
    problems = gpu_profile.preflight(["hubert_ee_no_such_module"])
    assert any(p.startswith("hubert_ee_no_such_module: ModuleNotFoundError") for p in problems)


def _workspace(tmp_path: Path, stages: dict) -> Path:
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return tmp_path


def test_done_stages_are_skipped_and_a_failure_stops_the_dag(tmp_path):
    ok = "python -c print(1)"
    ws = _workspace(
        tmp_path,
        {"a": {"cmd": ok}, "b": {"cmd": "python -c import(sys)"}, "c": {"cmd": ok}},
    )
    log = gpu_profile.Log(tmp_path / "log.txt")
    seen = []
    rows = gpu_profile.run_dag(ws, {}, time.time() + 60, {}, log, None, seen.append)
    assert [(r["stage"], r["status"]) for r in rows] == [("a", "ok"), ("b", "failed")]
    assert "SyntaxError" in rows[1]["tail"]
    # b fixed: a is not run again, b and c are
    ws = _workspace(tmp_path, {"a": {"cmd": ok}, "b": {"cmd": ok}, "c": {"cmd": ok}})
    rows = gpu_profile.run_dag(ws, {}, time.time() + 60, {}, log, None, seen.append)
    assert [r["status"] for r in rows] == ["done earlier", "ok", "ok"]


def test_a_changed_command_runs_again_and_the_deadline_stops_before_starting(tmp_path):
    log = gpu_profile.Log(tmp_path / "log.txt")
    ws = _workspace(tmp_path, {"a": {"cmd": "python -c print(1)"}})
    gpu_profile.run_dag(ws, {}, time.time() + 60, {}, log, None, lambda rows: None)
    ws = _workspace(tmp_path, {"a": {"cmd": "python -c print(2)"}})
    rows = gpu_profile.run_dag(ws, {}, time.time() + 5, {}, log, None, lambda rows: None)
    assert rows == [{"stage": "a", "status": "not started (deadline)"}]
