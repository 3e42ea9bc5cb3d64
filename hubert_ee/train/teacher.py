"""A domain's CTC teacher and its ablation arms (DESIGN §6): the pretrained arm, the same budget
from random weights (`scratch`), and both again on a few minutes of labels (`low_label`), each
arm choosing its peak lr on dev from `finetune.lr_grid` when the grid has more than one value.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hubert_ee.config import FinetuneParams
from hubert_ee.data.asr_data import ASRData, AugmentedASRData, subset_minutes
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.ctc import BeamDecoder, greedy_decode
from hubert_ee.decode.emissions import emissions, greedy_scores, outputs
from hubert_ee.decode.ngram_lm import fit_kneser_ney
from hubert_ee.device import compute_device
from hubert_ee.metrics.uncertainty import uncertainty_quality
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import parameter_count
from hubert_ee.parallel import Executor, run_units
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.finetune import FinetuneResult, finetune
from hubert_ee.train.lr_choice import pick_lr, probe_result
from hubert_ee.train.variance_fit import refit_variance_head

LogFn = Callable[[dict[str, float], int], None]  # (metrics, step): the tracker's log_metrics


def ctc_model(encoder: HubertEncoder, ft: FinetuneParams) -> CTCModel:
    return CTCModel(encoder, CharVocab(), ft.uncertainty, ft.final_dropout)


def train_arm(
    arm: str,
    make_model: Callable[[], CTCModel],
    ft: FinetuneParams,
    seed: int,
    train: ASRData,
    dev: ASRData,
    state_dir: Path,
    stage_key: str,
    log_metrics: LogFn,
    recipe: dict,
    tag: str = "",
    probe: bool = True,
) -> tuple[CTCModel, FinetuneResult, dict]:
    """One arm: probe each lr of `ft.lr_grid` on dev, continue the chosen one.

    `recipe` overrides the section's training fields for this arm; `tag` names a variant (the
    low-label runs) in the resume states and logs; `probe=False` trains `recipe`'s lr (or the
    section's) without a grid. Returns the model, its run, and the choice
    {"grid": [{lr, dev_wer, dev_cer}], "chosen": lr}."""
    name = arm + tag

    def cfg_for(lr: float) -> FinetuneParams:
        return ft.with_fields(**{**recipe, "lr": lr})

    def run(lr: float, stop_at: int | None) -> tuple[CTCModel, FinetuneResult]:
        cfg = cfg_for(lr)
        torch.manual_seed(seed)
        model = make_model()
        run_id = fingerprint({"arm": name, "lr": lr, "stage": stage_key})

        def log(row: dict) -> None:
            print(json.dumps({"arm": name, "lr": lr, **row}), flush=True)
            log_metrics({f"{name}/{k}": v for k, v in row.items() if k != "step"}, row["step"])

        state = state_dir / f"{name}-lr{lr:g}.pt"
        result = finetune(
            model, train, dev, cfg, seed, state, run_id, compute_device(), log, stop_at=stop_at
        )
        return model, result

    grid = (list(ft.lr_grid) if probe else []) or [recipe.get("lr", ft.lr)]
    probes, probe_runs = [], {}
    if len(grid) > 1:
        for lr in grid:
            print(f"{name}: probing lr {lr:g} for {ft.lr_probe_steps} steps")
            _, probe_runs[lr] = run(lr, ft.lr_probe_steps)
            probes.append(probe_result(lr, probe_runs[lr].evals, ft.lr_probe_steps))
    chosen = pick_lr(probes) if probes else grid[0]
    cfg = cfg_for(chosen)
    print(f"fine-tuning the {name} arm at lr {chosen:g}: {cfg.max_steps} steps at most, "
          f"{len(train)} utterances")  # fmt: skip
    model, result = run(chosen, None)
    probe_run = probe_runs.get(chosen)
    if probe_run is not None and result.resumed_from == probe_run.steps:
        # continuing the probe made a moment ago is not a resume: report where the probe
        # itself picked up (0 unless an earlier, killed run had left its state)
        result.resumed_from = probe_run.resumed_from
    return model, result, {"grid": probes, "chosen": chosen}


def score(model: CTCModel, data: ASRData, batch_s: float) -> tuple[dict, list[torch.Tensor]]:
    """Greedy WER/CER on `data` and the per-utterance log-posteriors they came from."""
    lps = emissions(model, data, batch_s, compute_device())
    return greedy_scores(lps, data), lps


def beam_report(
    lps: list[torch.Tensor],
    data: ASRData,
    decoders: dict[str, BeamDecoder],
    greedy: bool = True,
) -> dict[str, float]:
    """WER, CER and decode-only speed (x real time) of each named beam decoder on the same
    emissions, and of greedy decoding (`greedy`: as the speed baseline)."""
    refs = data.texts()
    audio_s = float(data.lengths().sum()) / 16000
    out: dict[str, float] = {}
    named: dict[str, BeamDecoder | None] = {"greedy": None} if greedy else {}
    for name, dec in {**named, **decoders}.items():
        t0 = time.perf_counter()
        if dec is None:
            hyps = [greedy_decode(lp[None], None, data.vocab)[0] for lp in lps]
        else:
            hyps = [dec(lp[None], None)[0] for lp in lps]
        elapsed = time.perf_counter() - t0
        out[f"wer_{name}"] = round(wer(refs, hyps), 5)
        out[f"cer_{name}"] = round(cer(refs, hyps), 5)
        out[f"decode_xrt_{name}"] = round(audio_s / max(elapsed, 1e-9), 1)
    return out


def teacher_decoders(ft: FinetuneParams, train: ASRData) -> dict[str, BeamDecoder]:
    """The beam decoders a teacher is scored with: free (any letters), restricted to its own
    training words, and (finetune.lm_order > 0) those words with a word n-gram LM fitted on its
    own training transcripts. On another domain, and on the target, these use zero labels of
    that domain."""
    texts = train.texts()
    words = {w for t in texts for w in t.split()}
    decoders = {
        "beam": BeamDecoder(train.vocab, ft.beam_size),
        "beam_lexicon": BeamDecoder(train.vocab, ft.beam_size, words=words),
    }
    if ft.lm_order > 0:
        lm = fit_kneser_ney(texts, order=ft.lm_order)
        decoders["beam_lexicon_lm"] = BeamDecoder(
            train.vocab, ft.beam_size, words=words, lm=lm, lm_weight=ft.lm_weight,
            word_score=ft.lm_word_score,
        )  # fmt: skip
    return decoders


@dataclass
class TeacherArms:
    models: dict[str, CTCModel] = field(default_factory=dict)  # pretrained, scratch
    results: dict[str, FinetuneResult] = field(default_factory=dict)  # + <arm>_low_label
    lr_choice: dict[str, dict] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # the low-label arms' figures


@dataclass
class TeacherUnit:
    """One arm of a teacher: a picklable work unit (hubert_ee.parallel)."""

    arm: str
    from_scratch: bool
    encoder: tuple  # (EncoderConfig, state_dict) of the pretrained encoder: a weight-normed
    ft: FinetuneParams  # module does not pickle
    seed: int
    train: ASRData
    dev: ASRData
    state_dir: Path
    stage_key: str
    recipe: dict
    tag: str = ""
    probe: bool = True


@dataclass
class TeacherOutcome:
    model_state: dict[str, torch.Tensor]
    result: FinetuneResult
    choice: dict
    logged: list[tuple[dict, int]]  # (metrics, step) for the stage's tracker


def train_teacher_unit(unit: TeacherUnit, log_metrics: LogFn | None = None) -> TeacherOutcome:
    """Train one arm (`train_arm`); without `log_metrics` its rows are kept for the caller."""
    cfg, weights = unit.encoder
    pretrained = HubertEncoder(cfg)
    pretrained.load_state_dict(weights)
    if unit.from_scratch:
        make = lambda: ctc_model(HubertEncoder(cfg), unit.ft)  # noqa: E731
    else:
        make = lambda: ctc_model(copy.deepcopy(pretrained), unit.ft)  # noqa: E731
    logged: list[tuple[dict, int]] = []
    model, result, choice = train_arm(
        unit.arm, make, unit.ft, unit.seed, unit.train, unit.dev, unit.state_dir, unit.stage_key,
        log_metrics or (lambda m, step: logged.append((m, step))), unit.recipe, unit.tag,
        unit.probe,
    )  # fmt: skip
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return TeacherOutcome(state, result, choice, logged)


def train_units(
    units: list[TeacherUnit], workers: int, log_metrics: LogFn
) -> list[tuple[CTCModel, FinetuneResult, dict]]:
    """(model, run, lr choice) of each unit, in order. One arm trains here on every thread; several
    train `workers` at a time in a local process pool, one torch thread each whatever `workers`
    is, so a figure does not depend on it: two arms side by side take 1/1.16 of the time of one
    after the other on two threads (benchmarks/arm_parallelism.py)."""
    if len(units) == 1:
        outcomes = [train_teacher_unit(units[0], log_metrics)]
    else:
        threads = torch.get_num_threads()
        workers = workers if compute_device().type == "cpu" else 1
        try:
            by_name = {}
            for unit, got in run_units(_named_unit, units, Executor("local", workers)):
                by_name[unit] = got
                print(f"teacher arm {unit} done ({len(by_name)}/{len(units)})", flush=True)
        finally:
            torch.set_num_threads(threads)  # run_units' in-process path leaves one thread
        outcomes = [by_name[u.arm + u.tag] for u in units]
        for got in outcomes:
            for m, step in got.logged:
                log_metrics(m, step)
    models = []
    for unit, got in zip(units, outcomes, strict=True):
        model = ctc_model(HubertEncoder(unit.encoder[0]), unit.ft)
        model.load_state_dict(got.model_state)
        models.append((model, got.result, got.choice))
    return models


def _named_unit(unit: TeacherUnit) -> tuple[str, TeacherOutcome]:
    return unit.arm + unit.tag, train_teacher_unit(unit)


def train_teacher_arms(
    pretrained: HubertEncoder,
    ft: FinetuneParams,
    seed: int,
    domain: str,
    clean_train: ASRData,
    dev: ASRData,
    test: ASRData,
    state_dir: Path,
    stage_key: str,
    log_metrics: LogFn,
    workers: int = 1,
) -> TeacherArms:
    """Every arm `ft` asks for on `domain` (the scratch and low-label arms only on
    `ft.ablation_domains`), `workers` at a time (`train_units`); `test` scores the low-label
    arms in-domain."""
    train: ASRData = clean_train
    if ft.augment is not None:  # every arm hears the same corrupted audio
        train = AugmentedASRData(clean_train, ft.augment.chain(), seed)
    ablate = ft.runs_ablations(domain)
    encoder = (pretrained.cfg, {k: v.detach() for k, v in pretrained.state_dict().items()})
    arms: dict[str, tuple[bool, dict]] = {"pretrained": (False, {})}
    if ft.scratch_arm and ablate:
        arms["scratch"] = (True, ft.scratch)
    common = {"encoder": encoder, "ft": ft, "seed": seed, "dev": dev, "state_dir": state_dir,
              "stage_key": stage_key}  # fmt: skip
    units = [
        TeacherUnit(arm, scratch, train=train, recipe=recipe, **common)
        for arm, (scratch, recipe) in arms.items()
    ]
    out = TeacherArms()
    for unit, (model, result, choice) in zip(
        units, train_units(units, workers, log_metrics), strict=True
    ):
        out.models[unit.arm], out.results[unit.arm], out.lr_choice[unit.arm] = model, result, choice
    if ft.low_label_minutes > 0 and ablate:
        few = subset_minutes(clean_train, ft.low_label_minutes, seed)
        if ft.augment is not None:
            few = AugmentedASRData(few, ft.augment.chain(), seed)
        out.metrics["low_label_minutes"] = round(float(few.lengths().sum()) / 16000 / 60, 2)
        low = [
            TeacherUnit(arm, scratch, train=few, tag="_low_label", probe=False,
                        recipe={**recipe, "max_steps": ft.low_label_max_steps,
                                "lr": out.lr_choice[arm]["chosen"]}, **common)
            for arm, (scratch, recipe) in arms.items()
        ]  # fmt: skip
        for unit, (low_model, low_result, _) in zip(
            low, train_units(low, workers, log_metrics), strict=True
        ):
            out.results[f"{unit.arm}_low_label"] = low_result
            low_scores, _ = score(low_model, test, ft.eval_batch_seconds)
            suffix = "" if unit.arm == "pretrained" else f"_{unit.arm}"
            out.metrics[f"wer_low_label{suffix}"] = {domain: round(low_scores["wer"], 5)}
            out.metrics[f"dev_wer_low_label{suffix}"] = round(low_result.best["wer"], 5)
    return out


def uncertainty_metrics(model: CTCModel, dev: ASRData, batch_seconds: float) -> dict:
    """Is σ² informative on dev (DESIGN §6)? {"spearman_cer", "auroc_token"}."""
    out = outputs(model, dev, batch_seconds, compute_device())
    return {k: round(v, 4) for k, v in uncertainty_quality(out, dev.texts(), dev.vocab).items()}


def refit_teacher_variance(
    arms: TeacherArms, ft: FinetuneParams, seed: int, train: ASRData, dev: ASRData
) -> dict:
    """`finetune.variance_refit`: the teacher's σ² head refitted on its logits
    (hubert_ee.train.variance_fit), after the head trained with the model is scored on dev
    (`uncertainty_joint`, the before). No-op without the section."""
    model = arms.models["pretrained"]
    if ft.variance_refit is None or model.variance_head is None:
        return {}
    before = uncertainty_metrics(model, dev, ft.eval_batch_seconds)
    stats = refit_variance_head(
        model, train, ft.variance_refit, seed, ft.eval_batch_seconds, compute_device()
    )
    return {"uncertainty_joint": before, "variance_refit": stats}


def teacher_metrics(
    arms: TeacherArms,
    ft: FinetuneParams,
    domain: str,
    train: ASRData,
    dev: ASRData,
    tests: dict[str, ASRData],
) -> dict:
    """metrics/finetune_<domain>.json (DESIGN §11) of the pretrained arm (the teacher): its run,
    σ²'s quality on dev, greedy, beam + lexicon (the training words) and beam + lexicon + word
    LM WER/CER on every domain's test split, every decoder's speed in-domain, and the scratch
    and low-label arms' figures."""
    model, result = arms.models["pretrained"], arms.results["pretrained"]
    metrics: dict = {
        "lr_choice": arms.lr_choice,
        "params": parameter_count(model),
        "steps": result.steps,
        "best_step": result.best["step"],
        "stopped_early": result.stopped_early,
        "dev_wer": round(result.best["wer"], 5),
        "train_audio_seconds_per_s": round(result.audio_seconds_per_s, 1),
        "resumed_from_step": result.resumed_from,
        "wer": {},
        "cer": {},
    }
    if model.variance_head is not None:  # is σ² informative? (dev; DESIGN §6)
        metrics["uncertainty"] = uncertainty_metrics(model, dev, ft.eval_batch_seconds)
    decoders = teacher_decoders(ft, train)
    # what the teacher writes when it may only write words it was trained on (and, with the LM,
    # in the order its training sentences put them): on the target, zero target labels
    written = {
        name: key
        for name, key in {"beam_lexicon": "lexicon", "beam_lexicon_lm": "lm"}.items()
        if name in decoders
    }
    for key in written.values():
        metrics[f"wer_{key}"], metrics[f"cer_{key}"] = {}, {}
    for test_domain, data in tests.items():
        scores, lps = score(model, data, ft.eval_batch_seconds)
        metrics["wer"][test_domain] = round(scores["wer"], 5)
        metrics["cer"][test_domain] = round(scores["cer"], 5)
        if test_domain == domain:  # in-domain: every decoder, with its speed against greedy
            report = beam_report(lps, data, decoders)
            metrics["decoding"] = report
        else:  # greedy's figures are `scores`
            report = beam_report(lps, data, {k: decoders[k] for k in written}, greedy=False)
        for name, key in written.items():
            metrics[f"wer_{key}"][test_domain] = report[f"wer_{name}"]
            metrics[f"cer_{key}"][test_domain] = report[f"cer_{name}"]
    if "scratch" in arms.models:
        s_scores, _ = score(arms.models["scratch"], tests[domain], ft.eval_batch_seconds)
        metrics["wer_scratch"] = {domain: round(s_scores["wer"], 5)}
        metrics["cer_scratch"] = {domain: round(s_scores["cer"], 5)}
        metrics["dev_wer_scratch"] = round(arms.results["scratch"].best["wer"], 5)
    metrics.update(arms.metrics)
    return metrics
