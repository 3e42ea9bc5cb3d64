"""Transformer context network with convolutional relative positional embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubert_ee.models.config import EncoderConfig


class ConvPositionalEmbedding(nn.Module):
    """Grouped conv over time (weight-normalised, as fairseq/torchaudio), then GELU.

    `fold()` switches to the inference form: the weight norm applied once, and the grouped
    convolution as one batched matmul over the windows of each group (the same sums in another
    order; on CPU the grouped-conv kernel is the slowest part of a narrow model at batch size 1:
    benchmarks/exit_costs.py). A window is laid out tap-major, channel-minor, so it is one
    contiguous run of the group's padded input and gathering it is a plain copy. The folded
    weight is a non-persistent buffer, so checkpoints keep their layout; `train()` drops it."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_remove = 1 if kernel % 2 == 0 else 0
        self.register_buffer("folded_weight", None, persistent=False)

    @torch.no_grad()
    def fold(self) -> None:
        w = self.conv.weight  # (dim, dim / groups, kernel): the weight norm applied
        g, (c_out, c_in, k) = self.conv.groups, w.shape
        w = w.reshape(g, c_out // g, c_in, k).permute(0, 3, 2, 1)  # (g, kernel, in, out)
        self.folded_weight = w.reshape(g, k * c_in, c_out // g).contiguous()

    def train(self, mode: bool = True) -> ConvPositionalEmbedding:
        if mode:
            self.folded_weight = None
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.folded_weight is not None:
            return F.gelu(self._windows_matmul(x))
        y = self.conv(x.transpose(1, 2))
        if self.num_remove:
            y = y[..., : -self.num_remove]
        return F.gelu(y).transpose(1, 2)

    def _windows_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, dim) → the convolution's output, same layout, before the GELU."""
        b, t, dim = x.shape
        g, k, pad = self.conv.groups, self.conv.kernel_size[0], self.conv.padding[0]
        c = dim // g
        xp = F.pad(x, (0, 0, pad, pad))  # (b, t + 2 pad, dim)
        tp = xp.shape[1]
        xg = xp.view(b, tp, g, c).transpose(1, 2).contiguous()  # (b, g, t + 2 pad, c)
        # window j of group g: frames j..j+k-1, all c channels = one run of k·c values
        win = xg.as_strided((b, g, t, k * c), (g * tp * c, tp * c, c, 1))
        y = torch.matmul(win, self.folded_weight)  # (b, g, t, c)
        y += self.conv.bias.view(g, 1, c)
        return y.transpose(1, 2).reshape(b, t, dim)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim, self.dropout = (
            dim,
            heads,
            dim // heads,
            dropout,
        )
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """key_mask: (batch, 1, 1, frames) bool, True where a key may be attended."""
        b, t, _ = x.shape
        q, k, v = (
            p(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.embed_dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, hidden_dropout: float, dropout: float):
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden)
        self.intermediate_dropout = nn.Dropout(hidden_dropout)
        self.output_dense = nn.Linear(hidden, dim)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.attention = SelfAttention(cfg.embed_dim, cfg.num_heads, cfg.attention_dropout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.feed_forward = FeedForward(cfg.embed_dim, cfg.ffn_dim, cfg.ffn_dropout, cfg.dropout)
        self.final_layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.layer_norm_first = cfg.layer_norm_first

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.attention(self.layer_norm(x), key_mask))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.dropout(self.attention(x, key_mask)))
        return self.final_layer_norm(x + self.feed_forward(x))


class Transformer(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.pos_conv_embed = ConvPositionalEmbedding(
            cfg.embed_dim, cfg.pos_conv_kernel, cfg.pos_conv_groups
        )
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.layer_norm_first = cfg.layer_norm_first
        self.layer_drop = cfg.layer_drop

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv_embed(x)
        if not self.layer_norm_first:  # post-LN models normalise before the first layer
            x = self.layer_norm(x)
        return self.dropout(x)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None, num_layers: int | None = None
    ) -> list[torch.Tensor]:
        """Outputs of layers 1..num_layers (all by default). With pre-LN layers the final
        LayerNorm is applied to the last layer's output when all layers run."""
        n = len(self.layers) if num_layers is None else num_layers
        x = self.embed(x)
        outs = []
        for layer in self.layers[:n]:
            if self.training and self.layer_drop > 0 and torch.rand(()) < self.layer_drop:
                outs.append(x)
                continue
            x = layer(x, key_mask)
            outs.append(x)
        if self.layer_norm_first and n == len(self.layers):
            outs[-1] = self.layer_norm(outs[-1])
        return outs
