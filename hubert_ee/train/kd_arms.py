"""The distillation ablation (DESIGN §7): every arm a KDConfig over all teachers, each trained
into a fresh student with the same budget, scored on every domain's test split; the student
kept is the arm with the best target-domain dev WER (never chosen on test)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from hubert_ee.config import DistillParams
from hubert_ee.data.asr_data import ASRData
from hubert_ee.data.manifest import load_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.decode.teacher_outputs import distill_splits
from hubert_ee.device import compute_device
from hubert_ee.features.store import FrameStore
from hubert_ee.metrics.speed import interleaved_medians
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import init_from_teacher, student_config
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.distill import KDConfig, KDData, collate_kd, kd_objective
from hubert_ee.train.finetune import FinetuneConfig, FinetuneResult, finetune
from hubert_ee.train.teacher import LogFn


def arms(dp: DistillParams, teachers: list[str]) -> dict[str, KDConfig]:
    """The ablation of DESIGN §7 / §11, each arm a KDConfig over all teachers."""
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


def new_student(
    dp: DistillParams, seed: int, pretrained: HubertEncoder, vocab: CharVocab
) -> CTCModel:
    cfg = student_config(pretrained.cfg, dp.student)
    torch.manual_seed(seed)
    encoder = HubertEncoder(cfg)
    if dp.init_from_pretrained:
        init_from_teacher(encoder, pretrained)
    return CTCModel(encoder, vocab, dp.uncertainty, dp.final_dropout)


def kd_data(
    manifests: str | Path,
    teacher_outputs: str | Path,
    teachers: list[str],
    target: str,
    use_unlabeled: bool,
    vocab: CharVocab,
) -> dict[str, KDData]:
    """'labeled' (target train) and 'all' (+ target unlabeled, when used) with teacher frames."""
    frames: dict[str, pd.DataFrame] = {}
    for split in distill_splits(use_unlabeled):
        df = load_split(manifests, split)
        rows = df[df["domain"] == target].copy()
        if split != "train":
            rows["text"] = ""  # teacher targets only
        frames[split] = rows
    stores = [[FrameStore(Path(teacher_outputs) / d / s) for s in frames] for d in teachers]
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


def best_arm(dev_wer: dict[str, float]) -> str:
    """The arm whose student is kept: the lowest target-domain dev WER (the first on a tie)."""
    return min(dev_wer, key=lambda a: dev_wer[a])


def relative_wer_change(wer: dict[str, dict[str, float]], target: str) -> dict[str, float | None]:
    """Each arm's target test WER relative to the student trained alone (negative: better)."""
    baseline = wer["student_only"][target]
    return {
        arm: round((w[target] - baseline) / baseline, 4) if baseline else None
        for arm, w in wer.items()
    }


@dataclass
class KDArms:
    students: dict[str, CTCModel] = field(default_factory=dict)
    results: dict[str, FinetuneResult] = field(default_factory=dict)
    wer: dict[str, dict] = field(default_factory=dict)  # arm → test domain → WER
    cer: dict[str, dict] = field(default_factory=dict)
    dev_wer: dict[str, float] = field(default_factory=dict)  # arm → target dev WER


def train_kd_arms(
    dp: DistillParams,
    seed: int,
    teachers: list[str],
    pretrained: HubertEncoder,
    data: dict[str, KDData],
    dev: ASRData,
    tests: dict[str, ASRData],
    state_dir: Path,
    stage_key: str,
    log_metrics: LogFn,
) -> KDArms:
    cfg = FinetuneConfig.from_section(dp, seed)
    out = KDArms()
    for arm, kd in arms(dp, teachers).items():
        student = new_student(dp, seed, pretrained, dev.vocab)
        train = data["labeled"] if kd.alpha == 0 or not dp.use_unlabeled else data["all"]
        run_id = fingerprint({"arm": arm, "stage": stage_key})

        def log(row: dict, arm: str = arm) -> None:
            print(json.dumps({"arm": arm, **row}), flush=True)
            log_metrics({f"{arm}/{k}": v for k, v in row.items() if k != "step"}, row["step"])

        print(f"distillation arm {arm}: {kd}, {len(train)} utterances")
        out.results[arm] = finetune(
            student, train, dev, cfg, state_dir / f"{arm}.pt", run_id,
            compute_device(), log, objective=kd_objective(kd), collate=collate_kd,
        )  # fmt: skip
        out.students[arm] = student
        scores = test_scores(student, tests, dp.eval_batch_seconds)
        out.wer[arm], out.cer[arm] = scores["wer"], scores["cer"]
        out.dev_wer[arm] = round(out.results[arm].best["wer"], 5)
    return out
