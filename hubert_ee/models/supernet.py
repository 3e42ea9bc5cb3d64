"""LightHuBERT's once-for-all supernet over our encoder (DESIGN §9).

A subnet is the encoder of a smaller `EncoderConfig` whose every tensor is the leading slice of
the supernet tensor of the same name: the first layers, the first channels, the first rows of
every projection. `Supernet.call` runs the supernet *as* that subnet by calling the subnet's
own module code on slices of the supernet's parameters (`torch.func.functional_call`), so a
subnet trained inside the supernet and the plain encoder `Supernet.extract` writes compute the
same function by construction, and the gradient of a sampled subnet reaches exactly the
supernet weights it used.

Elastic dimensions: embedding dim, heads, FFN dim, depth. Unlike LightHuBERT the attention
dim is the embedding dim (heads split it, as in our encoder and torchaudio's), so that every
subnet is an ordinary `EncoderConfig`; the heads stay a free choice among divisors of the width.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.func import functional_call

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import init_from_teacher, leading_slice


@dataclass(frozen=True, order=True)
class Subnet:
    """One architecture of the supernet's space."""

    embed_dim: int
    num_heads: int
    ffn_dim: int
    num_layers: int

    def config(self, supernet: EncoderConfig) -> EncoderConfig:
        return replace(
            supernet,
            embed_dim=self.embed_dim,
            num_heads=self.num_heads,
            ffn_dim=self.ffn_dim,
            num_layers=self.num_layers,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "ffn_dim": self.ffn_dim,
            "num_layers": self.num_layers,
        }


@dataclass(frozen=True)
class SearchSpace:
    """Choices per elastic dimension; the FFN is a ratio of each subnet's own width."""

    embed_dims: tuple[int, ...]
    heads: tuple[int, ...]
    ffn_ratios: tuple[float, ...]
    depths: tuple[int, ...]

    def subnet(self, embed_dim: int, num_heads: int, ffn_ratio: float, num_layers: int) -> Subnet:
        return Subnet(embed_dim, num_heads, int(round(embed_dim * ffn_ratio)), num_layers)

    def largest(self) -> Subnet:
        return self.subnet(
            max(self.embed_dims), max(self.heads), max(self.ffn_ratios), max(self.depths)
        )

    def all(self, supernet: EncoderConfig) -> list[Subnet]:
        """Every valid subnet (a width the heads or the positional conv groups do not divide is
        left out), smallest first."""
        grid = itertools.product(self.embed_dims, self.heads, self.ffn_ratios, self.depths)
        subnets = {self.subnet(*c) for c in grid}
        return sorted(s for s in subnets if not validity_errors(s, supernet))

    def sample(self, supernet: EncoderConfig, generator: torch.Generator) -> Subnet:
        """A uniformly drawn valid subnet (from the generator, so that the pretraining loop's
        per-step seeding decides it, the same on every device)."""
        subnets = self.all(supernet)
        return subnets[int(torch.randint(len(subnets), (), generator=generator))]


def validity_errors(sub: Subnet, supernet: EncoderConfig) -> list[str]:
    """Why `sub` is not a subnet of `supernet` ([] when it is)."""
    errors = []
    for name, small, big in (
        ("embed_dim", sub.embed_dim, supernet.embed_dim),
        ("ffn_dim", sub.ffn_dim, supernet.ffn_dim),
        ("num_layers", sub.num_layers, supernet.num_layers),
    ):
        if not 1 <= small <= big:
            errors.append(f"{name} {small} outside 1..{big}")
    if sub.num_heads < 1 or sub.embed_dim % sub.num_heads:
        errors.append(f"num_heads {sub.num_heads} does not divide embed_dim {sub.embed_dim}")
    if sub.embed_dim % supernet.pos_conv_groups:
        errors.append(
            f"embed_dim {sub.embed_dim} not divisible by pos_conv_groups {supernet.pos_conv_groups}"
        )
    return errors


def _skeleton(cfg: EncoderConfig) -> HubertEncoder:
    """The module code of `cfg` with meta tensors (built on the CPU, since the mel filterbank
    is computed at construction, without touching the caller's random stream)."""
    with torch.random.fork_rng(devices=[]):
        return HubertEncoder(cfg).to("meta")


class Supernet:
    """Runs and extracts the subnets of one encoder (the supernet's weights live there)."""

    def __init__(self, encoder: HubertEncoder):
        self.encoder = encoder
        self._skeletons: dict[Subnet, HubertEncoder] = {}

    def skeleton(self, sub: Subnet) -> HubertEncoder:
        """The subnet's module code, without storage of its own (meta tensors)."""
        if sub not in self._skeletons:
            errors = validity_errors(sub, self.encoder.cfg)
            if errors:
                raise ValueError(f"{sub} is not a subnet of the supernet: {'; '.join(errors)}")
            self._skeletons[sub] = _skeleton(sub.config(self.encoder.cfg))
        return self._skeletons[sub].train(self.encoder.training)

    def tensors(self, sub: Subnet) -> dict[str, torch.Tensor]:
        """Leading slices of the supernet's parameters and buffers, by the subnet's names
        (views: differentiable, no copy)."""
        own = dict(itertools.chain(self.encoder.named_parameters(), self.encoder.named_buffers()))
        skel = self.skeleton(sub)
        named = itertools.chain(skel.named_parameters(), skel.named_buffers())
        return {name: leading_slice(own[name], t.shape) for name, t in named}

    def call(self, sub: Subnet, method: str, *args, **kwargs):
        """`HubertEncoder.<method>(*args)` of the subnet, on the supernet's weights."""
        skel = self.skeleton(sub)
        fn = getattr(type(skel), method)

        class _Bound(nn.Module):  # functional_call calls forward: route it to `method`
            def __init__(self):
                super().__init__()
                self.m = skel

            def forward(self, *a, **k):
                return fn(self.m, *a, **k)

        params = {f"m.{k}": v for k, v in self.tensors(sub).items()}
        return functional_call(_Bound(), params, args, kwargs, strict=True)

    def extract(self, sub: Subnet) -> HubertEncoder:
        """The subnet as a plain encoder (its own copy of the sliced weights): the student's
        leading-slice initialisation, from a supernet whose every slice was trained."""
        model = HubertEncoder(self.skeleton(sub).cfg)
        init_from_teacher(model, self.encoder)
        return model.train(self.encoder.training)


def parameter_count(sub: Subnet, supernet: EncoderConfig) -> int:
    """Parameters of the extracted subnet (as `extract` would build it), without building it."""
    return sum(p.numel() for p in _skeleton(sub.config(supernet)).parameters())
