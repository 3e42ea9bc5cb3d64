"""The distillation student: a narrower/shallower encoder cut out of the pretrained one.

LightHuBERT-style sizes (width, heads, FFN, depth) are `EncoderConfig` overrides of the
teacher's configuration. Initialisation takes, for every student tensor, the leading slice of
the teacher tensor of the same name (the first layers, the first channels, the first heads),
which is how LightHuBERT extracts a subnet from its supernet; tensors with no counterpart keep
their random initialisation.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.encoder import HubertEncoder


def student_config(teacher: EncoderConfig, overrides: dict) -> EncoderConfig:
    known = {f.name for f in fields(teacher)} - {"extra"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown student encoder field(s) {unknown}; known: {sorted(known)}")
    return replace(teacher, **overrides)


def leading_slice(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The first `shape[i]` entries of every dimension of `t` (a view)."""
    return t[tuple(slice(0, n) for n in shape)]


@torch.no_grad()
def init_from_teacher(student: HubertEncoder, teacher: HubertEncoder) -> dict[str, str]:
    """Copy leading slices of same-named teacher tensors; returns {name: 'full'|'sliced'}."""
    if student.cfg.embed_dim % student.cfg.num_heads or (
        student.cfg.embed_dim // student.cfg.num_heads
        != teacher.cfg.embed_dim // teacher.cfg.num_heads
    ):
        head_note = "head size differs from the teacher's: heads are re-split, not copied whole"
    else:
        head_note = ""
    src = teacher.state_dict()
    report: dict[str, str] = {}
    for name, p in student.state_dict().items():
        t = src.get(name)
        if (
            t is None
            or t.ndim != p.ndim
            or any(a > b for a, b in zip(p.shape, t.shape, strict=True))
        ):
            continue
        p.copy_(leading_slice(t, p.shape))
        report[name] = "full" if t.shape == p.shape else "sliced"
    if head_note:
        report["_note"] = head_note
    return report


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
