"""Which layer of a model to cluster for the next HuBERT iteration: PNMI of every layer's
features (and of MFCC, for reference) on one split, k-means fit and scored on that split.

As the k-means stage does it: per-utterance CMVN (`--no-cmvn` for raw features), the
`--implementation` of `kmeans.implementation` (faiss by default). Next to each phone PNMI
the domain PNMI, I(domain; cluster)/H(domain): how much of the channel the clusters carry.
In-sample and quick, for choosing `iterations.iter<N>.layer` and for the layer table of the
final model (README); the stage's held-out figures are in `metrics/kmeans_iter<N>.json`.
Run: `python benchmarks/layer_pnmi.py models/pretrain_iter1/encoder.safetensors [--split dev] [--k 100]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hubert_ee.cluster.kmeans import assign, fit
from hubert_ee.cluster.metrics import cluster_quality, joint_counts
from hubert_ee.cluster.phones import frame_phones
from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.manifest import load_split
from hubert_ee.features.mfcc import MfccSource
from hubert_ee.features.normalize import cmvn
from hubert_ee.models.checkpoint import load_encoder


def _ids(values: list) -> tuple[np.ndarray, int]:
    index = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.array([index[v] for v in values]), len(index)


def pnmi(
    feats: list[np.ndarray], phones: list, domains: list, hop: int, window: int, args
) -> dict[str, float]:
    """{"pnmi": phone PNMI, "domain_pnmi": domain PNMI} of k-means labels of these frames."""
    feats = [cmvn(f) if args.cmvn else f for f in feats]
    x = np.concatenate(feats).astype(np.float32)
    model = fit(args.implementation, x, args.k, args.max_iter, 1, args.seed)
    labels = assign(torch.from_numpy(x), torch.from_numpy(model.centroids))[0].numpy()
    ph = [
        p
        for f, al in zip(feats, phones, strict=True)
        for p in frame_phones(al, len(f), hop, window)
    ]
    dom = [d for f, d in zip(feats, domains, strict=True) for _ in range(len(f))]
    out = {}
    for name, values in (("pnmi", ph), ("domain_pnmi", dom)):
        ids, n = _ids(values)
        out[name] = round(cluster_quality(joint_counts(ids, labels, n, args.k))["pnmi"], 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--implementation", choices=["faiss", "torch", "sklearn"], default="faiss")
    ap.add_argument("--max-iter", type=int, default=25)
    ap.add_argument("--no-cmvn", dest="cmvn", action="store_false")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    m = load_split(args.manifests, args.split)
    m = m[m["phones"].notna()]
    waves = [read_mono_16k(r.path, r.start, r.duration) for r in m.itertuples()]
    phones, domains = list(m["phones"]), list(m["domain"])
    enc = load_encoder(args.checkpoint).eval()
    hop, window = enc.cfg.stride, enc.cfg.receptive_field
    out = {
        "checkpoint": args.checkpoint,
        "split": args.split,
        "k": args.k,
        "cmvn": args.cmvn,
        "implementation": args.implementation,
        "mfcc": pnmi([MfccSource()(w) for w in waves], phones, domains, 160, 400, args),
    }
    with torch.inference_mode():
        per_utt = [enc.hidden_states(torch.from_numpy(w)[None])[0] for w in waves]
        inputs = [enc.features(torch.from_numpy(w)[None])[0][0].numpy() for w in waves]
    out["projected_input"] = pnmi(inputs, phones, domains, hop, window, args)
    for layer in range(enc.cfg.num_layers):
        feats = [h[layer][0].numpy() for h in per_utt]
        out[f"layer{layer + 1}"] = pnmi(feats, phones, domains, hop, window, args)
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
