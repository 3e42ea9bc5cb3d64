"""LightHuBERT's training model (DESIGN §9): the supernet, run as one subnet per forward,
predicts a frozen teacher's instance-normalised average of chosen layers on masked frames.

Stage 1 trains only the largest subnet (`sample: largest`); stage 2, once-for-all, draws a
subnet per forward (`sample: uniform`). The prediction head is elastic too: a subnet of width d
uses the first d input columns. It plugs into the pretraining loop (`train.pretrain.train`):
the same call as the other heads, with the loop's per-step generator choosing the subnet; the
loop's accuracy slot carries the cosine similarity of prediction and target on masked frames
(a regression has no accuracy). The front end takes the full gradient (a log-mel front end
has no weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.supernet import SearchSpace, Subnet, Supernet
from hubert_ee.models.supernet_loss import layer_average_target, masked_l1

SAMPLING = ("largest", "uniform")


class SupernetDistillModel(nn.Module):
    def __init__(
        self,
        supernet: HubertEncoder,
        teacher: HubertEncoder,
        space: SearchSpace,
        target_layers: Sequence[int],
        sample: str = "uniform",
    ):
        super().__init__()
        if sample not in SAMPLING:
            raise ValueError(f"sample must be one of {SAMPLING}, got {sample!r}")
        if teacher.cfg.stride != supernet.cfg.stride:
            raise ValueError(
                f"teacher frames every {teacher.cfg.stride} samples, the supernet every "
                f"{supernet.cfg.stride}: the targets would not line up"
            )
        self.encoder = supernet
        self.teacher = teacher.eval().requires_grad_(False)
        self.head = nn.Linear(supernet.cfg.embed_dim, teacher.cfg.embed_dim)
        if any(not 1 <= i <= teacher.cfg.num_layers for i in target_layers) or not target_layers:
            raise ValueError(
                f"target layers {list(target_layers)} must be a non-empty subset of the "
                f"teacher's layers 1..{teacher.cfg.num_layers}"
            )
        self.space, self.target_layers, self.sample = space, tuple(target_layers), sample
        self.supernet = Supernet(supernet)
        self.fixed: Subnet | None = None  # set: every forward runs this one (evaluation)

    def train(self, mode: bool = True) -> SupernetDistillModel:
        super().train(mode)
        self.teacher.eval()  # the teacher's targets never see dropout
        return self

    def choose(self, generator: torch.Generator | None) -> Subnet:
        if self.fixed is not None:
            return self.fixed
        if self.sample == "largest" or generator is None:
            return self.space.largest()
        return self.space.sample(self.encoder.cfg, generator)

    def forward(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor,
        labels: torch.Tensor | None,
        mask: torch.Tensor,
        step: int = 0,
        generator: torch.Generator | None = None,
        subnet: Subnet | None = None,
    ) -> dict[str, torch.Tensor]:
        """mask (batch, frames): frames to mask; `labels` and `step` are unused (the loop's one
        calling convention). `subnet` overrides the draw (evaluation of one architecture)."""
        sub = subnet or self.choose(generator)
        x, valid, _ = self.supernet.call(sub, "features", wave, lengths)
        with torch.no_grad():  # the same frames as the teacher's (same stride, checked above)
            target = layer_average_target(
                self.teacher.hidden_states(wave, lengths, max(self.target_layers))[0],
                valid,
                self.target_layers,
            )
        mask = mask & valid
        x = torch.where(
            mask[..., None], self.encoder.mask_embedding[: sub.embed_dim].to(x.dtype), x
        )
        out = self.supernet.call(sub, "layers", x, valid)[-1]
        pred = F.linear(out, self.head.weight[:, : sub.embed_dim], self.head.bias)
        loss = masked_l1(pred, target, mask)
        with torch.no_grad():
            cos = F.cosine_similarity(pred[mask], target[mask], dim=-1).mean() if mask.any() else 0
        return {"loss": loss, "masked_acc": torch.as_tensor(cos), "masked_frames": mask.sum()}
