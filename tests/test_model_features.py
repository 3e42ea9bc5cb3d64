"""Iteration ≥2 features from a model checkpoint (any checkpoint: here a random tiny one)."""

from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from fixtures import tone, write
from hubert_ee.features.extract import extract_split
from hubert_ee.features.store import FrameStore
from hubert_ee.models import config
from hubert_ee.models.checkpoint import load_encoder, save_encoder
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.layer_features import LayerSource


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "enc.safetensors"
    save_encoder(HubertEncoder(config.tiny()).eval(), path)
    return path


def test_checkpoint_roundtrip_keeps_config_and_outputs(checkpoint):
    model = load_encoder(checkpoint).eval()
    assert model.cfg == config.tiny()
    torch.manual_seed(0)
    ref = HubertEncoder(config.tiny()).eval()
    x = torch.randn(1, 8000)
    with torch.inference_mode():
        assert torch.equal(model(x)[0], ref(x)[0])


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "alien.safetensors"))
    with pytest.raises(ValueError, match="not a hubert-ee encoder checkpoint"):
        load_encoder(tmp_path / "alien.safetensors")


def test_layer_source_is_the_layer_output_at_50_hz(checkpoint):
    src = LayerSource(checkpoint, layer=2)
    assert (src.frame_rate_hz, src.hop, src.window, src.dim) == (50.0, 320, 400, 256)
    wave = tone(1.3).astype(np.float32)
    feats = src(wave)
    assert feats.shape == (src.num_frames(len(wave)), 256) == (64, 256)
    with torch.inference_mode():
        full, _ = src.model.hidden_states(torch.from_numpy(wave)[None])
    assert np.allclose(feats, full[1][0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        LayerSource(checkpoint, layer=9)


def test_layer_source_identity_is_the_layer_and_weights_hashed_on_first_use(
    checkpoint, tmp_path, monkeypatch
):
    from hubert_ee.models import layer_features

    calls = []
    digest = layer_features.weights_digest
    monkeypatch.setattr(layer_features, "weights_digest", lambda m: calls.append(1) or digest(m))
    src = LayerSource(checkpoint, layer=2)
    assert calls == []  # an extraction worker that never reads it never hashes
    assert src.identity == f"layer2:{digest(src.model)}" == src.identity
    assert calls == [1]
    moved = tmp_path / "elsewhere.safetensors"  # the same weights under another path
    moved.write_bytes(checkpoint.read_bytes())
    assert LayerSource(moved, layer=2).identity == src.identity
    assert LayerSource(checkpoint, layer=1).identity != src.identity
    torch.manual_seed(1)
    other = tmp_path / "other.safetensors"
    save_encoder(HubertEncoder(config.tiny()).eval(), other)
    assert LayerSource(other, layer=2).identity != src.identity


def test_sharded_extraction_with_a_model_source(checkpoint, tmp_path):
    rows = [
        {
            "id": f"u{i}",
            "path": str(write(tmp_path / f"{i}.wav", tone(0.6 + 0.2 * i))),
            "start": 0.0,
            "duration": 0.6 + 0.2 * i,
        }
        for i in range(4)
    ]
    m = pd.DataFrame(rows)
    make = partial(LayerSource, str(checkpoint), 1)
    meta = extract_split(make, m, tmp_path / "s1", num_shards=2, workers=2, float16=True)
    extract_split(make, m, tmp_path / "s2", num_shards=2, workers=1, float16=True)
    assert (
        meta.frame_rate_hz == 50.0
        and meta.dtype == "float16"
        and meta.extra == {"window": 400, "hop": 320, "cmvn": False}
    )
    a, b = list(FrameStore(tmp_path / "s1")), list(FrameStore(tmp_path / "s2"))
    assert [u for u, _ in a] == ["u0", "u1", "u2", "u3"]
    for (_, x), (_, y), n in zip(a, b, m["duration"], strict=True):
        assert x.dtype == np.float16 and len(x) == config.tiny().num_frames(int(n * 16000))
        assert np.array_equal(x, y)


def test_layer_workers_share_a_gpu_among_a_few_processes(monkeypatch):
    import torch

    from hubert_ee.models import layer_features as model_layer

    monkeypatch.setattr(model_layer, "compute_device", lambda: torch.device("cpu"))
    assert model_layer.layer_workers(16) == 16
    monkeypatch.setattr(model_layer, "compute_device", lambda: torch.device("cuda"))
    assert model_layer.layer_workers(16) == model_layer.GPU_LAYER_WORKERS == 4
    assert model_layer.layer_workers(2) == 2
