"""Why does a larger β stop the uncertainty-KD student from learning (issue 14)? The gradient
each term of the distillation loss sends into the student, at the student's initialisation.

`experiments/distill_recipe.py --variants beta3 beta10 ...` found unc_kd on the all-blank plateau
on every seed at β ≥ 10 (on one of three at β = 3), although by the end of training the σ̂ term
is ≤ 0.0001 there. This script measures, on the first batches the stage would train on, the
gradient norm of the CTC term, of each teacher's token-KD term and of each uncertainty term
(β = 1) on the encoder body, the logit head and the variance head, and what σ̂ holds: how far
the teachers' σ̂ is from flat (cosine with the uniform vector: 1.0 = every class equally
uncertain), the share of Σσ² on each frame's most uncertain class, and which classes those are.

Nothing here chooses a default. Run in a workspace after `teacher_outputs`:
  `python experiments/kd_gradients.py [--root .] [--batches 8]
      [--out experiments/results/kd_gradients.json]`
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.batching import bucket_batches
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.train.distill import collate_kd
from hubert_ee.train.kd_arms import kd_data, new_student
from hubert_ee.train.losses import (
    normalized_variance,
    token_kd_loss,
    uncertain_ctc_loss,
    uncertainty_kd_loss,
)


def grad_norms(model: torch.nn.Module, loss: torch.Tensor, groups: dict[str, list]) -> dict:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    out = {}
    for name, params in groups.items():
        g = [p.grad.flatten() for p in params if p.grad is not None]
        out[name] = float(torch.cat(g).norm()) if g else 0.0
    return out


def cos_uniform(variance: torch.Tensor, valid: torch.Tensor) -> float:
    """Mean over valid frames of the cosine between σ̂ and the uniform vector (1.0 = flat)."""
    classes = variance.shape[-1]
    cos = normalized_variance(variance) @ torch.full((classes,), classes**-0.5)
    return float(cos[valid].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    dp, target = params.distill, params.data.target_domain
    domains = params.data.teacher_domains
    vocab = CharVocab()
    data = kd_data(
        root / "data/prepared", root / "data/teacher_outputs", domains, target, False, vocab
    )["labeled"]
    pretrained = load_encoder(root / "models/supernet/student.safetensors")
    student = new_student(dp, params.seed, pretrained, vocab)
    student.train()
    for p in student.encoder.feature_extractor.parameters():
        p.requires_grad_(False)
    body = {id(p) for p in student.encoder.parameters()}
    var_head = {id(p) for p in student.variance_head.parameters()}
    groups = {
        "encoder": [p for p in student.parameters() if id(p) in body and p.requires_grad],
        "variance_head": [p for p in student.parameters() if id(p) in var_head],
        "logit_head": [
            p for p in student.parameters() if id(p) not in body and id(p) not in var_head
        ],
    }
    batches = bucket_batches(data.lengths(), int(dp.max_batch_seconds * 16000), params.seed, 0)
    rows = []
    for b, idx in enumerate(batches[: args.batches]):
        batch = collate_kd([data[i] for i in idx])
        out = student(batch["wave"], batch["lengths"], None, None)
        frames = out.logits.shape[1]
        valid = torch.arange(frames)[None] < out.frame_lengths[:, None]
        gen = torch.Generator().manual_seed(b)
        terms = {
            "ctc": uncertain_ctc_loss(
                dp.uncertainty_loss, out.logits, out.variance, out.frame_lengths,
                batch["targets"], batch["target_lengths"], dp.noise_samples, generator=gen,
            )
        }  # fmt: skip
        flatness, peak_share, peak_class = {}, {}, {}
        for k, d in enumerate(domains):
            t_var = batch["teacher_variance"][k, :, :frames]
            terms[f"tok/{d}"] = token_kd_loss(
                out.logits, batch["teacher_logits"][k, :, :frames], valid, dp.temperature
            )
            terms[f"unc/{d}"] = uncertainty_kd_loss(out.variance, t_var, valid)
            flatness[d] = cos_uniform(t_var, valid)
            v = t_var[valid]
            peak_share[d] = float((v.max(-1).values / v.sum(-1).clamp(min=1e-12)).mean())
            top = torch.bincount(v.argmax(-1), minlength=v.shape[-1])
            peak_class[d] = {
                vocab.decode([i]) if i != vocab.blank else "<blank>": int(top[i])
                for i in top.argsort(descending=True)[:3].tolist() if top[i] > 0
            }  # fmt: skip
        row = {
            "batch": b,
            "utterances": len(idx),
            "loss": {n: round(float(t), 6) for n, t in terms.items()},
            "grad_norm": {
                n: {g: round(v, 6) for g, v in grad_norms(student, t, groups).items()}
                for n, t in terms.items()
            },
            "sigma_hat_cos_uniform": {
                **flatness,
                "student": cos_uniform(out.variance.detach(), valid),
            },
            "teacher_sigma2_peak_share": peak_share,
            "teacher_sigma2_peak_class_frames": peak_class,
            "student_sigma2_norm_mean": float(out.variance.detach().norm(dim=-1)[valid].mean()),
        }
        rows.append(row)
        print(row, flush=True)
    summary = {}
    for name in rows[0]["grad_norm"]:
        for g in groups:
            summary[f"{name}/{g}"] = round(
                statistics.median(r["grad_norm"][name][g] for r in rows), 6
            )
    report = {"root": str(root), "seed": params.seed, "beta": dp.beta, "rows": rows,
              "median_grad_norm": summary}  # fmt: skip
    emit(report, args.out)


if __name__ == "__main__":
    main()
