"""Stage `finetune@<domain>`: a CTC teacher for one domain, from the last pretrained encoder.

Also trains the ablation arms (`hubert_ee.train.teacher`) and scores the teacher on the test
split of every domain: greedy, and beam search restricted to the teacher's training words
without and with a word LM of its training transcripts (every decoder's speed in-domain).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.prepare import resolve_workers
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder, save_ctc_model
from hubert_ee.models.encoder import reinit_top_layers
from hubert_ee.plots import arm_curves_with_csv
from hubert_ee.tracking import StageTracker
from hubert_ee.train.teacher import (
    refit_teacher_variance,
    teacher_metrics,
    train_teacher_arms,
)
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
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
        pretrained,
        ft,
        params.seed,
        domain,
        train,
        dev,
        tests[domain],
        Path(args.state),
        args.stage_key,
        lambda m, step: tracker.log_metrics(m, step=step),
        workers=resolve_workers(params.num_workers),
    )
    refit = refit_teacher_variance(arms, ft, params.seed, train, dev)
    metrics = {**teacher_metrics(arms, ft, domain, train, dev, tests), **refit}
    out = Path(args.out)
    model = arms.models["pretrained"]
    save_ctc_model(model, out / "model.safetensors", {"domain": domain, "arm": "pretrained"})
    plots = Path(args.plots)
    arm_curves_with_csv(arms.results, plots, f"fine-tuning the {domain} teacher")
    write_metrics(args.metrics, metrics, tracker, plots)
    scratch = metrics.get("wer_scratch", {}).get(domain)
    print(
        f"teacher in {out}/model.safetensors: test WER "
        + ", ".join(f"{d} {w:.3f}" for d, w in metrics["wer"].items())
        + (f"; from scratch ({domain}) {scratch:.3f}" if scratch is not None else "")
        + "; with its lexicon "
        + ", ".join(f"{d} {w:.3f}" for d, w in metrics["wer_lexicon"].items())
        + (
            "; with its lexicon and word LM "
            + ", ".join(f"{d} {w:.3f}" for d, w in metrics["wer_lm"].items())
            if "wer_lm" in metrics
            else ""
        )
    )


if __name__ == "__main__":
    parser = stage_parser(
        __doc__,
        "manifests",
        "state",
        "metrics",
        domain="the teacher's domain",
        encoder="pretrained encoder .safetensors",
        out="models/teachers/<domain>",
        plots="dev-WER CSV for dvc plots (+ PNG)",
    )
    run_stage(
        main,
        parser,
        lambda a: f"finetune@{a.domain}",
        ["seed", "num_workers", "data.teacher_domains", "data.target_domain", "finetune"],
        inputs=["encoder", "manifests"],
        all_threads=True,
    )
