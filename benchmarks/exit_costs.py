"""What bounds early exit at batch size 1 (issue 15, DESIGN §8): the wall time of each part of
the student on one utterance — front end, positional convolution, each Transformer layer, an
attention exit branch, a linear exit branch, the CTC head and the variance head — timed
interleaved in one process (medians over repeats), and the speedup ceilings they imply: exiting
every utterance at layer 1 with each branch kind (no branch tested above it).

The front end and the positional convolution are timed in both forms (hubert_ee.models.
inference_form: the training form, and the inference form that speed figures use); the
ceilings use the inference form.
Run: `python benchmarks/exit_costs.py [--root .] [--seconds 4] [--repeats 30]`
(the distilled student of the workspace; a randomly initialised student of the params' shape
when the workspace has none — timings depend on shapes, not on weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from hubert_ee.config import load_params
from hubert_ee.data.vocab import CharVocab
from hubert_ee.device import cpu_threads
from hubert_ee.metrics.speed import interleaved_times
from hubert_ee.models.checkpoint import load_ctc_model
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import EarlyExitModel, ExitConfig
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.inference_form import inference_form
from hubert_ee.models.student import student_config


def student_model(root: Path, params) -> tuple[CTCModel, str]:
    path = root / "models/distill/student.safetensors"
    if path.exists():
        return load_ctc_model(path), str(path)
    cfg = student_config(params.model.encoder_config(), params.distill.student)
    return CTCModel(HubertEncoder(cfg), CharVocab()), "random init (no distilled student)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="the workspace (default profile: the repo root)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--params", default="params.yaml", help="the workspace's params, or these")
    args = ap.parse_args()
    root = Path(args.root)
    params = load_params(args.params)
    torch.set_num_threads(params.threshold_search.threads or cpu_threads())
    torch.manual_seed(0)
    student, source = student_model(root, params)
    student.eval()
    folded = inference_form(student_model(root, params)[0])
    layers = tuple(range(1, student.encoder.cfg.num_layers))
    attn = EarlyExitModel(student, ExitConfig(layers, "attention", **_branch(params))).eval()
    lin = EarlyExitModel(student, ExitConfig(layers, "linear")).eval()
    tr = student.encoder.encoder.transformer
    wave = torch.randn(1, int(args.seconds * 16000))
    with torch.inference_mode():
        x, valid, _ = student.frontend(wave, None)
        e = tr.embed(x)
        km = valid[:, None, None, :] if valid is not None else None
        pos, pos_folded = tr.pos_conv_embed, folded.encoder.encoder.transformer.pos_conv_embed
        assert torch.allclose(pos_folded(x), pos(x), atol=1e-4), "the inference form differs"
    parts = {
        "front_end_training_form": lambda w: student.frontend(w, None),
        "front_end": lambda w: folded.frontend(w, None),
        "pos_conv_training_form": lambda w: pos(x),
        "pos_conv": lambda w: pos_folded(x),
        **{f"layer_{i}": (lambda w, m=m: m(e, km)) for i, m in enumerate(tr.layers, start=1)},
        "attention_branch": lambda w: attn.branches["1"](e, km),
        "linear_branch": lambda w: lin.branches["1"](e, km),
        "ctc_head": lambda w: student.head(e),
        "variance_head": lambda w: (
            student.variance_head(e) if student.variance_head is not None else None
        ),
        "student_logits_training_form": lambda w: student.logits(w),
        "student_logits": lambda w: folded.logits(w),
        "student_forward_with_variance": lambda w: folded(w),
    }
    times = interleaved_times(parts, [wave], args.repeats, threads=torch.get_num_threads())
    ms = {k: round(1000 * statistics.median(v), 3) for k, v in times.items()}
    layer = statistics.median(ms[f"layer_{i}"] for i in range(1, len(tr.layers) + 1))
    n = len(tr.layers)
    full = ms["front_end"] + ms["pos_conv"] + sum(ms[f"layer_{i}"] for i in range(1, n + 1))
    head = ms["ctc_head"]

    def ceiling(branch_ms: float) -> float:
        return round((full + head) / (ms["front_end"] + ms["pos_conv"] + layer + branch_ms), 3)

    report = {
        "student": source,
        "shape": {
            k: getattr(student.encoder.cfg, k)
            for k in (
                "embed_dim",
                "num_layers",
                "num_heads",
                "ffn_dim",
                "pos_conv_kernel",
                "pos_conv_groups",
            )
        },  # fmt: skip
        "seconds": args.seconds,
        "frames": int(x.shape[1]),
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "median_ms": ms,
        "pos_conv_in_layers": round(ms["pos_conv"] / layer, 3),
        "attention_branch_in_layers": round(ms["attention_branch"] / layer, 3),
        "ceiling_exit_all_at_layer_1": {
            "attention": ceiling(ms["attention_branch"]),
            "linear": ceiling(ms["linear_branch"]),
        },
    }
    print(json.dumps(report, indent=1))


def _branch(params) -> dict:
    ex = params.exits
    return {"branch_dim": ex.branch_dim, "branch_heads": ex.branch_heads,
            "branch_ffn": ex.branch_ffn, "dropout": ex.branch_dropout}  # fmt: skip


if __name__ == "__main__":
    main()
