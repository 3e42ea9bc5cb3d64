"""A sharded, memory-mappable store of per-utterance frame arrays (features or labels).

Layout of a store directory (one per split):
    meta.json                       source, dim, dtype, frame_rate_hz, num_shards, producer
    shard-<i>-of-<n>.npy            all frames of the shard's utterances, concatenated
    shard-<i>-of-<n>.lengths.npy    frames per utterance (int64)
    shard-<i>-of-<n>.ids.txt        utterance ids, one per line
A shard is written whole by one worker and renamed into place, so a killed extraction resumes
by skipping the shards that exist. It resumes only its own shards: `producer` is a digest of
what the shards are made from (the model's weights, the rows, the source), and a writer that
finds another meta deletes the shards (`open_store`) instead of finishing a store whose first
shards hold another model's frames. Readers never load more than one utterance's frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def shard_name(i: int, n: int) -> str:
    return f"shard-{i:03d}-of-{n:03d}"


@dataclass(frozen=True)
class StoreMeta:
    source: str
    dim: int  # 0 for 1-d arrays (labels)
    dtype: str
    frame_rate_hz: float
    num_shards: int
    extra: dict | None = None
    producer: str = ""  # what the shards are made from; "" in stores older than the field

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "meta.json").write_text(self.to_json())

    @classmethod
    def read(cls, directory: Path) -> StoreMeta:
        path = Path(directory) / "meta.json"
        if not path.exists():
            raise FileNotFoundError(f"{directory} is not a feature/label store (no meta.json)")
        return cls(**json.loads(path.read_text()))


def open_store(directory: Path, meta: StoreMeta) -> list[str]:
    """Make `directory` the store of `meta` before shards are written; returns the names of the
    shard files deleted because another writer left them (another meta: other weights, rows or
    settings, or no meta at all), said in one line."""
    directory.mkdir(parents=True, exist_ok=True)
    try:  # compared as written: JSON makes a tuple in `extra` a list
        same = StoreMeta.read(directory).to_json() == meta.to_json()
    except (FileNotFoundError, TypeError, ValueError):  # none, or one this code cannot read
        same = False
    stale = [] if same else sorted(p.name for p in directory.glob("shard-*"))
    for name in stale:
        (directory / name).unlink()
    if stale:
        print(
            f"{directory}: {len(stale)} shard files were made from other inputs (model, rows or "
            "settings); deleted, the store is written afresh"
        )
    meta.write(directory)
    return stale


def write_shard(
    directory: Path, i: int, n: int, ids: list[str], arrays: list[np.ndarray], dtype: str
) -> None:
    """Write one shard atomically (temp names, then rename; the ids file last)."""
    base = directory / shard_name(i, n)
    data = np.concatenate(arrays).astype(dtype) if arrays else np.zeros((0,), dtype)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    for suffix, arr in ((".npy", data), (".lengths.npy", lengths)):
        tmp = base.with_name(base.name + suffix + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, arr)
        tmp.replace(base.with_name(base.name + suffix))
    tmp = base.with_name(base.name + ".ids.txt.tmp")
    tmp.write_text("".join(f"{u}\n" for u in ids))
    tmp.replace(base.with_name(base.name + ".ids.txt"))


def shard_complete(directory: Path, i: int, n: int) -> bool:
    return (directory / f"{shard_name(i, n)}.ids.txt").exists()


class FrameStore:
    """Read side: iterate utterances or shards without loading the store into RAM."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.meta = StoreMeta.read(self.dir)
        n = self.meta.num_shards
        missing = [i for i in range(n) if not shard_complete(self.dir, i, n)]
        if missing:
            raise FileNotFoundError(
                f"{self.dir}: shards {missing} of {n} are missing; re-run the stage"
            )

    def _base(self, i: int) -> Path:
        return self.dir / shard_name(i, self.meta.num_shards)

    def shard(self, i: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(ids, lengths, memory-mapped frames) of shard i."""
        base = self._base(i)
        ids = base.with_name(base.name + ".ids.txt").read_text().split()
        lengths = np.load(base.with_name(base.name + ".lengths.npy"))
        data = np.load(base.with_name(base.name + ".npy"), mmap_mode="r")
        return ids, lengths, data

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        for i in range(self.meta.num_shards):
            ids, lengths, data = self.shard(i)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            for j, uid in enumerate(ids):
                yield uid, data[offsets[j] : offsets[j + 1]]

    def index(self) -> dict[str, tuple[int, int, int]]:
        """utterance id → (shard, first frame, frame count), for random access."""
        out = {}
        for i in range(self.meta.num_shards):
            ids, lengths, _ = self.shard(i)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            for uid, s, n in zip(ids, starts.tolist(), lengths.tolist(), strict=True):
                out[uid] = (i, s, n)
        return out

    def lengths(self) -> dict[str, int]:
        out = {}
        for i in range(self.meta.num_shards):
            ids, lengths, _ = self.shard(i)
            out.update(zip(ids, lengths.tolist(), strict=True))
        return out

    @property
    def num_frames(self) -> int:
        return int(sum(self.shard(i)[1].sum() for i in range(self.meta.num_shards)))
