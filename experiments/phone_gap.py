"""Why are the teachers blind on the target (issue 14)? The channel, or the talkers?

The phone domain differs from a teacher's own in two ways: the channel (additive white/pink/
babble noise at 5–20 dB SNR, then the telephone line: 300–3400 Hz, 8 kHz, µ-law) and the
talkers (other accents, a faster rate, a wider pitch range). This script puts each teacher's
own **dev** utterances through the phone domain's channel — noise only, line only, both, both
at 1.1× speed — with the corpus's own functions (`hubert_ee.data.augment`, seeded per
utterance), and scores the committed teacher greedily on each, next to its score on the
phone dev split itself. What the channel costs is clean → channel; what is left between the
channel and the real target is the talkers. It informs where a teacher needs help (training-
time augmentation against the channel; the target's unlabeled audio against the talkers).

Dev only; nothing here chooses a default.
Run: `python experiments/phone_gap.py [--teachers models/teachers] [--target phone]
      [--out experiments/results/phone_gap.json]`
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import AugmentedASRData, domain_split
from hubert_ee.data.augment import TrainAugmentation
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.models.checkpoint import load_ctc_model

NOISE = {"noise_prob": 1.0, "noise_kinds": ("white", "pink", "babble"), "snr_db": (5.0, 20.0)}
NONE = {"prob": 1.0, "speeds": (1.0,), "noise_prob": 0.0, "reverb_prob": 0.0,
        "telephone_prob": 0.0}  # fmt: skip
# the phone domain's channel (params.yaml data.synthetic.domains.phone), a piece at a time
CONDITIONS: dict[str, TrainAugmentation | None] = {
    "clean": None,
    "noise": TrainAugmentation(**{**NONE, **NOISE}),
    "line": TrainAugmentation(**{**NONE, "telephone_prob": 1.0}),
    "noise+line": TrainAugmentation(**{**NONE, **NOISE, "telephone_prob": 1.0}),
    "noise+line+speed1.1": TrainAugmentation(
        **{**NONE, **NOISE, "telephone_prob": 1.0, "speeds": (1.1,)}
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teachers", default="models/teachers")
    ap.add_argument("--target", default="phone")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seed = load_params(args.params).seed
    vocab = CharVocab()
    target = domain_split(args.manifests, "dev", args.target, vocab)
    report: dict = {"target": args.target, "seed": seed, "split": "dev",
                    "conditions": {k: None if v is None else v.__dict__
                                   for k, v in CONDITIONS.items()},
                    "teachers": {}}  # fmt: skip
    for path in sorted(Path(args.teachers).glob("*/model.safetensors")):
        domain = path.parent.name
        model = load_ctc_model(path)
        own = domain_split(args.manifests, "dev", domain, vocab)
        row: dict = {}
        for name, aug in CONDITIONS.items():
            data = own if aug is None else AugmentedASRData(own, aug, seed)
            t0 = time.perf_counter()
            s = greedy_scores(emissions(model, data, 60.0, torch.device("cpu")), data)
            row[f"{domain}/{name}"] = {"wer": round(s["wer"], 4), "cer": round(s["cer"], 4),
                                       "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
            print(domain, name, row[f"{domain}/{name}"], flush=True)
        s = greedy_scores(emissions(model, target, 60.0, torch.device("cpu")), target)
        row[f"{args.target} (the real target)"] = {"wer": round(s["wer"], 4),
                                                   "cer": round(s["cer"], 4)}  # fmt: skip
        report["teachers"][domain] = row
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
