"""Do teachers that train on their own transcripts of the target's unlabeled audio hear the
target better, and teach the student more (issue 14)?

Hypothesis: each teacher hears the phone target at greedy WER ≈ 0.85 but at ≈ 0.55 with beam
search over its own training words and its word LM, zero target labels either way. Frame KD
passes on the greedy posteriors. Self-training (noisy student; domain adaptation by
pseudo-labelling) moves what the decoder knows into the posteriors: the teacher continues
fine-tuning on its own domain's labels plus its own lexicon + LM transcripts of the target's
unlabeled audio, under the stage's augmentation. If its greedy phone WER drops, frame KD from
it should gain over the student alone. The student itself on the same labels lost
(distill_pseudo_labels_*.json: labels at CER 0.43 are noisier than what the student writes);
a teacher starts from a worse greedy CER (≈ 0.45) than the labels have.

Per teacher (`data.teacher_domains`):
  1. its [logits | σ²] on the target's unlabeled split and its beam + lexicon + LM transcripts
     (the finetune stage's decoders, built from its own training transcripts);
  2. continued fine-tuning of the stage's model (the finetune section's recipe and augmentation;
     `--steps` at peak `--lr`, `--warmup` steps, linear decay, a fresh σ² head trained with the
     model as in the stage) on its domain's train split plus the `--keep` share of the
     transcripts it is surest of (lowest mean Σσ² per frame: its uncertainty head, no labels);
     only the last step is kept (no target label chooses a checkpoint);
  3. its σ² head refitted on its own train split (`finetune.variance_refit`, as the stage does);
  4. greedy / lexicon / lexicon + LM WER before and after, on the target's dev (the choice) and
     test (reported), and greedy on its own domain's test (what it forgets).
`--labels truth` is the diagnostic upper bound, not a recipe: the same utterances with the
synthetic corpus's true transcripts in place of the teacher's (target labels a product never
has), to show what label noise costs and how much KD gains from a teacher that hears the target.

The adapted teachers' outputs on the target's labeled train go to `--work`/data/teacher_outputs
(the teacher_outputs stage's stores), next to links to the workspace's data/prepared and
models/supernet, so that `experiments/distill_recipe.py --root WORK` trains the KD arms on them:
its arms reproduce the distill stage's to the digit on the stage's own teachers.

Run in a workspace after `distill` (the default profile):
  `python experiments/teacher_self_training.py --work /tmp/st [--keep 0.5] [--steps 600]
      [--lr 1e-3] [--warmup 60] [--out experiments/results/teacher_self_training.json]`
then `python experiments/distill_recipe.py --root /tmp/st --variants base --arms tok_kd unc_kd`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from distill_pseudo_labels import pseudo_label  # experiments/ (the script's folder is on sys.path)
from report import emit

from hubert_ee.config import FinetuneParams, load_params
from hubert_ee.data.asr_data import ASRData, AugmentedASRData, domain_split
from hubert_ee.data.manifest import load_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import emissions
from hubert_ee.decode.teacher_outputs import cache_split, cache_teachers, teacher_paths
from hubert_ee.device import compute_device
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.checkpoint import load_ctc_model, save_ctc_model
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.provenance import file_md5
from hubert_ee.train.checkpointing import fingerprint
from hubert_ee.train.finetune import finetune
from hubert_ee.train.teacher import beam_report, teacher_decoders
from hubert_ee.train.variance_fit import refit_variance_head


def hearing(model: CTCModel, decoders: dict, data: ASRData, batch_s: float) -> dict:
    """Greedy WER and CER, and the WER with each of the teacher's lexicon decoders (the stage's
    `beam_report` on the same emissions)."""
    lexicon = {k: decoders[k] for k in ("beam_lexicon", "beam_lexicon_lm") if k in decoders}
    r = beam_report(emissions(model, data, batch_s, compute_device()), data, lexicon)
    return {"greedy": r["wer_greedy"], "greedy_cer": r["cer_greedy"]} | {
        k: r[f"wer_{k}"] for k in lexicon
    }


def with_trainable_variance(model: CTCModel, ft: FinetuneParams) -> CTCModel:
    """The model with a fresh σ² head on the hidden state, as the stage trains one (the saved
    teacher carries the head refitted on its logits)."""
    fresh = CTCModel(model.encoder, CharVocab(), True, ft.final_dropout)
    fresh.head.load_state_dict(model.head.state_dict())
    return fresh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="a workspace after `distill`")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--work", required=True, help="adapted teachers, stores and resume states")
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--labels", choices=["pseudo", "truth"], default="pseudo",
                    help="truth: the kept utterances' true transcripts (the diagnostic bound)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    root, work, params = Path(args.root).resolve(), Path(args.work), load_params(args.params)
    ft, dp = params.finetune, params.distill
    target, domains = params.data.target_domain, params.data.teacher_domains
    manifests, vocab, seed = root / "data/prepared", CharVocab(), params.seed
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    for rel in ("data/prepared", "models/supernet"):  # what distill_recipe.py --root reads
        link = work / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(root / rel)

    unl = load_split(manifests, "unlabeled")
    unl = unl[unl["domain"] == target].reset_index(drop=True)
    t_dev = domain_split(manifests, "dev", target, vocab)
    t_test = domain_split(manifests, "test", target, vocab)
    cfg = ft.with_fields(
        max_steps=args.steps, lr=args.lr, warmup_steps=args.warmup, eval_every=args.steps
    )
    report: dict = {
        "command": "python experiments/teacher_self_training.py --work WORK "
        f"--keep {args.keep} --labels {args.labels} --steps {args.steps} --lr {args.lr:g} "
        f"--warmup {args.warmup}",
        "root": str(root),
        "recipe": {
            "steps": args.steps,
            "lr": args.lr,
            "warmup": args.warmup,
            "keep": args.keep,
            "labels": args.labels,
            "augment": ft.augment is not None,
            "schedule": ft.schedule,
        },
        "teachers": {},
    }
    adapted = {}
    for d, path in teacher_paths(domains, root / "models/teachers").items():
        own_train = domain_split(manifests, "train", d, vocab)
        own_dev = domain_split(manifests, "dev", d, vocab)
        own_test = domain_split(manifests, "test", d, vocab)
        decoders = teacher_decoders(ft, own_train)
        bs = ft.eval_batch_seconds
        scored = {  # the target's dev and test with its decoders, its own test greedily
            f"{target}_dev": (t_dev, decoders),
            f"{target}_test": (t_test, decoders),
            f"{d}_test": (own_test, {}),
        }
        model = load_ctc_model(path).to(compute_device())
        before = {k: hearing(model, dec, data, bs) for k, (data, dec) in scored.items()}
        print(d, "before", before, flush=True)
        store = cache_split(model, unl, work / "pl" / d, dp.teacher_output_shards,
                            dp.eval_batch_seconds, f"teacher {d} on {target}/unlabeled")  # fmt: skip
        pl = pseudo_label(store, unl, decoders["beam_lexicon_lm"])
        pl = pl[pl["text"].str.strip() != ""].sort_values("teacher_uncertainty", kind="stable")
        kept = pl.head(round(args.keep * len(pl)))
        quality = {
            "utterances": len(kept),
            "minutes": round(float(kept["duration"].sum()) / 60, 1),
            "wer_vs_truth": round(wer(kept["true_text"].tolist(), kept["text"].tolist()), 5),
            "cer_vs_truth": round(cer(kept["true_text"].tolist(), kept["text"].tolist()), 5),
            "all_wer_vs_truth": round(wer(pl["true_text"].tolist(), pl["text"].tolist()), 5),
        }  # the unlabeled split's truth (the synthetic corpus's): reported; trained on by truth only
        print(d, "pseudo-labels", quality, flush=True)
        if args.labels == "truth":
            kept = kept.assign(text=kept["true_text"])
        mixed = ASRData(
            pd.concat([own_train.rows, kept[own_train.rows.columns]], ignore_index=True), vocab
        )
        train = mixed if ft.augment is None else AugmentedASRData(mixed, ft.augment.chain(), seed)
        torch.manual_seed(seed)
        student = with_trainable_variance(model, ft)
        run_id = fingerprint({"teacher": d, "recipe": report["recipe"], "labels": len(kept),
                              "model": file_md5(path)})  # fmt: skip
        t1 = time.perf_counter()
        result = finetune(student, train, own_dev, cfg, seed, work / "state" / f"{d}.pt",
                          run_id, compute_device())  # fmt: skip
        refit = refit_variance_head(student, own_train, ft.variance_refit, seed, bs,
                                    compute_device())  # fmt: skip
        after = {k: hearing(student, dec, data, bs) for k, (data, dec) in scored.items()}
        print(d, "after", after, flush=True)
        out = work / "models/teachers" / d / "model.safetensors"
        save_ctc_model(student, out, {"domain": d, "arm": "self_trained"})
        adapted[d] = out
        report["teachers"][d] = {
            "pseudo_labels": quality,
            "train_utterances": len(mixed),
            "own_dev_wer_last": round(result.best["wer"], 5),
            "before": before,
            "after": after,
            "variance_refit": refit,
            "train_s": round(time.perf_counter() - t1, 1),
        }
        emit(report, args.out, partial=True)
    cache_teachers(adapted, manifests, target, ["train"], work / "data/teacher_outputs",
                   dp.teacher_output_shards, dp.eval_batch_seconds)  # fmt: skip
    report["seconds"] = round(time.perf_counter() - t0, 1)
    emit(report, args.out)


if __name__ == "__main__":
    main()
