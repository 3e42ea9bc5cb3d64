"""Encoder checkpoints as safetensors (no pickles: loading one never executes code).

The encoder configuration travels in the safetensors metadata, so a checkpoint is one file.
torchaudio-layout state dicts (`.pt`) load with `weights_only=True` given a configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.convert import load_torchaudio_weights
from hubert_ee.models.encoder import HubertEncoder

CONFIG_KEY = "hubert_ee.encoder_config"


def save_encoder(
    model: HubertEncoder, path: str | Path, extra_metadata: dict[str, str] | None = None
) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {CONFIG_KEY: json.dumps(model.cfg.to_dict()), **(extra_metadata or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_encoder(
    path: str | Path, cfg: EncoderConfig | None = None, device: str = "cpu"
) -> HubertEncoder:
    """Our safetensors checkpoint, or a torchaudio-layout `.pt`/`.pth` state dict with `cfg`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"encoder checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            if CONFIG_KEY not in meta:
                raise ValueError(
                    f"{path} has no {CONFIG_KEY} metadata: not a hubert-ee encoder checkpoint"
                )
            model = HubertEncoder(EncoderConfig.from_dict(json.loads(meta[CONFIG_KEY])))
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
        model.load_state_dict(state)
        return model.to(device)
    if cfg is None:
        raise ValueError(f"{path}: a torchaudio-layout state dict needs the encoder configuration")
    state = torch.load(path, map_location=device, weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    model = HubertEncoder(cfg)
    load_torchaudio_weights(model, state)
    return model.to(device)
