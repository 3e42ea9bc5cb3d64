"""Stage `distill`: uncertainty-matching KD from the domain teachers into a small student.

Trains every ablation arm with the same budget (DESIGN §7): student_only, tok_kd, unc_kd and
unc_kd_<teacher>; scores each on the test split of every domain; keeps the student of the arm
with the best target-domain dev WER; measures the teacher/student speed ratio at batch size 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import pandas as pd
import torch

from hubert_ee.config import Params
from hubert_ee.data.manifest import load_split
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.decode.vocab import CharVocab
from hubert_ee.device import compute_device
from hubert_ee.features.store import FrameStore
from hubert_ee.metrics.speed import interleaved_medians
from hubert_ee.models.checkpoint import load_ctc_model, load_encoder, save_ctc_model
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import init_from_teacher, parameter_count, student_config
from hubert_ee.plots import arm_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train.asr_data import ASRData, domain_split
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.distill import (
    KDConfig,
    KDData,
    collate_kd,
    kd_objective,
    weak_teacher_warnings,
)
from hubert_ee.train.finetune import FinetuneConfig, FinetuneResult, finetune
from tasks.common import run_stage, stage_parser, write_metrics
from tasks.teacher_outputs import distill_splits, teacher_paths


def arms(params: Params) -> dict[str, KDConfig]:
    """The ablation of DESIGN §7 / §11, each arm a KDConfig over all teachers."""
    dp, teachers = params.distill, params.data.teacher_domains
    k = len(teachers)
    if isinstance(dp.teacher_weights, list):
        if len(dp.teacher_weights) != k:
            raise ValueError(
                f"distill.teacher_weights has {len(dp.teacher_weights)} values for {k} teachers"
            )
        total = sum(dp.teacher_weights)
        weights = tuple(w / total for w in dp.teacher_weights)
    else:
        weights = tuple([1.0 / k] * k)
    samples = dp.uncertainty_samples if dp.uncertainty else 0
    per_utt = dp.teacher_weights == "uncertainty"
    loss = {"uncertainty_loss": dp.uncertainty_loss}
    out = {
        "student_only": KDConfig(0.0, 0.0, dp.temperature, weights, samples, **loss),
        "tok_kd": KDConfig(dp.alpha, 0.0, dp.temperature, weights, samples, per_utt, **loss),
        "unc_kd": KDConfig(dp.alpha, dp.beta, dp.temperature, weights, samples, per_utt, **loss),
    }
    if dp.single_teacher_arms and k > 1:
        for i, d in enumerate(teachers):
            one = tuple(1.0 if j == i else 0.0 for j in range(k))
            out[f"unc_kd_{d}"] = KDConfig(dp.alpha, dp.beta, dp.temperature, one, samples, **loss)
    return out


def new_student(params: Params, pretrained: HubertEncoder, vocab: CharVocab) -> CTCModel:
    cfg = student_config(pretrained.cfg, params.distill.student)
    torch.manual_seed(params.seed)
    encoder = HubertEncoder(cfg)
    if params.distill.init_from_pretrained:
        init_from_teacher(encoder, pretrained)
    return CTCModel(encoder, vocab, params.distill.uncertainty, params.distill.final_dropout)


def kd_data(params: Params, args: argparse.Namespace, vocab: CharVocab) -> dict[str, KDData]:
    """'labeled' (target train) and 'all' (+ target unlabeled, when used) with teacher frames."""
    target = params.data.target_domain
    frames: dict[str, pd.DataFrame] = {}
    for split in distill_splits(params):
        df = load_split(args.manifests, split)
        rows = df[df["domain"] == target].copy()
        if split != "train":
            rows["text"] = ""  # teacher targets only
        frames[split] = rows
    stores = [
        [FrameStore(Path(args.teacher_outputs) / d / s) for s in frames]
        for d in params.data.teacher_domains
    ]
    labeled = KDData(frames["train"], vocab, stores)
    both = KDData(pd.concat(frames.values(), ignore_index=True), vocab, stores)
    return {"labeled": labeled, "all": both}


def test_scores(model: CTCModel, tests: dict[str, ASRData], batch_s: float) -> dict[str, dict]:
    out: dict[str, dict] = {"wer": {}, "cer": {}}
    for domain, data in tests.items():
        s = greedy_scores(emissions(model, data, batch_s, compute_device()), data)
        out["wer"][domain], out["cer"][domain] = round(s["wer"], 5), round(s["cer"], 5)
    return out


def speed_ratio(
    teacher: CTCModel, student: CTCModel, data: ASRData, n: int, repeats: int
) -> dict[str, float]:
    """Median time for n target-test utterances at batch size 1, teacher vs student."""
    waves = [data.wave(i)[None] for i in range(min(n, len(data)))]
    teacher.cpu().eval()  # latency on the CPU at batch 1 (hubert_ee/device.py)
    student.cpu().eval()
    med = interleaved_medians(
        {"teacher": lambda w: teacher(w), "student": lambda w: student(w)},
        waves,
        repeats,
        threads=max(1, os.cpu_count() or 1),
    )
    audio_s = sum(w.shape[1] for w in waves) / 16000
    return {
        "speed_ratio": round(med["teacher"] / med["student"], 3),
        "teacher_rtf": round(med["teacher"] / audio_s, 5),
        "student_rtf": round(med["student"] / audio_s, 5),
    }


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    dp, target = params.distill, params.data.target_domain
    vocab = CharVocab()
    teachers = {d: load_ctc_model(p) for d, p in teacher_paths(params, args.teachers).items()}
    pretrained = load_encoder(args.encoder)
    data = kd_data(params, args, vocab)
    dev = domain_split(args.manifests, "dev", target, vocab)
    tests = {
        d: domain_split(args.manifests, "test", d, vocab)
        for d in [*params.data.teacher_domains, params.data.target_domain]
    }
    cfg = FinetuneConfig.from_section(params.distill, params.seed)
    results: dict[str, FinetuneResult] = {}
    students: dict[str, CTCModel] = {}
    metrics: dict = {"wer": {}, "cer": {}, "dev_wer": {}}
    # what each teacher can teach: its own greedy WER on the target's dev split
    metrics["teacher_dev_wer"] = {
        d: round(test_scores(t, {target: dev}, dp.eval_batch_seconds)["wer"][target], 5)
        for d, t in teachers.items()
    }
    for arm, kd in arms(params).items():
        student = new_student(params, pretrained, vocab)
        train = data["labeled"] if kd.alpha == 0 or not dp.use_unlabeled else data["all"]
        run_id = fingerprint({"arm": arm, "stage": args.stage_key})

        def log(row: dict, arm: str = arm) -> None:
            print(json.dumps({"arm": arm, **row}), flush=True)
            tracker.log_metrics(
                {f"{arm}/{k}": v for k, v in row.items() if k != "step"}, step=row["step"]
            )

        print(f"distillation arm {arm}: {kd}, {len(train)} utterances")
        results[arm] = finetune(
            student, train, dev, cfg, Path(args.state) / f"{arm}.pt", run_id,
            compute_device(), log, objective=kd_objective(kd), collate=collate_kd,
        )  # fmt: skip
        students[arm] = student
        scores = test_scores(student, tests, dp.eval_batch_seconds)
        metrics["wer"][arm], metrics["cer"][arm] = scores["wer"], scores["cer"]
        metrics["dev_wer"][arm] = round(results[arm].best["wer"], 5)
    best = min(metrics["dev_wer"], key=lambda a: metrics["dev_wer"][a])  # chosen on dev, not test
    warnings = weak_teacher_warnings(metrics["teacher_dev_wer"], metrics["dev_wer"], target)
    for w in warnings:
        print(f"WARNING: {w}")
    metrics["warnings"] = warnings
    student = students[best]
    teacher = next(iter(teachers.values()))
    metrics.update(
        {
            "best_arm": best,
            "params_student": parameter_count(student),
            "params_teacher": parameter_count(teacher),
            "param_ratio": round(parameter_count(teacher) / parameter_count(student), 3),
            **speed_ratio(teacher, student, tests[target], dp.speed_utterances, dp.speed_repeats),
        }
    )
    baseline = metrics["wer"]["student_only"][target]
    metrics["rel_wer_change"] = {
        arm: round((w[target] - baseline) / baseline, 4) if baseline else None
        for arm, w in metrics["wer"].items()
    }
    out = Path(args.out)
    save_ctc_model(student, out / "student.safetensors", {"arm": best, "domain": target})
    plots = Path(args.plots)
    plots.parent.mkdir(parents=True, exist_ok=True)
    with open(plots, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "domain", "wer"])
        for arm, per in metrics["wer"].items():
            for domain, v in per.items():
                w.writerow([arm, domain, v])
    arm_curves(
        {a: r.history for a, r in results.items()},
        {a: r.evals for a, r in results.items()},
        plots.with_suffix(".png"),
        f"distillation into the student ({target} dev)",
    )
    write_metrics(args.metrics, metrics, tracker)
    tracker.log_artifact(plots)
    tracker.log_artifact(plots.with_suffix(".png"))
    print(
        f"student ({best}) in {out}/student.safetensors; {target} test WER per arm: "
        + ", ".join(f"{a} {m[target]:.3f}" for a, m in metrics["wer"].items())
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
