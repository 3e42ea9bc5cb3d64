"""Iteration ≥2 features: the output of transformer layer L of the previous model (50 Hz)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import torch

from hubert_ee.config import IterationConfig
from hubert_ee.device import compute_device
from hubert_ee.features.mfcc import MfccSource
from hubert_ee.models.checkpoint import load_encoder, weights_digest


class LayerSource:
    """Runs the encoder up to layer L only (the layers above it are never computed)."""

    def __init__(self, checkpoint: str | Path, layer: int):
        self.device = compute_device()
        self.model = load_encoder(checkpoint).to(self.device).eval()
        cfg = self.model.cfg
        if not 1 <= layer <= cfg.num_layers:
            raise ValueError(
                f"layer {layer} does not exist: {checkpoint} has {cfg.num_layers} transformer layers"
            )
        self.layer = layer
        self.name = f"layer{layer}"
        self.dim = cfg.embed_dim
        self.hop = cfg.stride
        self.window = cfg.receptive_field
        self.frame_rate_hz = 16000 / cfg.stride

    @cached_property
    def identity(self) -> str:
        """The layer and the weights, not the path. Hashed on first use: only the process that
        opens the store reads it, not the extraction workers that build their own source."""
        return f"layer{self.layer}:{weights_digest(self.model)}"

    def num_frames(self, num_samples: int) -> int:
        return self.model.cfg.num_frames(num_samples)

    @torch.inference_mode()
    def __call__(self, wave: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None].to(self.device)
        states, _ = self.model.hidden_states(x, num_layers=self.layer)
        return states[self.layer - 1][0].float().cpu().numpy()


GPU_LAYER_WORKERS = 4


def layer_workers(requested: int) -> int:
    """Worker processes for layer features. On a GPU a few processes share the device: with one
    (the first GPU run, benchmarks/results/gpu_h100_2026-11-24) the device sat idle between one
    utterance's small kernels and the next read, and this stage outlasted pretraining; each
    process pays a CUDA context, so not one per core. On the CPU: what the CPU offers."""
    return min(requested, GPU_LAYER_WORKERS) if compute_device().type == "cuda" else requested


def feature_source(it: IterationConfig, name: str, checkpoint: str | None) -> Callable:
    """A picklable zero-argument constructor of iteration `name`'s feature source (extraction
    calls it in the main process first, so a bad checkpoint or layer fails before any worker)."""
    if it.features == "mfcc":
        return MfccSource
    if checkpoint is None:
        raise ValueError(
            f"iterations.{name} uses layer {it.layer} of the previous model: pass --checkpoint "
            "(the previous iteration's encoder, .safetensors)"
        )
    return partial(LayerSource, checkpoint, it.layer)


def feature_workers(it: IterationConfig, requested: int) -> int:
    return layer_workers(requested) if it.features == "layer" else requested
