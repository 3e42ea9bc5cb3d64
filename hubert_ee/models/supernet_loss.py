"""LightHuBERT's pre-training distillation loss (DESIGN §9): a subnet, fed masked input,
predicts the teacher's average of a set of its layer outputs on the masked frames (the top k in
the paper), each layer instance-normalised over the time of its own utterance first (data2vec's
target).

    L = 1/|M| Σ_{i∈M} ‖ f̄ᵗ_i(x) − fˢ_i(x̂) ‖₁
"""

from __future__ import annotations

from collections.abc import Sequence

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


def top_k_layers(k: int, num_layers: int) -> tuple[int, ...]:
    """The paper's target layers: the last k of num_layers (1-based)."""
    return tuple(range(num_layers - k + 1, num_layers + 1))


def layer_average_target(
    layers: list[torch.Tensor], valid: torch.Tensor | None, which: Sequence[int]
) -> torch.Tensor:
    """The mean of the layers numbered `which` (1-based, as the encoder counts its Transformer
    layers), each instance-normalised."""
    bad = [i for i in which if not 1 <= i <= len(layers)]
    if bad or not which:
        raise ValueError(
            f"target layers {list(which)} must be a non-empty subset of 1..{len(layers)}"
        )
    return torch.stack([instance_norm(layers[i - 1], valid) for i in which]).mean(0)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ over masked frames of the L1 distance of the frame vectors, / the masked frames."""
    if not mask.any():
        return prediction.sum() * 0.0  # keeps the graph; a batch without masks teaches nothing
    return (prediction[mask] - target[mask]).abs().sum(-1).mean()
