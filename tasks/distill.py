"""Stage `distill`: uncertainty-matching KD from the domain teachers into a small student.

Trains every ablation arm with the same budget (DESIGN §7): student_only, tok_kd, unc_kd and
unc_kd_<teacher>; scores each on the test split of every domain; keeps the student of the arm
with the best target-domain dev WER; measures the teacher/student speed ratio at batch size 1.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.teacher_outputs import teacher_paths
from hubert_ee.models.checkpoint import load_ctc_model, load_encoder, save_ctc_model
from hubert_ee.models.student import parameter_count
from hubert_ee.plots import arm_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train.distill import weak_teacher_warnings
from hubert_ee.train.kd_arms import (
    best_arm,
    kd_data,
    relative_wer_change,
    speed_ratio,
    test_scores,
    train_kd_arms,
)
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dp, target, domains = params.distill, params.data.target_domain, params.data.teacher_domains
    vocab = CharVocab()
    teachers = {d: load_ctc_model(p) for d, p in teacher_paths(domains, args.teachers).items()}
    pretrained = load_encoder(args.encoder)
    data = kd_data(args.manifests, args.teacher_outputs, domains, target, dp.use_unlabeled, vocab)
    dev = domain_split(args.manifests, "dev", target, vocab)
    tests = {
        d: domain_split(args.manifests, "test", d, vocab)
        for d in [*params.data.teacher_domains, params.data.target_domain]
    }
    metrics: dict = {"wer": {}, "cer": {}, "dev_wer": {}}
    # what each teacher can teach: its own greedy WER on the target's dev split
    metrics["teacher_dev_wer"] = {
        d: round(test_scores(t, {target: dev}, dp.eval_batch_seconds)["wer"][target], 5)
        for d, t in teachers.items()
    }
    kd = train_kd_arms(
        dp, params.seed, domains, pretrained, data, dev, tests, Path(args.state), args.stage_key,
        lambda m, step: tracker.log_metrics(m, step=step),
    )  # fmt: skip
    metrics.update(wer=kd.wer, cer=kd.cer, dev_wer=kd.dev_wer)
    best = best_arm(kd.dev_wer)  # chosen on dev, not test
    warnings = weak_teacher_warnings(metrics["teacher_dev_wer"], kd.dev_wer, target)
    for w in warnings:
        print(f"WARNING: {w}")
    metrics["warnings"] = warnings
    student, teacher = kd.students[best], next(iter(teachers.values()))
    metrics.update(
        {
            "best_arm": best,
            "params_student": parameter_count(student),
            "params_teacher": parameter_count(teacher),
            "param_ratio": round(parameter_count(teacher) / parameter_count(student), 3),
            **speed_ratio(teacher, student, tests[target], dp.speed_utterances, dp.speed_repeats),
        }
    )
    metrics["rel_wer_change"] = relative_wer_change(kd.wer, target)
    out = Path(args.out)
    save_ctc_model(student, out / "student.safetensors", {"arm": best, "domain": target})
    plots = Path(args.plots)
    plots.parent.mkdir(parents=True, exist_ok=True)
    with open(plots, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "domain", "wer"])
        for arm, per in kd.wer.items():
            for domain, v in per.items():
                w.writerow([arm, domain, v])
    arm_curves(
        {a: r.history for a, r in kd.results.items()},
        {a: r.evals for a, r in kd.results.items()},
        plots.with_suffix(".png"),
        f"distillation into the student ({target} dev)",
    )
    write_metrics(args.metrics, metrics, tracker, plots)
    print(
        f"student ({best}) in {out}/student.safetensors; {target} test WER per arm: "
        + ", ".join(f"{a} {m[target]:.3f}" for a, m in kd.wer.items())
        + f"; teacher/student speed {metrics['speed_ratio']}x"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--teachers", required=True, help="models/teachers (one folder per domain)")
    parser.add_argument("--teacher-outputs", required=True, help="data/teacher_outputs")
    parser.add_argument("--encoder", required=True, help="pretrained encoder (student init)")
    parser.add_argument("--manifests", default="data/prepared")
    parser.add_argument("--out", required=True, help="models/distill")
    parser.add_argument("--state", required=True, help="resume state directory")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True, help="WER per arm and domain (CSV + PNG)")
    run_stage(
        main,
        parser,
        "distill",
        ["seed", "data.teacher_domains", "data.target_domain", "distill"],
        inputs=["teachers", "teacher_outputs", "encoder", "manifests"],
    )
