"""The fine-tuning loop's schedule: head-only warm-up, frozen front end, plateau-aware patience."""

from __future__ import annotations

from dataclasses import replace

import torch

from hubert_ee.decode.vocab import CharVocab
from hubert_ee.models.config import tiny
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.train.finetune import FinetuneConfig, finetune

V = CharVocab()


class TinyASR(torch.utils.data.Dataset):
    """In-memory stand-in for ASRData: noise waves with short transcripts."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.waves = [torch.randn(8000 + 800 * i, generator=g) * 0.1 for i in range(n)]
        self.text = ["a cat" if i % 2 else "the dog" for i in range(n)]
        self.vocab = V

    def __len__(self) -> int:
        return len(self.waves)

    def lengths(self):
        import numpy as np

        return np.array([len(w) for w in self.waves])

    def texts(self, idx=None):
        return self.text if idx is None else [self.text[i] for i in idx]

    def __getitem__(self, i):
        return self.waves[i], V.encode(self.text[i])


def _cfg(**kw) -> FinetuneConfig:
    base = dict(
        max_steps=3, max_batch_seconds=2.0, lr=1e-3, warmup_steps=1, freeze_encoder_steps=0,
        weight_decay=0.0, clip_norm=10.0, mask_time_prob=0.0, mask_time_span=5,
        mask_channel_prob=0.0, mask_channel_span=4, uncertainty_samples=2, eval_every=1,
        patience=1, seed=0,
    )  # fmt: skip
    base.update(kw)
    return FinetuneConfig(**base)


def _model() -> CTCModel:
    torch.manual_seed(0)
    return CTCModel(HubertEncoder(replace(tiny(), num_layers=1)), V)


def test_head_only_warm_up_leaves_the_encoder_alone(tmp_path):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(model, TinyASR(4, 0), TinyASR(2, 1), _cfg(max_steps=2, freeze_encoder_steps=2,
             patience=10), tmp_path / "s.pt", "x", torch.device("cpu"))  # fmt: skip
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("head.", "variance_head.")) for k in changed), changed


def test_patience_waits_while_the_model_only_emits_blanks(tmp_path):
    """Two evaluations at WER = CER = 1 do not stop a run with patience 1."""
    model = _model()
    res = finetune(model, TinyASR(4, 0), TinyASR(2, 1), _cfg(max_steps=3, lr=1e-6),
                   tmp_path / "s.pt", "x", torch.device("cpu"))  # fmt: skip
    assert all(e["cer"] >= 1.0 for e in res.evals)
    assert res.steps == 3 and not res.stopped_early
