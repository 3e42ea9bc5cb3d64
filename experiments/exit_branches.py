"""Which exit branch pays (issue 15, item 3): attention vs linear branches on one distilled
student, each trained by the `exits` stage's own code (`train_exits`, the workspace's params with
only `exits.branch` changed), then the `threshold_search` stage's own work on each
(`search_operating_point`: the sweep and choice on dev with measured speedups, the choice
reported on test next to the full student and the teacher).

The choice is made on dev: the branch whose chosen dev point has the higher measured speedup
(both within their own WER budget); test figures are reported, never used to choose. Each arm's
speedups are ratios against the full student timed interleaved in the same process.
Run in a workspace after `distill` (the default profile runs in the repo root):
  `python experiments/exit_branches.py --root .
      [--out experiments/results/exit_branches.json]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.decode.operating_point import search_operating_point
from hubert_ee.decode.teacher_outputs import teacher_paths
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import load_ctc_model
from hubert_ee.train.exit_training import train_exits


def load_teachers(root: Path, params) -> dict:
    paths = teacher_paths(params.data.teacher_domains, root / "models/teachers")
    return {d: load_ctc_model(p) for d, p in paths.items()}


def exits_then_search(params, ex, student, splits: dict, teachers: dict, state: Path, run_id: str,
                      on_log) -> tuple:  # fmt: skip
    """The `exits` stage's training of `student` with `ex`, then the `threshold_search` stage's
    sweep and test report at its threads: (exits run, sweep, metrics, training seconds)."""
    t0 = time.perf_counter()
    run = train_exits(
        ex, params.distill.uncertainty_samples, params.seed, student, splits, state, run_id, on_log
    )
    train_s = time.perf_counter() - t0
    torch.set_num_threads(params.threshold_search.threads or cpu_threads())
    sweep, metrics = search_operating_point(
        run.model, teachers, splits["dev"], splits["test"], params.threshold_search
    )
    return run, sweep, metrics, train_s


def arm(root: Path, params, branch: str, state: Path) -> dict:
    ex = params.exits.model_copy(update={"branch": branch})
    target = params.data.target_domain
    student = load_ctc_model(root / "models/distill/student.safetensors")
    splits = {
        s: domain_split(root / "data/prepared", s, target, student.vocab)
        for s in ("train", "dev", "test")
    }
    run, sweep, metrics, train_s = exits_then_search(
        params,
        ex,
        student,
        splits,
        load_teachers(root, params),
        state / branch / "last.pt",
        f"exit_branches:{branch}",
        lambda row: print(json.dumps({"branch": branch, **row}), flush=True),
    )
    pareto = [
        {k: r[k] for k in ("criterion", "threshold", "wer", "mean_exit_layer",
                           "speedup_flops", "speedup_measured")}
        for r in sweep.rows
    ]  # fmt: skip
    return {"exits": run.metrics(), "train_s": round(train_s, 1), "threshold_search": metrics,
            "dev_pareto": pareto}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--root", default=".", help="a workspace after `distill` (default profile: the repo root)"
    )
    ap.add_argument("--branches", nargs="+", default=["attention", "linear"])
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--params", default="params.yaml", help="the workspace's params, or these")
    args = ap.parse_args()
    root = Path(args.root)
    params = load_params(args.params)
    report: dict = {"root": str(root), "threads": cpu_threads(), "arms": {}}
    with tempfile.TemporaryDirectory() as state:
        for branch in args.branches:
            report["arms"][branch] = arm(root, params, branch, Path(state))
            emit(report, args.out, partial=True)

    def dev_speed(b: str) -> float:
        dev = report["arms"][b]["threshold_search"]["dev"]
        return dev["chosen_speedup_measured"] or 1.0

    report["chosen_on_dev"] = max(report["arms"], key=dev_speed)
    emit(report, args.out)


if __name__ == "__main__":
    main()
