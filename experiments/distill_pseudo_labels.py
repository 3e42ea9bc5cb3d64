"""Do the teachers' lexicon transcripts of the target's unlabeled audio teach the student more
than their frame posteriors (issue 14)?

Hypothesis: the read teacher hears the target at greedy WER 0.86 but at 0.57 with beam search
over its own training words and its word LM (zero target labels). Frame-level KD (tok_kd)
passes on the greedy posteriors, i.e. the 0.86 teacher; KD on the target's unlabeled audio with
those posteriors did not help (distill_augmented_2100.json). Sequence-level KD (Kim & Rush
2016; noisy-student pseudo-labels) passes on the decoder's transcripts instead: each unlabeled
target utterance gets the teacher's lexicon + LM transcript as a CTC target, next to the 15 min
of real labels, and the KD arms keep their teacher terms on every row.

The labelling teacher is chosen on the target's dev split (its WER with the chosen decoder);
`--keep` < 1 keeps the utterances whose teacher is surest (lowest mean Σσ² per frame, the
teachers' uncertainty head; no labels involved). Each variant trains the distill stage's arms
(`train_arm`, the stage's recipe, `--max-steps` overriding distill.max_steps) on the same
seeds, is early-stopped and compared on target dev; test is reported, never chosen on. The
pseudo-labels' WER against the unlabeled split's true transcripts is reported (the synthetic
corpus has them), never used. `--labels truth` is a diagnostic bound, not a recipe: the same
rows with those true transcripts (target labels a product never has), i.e. the student's WER
with more target labels, which no teacher's transcripts can beat.

`--keep` with no value and `--with-baseline` trains the arms without pseudo-labels only: the
distillation step curve (`--max-steps 600`, `--max-steps 900`) that chose distill.max_steps.

Run in a default run's workspace (after `distill`):
  `python experiments/distill_pseudo_labels.py [--keep 1.0 0.5] [--max-steps 300]
      [--seeds 1234 1235] [--arms student_only tok_kd unc_kd] [--with-baseline]
      [--cache /tmp/pl_cache] [--out experiments/results/distill_pseudo_labels.json]`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.manifest import load_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.decode.teacher_outputs import cache_split, teacher_paths
from hubert_ee.device import compute_device
from hubert_ee.features.store import FrameStore
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.checkpoint import load_ctc_model, load_encoder
from hubert_ee.train.distill import KDData
from hubert_ee.train.kd_arms import arms, kd_data, test_scores, train_arm
from hubert_ee.train.teacher import teacher_decoders


def pseudo_label(store: FrameStore, rows: pd.DataFrame, decoder) -> pd.DataFrame:
    """Per unlabeled row: the decoder's transcript of the cached teacher logits and the mean
    Σσ² per frame (the teacher's uncertainty of the utterance)."""
    cached = dict(store)  # utterance id -> memory-mapped [logits | σ²] frames
    texts, unc = [], []
    for uid in rows["id"]:
        frames = torch.from_numpy(np.array(cached[uid], dtype=np.float32))
        c = frames.shape[1] // 2
        lp = F.log_softmax(frames[:, :c], dim=-1)
        texts.append(decoder(lp[None], None)[0])
        unc.append(float(frames[:, c:].sum(-1).mean()))
    out = rows.copy()
    out["true_text"] = out["text"]
    out["text"] = texts
    out["teacher_uncertainty"] = unc
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--decoder", default="beam_lexicon_lm",
                    help="which of the finetune stage's decoders labels (teacher_decoders)")  # fmt: skip
    ap.add_argument("--labels", choices=["pseudo", "truth"], default="pseudo",
                    help="truth: the unlabeled rows' true transcripts (a bound, not a recipe)")  # fmt: skip
    ap.add_argument("--keep", type=float, nargs="*", default=[1.0])
    ap.add_argument("--max-steps", type=int, nargs="+", default=[300])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1234, 1235])
    ap.add_argument("--arms", nargs="+", default=["student_only", "tok_kd", "unc_kd"])
    ap.add_argument("--with-baseline", action="store_true",
                    help="also train the arms without pseudo-labels at every --max-steps")  # fmt: skip
    ap.add_argument("--cache", default="/tmp/pl_cache", help="teacher outputs on unlabeled")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    dp, target = params.distill, params.data.target_domain
    domains, manifests = params.data.teacher_domains, root / "data/prepared"
    vocab, cache = CharVocab(), Path(args.cache)
    torch.set_num_threads(2)
    t0 = time.perf_counter()

    unl = load_split(manifests, "unlabeled")
    unl = unl[unl["domain"] == target].reset_index(drop=True)
    dev = domain_split(manifests, "dev", target, vocab)
    test = domain_split(manifests, "test", target, vocab)
    stores, labelling = {}, {}
    for d, path in teacher_paths(domains, root / "models/teachers").items():
        model = load_ctc_model(path).to(compute_device())
        stores[d] = cache_split(model, unl, cache / d / "unlabeled", dp.teacher_output_shards,
                                dp.eval_batch_seconds, f"teacher {d} on {target}/unlabeled")  # fmt: skip
        decoder = teacher_decoders(params.finetune, domain_split(manifests, "train", d, vocab))[
            args.decoder
        ]
        lps = emissions(model, dev, dp.eval_batch_seconds, compute_device())
        hyps = [decoder(lp[None], None)[0] for lp in lps]
        labelling[d] = {
            "dev_wer_greedy": round(greedy_scores(lps, dev)["wer"], 5),
            "dev_wer": round(wer(dev.texts(), hyps), 5),
            "dev_cer": round(cer(dev.texts(), hyps), 5),
            "decoder": decoder,
        }
        print(d, {k: v for k, v in labelling[d].items() if k != "decoder"}, flush=True)
    chosen = min(labelling, key=lambda d: labelling[d]["dev_wer"])  # on target dev
    pl = pseudo_label(stores[chosen], unl, labelling[chosen]["decoder"])
    if args.labels == "truth":  # the bound: same rows, same order, the corpus's transcripts
        pl["text"] = pl["true_text"]
    pl = pl[pl["text"].str.strip() != ""].reset_index(drop=True)
    pl_quality = {
        "utterances": len(pl),
        "minutes": round(float(pl["duration"].sum()) / 60, 1),
        "wer_vs_truth": round(wer(pl["true_text"].tolist(), pl["text"].tolist()), 5),
        "cer_vs_truth": round(cer(pl["true_text"].tolist(), pl["text"].tolist()), 5),
    }
    print("pseudo-labels", pl_quality, flush=True)

    base = kd_data(manifests, root / "data/teacher_outputs", domains, target, False, vocab)
    train_rows = base["labeled"].rows
    with_unlabeled = [  # per teacher: its stores of the target's train and unlabeled splits
        [FrameStore(root / "data/teacher_outputs" / d / "train"), stores[d]] for d in domains
    ]
    pretrained = load_encoder(root / "models/supernet/student.safetensors")
    every_arm = arms(dp, domains)
    pl_sorted = pl.sort_values("teacher_uncertainty", kind="stable")
    variants = [("no_pl", 0.0)] if args.with_baseline else []
    variants += [(f"pl_keep{k}", k) for k in args.keep]
    state = cache / "state"
    rows = []
    for steps in args.max_steps:
        dps = dp.model_copy(update={"max_steps": steps})
        for name, keep in variants:
            if keep == 0.0:
                data = base
            else:
                kept = pl_sorted.head(round(keep * len(pl_sorted)))
                mixed = pd.concat([train_rows, kept[train_rows.columns]], ignore_index=True)
                kd = KDData(mixed, vocab, with_unlabeled)
                data = {"labeled": kd, "all": kd}
            for seed in args.seeds:
                for arm in args.arms:
                    tag = f"{name}-{steps}-{arm}-{seed}"
                    student, result = train_arm(
                        arm, every_arm[arm], dps.for_arm(arm), seed, pretrained, data, dev,
                        state / f"{tag}.pt", tag, lambda m, step: None,
                    )  # fmt: skip
                    row = {
                        "variant": name,
                        "keep": keep,
                        "max_steps": steps,
                        "arm": arm,
                        "seed": seed,
                        "train_utterances": len(data["labeled"]),
                        "dev_wer": round(result.best["wer"], 5),
                        "best_step": result.best.get("step"),
                        "dev_curve": [[e["step"], e["wer"], e["cer"]] for e in result.evals],
                        "test": test_scores(student, {target: test}, dp.eval_batch_seconds),
                    }
                    rows.append(row)
                    print("RESULT", json.dumps(row), flush=True)
    summary: dict = {}
    for r in rows:
        key = f"{r['variant']}/{r['max_steps']}/{r['arm']}"
        s = summary.setdefault(key, {"dev": [], "test": []})
        s["dev"].append(r["dev_wer"])
        s["test"].append(r["test"]["wer"][target])
    for s in summary.values():
        for split in ("dev", "test"):
            v = s[split]
            s[f"{split}_mean"] = round(sum(v) / len(v), 5)
            s[f"{split}_spread"] = round(max(v) - min(v), 5)
    report = {
        "command": "python experiments/distill_pseudo_labels.py " + " ".join(
            f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else
                                          f" {' '.join(map(str, v)) if isinstance(v, list) else v}")
            for k, v in vars(args).items()
            if k not in ("root", "params", "out", "cache") and v is not False
        ).replace("  ", " "),
        "labelling_teachers": {
            d: {k: v for k, v in x.items() if k != "decoder"} for d, x in labelling.items()
        },
        "chosen_teacher": chosen,
        "pseudo_labels": pl_quality,
        "rows": rows,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    emit(report, args.out)


if __name__ == "__main__":
    main()
