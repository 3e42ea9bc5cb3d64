"""The teacher's uncertainty head refitted on its logits (issue 14, `finetune.variance_refit`)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from hubert_ee.config import VarianceRefitParams
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_ctc_model, save_ctc_model
from hubert_ee.models.config import tiny
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.variance_head import LogitVarianceHead
from hubert_ee.train.losses import integrated_frame_nll
from hubert_ee.train.variance_fit import fit_logit_variance, frame_targets, refit_variance_head
from tests.test_finetune_units import TinyASR

V = CharVocab()
REFIT = VarianceRefitParams(hidden=32, steps=150, lr=1e-2, samples=8, frames_per_step=512)


def test_integrated_frame_nll_without_noise_is_the_cross_entropy_with_gamma():
    f = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]])  # softmax (1/4, 3/4), (3/4, 1/4)
    gamma = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    nll = integrated_frame_nll(f, torch.full_like(f, 1e-12), gamma, samples=1)
    expected = [-math.log(0.75), -0.5 * math.log(0.75) - 0.5 * math.log(0.25)]
    assert nll.tolist() == pytest.approx(expected, abs=1e-5)


def test_noise_pays_only_on_a_confidently_wrong_frame():
    """σ² = 4 raises the integrated likelihood of the class the logits reject, lowers it on
    the class they back: the gradient Kendall & Gal's head learns from."""
    f = torch.tensor([[6.0, 0.0]])
    gen = torch.Generator().manual_seed(0)

    def nll(gamma, var):
        return float(integrated_frame_nll(f, torch.full_like(f, var), gamma, 64, gen))

    wrong, right = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    assert nll(wrong, 4.0) < nll(wrong, 1e-6) - 1.0
    assert nll(right, 4.0) > nll(right, 1e-6)


def test_logit_head_reads_the_softmax_shape_and_starts_small():
    head = LogitVarianceHead(5, hidden=8)
    f = torch.randn(3, 7, 5)
    assert torch.allclose(head(f), torch.full((3, 7, 5), F.softplus(torch.tensor(-4.0)).item()))
    torch.nn.init.normal_(head.out.weight)
    assert torch.allclose(head(f), head(f + 11.0), atol=1e-5)  # a shift of f is no new shape


def test_the_fitted_head_gives_wrong_frames_more_variance_than_right_ones():
    g = torch.Generator().manual_seed(0)
    n, c = 400, 6
    label = torch.randint(c, (n,), generator=g)
    wrong = torch.arange(n) % 4 == 0  # a quarter of the frames back another class, less surely
    backed = torch.where(wrong, (label + 1) % c, label)
    f = torch.randn(n, c, generator=g) * 0.3
    f[torch.arange(n), backed] += torch.where(wrong, 1.5, 5.0)
    gamma = F.one_hot(label, c).float()
    head, stats = fit_logit_variance(f, gamma, REFIT, seed=0)
    with torch.no_grad():
        total = head(f).sum(-1)
    assert total[wrong].mean() > 2 * total[~wrong].mean()
    assert stats["loss_last"] < stats["loss_first"]


def test_frame_targets_drop_an_utterance_its_frames_cannot_align():
    lp = F.log_softmax(torch.randn(4, len(V)), -1)
    f, gamma = frame_targets([lp, lp], [V.encode("ab"), V.encode("abcdefgh")], V.blank)
    assert f.shape == gamma.shape == (4, len(V))
    assert torch.allclose(gamma.sum(-1), torch.ones(4), atol=1e-4)  # one class per frame


class _Data(TinyASR):
    @property
    def targets(self):
        return [V.encode(t) for t in self.text]


def _model() -> CTCModel:
    torch.manual_seed(0)
    return CTCModel(HubertEncoder(replace(tiny(), num_layers=1)), V)


def test_refit_replaces_only_the_variance_and_survives_a_checkpoint(tmp_path):
    model = _model().eval()
    wave = torch.randn(1, 8000) * 0.1
    before = model(wave)
    stats = refit_variance_head(model, _Data(4, 0), REFIT, 0, 2.0, torch.device("cpu"))
    assert stats["frames"] > 0 and model.variance_input == "logits"
    after = model(wave)
    assert torch.equal(after.logits, before.logits)  # decoding reads f: unchanged
    assert not torch.allclose(after.variance, before.variance)
    save_ctc_model(model, tmp_path / "m.safetensors")
    loaded = load_ctc_model(tmp_path / "m.safetensors")
    assert loaded.variance_input == "logits"
    assert torch.equal(loaded(wave).variance, after.variance)


def test_a_linear_head_checkpoint_keeps_its_metadata_and_loads_as_before(tmp_path):
    model = _model().eval()
    save_ctc_model(model, tmp_path / "m.safetensors")
    loaded = load_ctc_model(tmp_path / "m.safetensors")
    assert loaded.variance_input == "hidden" and isinstance(loaded.variance_head, torch.nn.Linear)
    wave = torch.randn(1, 8000) * 0.1
    assert torch.equal(loaded(wave).variance, model(wave).variance)
