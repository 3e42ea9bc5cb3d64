"""Encoder and CTC-model checkpoints as safetensors (no pickles: loading one never executes code).

The encoder configuration travels in the safetensors metadata, so a checkpoint is one file.
Files are canonical: the same tensors and metadata give the same bytes (safetensors writes its
metadata map in hash order, so every save of an unchanged model would look like a change to DVC
and to the registry). torchaudio-layout state dicts (`.pt`) load with `weights_only=True` given
a configuration.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.config import EncoderConfig
from hubert_ee.models.convert import load_torchaudio_weights
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import EarlyExitModel, ExitConfig
from hubert_ee.models.encoder import HubertEncoder

CONFIG_KEY = "hubert_ee.encoder_config"
CTC_KEY = "hubert_ee.ctc_head"
EXIT_KEY = "hubert_ee.exits"


def canonical_safetensors(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> bytes:
    """safetensors bytes with the header's keys sorted (format: u64 little-endian header
    length, JSON header padded with spaces to 8 bytes, then the tensor data, whose order the
    library already fixes by dtype and name)."""
    raw = save(tensors, metadata=meta)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def weights_digest(module: torch.nn.Module) -> str:
    """md5 of a module's parameters and buffers (names, dtypes, shapes, bytes), as loaded: what
    its outputs are made from, whichever file or path it came from."""
    h = hashlib.md5()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bf16 too
    return h.hexdigest()


def _write(module: torch.nn.Module, path: str | Path, meta: dict[str, str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(canonical_safetensors(tensors, meta))
    tmp.replace(path)


def _open(path: Path, device: str):
    try:
        return safe_open(str(path), framework="pt", device=device)
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{path} is not a readable safetensors checkpoint ({err}); the file may be "
            "truncated or not a model: re-create it (e.g. `dvc checkout` or re-run its stage)"
        ) from None


def _read(path: Path, device: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with _open(path, device) as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
    return meta, state


def save_encoder(
    model: HubertEncoder, path: str | Path, extra_metadata: dict[str, str] | None = None
) -> None:
    _write(model, path, {CONFIG_KEY: json.dumps(model.cfg.to_dict()), **(extra_metadata or {})})


def _head_meta(model: CTCModel) -> dict:
    return {
        "tokens": list(model.vocab_tokens),
        "uncertainty": model.variance_head is not None,
        "final_dropout": model.final_dropout.p,
        **(
            {"variance_input": "logits", "variance_hidden": model.variance_head.hidden}
            if model.variance_input == "logits"  # only a LogitVarianceHead reads the logits
            else {}
        ),
    }


def save_ctc_model(
    model: CTCModel, path: str | Path, extra_metadata: dict[str, str] | None = None
) -> None:
    """Encoder + heads; the vocabulary and head settings travel in the metadata."""
    meta = {
        CONFIG_KEY: json.dumps(model.encoder.cfg.to_dict()),
        CTC_KEY: json.dumps(_head_meta(model)),
        **(extra_metadata or {}),
    }
    _write(model, path, meta)


def save_early_exit_model(
    model: EarlyExitModel, path: str | Path, extra_metadata: dict[str, str] | None = None
) -> None:
    """The student with its exit branches; `load_early_exit_model` rebuilds both."""
    meta = {
        CONFIG_KEY: json.dumps(model.student.encoder.cfg.to_dict()),
        CTC_KEY: json.dumps(_head_meta(model.student)),
        EXIT_KEY: json.dumps(model.cfg.to_dict()),
        **(extra_metadata or {}),
    }
    _write(model, path, meta)


def load_early_exit_model(path: str | Path, device: str = "cpu") -> EarlyExitModel:
    meta, state = _read(Path(path), device)
    if EXIT_KEY not in meta:
        raise ValueError(f"{path} has no {EXIT_KEY} metadata: not a hubert-ee early-exit model")
    student = _ctc_from_meta(meta)
    model = EarlyExitModel(student, ExitConfig.from_dict(json.loads(meta[EXIT_KEY])))
    model.load_state_dict(state)
    return model.to(device).eval()


def _ctc_from_meta(meta: dict[str, str]) -> CTCModel:
    head = json.loads(meta[CTC_KEY])
    encoder = HubertEncoder(EncoderConfig.from_dict(json.loads(meta[CONFIG_KEY])))
    return CTCModel(
        encoder,
        CharVocab(tuple(head["tokens"])),
        uncertainty=head["uncertainty"],
        final_dropout=head["final_dropout"],
        variance_input=head.get("variance_input", "hidden"),  # checkpoints before issue 14's
        variance_hidden=head.get("variance_hidden", 256),
    )


def load_ctc_model(path: str | Path, device: str = "cpu") -> CTCModel:
    meta, state = _read(Path(path), device)
    if CTC_KEY not in meta or EXIT_KEY in meta:
        raise ValueError(f"{path} is not a hubert-ee CTC model checkpoint (no {CTC_KEY} metadata)")
    model = _ctc_from_meta(meta)
    model.load_state_dict(state)
    return model.to(device).eval()


def checkpoint_metadata(path: str | Path) -> dict[str, str]:
    with _open(Path(path), "cpu") as f:
        return dict(f.metadata() or {})


def load_encoder(
    path: str | Path, cfg: EncoderConfig | None = None, device: str = "cpu"
) -> HubertEncoder:
    """Our safetensors checkpoint, or a torchaudio-layout `.pt`/`.pth` state dict with `cfg`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"encoder checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        meta, state = _read(path, device)
        if CONFIG_KEY not in meta:
            raise ValueError(
                f"{path} has no {CONFIG_KEY} metadata: not a hubert-ee encoder checkpoint"
            )
        model = HubertEncoder(EncoderConfig.from_dict(json.loads(meta[CONFIG_KEY])))
        prefix = "student.encoder." if EXIT_KEY in meta else "encoder." if CTC_KEY in meta else ""
        if prefix:  # a fine-tuned / early-exit model: take its encoder
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if "mask_embedding" not in state:
            print(
                f"{path} has no mask embedding (written before it was saved): a fresh one is used"
            )
            state["mask_embedding"] = model.mask_embedding.detach().clone()
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
