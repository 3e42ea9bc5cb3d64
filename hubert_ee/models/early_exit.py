"""Early-exit branches on the student and inference that really stops (HuBERT-EE; DESIGN §8).

A branch after Transformer layer i is either one narrow self-attention block (down-projection
to `branch_dim`, attention, feed-forward, LayerNorm) and a CTC head (`attention`), or a
LayerNorm and a CTC head started from the student's own head (`linear`: at batch size 1 an
attention branch costs about half a student layer, which caps what exiting can save). At
inference, after each layer that has a branch, the branch posteriors p (T frames × C classes)
decide:

    entropy_i    = −1/(T·C) · Σ_t Σ_c p log p      exit if entropy_i < θ_e
    confidence_i = 1/T · Σ_t max_c p               exit if confidence_i > θ_c

An utterance that exits leaves the batch; the layers above are never computed for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.ctc_model import CTCModel, CTCOutput
from hubert_ee.models.transformer import EncoderLayer


@dataclass(frozen=True)
class ExitConfig:
    layers: tuple[int, ...]  # 1-based Transformer layers with a branch (the last has the main head)
    branch: str = "attention"  # attention | linear
    branch_dim: int = 64
    branch_heads: int = 1
    branch_ffn: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.branch not in ("attention", "linear"):
            raise ValueError(f"exit branch must be attention or linear, got {self.branch!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ExitConfig:
        return cls(**{**d, "layers": tuple(d["layers"])})


class ExitBranch(nn.Module):
    def __init__(self, dim: int, cfg: ExitConfig, vocab_size: int):
        super().__init__()
        self.down = nn.Linear(dim, cfg.branch_dim)
        block = EncoderConfig(
            frontend="logmel", embed_dim=cfg.branch_dim, num_heads=cfg.branch_heads,
            ffn_dim=cfg.branch_ffn, pos_conv_groups=1, dropout=cfg.dropout,
            attention_dropout=cfg.dropout, layer_drop=0.0,
        )  # fmt: skip
        self.block = EncoderLayer(block)
        self.head = nn.Linear(cfg.branch_dim, vocab_size)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.block(self.down(h), key_mask)).float()


class LinearExitBranch(nn.Module):
    """LayerNorm + CTC head. Starts as the student's final head read at layer i (LayerNorm at
    identity), so before training it already makes the final layer's kind of prediction."""

    def __init__(self, dim: int, head: nn.Linear):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, head.out_features)
        with torch.no_grad():
            self.head.weight.copy_(head.weight)
            self.head.bias.copy_(head.bias)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.norm(h)).float()


