"""Labeled audio for the CTC models: waveform + character ids, length-bucketed like pretraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.augment import TrainAugmentation, corrupt, fit_length
from hubert_ee.data.manifest import load_split
from hubert_ee.data.vocab import CharVocab


class ASRData(torch.utils.data.Dataset):
    """One row of a `load_split` manifest per item; transcripts are checked up front."""

    def __init__(self, manifest: pd.DataFrame, vocab: CharVocab):
        if manifest.empty:
            raise ValueError("no labeled utterances: the manifest selection is empty")
        self.rows = manifest.reset_index(drop=True)
        self.vocab = vocab
        self.targets = [vocab.encode(str(t)) for t in self.rows["text"]]

    def __len__(self) -> int:
        return len(self.rows)

    def lengths(self) -> np.ndarray:
        return self.rows["num_samples"].to_numpy(dtype=np.int64)

    def texts(self, idx: list[int] | None = None) -> list[str]:
        rows = self.rows if idx is None else self.rows.iloc[idx]
        return [" ".join(str(t).split()) for t in rows["text"]]

    def wave(self, i: int) -> torch.Tensor:
        r = self.rows.iloc[i]
        n = int(r.num_samples)
        w = read_mono_16k(r.path, float(r.start), float(r.duration))[:n]
        if len(w) != n:
            raise ValueError(f"utterance {r.id}: read {len(w)} samples, manifest says {n}")
        return torch.from_numpy(np.ascontiguousarray(w))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.wave(i), self.targets[i]


class AugmentedASRData(ASRData):
    """`ASRData` whose items are corrupted by `TrainAugmentation`, drawn from (seed, epoch, item):
    the same batch after a resume, a new draw each epoch (the training loop calls `set_epoch`).
    Lengths stay the manifest's for bucketing, so a batch of speed-perturbed audio can exceed
    `max_batch_seconds` by up to the slowest speed's factor."""

    BABBLE_TALKERS = 3

    def __init__(self, base: ASRData, aug: TrainAugmentation, seed: int):
        super().__init__(base.rows, base.vocab)
        self.aug, self.seed, self.epoch = aug, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _babble(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        for j in rng.choice(len(self), size=min(self.BABBLE_TALKERS, len(self)), replace=False):
            talker = fit_length(self.wave(int(j)).numpy(), n)
            out += np.roll(talker, int(rng.integers(n)))
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = corrupt(self.wave(i).numpy(), rng, self.aug, lambda n: self._babble(rng, n))
        return torch.from_numpy(np.ascontiguousarray(x)), self.targets[i]


def collate_asr(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(w) for w, _ in batch])
    wave = torch.zeros(len(batch), int(lengths.max()))
    for i, (w, _) in enumerate(batch):
        wave[i, : len(w)] = w
    return {
        "wave": wave,
        "lengths": lengths,
        "targets": torch.cat([t for _, t in batch]),
        "target_lengths": torch.tensor([len(t) for _, t in batch]),
    }


def domain_split(manifests: str | Path, split: str, domain: str, vocab: CharVocab) -> ASRData:
    """The utterances of one domain in one split of the prepared manifests."""
    df = load_split(manifests, split)
    sel = df[df["domain"] == domain]
    if sel.empty:
        raise ValueError(
            f"split {split!r} has no utterances of domain {domain!r} "
            f"(domains present: {sorted(df['domain'].unique())})"
        )
    return ASRData(sel, vocab)


def subset_minutes(data: ASRData, minutes: float, seed: int) -> ASRData:
    """A seeded random subset of whole utterances with at least `minutes` of audio (all of
    `data` when it holds less): the low-label arm's training set."""
    order = np.random.default_rng(seed).permutation(len(data))
    seconds = data.lengths()[order] / 16000
    n = int(np.searchsorted(np.cumsum(seconds), minutes * 60)) + 1
    return ASRData(data.rows.iloc[np.sort(order[:n])], data.vocab)
