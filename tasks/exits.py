"""Stage `exits`: early-exit branches on the distilled student (HuBERT-EE; DESIGN §8).

`exits.mode: two_stage` freezes the student and trains only the branches (optionally with KD
from the final layer); `joint` trains backbone and branches together (Σ CTC, λ = 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.models.checkpoint import load_ctc_model, save_early_exit_model
from hubert_ee.plots import table_with_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train.exit_training import train_exits
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    ex, target = params.exits, params.data.target_domain
    student = load_ctc_model(args.student)
    splits = {
        s: domain_split(args.manifests, s, target, student.vocab) for s in ("train", "dev", "test")
    }

    def log(row: dict) -> None:
        print(json.dumps(row), flush=True)
        tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    run = train_exits(
        ex,
        params.distill.uncertainty_samples,
        params.seed,
        student,
        splits,
        Path(args.state) / "last.pt",
        args.stage_key,
        log,
    )
    out, plots, metrics = Path(args.out), Path(args.plots), run.metrics()
    save_early_exit_model(run.model, out / "model.safetensors", {"mode": ex.mode})
    table_with_curves(
        plots,
        ["layer", "wer_dev", "wer_test"],
        run.table(),
        {"branches": run.result},
        f"exit branches ({ex.mode}); dev WER = mean over branches",
    )
    write_metrics(args.metrics, metrics, tracker, plots)
    print(
        f"early-exit model in {out}/model.safetensors; {target} test WER per exit layer: "
        + ", ".join(f"{k}: {v}" for k, v in metrics["wer"].items())
    )


if __name__ == "__main__":
    parser = stage_parser(
        __doc__,
        "manifests",
        "state",
        "metrics",
        student="models/distill/student.safetensors",
        out="models/exits",
        plots="WER per exit layer (CSV + PNG)",
    )
    run_stage(
        main,
        parser,
        "exits",
        ["seed", "data.target_domain", "distill.uncertainty_samples", "exits"],
        inputs=["student", "manifests"],
        all_threads=True,
    )
