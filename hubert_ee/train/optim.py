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


def tri_stage_lambda(warmup: int, total: int, final_scale: float = 0.05) -> Callable[[int], float]:
    """fairseq's tri-stage schedule (wav2vec 2.0 / HuBERT fine-tuning): linear warm-up, hold
    the peak until half of the updates, then exponential decay to `final_scale` x the peak."""
    hold_end = max(warmup, total // 2)
    decay = max(1, total - hold_end)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if step < hold_end:
            return 1.0
        return final_scale ** (min(step - hold_end, decay) / decay)

    return f


SCHEDULES = {"linear": lr_lambda, "tri_stage": tri_stage_lambda}


def adamw_with_schedule(
    decay: list[torch.nn.Parameter],
    no_decay: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    max_steps: int,
    eps: float,
    schedule: str = "linear",
    scaled: tuple[list[torch.nn.Parameter], list[torch.nn.Parameter], float] | None = None,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (β = 0.9, 0.98) with weight decay on the decay lists only, and a schedule from
    SCHEDULES. `scaled` = (decay, no_decay, factor): parameters whose peak lr is factor x lr
    (fine-tuning keeps a pretrained encoder's lr below the fresh head's)."""
    groups = [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
    ]
    if scaled is not None:
        s_decay, s_no_decay, factor = scaled
        groups += [
            {"params": s_decay, "weight_decay": weight_decay, "lr": lr * factor},
            {"params": s_no_decay, "weight_decay": 0.0, "lr": lr * factor},
        ]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=eps)
    lam = SCHEDULES[schedule](warmup_steps, max_steps)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lam)
