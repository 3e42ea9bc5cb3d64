"""Stage `exits`: early-exit branches on the distilled student (HuBERT-EE; DESIGN §8).

`exits.mode: two_stage` freezes the student and trains only the branches (optionally with KD
from the final layer); `joint` trains backbone and branches together (Σ CTC, λ = 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.device import compute_device
from hubert_ee.models.checkpoint import load_ctc_model, save_early_exit_model
from hubert_ee.models.early_exit import EarlyExitModel
from hubert_ee.models.student import parameter_count
from hubert_ee.plots import arm_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train.exit_training import (
    exit_config,
    exit_loop_config,
    exit_objective,
    exit_scores,
    mean_exit_wer,
)
from hubert_ee.train.finetune import finetune
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ex, target = params.exits, params.data.target_domain
    student = load_ctc_model(args.student)
    student.train()
    vocab = student.vocab
    torch.manual_seed(params.seed)
    model = EarlyExitModel(student, exit_config(ex, student.encoder.cfg.num_layers))
    if ex.mode == "two_stage":
        model.freeze_backbone()
    train = domain_split(args.manifests, "train", target, vocab)
    dev = domain_split(args.manifests, "dev", target, vocab)
    test = domain_split(args.manifests, "test", target, vocab)
    cfg = exit_loop_config(ex, params.distill.uncertainty_samples, params.seed)

    def log(row: dict) -> None:
        print(json.dumps(row), flush=True)
        tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    print(f"training exit branches after layers {list(model.cfg.layers)} ({ex.mode})")
    result = finetune(
        model, train, dev, cfg, Path(args.state) / "last.pt", args.stage_key,
        compute_device(), log,
        objective=exit_objective(ex.mode, ex.kd_weight, ex.kd_temperature, cfg.uncertainty_samples),
        score_dev=mean_exit_wer(ex.eval_batch_seconds),
    )  # fmt: skip
    model.eval()
    dev_s = exit_scores(model, dev, ex.eval_batch_seconds)
    test_s = exit_scores(model, test, ex.eval_batch_seconds)
    branch_params = sum(parameter_count(b) for b in model.branches.values())
    metrics = {
        "mode": ex.mode,
        "exit_layers": list(model.cfg.layers),
        "num_layers": model.num_layers,
        "wer_dev": {str(k): round(v["wer"], 5) for k, v in dev_s.items()},
        "wer": {str(k): round(v["wer"], 5) for k, v in test_s.items()},
        "cer": {str(k): round(v["cer"], 5) for k, v in test_s.items()},
        "params_branches": branch_params,
        "params_student": parameter_count(model.student),
        "steps": result.steps,
        "best_step": result.best["step"],
    }
    out = Path(args.out)
    save_early_exit_model(model, out / "model.safetensors", {"mode": ex.mode})
    plots = Path(args.plots)
    plots.parent.mkdir(parents=True, exist_ok=True)
    with open(plots, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["layer", "wer_dev", "wer_test"])
        for layer in dev_s:
            w.writerow([layer, round(dev_s[layer]["wer"], 5), round(test_s[layer]["wer"], 5)])
    arm_curves({"branches": result.history}, {"branches": result.evals}, plots.with_suffix(".png"),
               f"exit branches ({ex.mode}); dev WER = mean over branches")  # fmt: skip
    write_metrics(args.metrics, metrics, tracker, plots)
    print(
        f"early-exit model in {out}/model.safetensors; {target} test WER per exit layer: "
        + ", ".join(f"{k}: {v}" for k, v in metrics["wer"].items())
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--student", required=True, help="models/distill/student.safetensors")
    parser.add_argument("--manifests", default="data/prepared")
    parser.add_argument("--out", required=True, help="models/exits")
    parser.add_argument("--state", required=True, help="resume state directory")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True, help="WER per exit layer (CSV + PNG)")
    run_stage(
        main,
        parser,
        "exits",
        ["seed", "data.target_domain", "distill.uncertainty_samples", "exits"],
        inputs=["student", "manifests"],
    )
