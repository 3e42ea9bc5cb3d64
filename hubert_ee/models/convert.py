"""Import encoder weights in torchaudio layout (`hubert_base()`, `hubert_pretrain_base()`,
`wav2vec2_base()`; fairseq checkpoints go through `torchaudio.models.wav2vec2.utils.
import_fairseq_model` first). A user with public HuBERT weights can then skip pretraining."""

from __future__ import annotations

import torch

from hubert_ee.models.encoder import HubertEncoder

_PRETRAIN_PREFIX = "wav2vec2."
_MASK_EMBEDDING = "mask_generator.mask_embedding"  # torchaudio's HuBERTPretrainModel
_LEGACY_WEIGHT_NORM = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def torchaudio_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the encoder's tensors, under our names (which are torchaudio's)."""
    out = {}
    for key, value in state.items():
        if key == _MASK_EMBEDDING:
            out["mask_embedding"] = value
            continue
        if key.startswith(_PRETRAIN_PREFIX):
            key = key[len(_PRETRAIN_PREFIX) :]
        if not key.startswith(("feature_extractor.", "encoder.")):
            continue  # aux/CTC head, mask embedding, logit generator: not part of the encoder
        for old, new in _LEGACY_WEIGHT_NORM.items():  # older torch weight_norm naming
            if key.endswith(f"pos_conv_embed.conv.{old}"):
                key = key.replace(old, new)
        out[key] = value
    return out


def load_torchaudio_weights(model: HubertEncoder, state: dict[str, torch.Tensor]) -> None:
    converted = torchaudio_to_ours(state)
    own = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in converted.items()
        if k in own and v.shape != own[k].shape
    ]
    if wrong:
        raise ValueError(
            f"checkpoint does not match the encoder configuration: shapes differ for {wrong[:3]} (checkpoint vs model)"
        )
    missing, unexpected = model.load_state_dict(converted, strict=False)
    missing = [k for k in missing if k != "mask_embedding"]  # fine-tuned weights lack it
    if missing or unexpected:
        raise ValueError(
            "checkpoint does not match the encoder configuration: "
            f"missing {sorted(missing)[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {sorted(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
