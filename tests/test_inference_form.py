"""The inference form computes the training form's function: same outputs, same checkpoints."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.config import tiny
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import EarlyExitModel, ExitConfig
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.inference_form import inference_form
from hubert_ee.models.logmel_frontend import LogMelFrontend
from hubert_ee.models.transformer import ConvPositionalEmbedding


@pytest.mark.parametrize("kernel,groups", [(32, 8), (16, 4), (15, 3), (5, 1)])
def test_folded_positional_conv_equals_the_weight_normed_grouped_conv(kernel, groups):
    torch.manual_seed(0)
    pos = ConvPositionalEmbedding(48, kernel, groups).eval()
    with torch.no_grad():  # a weight norm far from 1, so folding it in is checked
        pos.conv.parametrizations.weight.original0.mul_(3.0)
    x = torch.randn(3, 37, 48)
    x[1, 30:] = 0.0  # padded frames, as features() leaves them
    with torch.no_grad():
        ref = pos(x)
        pos.fold()
        out = pos(x)
    assert pos.folded_weight is not None
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_folding_leaves_the_checkpoint_layout_and_train_returns_to_the_training_form():
    pos = ConvPositionalEmbedding(32, 8, 4)
    keys = set(pos.state_dict())
    inference_form(pos)
    assert set(pos.state_dict()) == keys  # the folded weight is not saved
    pos.train()
    assert pos.folded_weight is None
    x = torch.randn(1, 10, 32, requires_grad=True)
    pos(x).sum().backward()  # training form: gradients reach the weight norm's factors
    assert pos.conv.parametrizations.weight.original1.grad is not None


def test_folded_log_mel_equals_torchaudios_with_and_without_lengths():
    torch.manual_seed(0)
    fe = LogMelFrontend(40).eval()
    wave = torch.randn(2, 9000) * torch.tensor([[1.0], [0.01]])
    lengths = torch.tensor([9000, 6100])
    ref, ref_one = fe(wave, lengths), fe(wave[:1])
    fe.fold()
    torch.testing.assert_close(fe(wave, lengths), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fe(wave[:1]), ref_one, rtol=1e-4, atol=1e-4)
    fe.train()
    assert not fe.folded


def test_a_model_in_inference_form_gives_the_same_posteriors_and_exits():
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny(), num_layers=3, embed_dim=64, ffn_dim=128)
    model = EarlyExitModel(CTCModel(HubertEncoder(cfg), CharVocab()), ExitConfig((1, 2), "linear"))
    model.eval()
    wave = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 11000])
    with torch.no_grad():
        ref = model.student.logits(wave, lengths).logits
        ref_exit = model.early_exit(wave, lengths, "confidence", 0.05)
        inference_form(model)
        out = model.student.logits(wave, lengths).logits
        out_exit = model.early_exit(wave, lengths, "confidence", 0.05)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert out_exit.exit_layer == ref_exit.exit_layer
    for a, b in zip(out_exit.log_probs, ref_exit.log_probs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert not model.training
