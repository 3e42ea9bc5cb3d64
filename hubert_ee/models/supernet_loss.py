"""LightHuBERT's pre-training distillation loss (DESIGN §9): a subnet, fed masked input,
predicts the teacher's average of its top-k layer outputs on the masked frames, each layer
instance-normalised over the time of its own utterance first (data2vec's target).

    L = 1/|M| Σ_{i∈M} ‖ f̄ᵗ_i(x) − fˢ_i(x̂) ‖₁
"""

from __future__ import annotations

import torch


def instance_norm(x: torch.Tensor, valid: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """(batch, frames, dim) normalised per utterance and channel over its valid frames (padded
    frames neither count nor move the statistics; they come out as 0)."""
    if valid is None:
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    w = valid[..., None].to(x.dtype)
    n = w.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * w).sum(1, keepdim=True) / n
    var = ((x - mean) ** 2 * w).sum(1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * w


def layer_average_target(
    layers: list[torch.Tensor], valid: torch.Tensor | None, top_k: int
) -> torch.Tensor:
    """The mean of the last `top_k` layers, each instance-normalised."""
    if not 1 <= top_k <= len(layers):
        raise ValueError(f"top_k {top_k} outside 1..{len(layers)} (the teacher's layers)")
    return torch.stack([instance_norm(h, valid) for h in layers[-top_k:]]).mean(0)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ over masked frames of the L1 distance of the frame vectors, / the masked frames."""
    if not mask.any():
        return prediction.sum() * 0.0  # keeps the graph; a batch without masks teaches nothing
    return (prediction[mask] - target[mask]).abs().sum(-1).mean()
