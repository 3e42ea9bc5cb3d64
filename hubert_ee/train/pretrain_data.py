"""Audio + k-means labels for masked prediction, with labels mapped onto the model's frames.

Labels come at the rate of their feature source (100 Hz MFCC, 50 Hz model layers); the model
runs at 50 Hz. Model frame t takes label floor(t · label_rate / 50). Every utterance is
checked up front: its label count must equal what the label source's framing rule gives for
its audio, and every model frame must have a label. A mismatch is an error naming the
utterance — never a silent truncation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.features.store import FrameStore
from hubert_ee.models.config import EncoderConfig


class LabelLengthError(ValueError):
    """Labels and audio of an utterance do not line up."""


def label_indices(
    num_samples: int,
    num_labels: int,
    label_hop: int,
    label_window: int,
    cfg: EncoderConfig,
    utt_id: str,
) -> np.ndarray:
    """Index into the utterance's labels for each model frame (checked)."""
    expected = 0 if num_samples < label_window else 1 + (num_samples - label_window) // label_hop
    if num_labels != expected:
        raise LabelLengthError(
            f"utterance {utt_id}: {num_labels} labels for {num_samples} samples, but the label source "
            f"(hop {label_hop}, window {label_window}) gives {expected}; labels and audio do not match"
        )
    frames = cfg.num_frames(num_samples)
    idx = (np.arange(frames) * cfg.stride) // label_hop
    if frames and idx[-1] >= num_labels:
        raise LabelLengthError(
            f"utterance {utt_id}: {frames} model frames need label {idx[-1]} but there are {num_labels}"
        )
    return idx


@dataclass
class Item:
    id: str
    path: str
    start: float
    duration: float
    num_samples: int
    label_loc: tuple[int, int, int] | None  # shard, first frame, count (None: no labels)


class PretrainData(torch.utils.data.Dataset):
    """Audio and, per model frame, its k-means label; `label_dirs=None` for an objective that
    needs no labels (wav2vec 2.0): every frame's label is then 0."""

    def __init__(
        self, manifests: list[pd.DataFrame], label_dirs: list[Path] | None, cfg: EncoderConfig
    ):
        self.cfg = cfg
        self.stores = [] if label_dirs is None else [FrameStore(d) for d in label_dirs]
        self.items: list[tuple[int, Item]] = []
        if label_dirs is None:
            for si, m in enumerate(manifests):
                for r in m.itertuples():
                    self.items.append((si, Item(r.id, r.path, float(r.start), float(r.duration),
                                                int(r.num_samples), None)))  # fmt: skip
            self.num_classes = 0
            self._mmaps: dict[tuple[int, int], np.ndarray] = {}
            return
        for si, (m, store) in enumerate(zip(manifests, self.stores, strict=True)):
            extra = store.meta.extra or {}
            hop, window = extra["hop"], extra["window"]
            loc = store.index()
            for r in m.itertuples():
                if r.id not in loc:
                    raise LabelLengthError(f"utterance {r.id} has no labels in {store.dir}")
                label_indices(int(r.num_samples), loc[r.id][2], hop, window, cfg, r.id)
                self.items.append(
                    (
                        si,
                        Item(
                            r.id,
                            r.path,
                            float(r.start),
                            float(r.duration),
                            int(r.num_samples),
                            loc[r.id],
                        ),
                    )
                )
        self.num_classes = max(int((s.meta.extra or {})["k"]) for s in self.stores)
        self._mmaps = {}

    def __len__(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.array([it.num_samples for _, it in self.items], dtype=np.int64)

    def _labels(self, si: int, item: Item) -> np.ndarray:
        if item.label_loc is None:
            return np.zeros(self.cfg.num_frames(item.num_samples), dtype=np.int64)
        shard, first, n = item.label_loc
        key = (si, shard)
        if key not in self._mmaps:
            self._mmaps[key] = self.stores[si].shard(shard)[2]
        store = self.stores[si]
        extra = store.meta.extra or {}
        labels = np.asarray(self._mmaps[key][first : first + n], dtype=np.int64)
        return labels[
            label_indices(item.num_samples, n, extra["hop"], extra["window"], self.cfg, item.id)
        ]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        si, item = self.items[i]
        wave = read_mono_16k(item.path, item.start, item.duration)[: item.num_samples]
        if len(wave) != item.num_samples:
            raise LabelLengthError(
                f"utterance {item.id}: read {len(wave)} samples, manifest says {item.num_samples}"
            )
        return torch.from_numpy(np.ascontiguousarray(wave)), torch.from_numpy(
            self._labels(si, item)
        )


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([len(w) for w, _ in batch])
    frames = max(len(lab) for _, lab in batch)
    wave = torch.zeros(len(batch), int(lengths.max()))
    labels = torch.full((len(batch), frames), -1, dtype=torch.long)
    for i, (w, lab) in enumerate(batch):
        wave[i, : len(w)] = w
        labels[i, : len(lab)] = lab
    return {"wave": wave, "lengths": lengths, "labels": labels}
