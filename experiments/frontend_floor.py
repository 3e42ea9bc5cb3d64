"""Does a higher log-mel floor make the telephone line invisible to the front end (issue 14)?

experiments/finetune_recipe.py --set frontend showed that the line's damage to a full-band
teacher is the mel bands above 3.4 kHz: on the line they hold only resampling leakage and
µ-law images, 60–80 dB below the utterance's peak, which the front end (floor `top_db` below
the peak, then per-band CMVN) blows up to unit-variance noise. A narrow-band front end is
deaf to the line but loses the clean domains' fricatives. A higher floor (smaller `top_db`)
should do both: an empty band sits at the floor, so it normalises to ≈ 0 as it does on clean
audio's silence, while bands with speech in them keep it.

No training here: for each `top_db`, every dev utterance of one domain is put through the
target's channel (the corpus's own functions, seeded per utterance: experiments/phone_gap.py)
and this script measures how far the front end's output moves, per band group (mel centre
below 3.4 kHz / above), as the mean squared difference of the normalised features
(per-band unit variance, so 2 = unrelated), and what share of the clean features a floor
removes (cells at the floor). A candidate is then trained: finetune_recipe.py --set frontend.

Dev only; nothing here chooses a default.
Run: `python experiments/frontend_floor.py [--domain read] [--top-db 80,60,50,40,30]
      [--out experiments/results/frontend_floor_probe.json]` (in a workspace after `prepare`)
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

import torch
from phone_gap import CONDITIONS
from report import emit

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import AugmentedASRData, domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.logmel_frontend import LogMelFrontend

LINE_HZ = 3400.0


def band_centres(fe: LogMelFrontend) -> torch.Tensor:
    """Centre frequency (Hz) of each mel filter: the FFT bin where it peaks."""
    fb = fe.mel.mel_scale.fb  # (bins, n_mels)
    return fb.argmax(0).float() * (16000 / 2) / (fb.shape[0] - 1)


def features(fe: LogMelFrontend, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised features, boolean map of cells at the floor), both (frames, n_mels)."""
    with torch.no_grad():
        raw = torch.log(fe.mel(wave[None].float()).transpose(1, 2).clamp_min(1e-10))[0]
        at_floor = raw <= raw.max() - fe.floor_nats
        return fe(wave[None])[0], at_floor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--conditions", default="line,noise+line")
    ap.add_argument("--top-db", default="80,60,50,40,30")
    ap.add_argument("--utterances", type=int, default=100, help="the first N dev utterances")
    ap.add_argument("--out")
    args = ap.parse_args()
    params = load_params(args.params)
    n_mels = params.model.encoder_config().n_mels
    dev = domain_split(args.manifests, "dev", args.domain, CharVocab())
    n = min(args.utterances, len(dev))
    corrupted = {
        c: AugmentedASRData(dev, CONDITIONS[c], params.seed) for c in args.conditions.split(",")
    }
    report: dict = {"domain": args.domain, "split": "dev", "utterances": n, "n_mels": n_mels,
                    "line_hz": LINE_HZ, "top_db": {}}  # fmt: skip
    for top_db in [float(t) for t in args.top_db.split(",")]:
        fe = LogMelFrontend(n_mels, "utterance", top_db=top_db).eval()
        high = band_centres(fe) > LINE_HZ
        parts = (("low", ~high), ("high", high))
        sums: dict[str, float] = defaultdict(float)
        frames = 0
        for i in range(n):
            clean, floor = features(fe, dev[i][0])
            frames += clean.shape[0]
            for part, sel in parts:
                sums[f"clean_floor/{part}"] += float(floor[:, sel].sum())
            for c, data in corrupted.items():
                other, _ = features(fe, data[i][0])
                m = min(len(other), len(clean))
                d2 = (clean[:m] - other[:m]) ** 2
                for part, sel in parts:
                    sums[f"msd/{c}/{part}"] += float(d2[:, sel].sum())
        counts = {"low": frames * int((~high).sum()), "high": frames * int(high.sum())}
        row = {k: round(v / counts[k.rsplit("/", 1)[1]], 4) for k, v in sums.items()}
        row["floor_db"] = top_db
        row["floor_nats"] = round(top_db / 10 * math.log(10), 3)
        report["top_db"][str(top_db)] = row
        print(top_db, row, flush=True)
        emit(report, args.out, partial=True)
    report["bands_above_line"] = int(high.sum())
    emit(report, args.out)


if __name__ == "__main__":
    main()
