"""Pretraining throughput: our HuBERT vs torchaudio's `hubert_pretrain_model`, identical
configuration, same batches, same process, forward + backward + optimizer step.

Prints one JSON line per implementation (audio seconds per second, median of interleaved
repeats) and one with the ratio ours / torchaudio. On a GPU also bf16 autocast throughput and
model FLOPs utilisation (MFU): the step's FLOPs as torch's FLOP counter measures them, per
second, over --peak-tflops (the GPU's dense bf16 peak).
Run: `python benchmarks/pretrain.py [--preset tiny|base] [--batch 4] [--seconds 8]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from dataclasses import replace
from statistics import median

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchaudio.models import hubert_pretrain_model

from hubert_ee.models import config as mc
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.pretrain_head import HubertPretrainModel
from hubert_ee.train.masking import span_mask


def torchaudio_model(cfg: mc.EncoderConfig, k: int, final_dim: int):
    return hubert_pretrain_model(
        extractor_mode=cfg.extractor_mode, extractor_conv_layer_config=[list(c) for c in cfg.conv_layers], extractor_conv_bias=cfg.conv_bias,
        encoder_embed_dim=cfg.embed_dim, encoder_projection_dropout=cfg.projection_dropout, encoder_pos_conv_kernel=cfg.pos_conv_kernel,
        encoder_pos_conv_groups=cfg.pos_conv_groups, encoder_num_layers=cfg.num_layers, encoder_num_heads=cfg.num_heads,
        encoder_attention_dropout=cfg.attention_dropout, encoder_ff_interm_features=cfg.ffn_dim, encoder_ff_interm_dropout=cfg.ffn_dropout,
        encoder_dropout=cfg.dropout, encoder_layer_norm_first=cfg.layer_norm_first, encoder_layer_drop=cfg.layer_drop,
        mask_prob=0.8, mask_selection="static", mask_other=0.0, mask_length=10, no_mask_overlap=False, mask_min_space=1,
        mask_channel_prob=0.0, mask_channel_selection="static", mask_channel_other=0.0, mask_channel_length=10,
        no_mask_channel_overlap=False, mask_channel_min_space=1, skip_masked=False, skip_nomask=True,
        num_classes=k, final_dim=final_dim, feature_grad_mult=0.1,
    )  # fmt: skip


def measured_flops(step, amp: bool) -> int:
    """FLOPs of one training step (forward + backward) as torch's FLOP counter counts them
    (matmuls, convolutions, attention), not an analytic estimate."""
    with FlopCounterMode(display=False) as counter:
        step(amp)
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", choices=["tiny", "base"], default="tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layers", type=int, default=None, help="override the preset's depth")
    ap.add_argument(
        "--compile", action="store_true", help="time torch.compile'd models (FLOPs counted eager)"
    )
    ap.add_argument("--bf16-only", action="store_true", help="on a GPU, skip the fp32 rows")
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="bf16 dense peak of the GPU (H100 SXM: 989)",
    )
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = mc.base() if args.preset == "base" else mc.tiny()
    # torchaudio has only the CNN front end: compare like with like.
    cfg = replace(cfg, frontend="cnn", layer_drop=0.0)
    if args.layers:
        cfg = replace(cfg, num_layers=args.layers)
    final_dim = 256 if args.preset == "base" else 128
    torch.manual_seed(0)
    ours = HubertPretrainModel(HubertEncoder(cfg), args.k, final_dim).to(device).train()
    ref = torchaudio_model(cfg, args.k, final_dim).to(device).train()
    n = int(args.seconds * 16000)
    wave = torch.randn(args.batch, n, device=device)
    lengths = torch.full((args.batch,), n, device=device)
    frames = cfg.num_frames(n)
    labels = torch.randint(0, args.k, (args.batch, frames), device=device)
    opts = {
        name: torch.optim.AdamW(m.parameters(), lr=1e-4)
        for name, m in (("ours", ours), ("torchaudio", ref))
    }
    gen = torch.Generator().manual_seed(0)
    call = {"ours": ours, "torchaudio": ref}  # what the steps run (compiled after FLOP counting)

    def step_ours(amp: bool):
        mask = span_mask(torch.full((args.batch,), frames), frames, 0.08, 10, gen).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            loss = call["ours"](wave, lengths, labels, mask)["loss"]
        loss.backward()
        opts["ours"].step()
        opts["ours"].zero_grad(set_to_none=True)

    def step_ref(amp: bool):
        with torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            logit_m, _, _ = call["torchaudio"](wave, labels, lengths)
            loss = F.cross_entropy(
                logit_m.float(), torch.zeros(len(logit_m), dtype=torch.long, device=device)
            )
        loss.backward()
        opts["torchaudio"].step()
        opts["torchaudio"].zero_grad(set_to_none=True)

    def timed(fn, amp):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(amp)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    audio = args.batch * args.seconds
    precisions = ([] if args.bf16_only else [False]) + [True] if device.type == "cuda" else [False]
    result = {
        "device": torch.cuda.get_device_name()
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "preset": args.preset,
        "batch": args.batch,
        "seconds_per_utt": args.seconds,
        "compiled": args.compile,
    }
    for amp in precisions:
        for fn in (step_ours, step_ref):  # warm-up
            fn(amp)
            fn(amp)
        flops = {
            "ours": measured_flops(step_ours, amp),
            "torchaudio": measured_flops(step_ref, amp),
        }
        if args.compile:  # same math, so the eager count stands for the compiled step
            call.update(
                {name: torch.compile(m) for name, m in (("ours", ours), ("torchaudio", ref))}
            )
            for fn in (step_ours, step_ref):  # compile + warm-up
                fn(amp)
                fn(amp)
        times = {"ours": [], "torchaudio": []}
        for _ in range(args.repeats):  # interleaved
            times["ours"].append(timed(step_ours, amp))
            times["torchaudio"].append(timed(step_ref, amp))
        tag = "bf16" if amp else "fp32"
        for name, ts in times.items():
            row = {
                **result,
                "implementation": name,
                "precision": tag,
                "audio_seconds_per_s": round(audio / median(ts), 2),
                "median_step_s": round(median(ts), 4),
            }
            row["step_tflops"] = round(flops[name] / 1e12, 4)
            row["achieved_tflops_per_s"] = round(flops[name] / median(ts) / 1e12, 3)
            if device.type == "cuda":
                row["mfu"] = round(flops[name] / median(ts) / (args.peak_tflops * 1e12), 4)
            print(json.dumps(row))
        print(
            json.dumps(
                {
                    "precision": tag,
                    "throughput_ratio_ours_over_torchaudio": round(
                        median(times["torchaudio"]) / median(times["ours"]), 3
                    ),
                }
            )
        )


if __name__ == "__main__":
    main()
