"""Stage `finetune@<domain>`: a CTC teacher for one domain, from the last pretrained encoder.

Also trains the ablation arm (the same budget from random initialisation) and scores the
teacher on the test split of every domain (greedy), plus beam search in-domain.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.decode.ctc import BeamDecoder, greedy_decode
from hubert_ee.decode.emissions import emissions, greedy_scores, outputs
from hubert_ee.decode.vocab import CharVocab
from hubert_ee.device import compute_device
from hubert_ee.metrics.uncertainty import uncertainty_quality
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.checkpoint import load_encoder, save_ctc_model
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder, reinit_top_layers
from hubert_ee.plots import arm_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train.asr_data import ASRData, AugmentedASRData, domain_split, subset_minutes
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.finetune import FinetuneConfig, FinetuneResult, finetune
from hubert_ee.train.lr_choice import pick_lr, probe_result
from tasks.common import run_stage, stage_parser, write_metrics


def train_arm(
    arm: str,
    make_model: Callable[[], CTCModel],
    params: Params,
    train: ASRData,
    dev: ASRData,
    state_dir: Path,
    stage_key: str,
    tracker: StageTracker,
    recipe: dict,
    tag: str = "",
    probe: bool = True,
) -> tuple[CTCModel, FinetuneResult, dict]:
    """One arm: probe each lr of `finetune.lr_grid` on dev, continue the chosen one.

    `recipe` overrides the section's training fields for this arm; `tag` names a variant (the
    low-label runs) in the resume states and logs; `probe=False` trains `recipe`'s lr (or the
    section's) without a grid. Returns the model, its run, and the choice
    {"grid": [{lr, dev_wer, dev_cer}], "chosen": lr}."""
    ft = params.finetune
    name = arm + tag

    def cfg_for(lr: float) -> FinetuneConfig:
        return FinetuneConfig.from_section(ft, params.seed, **{**recipe, "lr": lr})

    def run(lr: float, stop_at: int | None) -> tuple[CTCModel, FinetuneResult]:
        cfg = cfg_for(lr)
        torch.manual_seed(params.seed)
        model = make_model()
        run_id = fingerprint({"arm": name, "lr": lr, "stage": stage_key})

        def log(row: dict) -> None:
            print(json.dumps({"arm": name, "lr": lr, **row}), flush=True)
            tracker.log_metrics(
                {f"{name}/{k}": v for k, v in row.items() if k != "step"}, step=row["step"]
            )

        state = state_dir / f"{name}-lr{lr:g}.pt"
        result = finetune(
            model, train, dev, cfg, state, run_id, compute_device(), log, stop_at=stop_at
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
    probe = probe_runs.get(chosen)
    if probe is not None and result.resumed_from == probe.steps:
        # continuing the probe made a moment ago is not a resume: report where the probe
        # itself picked up (0 unless an earlier, killed run had left its state)
        result.resumed_from = probe.resumed_from
    return model, result, {"grid": probes, "chosen": chosen}


def ctc_model(encoder: HubertEncoder, params: Params) -> CTCModel:
    ft = params.finetune
    return CTCModel(encoder, CharVocab(), ft.uncertainty, ft.final_dropout)


def score(model: CTCModel, data: ASRData, batch_s: float) -> tuple[dict, list[torch.Tensor]]:
    lps = emissions(model, data, batch_s, compute_device())
    return greedy_scores(lps, data), lps


def beam_report(
    lps: list[torch.Tensor], data: ASRData, beam: int, lexicon_words: set[str]
) -> dict[str, float]:
    """WER and decode-only speed (x real time) of greedy vs beam search on the same emissions."""
    refs = data.texts()
    audio_s = float(data.lengths().sum()) / 16000
    decoders = {
        "greedy": lambda lp: greedy_decode(lp[None], None, data.vocab)[0],
        "beam": BeamDecoder(data.vocab, beam),
        "beam_lexicon": BeamDecoder(data.vocab, beam, words=lexicon_words),
    }
    out: dict[str, float] = {}
    for name, dec in decoders.items():
        t0 = time.perf_counter()
        if name == "greedy":
            hyps = [dec(lp) for lp in lps]
        else:
            hyps = [dec(lp[None], None)[0] for lp in lps]
        elapsed = time.perf_counter() - t0
        out[f"wer_{name}"] = round(wer(refs, hyps), 5)
        out[f"cer_{name}"] = round(cer(refs, hyps), 5)
        out[f"decode_xrt_{name}"] = round(audio_s / elapsed, 1)
    return out


def write_curves(results: dict[str, FinetuneResult], csv_path: Path, title: str) -> None:
    """Dev WER per evaluation for each arm (dvc plots) and a PNG with the loss curves too."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    steps = sorted({e["step"] for r in results.values() for e in r.evals})
    by_arm = {arm: {e["step"]: e["wer"] for e in r.evals} for arm, r in results.items()}
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *[f"dev_wer_{arm}" for arm in results]])
        for s in steps:
            w.writerow([s, *[by_arm[arm].get(s, "") for arm in results]])
    arm_curves(
        {arm: r.history for arm, r in results.items()},
        {arm: r.evals for arm, r in results.items()},
        csv_path.with_suffix(".png"),
        title,
    )


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ft, domain = params.finetune, args.domain
    if domain not in [*params.data.teacher_domains, params.data.target_domain]:
        raise ValueError(
            f"--domain {domain!r} is not one of data domains {[*params.data.teacher_domains, params.data.target_domain]}"
        )
    vocab = CharVocab()
    clean_train = domain_split(args.manifests, "train", domain, vocab)
    train: ASRData = clean_train
    if ft.augment is not None:  # every arm hears the same corrupted audio
        train = AugmentedASRData(clean_train, ft.augment.chain(), params.seed)
    dev = domain_split(args.manifests, "dev", domain, vocab)
    tests = {
        d: domain_split(args.manifests, "test", d, vocab)
        for d in [*params.data.teacher_domains, params.data.target_domain]
    }
    pretrained = load_encoder(args.encoder)
    reinit_top_layers(pretrained, ft.reinit_top_layers, params.seed)
    state_dir = Path(args.state)
    arms: dict[str, tuple[Callable[[], CTCModel], dict]] = {
        "pretrained": (lambda: ctc_model(copy.deepcopy(pretrained), params), {})
    }
    ablate = ft.runs_ablations(domain)  # scratch and low-label arms (finetune.ablation_domains)
    if ft.scratch_arm and ablate:
        arms["scratch"] = (lambda: ctc_model(HubertEncoder(pretrained.cfg), params), ft.scratch)
    results: dict[str, FinetuneResult] = {}
    models: dict[str, CTCModel] = {}
    metrics: dict = {"lr_choice": {}}
    for arm, (make, recipe) in arms.items():
        models[arm], results[arm], metrics["lr_choice"][arm] = train_arm(
            arm, make, params, train, dev, state_dir, args.stage_key, tracker, recipe
        )
    model, result = models["pretrained"], results["pretrained"]
    metrics.update(
        {
            "params": sum(p.numel() for p in model.parameters()),
            "steps": result.steps,
            "best_step": result.best["step"],
            "stopped_early": result.stopped_early,
            "dev_wer": round(result.best["wer"], 5),
            "train_audio_seconds_per_s": round(result.audio_seconds_per_s, 1),
            "resumed_from_step": result.resumed_from,
            "wer": {},
            "cer": {},
        }
    )
    if model.variance_head is not None:  # is σ² informative? (dev; DESIGN §6)
        quality = uncertainty_quality(outputs(model, dev, ft.eval_batch_seconds, compute_device()),
                                      dev.texts(), vocab)  # fmt: skip
        metrics["uncertainty"] = {k: round(v, 4) for k, v in quality.items()}
    in_domain_lps = None
    for test_domain, data in tests.items():
        scores, lps = score(model, data, ft.eval_batch_seconds)
        metrics["wer"][test_domain] = round(scores["wer"], 5)
        metrics["cer"][test_domain] = round(scores["cer"], 5)
        if test_domain == domain:
            in_domain_lps = lps
    train_words = {w for t in train.texts() for w in t.split()}
    metrics["decoding"] = beam_report(in_domain_lps, tests[domain], ft.beam_size, train_words)
    out = Path(args.out)
    save_ctc_model(model, out / "model.safetensors", {"domain": domain, "arm": "pretrained"})
    if "scratch" in arms:
        s_scores, _ = score(models["scratch"], tests[domain], ft.eval_batch_seconds)
        metrics["wer_scratch"] = {domain: round(s_scores["wer"], 5)}
        metrics["cer_scratch"] = {domain: round(s_scores["cer"], 5)}
        metrics["dev_wer_scratch"] = round(results["scratch"].best["wer"], 5)
    if ft.low_label_minutes > 0 and ablate:
        few = subset_minutes(clean_train, ft.low_label_minutes, params.seed)
        if ft.augment is not None:
            few = AugmentedASRData(few, ft.augment.chain(), params.seed)
        metrics["low_label_minutes"] = round(float(few.lengths().sum()) / 16000 / 60, 2)
        for arm, (make, recipe) in arms.items():
            low_recipe = {**recipe, "max_steps": ft.low_label_max_steps,
                          "lr": metrics["lr_choice"][arm]["chosen"]}  # fmt: skip
            low_model, low_result, _ = train_arm(
                arm, make, params, few, dev, state_dir, args.stage_key, tracker, low_recipe,
                tag="_low_label", probe=False,
            )  # fmt: skip
            results[f"{arm}_low_label"] = low_result
            low_scores, _ = score(low_model, tests[domain], ft.eval_batch_seconds)
            suffix = "" if arm == "pretrained" else f"_{arm}"
            metrics[f"wer_low_label{suffix}"] = {domain: round(low_scores["wer"], 5)}
            metrics[f"dev_wer_low_label{suffix}"] = round(low_result.best["wer"], 5)
    plots = Path(args.plots)
    write_curves(results, plots, f"fine-tuning the {domain} teacher")
    write_metrics(args.metrics, metrics, tracker)
    tracker.log_artifact(plots)
    tracker.log_artifact(plots.with_suffix(".png"))
    print(
        f"teacher in {out}/model.safetensors: test WER "
        + ", ".join(f"{d} {w:.3f}" for d, w in metrics["wer"].items())
        + (
            f"; from scratch ({domain}) {metrics['wer_scratch'][domain]:.3f}"
            if "scratch" in arms
            else ""
        )
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--domain", required=True, help="the teacher's domain (data.teacher_domains)"
    )
    parser.add_argument("--encoder", required=True, help="pretrained encoder .safetensors")
    parser.add_argument("--manifests", default="data/prepared")
    parser.add_argument("--out", required=True, help="models/teachers/<domain>")
    parser.add_argument("--state", required=True, help="resume state directory (kept across runs)")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True, help="dev-WER CSV for dvc plots (+ PNG)")
    run_stage(
        main,
        parser,
        lambda a: f"finetune@{a.domain}",
        ["seed", "data.teacher_domains", "data.target_domain", "finetune"],
        inputs=["encoder", "manifests"],
    )
