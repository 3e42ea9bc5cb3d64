"""Which fine-tuning recipe keeps what pretraining learned (issue 13, DESIGN §6)?

Fine-tunes one domain's CTC model from a pretrained encoder (and from scratch) under recipe
variants (overrides of params.yaml's `finetune` fields, plus `reinit_top_layers`), on the same
data and budget, and prints one JSON object: every variant's dev WER/CER curve and best dev
WER. Dev only: test splits are never read. The decision it informs goes into params.yaml with
the command that produced it.

Variant sets (`--set`): `recipe` (which schedule keeps pretraining; 250 steps of 20 s
batches), `batch` (more, smaller updates for the same audio: every variant sees the same
number of audio seconds, so steps = budget / batch seconds; head-only phase and warm-up are
10 % of each variant's steps).

Run: `python experiments/finetune_recipe.py models/pretrain_iter2/encoder.safetensors
      --domain read --set recipe --steps 250 --out experiments/results/finetune_recipe.json`
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.decode.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder, reinit_top_layers
from hubert_ee.train.asr_data import domain_split
from hubert_ee.train.finetune import FinetuneConfig, finetune

MASKS = {"mask_time_prob": 0.05, "mask_channel_prob": 0.01}
RECIPE = {
    # the recipe before issue 13: every weight at 3e-3 from step 0, top 2 layers re-initialised
    "old_pretrained": ("pretrained", {"lr": 3e-3, "reinit_top_layers": 2}),
    "old_scratch": ("scratch", {"lr": 3e-3}),
    # fairseq-like: head-only phase, encoder at a fraction of the heads' lr, tri-stage, masks
    "new_pretrained_s0.1": ("pretrained", {"lr": 3e-3, "freeze_encoder_steps": 50,
        "encoder_lr_scale": 0.1, "schedule": "tri_stage", **MASKS}),
    "new_pretrained_s0.3": ("pretrained", {"lr": 3e-3, "freeze_encoder_steps": 50,
        "encoder_lr_scale": 0.3, "schedule": "tri_stage", **MASKS}),
    "new_scratch": ("scratch", {"lr": 3e-3, "schedule": "tri_stage", **MASKS}),
}  # fmt: skip
NEW = {"schedule": "tri_stage", **MASKS}


def _per_batch(batch_s: float, budget_s: float, extra: dict, freeze: bool) -> dict:
    steps = int(budget_s / batch_s)
    tenth = max(1, steps // 10)
    return {"max_batch_seconds": batch_s, "max_steps": steps, "warmup_steps": tenth,
            "eval_every": max(1, steps // 5), "freeze_encoder_steps": tenth if freeze else 0,
            **NEW, **extra}  # fmt: skip


BUDGET_S = 6000.0  # audio seconds per variant in the `batch` set (0.6 of the default's 500 x 20 s)
BATCH = {
    "scratch_b20": ("scratch", _per_batch(20, BUDGET_S, {"lr": 1e-3}, False)),
    "scratch_b8": ("scratch", _per_batch(8, BUDGET_S, {"lr": 1e-3}, False)),
    "pretrained_b20_s0.1": ("pretrained", _per_batch(20, BUDGET_S, {"lr": 3e-3, "encoder_lr_scale": 0.1}, True)),
    "pretrained_b8_s0.1": ("pretrained", _per_batch(8, BUDGET_S, {"lr": 3e-3, "encoder_lr_scale": 0.1}, True)),
    "pretrained_b8_s0.3": ("pretrained", _per_batch(8, BUDGET_S, {"lr": 3e-3, "encoder_lr_scale": 0.3}, True)),
    "pretrained_b8_s1.0": ("pretrained", _per_batch(8, BUDGET_S, {"lr": 1e-3, "encoder_lr_scale": 1.0}, True)),
}  # fmt: skip
SETS = {"recipe": RECIPE, "batch": BATCH}


def train_variant(name, variant, seed, args, params, pretrained, train, dev, vocab) -> dict:
    """One fine-tuning run of a variant at one seed: its dev curve and best dev WER/CER."""
    init, over = variant
    over = dict(over)
    reinit = over.pop("reinit_top_layers", 0)
    cfg = FinetuneConfig.from_section(
        params.finetune, seed, **{"encoder_lr_scale": 1.0, "freeze_encoder_steps": 0,
        "schedule": "linear", "mask_time_prob": 0.0, "mask_channel_prob": 0.0,
        "warmup_steps": max(1, args.steps // 10), "max_steps": args.steps,
        "eval_every": args.eval_every, **over, "patience": 100},
    )  # fmt: skip
    torch.manual_seed(seed)
    if init == "pretrained":
        enc = copy.deepcopy(pretrained)
        reinit_top_layers(enc, reinit, seed)
    else:
        enc = HubertEncoder(pretrained.cfg)
    model = CTCModel(enc, vocab, params.finetune.uncertainty, params.finetune.final_dropout)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = finetune(model, train, dev, cfg, Path(tmp) / "s.pt", name, torch.device("cpu"))
    row = {"init": init, "overrides": variant[1], "seed": seed,
           "best_dev_wer": round(r.best["wer"], 4), "best_dev_cer": round(r.best["cer"], 4),
           "best_step": r.best["step"], "dev_curve": r.evals,
           "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    print(json.dumps({name: {k: row[k] for k in ("seed", "best_dev_wer", "best_dev_cer", "wall_s")}}),
          flush=True)  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("encoder")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--set", choices=sorted(SETS), default="recipe")
    ap.add_argument("--variants", help="comma-separated subset of the set's variants")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument(
        "--seeds", help="comma-separated seeds (default: params' seed); with several, each "
        "variant reports its per-seed rows and the spread (max - min) of its best dev WER",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(2)
    params = load_params(args.params)
    vocab = CharVocab()
    train = domain_split(args.manifests, "train", args.domain, vocab)
    dev = domain_split(args.manifests, "dev", args.domain, vocab)
    pretrained = load_encoder(args.encoder)
    variants = SETS[args.set]
    report: dict = {"encoder": args.encoder, "domain": args.domain, "set": args.set,
                    "steps": args.steps, "variants": {}}  # fmt: skip
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [params.seed]
    for name in args.variants.split(",") if args.variants else variants:
        rows = {seed: train_variant(name, variants[name], seed, args, params, pretrained,
                                    train, dev, vocab) for seed in seeds}  # fmt: skip
        if len(seeds) == 1:
            report["variants"][name] = rows[seeds[0]]
            continue
        wers = [r["best_dev_wer"] for r in rows.values()]
        report["variants"][name] = {
            "init": rows[seeds[0]]["init"], "overrides": variants[name][1], "seeds": rows,
            "best_dev_wer_mean": round(sum(wers) / len(wers), 4),
            "best_dev_wer_spread": round(max(wers) - min(wers), 4),
        }  # fmt: skip
    emit(report, args.out)


if __name__ == "__main__":
    main()
