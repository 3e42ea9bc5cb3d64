"""Run a CTC model over a dataset: per-utterance log-probabilities, in dataset order."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hubert_ee.data.asr_data import ASRData, collate_asr
from hubert_ee.data.batching import bucket_batches
from hubert_ee.decode.ctc import greedy_decode
from hubert_ee.metrics.wer import cer, wer


def emissions(
    model: torch.nn.Module, data: ASRData, max_batch_seconds: float, device: torch.device
) -> list[torch.Tensor]:
    """(frames, classes) log-softmax of the plain logits f_t per utterance (float32, CPU)."""
    return [lp for lp, _ in outputs(model, data, max_batch_seconds, device)]


@torch.no_grad()
def outputs(
    model: torch.nn.Module, data: ASRData, max_batch_seconds: float, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(log-softmax of f_t, σ²_t or None) per utterance, (frames, classes) float32 on CPU."""
    was_training = model.training
    model.to(device).eval()
    out: list = [None] * len(data)
    for idx in bucket_batches(data.lengths(), int(max_batch_seconds * 16000), seed=0, epoch=0):
        batch = collate_asr([data[i] for i in idx])
        res = model(batch["wave"].to(device), batch["lengths"].to(device))
        lp = F.log_softmax(res.logits.float(), dim=-1).cpu()
        var = None if res.variance is None else res.variance.float().cpu()
        for j, i in enumerate(idx):
            n = int(res.frame_lengths[j])
            out[i] = (lp[j, :n], None if var is None else var[j, :n])
    model.train(was_training)
    return out


def greedy_scores(log_probs: list[torch.Tensor], data: ASRData) -> dict[str, float]:
    """Corpus WER and CER of the greedy transcripts of `emissions(model, data, ...)`."""
    hyps = [greedy_decode(lp[None], None, data.vocab)[0] for lp in log_probs]
    refs = data.texts()
    return {"wer": wer(refs, hyps), "cer": cer(refs, hyps)}
