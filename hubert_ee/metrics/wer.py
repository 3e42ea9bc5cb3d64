"""Corpus-level WER and CER (jiwer): errors summed over utterances / reference length."""

from __future__ import annotations

import jiwer


def _clean(refs: list[str], hyps: list[str]) -> tuple[list[str], list[str]]:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("no utterances to score")
    if any(not r.strip() for r in refs):
        raise ValueError("a reference transcript is empty; WER is undefined for it")
    return refs, [h if h.strip() else "" for h in hyps]


def wer(refs: list[str], hyps: list[str]) -> float:
    refs, hyps = _clean(refs, hyps)
    return float(jiwer.wer(refs, hyps))


def cer(refs: list[str], hyps: list[str]) -> float:
    refs, hyps = _clean(refs, hyps)
    return float(jiwer.cer(refs, hyps))
