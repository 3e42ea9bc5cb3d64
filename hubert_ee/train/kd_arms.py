"""The distillation ablation (DESIGN §7): every arm a KDConfig over all teachers, each trained
into a fresh student with the same budget, scored on every domain's test split; the student
kept is the arm with the best target-domain dev WER (never chosen on test)."""

from __future__ import annotations

import json
import time
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
from hubert_ee.device import compute_device, cpu_threads
from hubert_ee.features.store import FrameStore
from hubert_ee.metrics.speed import interleaved_medians
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.inference_form import inference_form
from hubert_ee.models.student import init_from_teacher, parameter_count, student_config
from hubert_ee.parallel import Executor, run_units
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.distill import (
    KDConfig,
    KDData,
    collate_kd,
    kd_objective,
    weak_teacher_warnings,
)
from hubert_ee.train.finetune import FinetuneResult, finetune
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
    samples = dp.noise_samples
    per_utt = dp.teacher_weights == "uncertainty"
    per_frame = dp.teacher_weights == "frame_uncertainty"
    loss = {"uncertainty_loss": dp.uncertainty_loss, "uncertainty_match": dp.uncertainty_match}
    by = {"per_utterance": per_utt, "per_frame": per_frame}
    out = {
        "student_only": KDConfig(0.0, 0.0, dp.temperature, weights, samples, **loss),
        "tok_kd": KDConfig(dp.alpha, 0.0, dp.temperature, weights, samples, **by, **loss),
        "unc_kd": KDConfig(dp.alpha, dp.beta, dp.temperature, weights, samples, **by, **loss),
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
    inference_form(teacher.cpu())  # latency on the CPU at batch 1 (hubert_ee/device.py)
    inference_form(student.cpu())
    med = interleaved_medians(
        {"teacher": lambda w: teacher.logits(w), "student": lambda w: student.logits(w)},
        waves,
        repeats,
        threads=cpu_threads(),
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


SPREAD_ARMS = ("student_only", "tok_kd", "unc_kd")  # trained on `distill.extra_seeds` too


def call_difference(arm: list[float], baseline: list[float]) -> str:
    """Whether an arm's target WER over seeds differs from the baseline's (DESIGN §7): "better"
    or "worse" when the means differ by more than either side's spread (max − min over seeds),
    else "tie"; "one seed" when either side ran only one (no spread, no call)."""
    if len(arm) < 2 or len(baseline) < 2:
        return "one seed"
    diff = sum(arm) / len(arm) - sum(baseline) / len(baseline)
    spread = max(max(arm) - min(arm), max(baseline) - min(baseline))
    if abs(diff) <= spread:
        return "tie"
    return "better" if diff < 0 else "worse"


def seed_report(seed_wer: dict[str, dict[int, float]]) -> dict:
    """`wer_seeds`, `wer_mean`, `wer_spread` (max − min) per arm over its seeds, and each arm's
    call against the student trained alone (`call_difference`)."""
    base = list(seed_wer.get("student_only", {}).values())
    return {
        "wer_seeds": {a: {str(s): w for s, w in v.items()} for a, v in seed_wer.items()},
        "wer_mean": {a: round(sum(v.values()) / len(v), 5) for a, v in seed_wer.items()},
        "wer_spread": {a: round(max(v.values()) - min(v.values()), 5) for a, v in seed_wer.items()},
        "vs_student_only": {
            a: call_difference(list(v.values()), base)
            for a, v in seed_wer.items()
            if a != "student_only"
        },
    }


@dataclass
class KDArms:
    students: dict[str, CTCModel] = field(default_factory=dict)
    results: dict[str, FinetuneResult] = field(default_factory=dict)
    wer: dict[str, dict] = field(default_factory=dict)  # arm → test domain → WER
    cer: dict[str, dict] = field(default_factory=dict)
    dev_wer: dict[str, float] = field(default_factory=dict)  # arm → target dev WER
    seed_wer: dict[str, dict[int, float]] = field(default_factory=dict)  # arm → seed → target WER


def train_arm(
    arm: str,
    kd: KDConfig,
    dp: DistillParams,
    seed: int,
    pretrained: HubertEncoder,
    data: dict[str, KDData],
    dev: ASRData,
    state_path: Path,
    run_id: str,
    log_metrics: LogFn,
) -> tuple[CTCModel, FinetuneResult]:
    """One arm's student, cut from `pretrained`, trained by the CTC loop with the arm's KD
    objective and early-stopped on the target's dev WER."""
    student = new_student(dp, seed, pretrained, dev.vocab)
    train = data["labeled"] if kd.alpha == 0 or not dp.use_unlabeled else data["all"]

    def log(row: dict) -> None:
        print(json.dumps({"arm": arm, **row}), flush=True)
        log_metrics({f"{arm}/{k}": v for k, v in row.items() if k != "step"}, row["step"])

    print(f"distillation arm {arm}: {kd}, {len(train)} utterances")
    result = finetune(
        student,
        train,
        dev,
        dp,
        seed,
        state_path,
        run_id,
        compute_device(),
        log,
        objective=kd_objective(kd),
        collate=collate_kd,
    )
    return student, result


@dataclass
class KDJob:
    """What every distillation arm is trained and scored with."""

    dp: DistillParams
    seed: int
    target: str
    pretrained: HubertEncoder  # the students are cut from it
    data: dict[str, KDData]  # kd_data
    dev: ASRData  # the target's dev split: early stopping and the arm choice
    tests: dict[str, ASRData]  # every domain's test split
    state_dir: Path
    stage_key: str
    log_metrics: LogFn
    workers: int = 1  # arms trained at once, one process and one torch thread each


@dataclass
class ArmUnit:
    """One arm at one seed: a picklable work unit (hubert_ee.parallel)."""

    name: str  # the arm, "-seed<s>" for an extra seed
    arm: str
    kd: KDConfig
    dp: DistillParams  # the arm's recipe (dp.for_arm)
    seed: int
    pretrained: tuple  # (EncoderConfig, state_dict): a weight-normed module does not pickle
    data: dict[str, KDData]
    dev: ASRData
    tests: dict[str, ASRData]  # the splits the student is scored on
    state_path: Path
    run_id: str


@dataclass
class ArmOutcome:
    name: str
    student_state: dict[str, torch.Tensor]
    result: FinetuneResult
    scores: dict[str, dict]  # test_scores
    logged: list[dict]  # the rows the loop logged, for the stage's tracker
    seconds: float  # training and scoring, wall time


def train_unit(unit: ArmUnit) -> ArmOutcome:
    """Train and score one arm (in a worker process, or in this one)."""
    started = time.perf_counter()
    logged: list[dict] = []
    cfg, weights = unit.pretrained
    pretrained = HubertEncoder(cfg)
    pretrained.load_state_dict(weights)
    student, result = train_arm(
        unit.name, unit.kd, unit.dp, unit.seed, pretrained, unit.data, unit.dev,
        unit.state_path, unit.run_id, lambda m, step: logged.append({"step": step, **m}),
    )  # fmt: skip
    scores = test_scores(student, unit.tests, unit.dp.eval_batch_seconds)
    state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
    return ArmOutcome(unit.name, state, result, scores, logged, time.perf_counter() - started)


def arm_units(job: KDJob, teachers: list[str]) -> list[ArmUnit]:
    """Every arm at `job.seed` (scored on every test split), then SPREAD_ARMS again at each of
    `dp.extra_seeds` (scored on the target's test split): the seed spread of DESIGN §7."""
    dp, every_arm = job.dp, arms(job.dp, teachers)
    weights = {k: v.detach() for k, v in job.pretrained.state_dict().items()}
    common = {"pretrained": (job.pretrained.cfg, weights), "data": job.data, "dev": job.dev}
    units = [
        ArmUnit(arm, arm, kd, dp.for_arm(arm), job.seed, tests=job.tests,
                state_path=job.state_dir / f"{arm}.pt",
                run_id=fingerprint({"arm": arm, "stage": job.stage_key}), **common)
        for arm, kd in every_arm.items()
    ]  # fmt: skip
    for s in dp.extra_seeds:  # (Params checks they are distinct and not `seed`)
        for arm in SPREAD_ARMS:
            name = f"{arm}-seed{s}"
            units.append(
                ArmUnit(name, arm, every_arm[arm], dp.for_arm(arm), s,
                        tests={job.target: job.tests[job.target]},
                        state_path=job.state_dir / f"{name}.pt",
                        run_id=fingerprint({"arm": arm, "stage": job.stage_key, "seed": s}),
                        **common)
            )  # fmt: skip
    return units


def train_kd_arms(job: KDJob, teachers: list[str]) -> KDArms:
    """Every arm of `arm_units`, `job.workers` at a time.

    Each arm trains with one torch thread whatever the number of workers, so its figures do
    not depend on how many ran beside it: on a CPU the small student gains almost nothing
    from a second thread (benchmarks/arm_parallelism.py), and two arms side by side take the
    time of one."""
    dp, seed, target = job.dp, job.seed, job.target
    units = arm_units(job, teachers)
    threads = torch.get_num_threads()
    workers = job.workers if compute_device().type == "cpu" else 1
    done: dict[str, ArmOutcome] = {}
    try:
        for outcome in run_units(train_unit, units, Executor("local", workers)):
            done[outcome.name] = outcome
            for row in outcome.logged:
                job.log_metrics({k: v for k, v in row.items() if k != "step"}, row["step"])
            print(f"distillation arm {outcome.name} done ({len(done)}/{len(units)})", flush=True)
    finally:
        torch.set_num_threads(threads)  # run_units' in-process path left one thread
    out = KDArms()
    for unit in units:
        got = done[unit.name]
        if unit.name == unit.arm:  # the arm at the stage's seed
            student = new_student(unit.dp, seed, job.pretrained, job.dev.vocab)
            student.load_state_dict(got.student_state)
            out.students[unit.arm], out.results[unit.arm] = student, got.result
            out.wer[unit.arm], out.cer[unit.arm] = got.scores["wer"], got.scores["cer"]
            out.dev_wer[unit.arm] = round(got.result.best["wer"], 5)
        if unit.arm in SPREAD_ARMS and dp.extra_seeds:
            out.seed_wer.setdefault(unit.arm, {})[unit.seed] = got.scores["wer"][target]
    return out


@dataclass
class DistillRun:
    best: str  # the arm whose student is kept
    student: CTCModel
    arms: KDArms
    metrics: dict  # metrics/distill.json (DESIGN §11)

    def table(self) -> list[list]:
        """(arm, test domain, WER) rows: plots/distill.csv."""
        return [[arm, d, v] for arm, per in self.arms.wer.items() for d, v in per.items()]


def distill_student(job: KDJob, teachers: dict[str, CTCModel]) -> DistillRun:
    """The `distill` stage's work: what each teacher can teach (its greedy WER on the target's
    dev split, with a warning where it is no better than the student alone), every arm, the arm
    kept (chosen on dev), sizes and the teacher/student speed ratio at batch size 1."""
    dp, target, dev, tests = job.dp, job.target, job.dev, job.tests
    metrics: dict = {
        "teacher_dev_wer": {
            d: round(test_scores(t, {target: dev}, dp.eval_batch_seconds)["wer"][target], 5)
            for d, t in teachers.items()
        }
    }
    kd = train_kd_arms(job, list(teachers))
    metrics.update(wer=kd.wer, cer=kd.cer, dev_wer=kd.dev_wer)
    if dp.arm_recipe:
        metrics["arm_recipe"] = dp.arm_recipe
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
    if kd.seed_wer:
        metrics.update(seed_report(kd.seed_wer))
    return DistillRun(best, student, kd, metrics)
