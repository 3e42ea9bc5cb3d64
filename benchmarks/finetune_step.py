"""Where a CTC fine-tuning step spends its time: encoder forward, the (sampled) CTC loss,
backward, optimizer, for the default recipe's batches of real training utterances.

Prints one JSON object: median milliseconds per phase for each number of uncertainty samples
(0 = plain CTC) and autocast mode (`--amp fp32,bf16`: bf16 autocast of forward and loss, on CPU
too), and audio seconds per second. Same batches, same process, interleaved repeats; the keys are
`<samples>` for fp32 and `<samples>/bf16`.
Run: `python benchmarks/finetune_step.py models/pretrain_iter2/encoder.safetensors
      [--domain read] [--batch-seconds 20] [--repeats 5] [--samples 0,4] [--amp fp32,bf16]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from statistics import median

import torch

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import collate_asr, domain_split
from hubert_ee.data.batching import bucket_batches
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.train.losses import sampled_ctc_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("encoder")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--batch-seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", default="0,4")
    ap.add_argument("--amp", default="fp32", help="comma-separated: fp32, bf16")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = load_params(args.params)
    vocab = CharVocab()
    data = domain_split(args.manifests, "train", args.domain, vocab)
    batches = bucket_batches(data.lengths(), int(args.batch_seconds * 16000), params.seed, 0)
    model = CTCModel(load_encoder(args.encoder), vocab, True, params.finetune.final_dropout)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    timings: dict[str, dict[str, list[float]]] = {}
    audio = 0.0
    runs = [(int(s), amp) for s in args.samples.split(",") for amp in args.amp.split(",")]
    for r in range(args.repeats + 1):  # the first round warms up and is not counted
        batch = collate_asr([data[i] for i in batches[r % len(batches)]])
        for samples, amp in runs:
            cast = (torch.autocast("cpu", dtype=torch.bfloat16) if amp == "bf16"
                    else contextlib.nullcontext())  # fmt: skip
            t0 = time.perf_counter()
            with cast:
                out = model(batch["wave"], batch["lengths"])
            t1 = time.perf_counter()
            with cast:
                loss = sampled_ctc_loss(out.logits.float(), out.variance.float(),
                                        out.frame_lengths, batch["targets"],
                                        batch["target_lengths"], samples)  # fmt: skip
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t4 = time.perf_counter()
            if r == 0:
                continue
            key = str(samples) if amp == "fp32" else f"{samples}/{amp}"
            row = timings.setdefault(key, {"forward": [], "loss": [], "backward": [],
                                               "optimizer": [], "step": []})  # fmt: skip
            for k, v in zip(row, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                row[k].append(v)
            if (samples, amp) == runs[0]:
                audio += float(batch["lengths"].sum()) / 16000
    report = {
        "torch_threads": torch.get_num_threads(),
        "batch_seconds": args.batch_seconds,
        "ms": {
            s: {k: round(1000 * median(v), 1) for k, v in row.items()} for s, row in timings.items()
        },
        "audio_seconds_per_s": {
            s: round(audio / sum(row["step"]), 1) for s, row in timings.items()
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
