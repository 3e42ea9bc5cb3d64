"""Pretraining throughput of the two objectives (issue 16): HuBERT's masked prediction vs
wav2vec 2.0's contrastive loss with its quantiser, on the same encoder configuration, the same
batches and masks, in one process, forward + backward + optimizer step, interleaved repeats.

Prints one JSON line per objective (audio seconds per second, median) and one with the ratio
wav2vec2 / hubert. The quality side of the comparison (layer PNMI, teacher WER at equal steps)
is experiments/pretrain_budget.py + experiments/finetune_recipe.py (README, "Pretraining").
Run: `python benchmarks/objectives.py [--preset tiny|base] [--batch 4] [--seconds 8]`.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from statistics import median

import torch

from hubert_ee.config import load_params
from hubert_ee.models import config as mc
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.pretrain_head import HubertPretrainModel
from hubert_ee.models.quantizer import QuantizerConfig
from hubert_ee.models.wav2vec2_head import Wav2Vec2PretrainModel
from hubert_ee.train.masking import span_mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=["tiny", "base"], default="tiny")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    pt = load_params(args.params).pretrain
    o = pt.wav2vec2
    cfg = replace(getattr(mc, args.preset)(), dropout=0.0, layer_drop=0.0)
    torch.manual_seed(0)
    models = {
        "hubert": HubertPretrainModel(HubertEncoder(cfg), args.k, pt.final_dim),
        "wav2vec2": Wav2Vec2PretrainModel(
            HubertEncoder(cfg),
            QuantizerConfig(o.codebook_groups, o.codebook_entries, pt.final_dim, *o.temp),
            pt.final_dim, o.num_negatives, o.logit_temp, o.diversity_weight,
            o.feature_penalty_weight,
        ),
    }  # fmt: skip
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-4) for n, m in models.items()}
    samples = int(args.seconds * 16000)
    wave = torch.randn(args.batch, samples)
    lengths = torch.full((args.batch,), samples)
    frames = cfg.num_frames(samples)
    labels = torch.randint(0, args.k, (args.batch, frames))
    gen = torch.Generator().manual_seed(0)
    mask = span_mask(torch.full((args.batch,), frames), frames, pt.mask_prob, pt.mask_span, gen)

    def step(name: str) -> float:
        model, opt = models[name], opts[name]
        extra = {"generator": torch.Generator().manual_seed(1)} if name == "wav2vec2" else {}
        t0 = time.perf_counter()
        out = model(wave, lengths, labels, mask, **extra)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for name in models:  # warm-up
        step(name)
    times: dict[str, list[float]] = {n: [] for n in models}
    for _ in range(args.repeats):
        for name in models:
            times[name].append(step(name))
    audio = args.batch * args.seconds
    rows = {}
    for name in models:
        rows[name] = {"objective": name, "preset": args.preset, "batch": args.batch,
                      "seconds": args.seconds, "threads": torch.get_num_threads(),
                      "audio_s_per_s": round(audio / median(times[name]), 1)}  # fmt: skip
        print(json.dumps(rows[name]), flush=True)
    ratio = rows["wav2vec2"]["audio_s_per_s"] / rows["hubert"]["audio_s_per_s"]
    print(json.dumps({"wav2vec2_over_hubert": round(ratio, 3)}))


if __name__ == "__main__":
    main()
