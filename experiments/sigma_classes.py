"""Where does the teachers' σ² sit among the classes, and why on one class (issue 14)?

`kd_gradients.py` found 98–99.97 % of every frame's Σσ² on one class, `z`, for both teachers,
so the σ̂ = σ²/‖σ²‖ that uncertainty KD matches is a constant. Hypothesis: a class that no
transcript contains has no alignment mass, so the integrated CTC likelihood never constrains
its σ² (noise on a logit whose softmax is ≈ 0 changes nothing); whatever that σ² is, it
dominates σ̂. This script counts every character of every split's transcripts, and on the
teachers' cached outputs for the target's training split (what `distill` matches) measures per
teacher: each class's mean share of Σσ², which class is largest on how many frames, and the
same with the classes no transcript contains left out (σ̂ over the classes that can be
constrained): the peak share, the cosine with the uniform vector and how much σ̂ varies
between frames (mean ‖σ̂_t − mean σ̂‖²).

Nothing here chooses a default. Run in a workspace after `teacher_outputs`:
  `python experiments/sigma_classes.py [--root .] [--out experiments/results/sigma_classes.json]`
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.vocab import CharVocab
from hubert_ee.features.store import FrameStore


def class_name(vocab: CharVocab, i: int) -> str:
    return "<blank>" if i == vocab.blank else (vocab.decode([i]) or f"<{i}>")


def sigma_profile(variance: np.ndarray, names: list[str]) -> dict:
    """Share of Σσ² per class, the argmax class's frame counts, flatness and frame variation."""
    share = variance / np.maximum(variance.sum(-1, keepdims=True), 1e-30)
    top = Counter(np.argmax(variance, -1).tolist())
    unit = variance / np.maximum(np.linalg.norm(variance, axis=-1, keepdims=True), 1e-30)
    return {
        "frames": int(len(variance)),
        "peak_share_mean": round(float(share.max(-1).mean()), 4),
        "cos_uniform_mean": round(float(unit.sum(-1).mean() / np.sqrt(variance.shape[1])), 4),
        "sigma_hat_frame_variation": round(float(((unit - unit.mean(0)) ** 2).sum(-1).mean()), 5),
        "argmax_class_frames": {names[c]: n for c, n in top.most_common(5)},
        "mean_share": {
            names[c]: round(float(v), 4)
            for c, v in sorted(enumerate(share.mean(0)), key=lambda x: -x[1])[:5]
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    vocab = CharVocab()
    names = [class_name(vocab, i) for i in range(len(vocab))]
    chars: Counter = Counter()
    for path in sorted((root / "data/prepared").glob("supervisions_*.jsonl")):
        for line in path.open():
            chars.update(str(json.loads(line).get("text") or "").lower())
    occurring = {vocab.blank, vocab.boundary} | {i for i in range(len(vocab)) if names[i] in chars}
    absent = [names[i] for i in range(len(vocab)) if i not in occurring]
    keep = np.array(sorted(occurring))
    teachers = {}
    for d in params.data.teacher_domains:
        store = FrameStore(root / "data/teacher_outputs" / d / "train")
        frames = np.concatenate(
            [store.shard(s)[2] for s in range(store.meta.num_shards)], axis=0
        ).astype(np.float64)
        variance = frames[:, len(vocab) :]
        teachers[d] = {
            "all_classes": sigma_profile(variance, names),
            "classes_in_transcripts": sigma_profile(variance[:, keep], [names[i] for i in keep]),
            "sum_sigma2_quantiles_10_50_90": [
                round(float(q), 6) for q in np.quantile(variance.sum(-1), [0.1, 0.5, 0.9])
            ],
        }
    report = {
        "root": str(root),
        "transcript_char_counts": dict(sorted(chars.items())),
        "classes_in_no_transcript": absent,
        "teachers_on_target_train": teachers,
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