def entropy_score(log_probs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """−1/(T·C) Σ_t Σ_c p log p per utterance over its T valid frames (`lengths` None: every
    frame is valid, the batch-1 inference case, computed without masks)."""
    p = log_probs.exp()
    per_frame = -(p * log_probs).sum(-1)  # (batch, frames)
    c = log_probs.shape[-1]
    if lengths is None:
        return per_frame.mean(1) / c
    valid = torch.arange(log_probs.shape[1], device=lengths.device)[None] < lengths[:, None]
    return (per_frame * valid).sum(1) / (lengths.clamp(min=1) * c)


def confidence_score(log_probs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """1/T Σ_t max_c p per utterance (`lengths` None: every frame is valid)."""
    top = log_probs.amax(-1).exp()  # exp is monotone: exp of the max, T exps instead of T·C
    if lengths is None:
        return top.mean(1)
    valid = torch.arange(log_probs.shape[1], device=lengths.device)[None] < lengths[:, None]
    return (top * valid).sum(1) / lengths.clamp(min=1)


@dataclass(frozen=True)
class ExitCriterion:
    """When a branch answers for an utterance: its entropy score below the threshold, or its
    confidence score above it. The one rule the model, the threshold search and inference use."""

    name: str  # entropy | confidence
    threshold: float

    def __post_init__(self) -> None:
        if self.name not in ("entropy", "confidence"):
            raise ValueError(f"criterion must be entropy or confidence, got {self.name!r}")

    def score(self, log_probs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The criterion's score per utterance of a branch's log-posteriors."""
        fn = entropy_score if self.name == "entropy" else confidence_score
        return fn(log_probs, lengths)

    def accepts(self, scores: torch.Tensor) -> torch.Tensor:
        """True where a score lets the utterance exit."""
        return scores < self.threshold if self.name == "entropy" else scores > self.threshold

    def passes(self, log_probs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return self.accepts(self.score(log_probs, lengths))


@dataclass
class ExitOutput(CTCOutput):
    exits: dict[int, torch.Tensor] = field(default_factory=dict)  # layer → branch logits


@dataclass
class EarlyExitResult:
    log_probs: list[torch.Tensor]  # per utterance (frames, classes), from its exit
    exit_layer: list[int]  # 1-based Transformer layer the utterance left at


class EarlyExitModel(nn.Module):
    def __init__(self, student: CTCModel, cfg: ExitConfig):
        super().__init__()
        n = student.encoder.cfg.num_layers
        bad = [i for i in cfg.layers if not 1 <= i < n]
        if bad or len(set(cfg.layers)) != len(cfg.layers):
            raise ValueError(
                f"exit layers must be distinct and within 1..{n - 1} (layer {n} has the main "
                f"head), got {list(cfg.layers)}"
            )
        self.cfg = ExitConfig.from_dict({**cfg.to_dict(), "layers": sorted(cfg.layers)})
        self.student = student
        dim = student.encoder.cfg.embed_dim
        self.branches = nn.ModuleDict(
            {
                str(i): LinearExitBranch(dim, student.head)
                if self.cfg.branch == "linear"
                else ExitBranch(dim, self.cfg, student.head.out_features)
                for i in self.cfg.layers
            }
        )

    @property
    def num_layers(self) -> int:
        return self.student.encoder.cfg.num_layers

    @property
    def encoder(self):
        return self.student.encoder

    def freeze_backbone(self) -> None:
        """Two-stage training: the student stays fixed (and in eval mode), branches train."""
        self.frozen = True
        for p in self.student.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "frozen", False):
            self.student.eval()
        return self

    def forward(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor | None = None,
        time_mask: torch.Tensor | None = None,
        channel_mask: torch.Tensor | None = None,
    ) -> ExitOutput:
        """Every branch's logits and the final head's (for training and the threshold search:
        exit decisions depend only on these)."""
        x, valid, frame_lengths = self.student.frontend(wave, lengths, time_mask, channel_mask)
        key_mask = None if valid is None else valid[:, None, None, :]
        hs = self.student.encoder.layers(x, valid)
        final = self.student.heads(hs[-1], frame_lengths)
        if frame_lengths is None:
            frame_lengths = torch.full((wave.shape[0],), hs[-1].shape[1], device=wave.device)
        exits = {i: self.branches[str(i)](hs[i - 1], key_mask) for i in self.cfg.layers}
        return ExitOutput(final.logits, final.variance, frame_lengths, exits)

    @torch.no_grad()
    def static_exit(self, wave: torch.Tensor, layer: int) -> torch.Tensor:
        """Logits of the first `layer` layers and that layer's branch, for every utterance: the
        smaller static model inside the student (what dynamic exit is compared with)."""
        if str(layer) not in self.branches:
            raise ValueError(f"no exit branch at layer {layer}; branches: {self.cfg.layers}")
        tr = self.student.encoder.encoder.transformer
        x, valid, _ = self.student.frontend(wave, None)
        key_mask = None if valid is None else valid[:, None, None, :]
        x = tr.embed(x)
        for layer_module in tr.layers[:layer]:
            x = layer_module(x, key_mask)
        return self.branches[str(layer)](x, key_mask)

    @torch.no_grad()
    def early_exit(
        self,
        wave: torch.Tensor,
        lengths: torch.Tensor | None,
        criterion: str,
        threshold: float,
    ) -> EarlyExitResult:
        """Layer by layer; utterances that pass a branch's test leave the batch there."""
        rule = ExitCriterion(criterion, threshold)
        enc = self.student.encoder
        tr = enc.encoder.transformer
        x, valid, frame_lengths = self.student.frontend(wave, lengths)
        b = x.shape[0]
        if frame_lengths is None:  # no padding: no masks (attention takes its unmasked path)
            frame_lengths = torch.full((b,), x.shape[1], device=x.device)
        active = list(range(b))  # the batch rows' utterances; Python lists: no per-row syncs
        results: list[torch.Tensor | None] = [None] * b
        exit_layer = [self.num_layers] * b
        x = tr.embed(x)
        for i, layer in enumerate(tr.layers, start=1):
            key_mask = None if valid is None else valid[:, None, None, :]
            x = layer(x, key_mask)
            if i == self.num_layers:
                if tr.layer_norm_first:
                    x = tr.layer_norm(x)
                lp = F.log_softmax(self.student.heads(x, frame_lengths, variance=False).logits, -1)
                for j, (u, n) in enumerate(zip(active, frame_lengths.tolist(), strict=True)):
                    results[u] = lp[j, :n]
                break
            if str(i) not in self.branches:
                continue
            lp = F.log_softmax(self.branches[str(i)](x, key_mask), -1)
            done = rule.passes(lp, None if valid is None else frame_lengths).tolist()
            for j, (u, n, d) in enumerate(zip(active, frame_lengths.tolist(), done, strict=True)):
                if d:
                    results[u], exit_layer[u] = lp[j, :n], i
            if all(done):
                break
            if any(done):
                keep = torch.tensor([not d for d in done], device=x.device)
                active = [u for u, d in zip(active, done, strict=True) if not d]
                x, frame_lengths = x[keep], frame_lengths[keep]
                t = int(frame_lengths.max())  # trim padding the remaining utterances do not need
                x = x[:, :t]
                if valid is not None:
                    valid = valid[keep][:, :t]
        return EarlyExitResult(results, exit_layer)  # type: ignore[arg-type]
