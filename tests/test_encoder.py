"""Our encoder against torchaudio's HuBERT: same parameters, same hidden states."""

import pytest
import torch
from torchaudio.models import hubert_base, hubert_pretrain_base

from hubert_ee.models import config
from hubert_ee.models.convert import load_torchaudio_weights
from hubert_ee.models.encoder import HubertEncoder


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ref = hubert_base().eval()
    ours = HubertEncoder(config.base()).eval()
    load_torchaudio_weights(ours, ref.state_dict())
    return ref, ours


def test_base_matches_torchaudio_parameter_for_parameter(pair):
    ref, ours = pair
    ref_shapes = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("aux")}
    own = {k: v.shape for k, v in ours.state_dict().items() if k != "mask_embedding"}
    assert own == ref_shapes
    n_ref = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("aux"))
    n_own = sum(p.numel() for n, p in ours.named_parameters() if n != "mask_embedding")
    assert n_own == n_ref == 94_370_944


def test_pretrain_weights_bring_their_mask_embedding():
    """torchaudio's HuBERTPretrainModel keeps it in mask_generator; it lands in ours."""
    torch.manual_seed(0)
    ref = hubert_pretrain_base()
    ours = HubertEncoder(config.base())
    load_torchaudio_weights(ours, ref.state_dict())
    assert torch.equal(ours.mask_embedding, ref.mask_generator.mask_embedding)


@pytest.mark.parametrize("seconds", [0.5, 1.37, 2.0])
def test_hidden_states_equal_torchaudio(pair, seconds):
    ref, ours = pair
    wave = torch.randn(1, int(16000 * seconds))
    with torch.inference_mode():
        want = ref.extract_features(wave)[0]
        got, _ = ours.hidden_states(wave)
    assert len(got) == len(want) == 12
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max() <= 1e-4


def test_padded_batch_equals_torchaudio(pair):
    ref, ours = pair
    lengths = torch.tensor([32000, 24000, 9000])
    wave = torch.randn(3, 32000) * (torch.arange(32000)[None] < lengths[:, None])
    with torch.inference_mode():
        want, want_len = ref.extract_features(wave, lengths)
        got, got_len = ours.hidden_states(wave, lengths)
    assert torch.equal(want_len, got_len)
    for g, w in zip(got, want, strict=True):
        for b, n in enumerate(got_len.tolist()):
            assert (g[b, :n] - w[b, :n]).abs().max() <= 1e-4


def test_pretrain_checkpoint_loads_encoder_part():
    ref = hubert_pretrain_base(num_classes=500)
    ours = HubertEncoder(config.base())
    load_torchaudio_weights(ours, ref.state_dict())
    key = "encoder.transformer.layers.3.attention.q_proj.weight"
    assert torch.equal(ours.state_dict()[key], ref.state_dict()["wav2vec2." + key])


def test_mismatched_config_is_a_clear_error():
    ours = HubertEncoder(config.tiny())
    with pytest.raises(ValueError, match="does not match the encoder configuration"):
        load_torchaudio_weights(ours, hubert_base().state_dict())


def test_frame_rule():
    cfg = config.base()
    assert cfg.stride == 320 and cfg.receptive_field == 400
    assert [cfg.num_frames(n) for n in (399, 400, 719, 720, 16000)] == [0, 1, 1, 2, 49]
    assert config.tiny().num_frames(16000) == 49
    assert config.tiny().stride == 320 and config.tiny().receptive_field == 400


def test_logmel_frontend_frames_like_the_cnn():
    from dataclasses import replace

    cfg = config.tiny()
    cnn = replace(cfg, frontend="cnn")
    assert cfg.frontend == "logmel"
    model = HubertEncoder(cfg).eval()
    for n in (400, 719, 720, 16000, 23456):
        x, lengths = model(torch.randn(1, n), torch.tensor([n]))
        assert (
            x.shape[1]
            == cfg.num_frames(n)
            == cnn.num_frames(n)
            == config.base().num_frames(n)
            == int(lengths[0])
        )
    assert not any(p.requires_grad for p in model.feature_extractor.parameters())


def test_model_files_are_canonical_same_tensors_same_bytes(tmp_path):
    """safetensors writes its metadata in hash order; ours must not (DVC and the registry
    identify models by their bytes)."""
    from hubert_ee.models.checkpoint import canonical_safetensors, load_encoder, save_encoder

    enc = HubertEncoder(config.tiny())
    meta = {"iteration": "1", "steps": "3", "k": "20", "a": "x", "z": "y"}
    for i in range(3):
        save_encoder(enc, tmp_path / f"e{i}.safetensors", meta)
        save_encoder(enc, tmp_path / f"r{i}.safetensors", dict(reversed(meta.items())))
    blobs = {p.read_bytes() for p in tmp_path.glob("*.safetensors")}
    assert len(blobs) == 1
    back = load_encoder(tmp_path / "e0.safetensors")
    for (k, a), (k2, b) in zip(enc.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    t = {"b": torch.ones(3), "a": torch.zeros(2, dtype=torch.float16)}
    raw = canonical_safetensors(t, {"y": "1", "x": "2"})
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and raw[8 : 8 + n].rstrip().startswith(b'{"__metadata__":{"x":"2","y":"1"}')


def test_a_truncated_model_file_is_a_one_line_error(tmp_path):
    from hubert_ee.models.checkpoint import load_encoder, save_encoder

    save_encoder(HubertEncoder(config.tiny()), tmp_path / "e.safetensors")
    data = (tmp_path / "e.safetensors").read_bytes()
    (tmp_path / "e.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint.*truncated"):
        load_encoder(tmp_path / "e.safetensors")
