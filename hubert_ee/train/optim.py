"""The optimizer and schedule every training loop here uses (fairseq's recipe)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up, then linear decay to 0 (fairseq's polynomial_decay, power 1)."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def adamw_with_schedule(
    decay: list[torch.nn.Parameter],
    no_decay: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    max_steps: int,
    eps: float,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (β = 0.9, 0.98) with weight decay on `decay` only, and the schedule above."""
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        betas=(0.9, 0.98),
        eps=eps,
    )
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup_steps, max_steps))
