"""Which layer of a model to cluster for the next HuBERT iteration: PNMI of every layer's
features (and of MFCC, for reference) on one split, k-means fit and scored on that split.

In-sample and quick, for choosing `iterations.iter<N>.layer`, not for reporting.
Run: `python benchmarks/layer_pnmi.py models/pretrain_iter1/encoder.safetensors [--split dev] [--k 100]`.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from hubert_ee.cluster.kmeans import assign, fit_torch
from hubert_ee.cluster.metrics import cluster_quality, joint_counts
from hubert_ee.cluster.phones import frame_phones
from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.manifest import load_split
from hubert_ee.features.mfcc import MfccSource
from hubert_ee.models.checkpoint import load_encoder


def pnmi(feats: list[np.ndarray], phones: list, hop: int, window: int, k: int, seed: int) -> float:
    x = np.concatenate(feats).astype(np.float32)
    model = fit_torch(x, k, 50, 1, seed)
    labels = assign(torch.from_numpy(x), torch.from_numpy(model.centroids))[0].numpy()
    ph = [
        p
        for f, al in zip(feats, phones, strict=True)
        for p in frame_phones(al, len(f), hop, window)
    ]
    ids = {p: i for i, p in enumerate(sorted(set(ph)))}
    return cluster_quality(joint_counts(np.array([ids[p] for p in ph]), labels, len(ids), k))[
        "pnmi"
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    m = load_split(args.manifests, args.split)
    m = m[m["phones"].notna()]
    waves = [read_mono_16k(r.path, r.start, r.duration) for r in m.itertuples()]
    phones = list(m["phones"])
    enc = load_encoder(args.checkpoint).eval()
    hop, window = enc.cfg.stride, enc.cfg.receptive_field
    out = {
        "split": args.split,
        "k": args.k,
        "mfcc": round(
            pnmi([MfccSource()(w) for w in waves], phones, 160, 400, args.k, args.seed), 4
        ),
    }
    with torch.inference_mode():
        per_utt = [enc.hidden_states(torch.from_numpy(w)[None])[0] for w in waves]
        inputs = [enc.features(torch.from_numpy(w)[None])[0][0].numpy() for w in waves]
    out["projected_input"] = round(pnmi(inputs, phones, hop, window, args.k, args.seed), 4)
    for layer in range(enc.cfg.num_layers):
        out[f"layer{layer + 1}"] = round(
            pnmi([h[layer][0].numpy() for h in per_utt], phones, hop, window, args.k, args.seed), 4
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
