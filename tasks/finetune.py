"""Stage `finetune@<domain>`: a CTC teacher for one domain, from the last pretrained encoder.

Also trains the ablation arms (`hubert_ee.train.teacher`) and scores the teacher on the test
split of every domain (greedy), plus beam search in-domain.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import outputs
from hubert_ee.device import compute_device
from hubert_ee.metrics.uncertainty import uncertainty_quality
from hubert_ee.models.checkpoint import load_encoder, save_ctc_model
from hubert_ee.models.encoder import reinit_top_layers
from hubert_ee.models.student import parameter_count
from hubert_ee.plots import arm_curves_with_csv
from hubert_ee.tracking import StageTracker
from hubert_ee.train.teacher import beam_report, score, train_teacher_arms
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ft, domain = params.finetune, args.domain
    domains = [*params.data.teacher_domains, params.data.target_domain]
    if domain not in domains:
        raise ValueError(f"--domain {domain!r} is not one of data domains {domains}")
    vocab = CharVocab()
    train = domain_split(args.manifests, "train", domain, vocab)
    dev = domain_split(args.manifests, "dev", domain, vocab)
    tests = {d: domain_split(args.manifests, "test", d, vocab) for d in domains}
    pretrained = load_encoder(args.encoder)
    reinit_top_layers(pretrained, ft.reinit_top_layers, params.seed)
    arms = train_teacher_arms(
        pretrained, ft, params.seed, domain, train, dev, tests[domain], Path(args.state),
        args.stage_key, lambda m, step: tracker.log_metrics(m, step=step),
    )  # fmt: skip
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
        quality = uncertainty_quality(outputs(model, dev, ft.eval_batch_seconds, compute_device()),
                                      dev.texts(), vocab)  # fmt: skip
        metrics["uncertainty"] = {k: round(v, 4) for k, v in quality.items()}
    for test_domain, data in tests.items():
        scores, lps = score(model, data, ft.eval_batch_seconds)
        metrics["wer"][test_domain] = round(scores["wer"], 5)
        metrics["cer"][test_domain] = round(scores["cer"], 5)
        if test_domain == domain:
            train_words = {w for t in train.texts() for w in t.split()}
            metrics["decoding"] = beam_report(lps, data, ft.beam_size, train_words)
    out = Path(args.out)
    save_ctc_model(model, out / "model.safetensors", {"domain": domain, "arm": "pretrained"})
    if "scratch" in arms.models:
        s_scores, _ = score(arms.models["scratch"], tests[domain], ft.eval_batch_seconds)
        metrics["wer_scratch"] = {domain: round(s_scores["wer"], 5)}
        metrics["cer_scratch"] = {domain: round(s_scores["cer"], 5)}
        metrics["dev_wer_scratch"] = round(arms.results["scratch"].best["wer"], 5)
    metrics.update(arms.metrics)
    plots = Path(args.plots)
    arm_curves_with_csv(arms.results, plots, f"fine-tuning the {domain} teacher")
    write_metrics(args.metrics, metrics, tracker, plots)
    scratch = metrics.get("wer_scratch", {}).get(domain)
    print(
        f"teacher in {out}/model.safetensors: test WER "
        + ", ".join(f"{d} {w:.3f}" for d, w in metrics["wer"].items())
        + (f"; from scratch ({domain}) {scratch:.3f}" if scratch is not None else "")
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
