"""Which fine-tuning recipe keeps what pretraining learned (issue 13, DESIGN §6)?

Fine-tunes one domain's CTC model from a pretrained encoder (and from scratch) under recipe
variants (overrides of params.yaml's `finetune` fields, plus `reinit_top_layers`), on the same
data and budget, and prints one JSON object: every variant's dev WER/CER curve and best dev
WER. Dev only: test splits are never read. The decision it informs goes into params.yaml with
the command that produced it.

Variant sets (`--set`): `recipe` (which schedule keeps pretraining; 250 steps of 20 s
batches), `batch` (more, smaller updates for the same audio: every variant sees the same
number of audio seconds, so steps = budget / batch seconds; head-only phase and warm-up are
10 % of each variant's steps), `augment` (params.yaml's recipe with and without training-time
corruption, issue 14: does a teacher trained on clean speech get closer to the noisy telephone
target? Use `--eval-domains phone,lecture` to score the target's dev split too), `budget`
(today's recipe and the pre-issue-13 one, each given the old recipe's 16 000 audio seconds),
`uncertainty` (the σ² head's likelihood integrated per utterance or per frame, issue 14; each
variant's best model is probed with experiments/uncertainty_probe.py on every dev split scored),
`init` (the stage's recipe from the given encoder and from scratch: which encoder fine-tunes
better, e.g. iteration 1 against iteration 2 of one run).

Run: `python experiments/finetune_recipe.py models/pretrain_iter2/encoder.safetensors
      --domain read --set recipe --steps 250 --out experiments/results/finetune_recipe.json`
     `python experiments/finetune_recipe.py models/pretrain_iter2/encoder.safetensors
      --domain read --set augment --steps 800 --eval-every 100 --eval-domains phone
      --out experiments/results/finetune_augment.json`
     `python experiments/finetune_recipe.py models/pretrain_iter2/encoder.safetensors
      --domain read --set budget --threads 1 --variants scratch_b20_lr3e-3_linear,scratch_b8_lr1e-3_tri
      --out experiments/results/finetune_budget_scratch.json` (and the two pretrained_* variants)
     `python experiments/finetune_recipe.py models/pretrain_iter2/encoder.safetensors
      --domain read --set uncertainty --steps 800 --eval-every 100 --eval-domains phone
      --out experiments/results/finetune_uncertainty_read.json`
     `python experiments/finetune_recipe.py models/pretrain_iter1/encoder.safetensors
      --domain read --set init --variants pretrained --steps 700 --eval-every 100
      --seeds 1234,1235 --threads 1` (and models/pretrain_iter2/...; `--variants scratch`),
      collected in experiments/results/finetune_init_iter1_vs_iter2.json
     `python experiments/finetune_recipe.py models/pretrain_iter2/encoder.safetensors --domain read
      --set frontend --variants scratch_fullband --steps 700 --eval-every 100 --eval-domains
      phone,lecture --eval-conditions line,noise+line --threads 1` (and scratch_band300_3400,
      side by side), collected in experiments/results/frontend_band_read.json
     `python experiments/finetune_recipe.py /tmp/pb3200/model/encoder.safetensors --domain read
      --set init --variants pretrained,scratch --label-minutes 10 --steps 700 --eval-every 100
      --seeds 1234 --threads 1` (the low-label regime; one seed per process, two side by side)
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torchaudio
from phone_gap import CONDITIONS
from report import emit  # experiments/report.py (the script's folder is on sys.path)
from uncertainty_probe import probe

from hubert_ee.config import AugmentParams, load_params
from hubert_ee.data.asr_data import AugmentedASRData, domain_split, subset_minutes
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder, reinit_top_layers
from hubert_ee.models.logmel_frontend import LogMelFrontend
from hubert_ee.train.finetune import finetune

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
# params.yaml's fine-tuning recipe (chosen with the `budget` set); `augment` adds the
# training-time corruption of hubert_ee.data.augment
DEFAULT = {
    "lr": 3e-3,
    "max_batch_seconds": 20,
    "schedule": "linear",
}  # fmt: skip (steps and warm-up: --steps)
# the recipe before the `budget` set chose DEFAULT (pretrained arm at its probe-chosen lr)
BEFORE_BUDGET = {"lr": 1e-3, "max_batch_seconds": 8, "freeze_encoder_steps": 80,
                 "encoder_lr_scale": 0.3, **NEW}  # fmt: skip
AUG = {"prob": 1.0, "speeds": [0.9, 1.0, 1.1], "noise_prob": 0.5,
       "noise_kinds": ["white", "pink", "babble"], "snr_db": [5, 20], "reverb_prob": 0.3,
       "rt60_s": [0.2, 0.8], "telephone_prob": 0.5}  # fmt: skip
AUGMENT = {
    "pretrained": ("pretrained", DEFAULT),
    "pretrained_aug": ("pretrained", {**DEFAULT, "augment": AUG}),
    "pretrained_aug_phone": ("pretrained", {**DEFAULT, "augment": {**AUG, "noise_prob": 0.8,
                                                                  "telephone_prob": 0.8}}),
    # half of the utterances corrupted (the rest clean), most of those through the telephone
    # channel: does the teacher keep learning its own domain and hear the target better?
    "pretrained_aug_half": ("pretrained", {**DEFAULT, "augment": {**AUG, "prob": 0.5,
                                                                 "telephone_prob": 0.8}}),
    # half of the utterances through exactly the target's channel (noise 5-20 dB, then the
    # line), nothing else: with 1,400 steps, does the teacher learn its domain and the line?
    "pretrained_phone_half": ("pretrained", {**DEFAULT, "augment": {**AUG, "prob": 0.5,
        "speeds": [1.0], "noise_prob": 1.0, "reverb_prob": 0.0, "telephone_prob": 1.0}}),
    "scratch": ("scratch", DEFAULT),
    "scratch_aug": ("scratch", {**DEFAULT, "augment": AUG}),
    # pretrained_aug_half's recipe from random weights: the encoder was pretrained on unlabeled
    # audio of every domain, the target's included; does that make it hear the target better?
    "scratch_aug_half": ("scratch", {**DEFAULT, "augment": {**AUG, "prob": 0.5,
                                                           "telephone_prob": 0.8}}),
}  # fmt: skip
# `budget`: the recipe before issue 13 reached dev WER ≈ 0.34 on read with 800 x 20 s per arm
# (lr 3e-3, linear decay, no masks); today's arms get 800 x 8 s and stop near 0.85. Every
# variant here sees that old budget (16 000 audio seconds): is it the recipe or the budget?
BUDGET = {
    "scratch_b20_lr3e-3_linear": ("scratch", {"lr": 3e-3, "max_batch_seconds": 20,
        "max_steps": 800, "warmup_steps": 80, "eval_every": 100, "schedule": "linear"}),
    "scratch_b8_lr1e-3_tri": ("scratch", {**BEFORE_BUDGET, "freeze_encoder_steps": 0,
        "encoder_lr_scale": 1.0, "max_steps": 2000, "warmup_steps": 200, "eval_every": 250}),
    "pretrained_b20_lr3e-3_linear_s0.3": ("pretrained", {"lr": 3e-3, "max_batch_seconds": 20,
        "max_steps": 800, "warmup_steps": 80, "eval_every": 100, "schedule": "linear",
        "freeze_encoder_steps": 80, "encoder_lr_scale": 0.3, **MASKS}),
    "pretrained_b8_lr1e-3_tri": ("pretrained", {**BEFORE_BUDGET, "max_steps": 2000,
        "warmup_steps": 200, "eval_every": 250}),
    # the scratch arm's recipe, unchanged, from the pretrained encoder: does the init help?
    "pretrained_b20_lr3e-3_linear_s1.0": ("pretrained", {"lr": 3e-3, "max_batch_seconds": 20,
        "max_steps": 800, "warmup_steps": 80, "eval_every": 100, "schedule": "linear"}),
    # a cheaper point of the scratch recipe (the default profile's time budget)
    "scratch_b20_lr3e-3_linear_500": ("scratch", {"lr": 3e-3, "max_batch_seconds": 20,
        "max_steps": 500, "warmup_steps": 50, "eval_every": 100, "schedule": "linear"}),
}  # fmt: skip
# `uncertainty` (issue 14): the σ² head integrated per utterance (DESIGN §6) or per frame
# against the CTC alignment; each variant's best model is probed on the dev splits
# (experiments/uncertainty_probe.py: AUROC of wrong-vs-right tokens, Spearman against CER)
UNCERTAINTY = {
    "pretrained_sequence": ("pretrained", {**DEFAULT, "uncertainty_loss": "sequence"}),
    "pretrained_frame": ("pretrained", {**DEFAULT, "uncertainty_loss": "frame"}),
}  # fmt: skip
# `init` (issue 13): the stage's recipe from the given encoder and from random weights, to
# compare encoders (e.g. iteration 1 against iteration 2 of the same run) at the stage's budget;
# `pretrained_protect`: the same with a head-only phase and the encoder at 0.3x (does a
# stronger encoder, e.g. 3200 pretraining steps, want protecting where a weak one did not?)
INIT = {"pretrained": ("pretrained", DEFAULT), "scratch": ("scratch", DEFAULT),
        "pretrained_protect": ("pretrained", {**DEFAULT, "freeze_encoder_steps": 70,
                                              "encoder_lr_scale": 0.3})}  # fmt: skip
# `frontend` (issue 14, after experiments/phone_gap.py): the telephone line alone takes the read
# teacher from dev CER 0.10 to 0.58. Hypothesis: the log-mel bands above the line's 3.4 kHz hold
# only filter leakage, which per-band CMVN blows up to unit-variance noise in a third of the
# model's input. A front end that only listens to the line's band (mel filters over
# 300–3400 Hz) on every domain would hear clean and telephone speech alike. Scratch arms only:
# a pretrained encoder was trained on the full-band front end.
# `*_noise`: half of the utterances with the target's additive noise only (white/pink/babble,
# 5-20 dB SNR; no line, reverb or speed change): the part of the channel a front end cannot
# remove (experiments/phone_gap.py: noise alone takes the read teacher's dev CER 0.10 -> 0.38).
NOISE_HALF = {"prob": 0.5, "speeds": [1.0], "noise_prob": 1.0,
              "noise_kinds": ["white", "pink", "babble"], "snr_db": [5, 20], "reverb_prob": 0.0,
              "rt60_s": [0.2, 0.8], "telephone_prob": 0.0}  # fmt: skip
# `scratch_floor<N>` (after experiments/frontend_floor.py): the full band, but the floor N dB below
# the utterance's peak instead of 80, so an empty band normalises to ≈ 0 instead of to noise.
FULL = {**DEFAULT, "logmel_top_db": 80.0}  # the front end before this set
FRONTEND = {"scratch_fullband": ("scratch", FULL),
            "scratch_band300_3400": ("scratch", {**FULL, "logmel_band": (300.0, 3400.0)}),
            "scratch_floor50": ("scratch", {**DEFAULT, "logmel_top_db": 50.0}),
            "scratch_floor40": ("scratch", {**DEFAULT, "logmel_top_db": 40.0}),
            "scratch_floor30": ("scratch", {**DEFAULT, "logmel_top_db": 30.0}),
            "scratch_fullband_noise": ("scratch", {**FULL, "augment": NOISE_HALF}),
            "scratch_floor40_noise": ("scratch", {**DEFAULT, "logmel_top_db": 40.0,
                                                  "augment": NOISE_HALF})}  # fmt: skip
SETS = {"recipe": RECIPE, "batch": BATCH, "augment": AUGMENT, "budget": BUDGET,
        "uncertainty": UNCERTAINTY, "init": INIT, "frontend": FRONTEND}  # fmt: skip


def limit_band(enc: HubertEncoder, band: tuple[float, float]) -> None:
    """Mel filters over `band` (Hz) only, the same number of them, in the encoder's log-mel
    front end (parameter-free, so only the encoder trained on it should use it)."""
    fe = enc.feature_extractor
    if not isinstance(fe, LogMelFrontend):
        raise ValueError("logmel_band needs the log-mel front end (model.preset tiny)")
    old = fe.mel
    fe.mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=fe.window, win_length=fe.window, hop_length=fe.hop,
        n_mels=old.n_mels, center=False, power=2.0, f_min=band[0], f_max=band[1],
    )  # fmt: skip


def train_variant(
    name, variant, seed, args, params, pretrained, train, dev, vocab, other_devs
) -> dict:
    """One fine-tuning run of a variant at one seed: its dev curve and best dev WER/CER."""
    init, over = variant
    over = dict(over)
    reinit = over.pop("reinit_top_layers", 0)
    augment = over.pop("augment", None)
    band = over.pop("logmel_band", None)
    top_db = over.pop("logmel_top_db", None)
    if augment is not None:
        train = AugmentedASRData(train, AugmentParams(**augment).chain(), seed)
    cfg = params.finetune.with_fields(
        **{"encoder_lr_scale": 1.0, "freeze_encoder_steps": 0,
        "schedule": "linear", "mask_time_prob": 0.0, "mask_channel_prob": 0.0,
        "warmup_steps": max(1, args.steps // 10), "max_steps": args.steps,
        "eval_every": args.eval_every, **over, "patience": 100},
    )  # fmt: skip
    if top_db is not None and init != "scratch":  # the pretrained encoder learned on its own
        raise ValueError(f"{name}: logmel_top_db is for scratch arms only")
    torch.manual_seed(seed)
    if init == "pretrained":
        enc = copy.deepcopy(pretrained)
        reinit_top_layers(enc, reinit, seed)
    else:
        cfg_over = {} if top_db is None else {"logmel_top_db": top_db}
        enc = HubertEncoder(replace(pretrained.cfg, **cfg_over))
    if band is not None:
        limit_band(enc, band)
    model = CTCModel(enc, vocab, params.finetune.uncertainty, params.finetune.final_dropout)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = finetune(
            model, train, dev, cfg, seed, Path(tmp) / "s.pt", name, torch.device("cpu"),
            on_log=lambda row: print(json.dumps({name: row}), flush=True),
            stop_at=args.stop_at,
        )  # fmt: skip
    row = {"init": init, "overrides": variant[1], "seed": seed,
           "best_dev_wer": round(r.best["wer"], 4), "best_dev_cer": round(r.best["cer"], 4),
           "best_step": r.best["step"], "dev_curve": r.evals,
           "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    # the best model on the other domains' dev splits, and on its own through the target's channel
    scored = dict(other_devs)
    for cond in args.eval_conditions.split(",") if args.eval_conditions else []:
        scored[f"{args.domain}+{cond}"] = AugmentedASRData(dev, CONDITIONS[cond], params.seed)
    for label, data in scored.items():
        scores = greedy_scores(emissions(model, data, 60.0, torch.device("cpu")), data)
        row[f"dev_wer/{label}"] = round(scores["wer"], 4)
        row[f"dev_cer/{label}"] = round(scores["cer"], 4)
    if model.variance_head is not None and args.set == "uncertainty":
        row["uncertainty_probe"] = {
            d: probe(model, data, vocab, 60.0)
            for d, data in {args.domain: dev, **other_devs}.items()
        }
        print(json.dumps({name: {"uncertainty_probe": row["uncertainty_probe"]}}), flush=True)
    shown = ("seed", "best_dev_wer", "best_dev_cer", "wall_s", *[k for k in row if "/" in k])
    print(json.dumps({name: {k: row[k] for k in shown}}), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("encoder")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument(
        "--stop-at", type=int, help="stop each variant after this many steps of its schedule "
        "(a probe: does it leave the all-blank plateau?)",
    )  # fmt: skip
    ap.add_argument("--set", choices=sorted(SETS), default="recipe")
    ap.add_argument("--variants", help="comma-separated subset of the set's variants")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (two 1-thread runs "
                    "side by side use a 2-core machine better than one)")  # fmt: skip
    ap.add_argument(
        "--eval-domains", help="comma-separated domains whose dev WER the best model also reports"
    )
    ap.add_argument(
        "--eval-conditions", help="comma-separated channel conditions of experiments/phone_gap.py "
        "(noise, line, noise+line, ...) through which the best model is also scored on its own "
        "dev split",
    )  # fmt: skip
    ap.add_argument(
        "--label-minutes", type=float, help="fine-tune on a seeded subset of this many minutes "
        "of the domain's train labels (the low-label regime; the subset is drawn with params' "
        "seed, so every variant and seed sees the same utterances)",
    )  # fmt: skip
    ap.add_argument(
        "--seeds", help="comma-separated seeds (default: params' seed); with several, each "
        "variant reports its per-seed rows and the spread (max - min) of its best dev WER",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    vocab = CharVocab()
    train = domain_split(args.manifests, "train", args.domain, vocab)
    if args.label_minutes:
        train = subset_minutes(train, args.label_minutes, params.seed)
    dev = domain_split(args.manifests, "dev", args.domain, vocab)
    other_devs = {
        d: domain_split(args.manifests, "dev", d, vocab)
        for d in (args.eval_domains.split(",") if args.eval_domains else [])
    }
    pretrained = load_encoder(args.encoder)
    variants = SETS[args.set]
    report: dict = {"encoder": args.encoder, "domain": args.domain, "set": args.set,
                    "steps": args.steps, "label_minutes": args.label_minutes,
                    "train_utterances": len(train), "variants": {}}  # fmt: skip
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [params.seed]
    for name in args.variants.split(",") if args.variants else variants:
        rows = {seed: train_variant(name, variants[name], seed, args, params, pretrained,
                                    train, dev, vocab, other_devs) for seed in seeds}  # fmt: skip
        if len(seeds) == 1:
            report["variants"][name] = rows[seeds[0]]
            emit(report, args.out, partial=True)
            continue
        wers = [r["best_dev_wer"] for r in rows.values()]
        report["variants"][name] = {
            "init": rows[seeds[0]]["init"], "overrides": variants[name][1], "seeds": rows,
            "best_dev_wer_mean": round(sum(wers) / len(wers), 4),
            "best_dev_wer_spread": round(max(wers) - min(wers), 4),
        }  # fmt: skip
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
