"""A small digest of the source data the params point at, so that new or changed audio reaches
`dvc repro` (and so the scheduled retraining) through a file that `prepare` depends on.

DVC sees params and files, not "the corpus": a manifest that grew by a thousand rows, a
re-transcribed LibriSpeech chapter or a replaced flac changes nothing DVC hashes. The fingerprint
lists what the corpus loader finds (ids, splits, domains, texts, segment bounds, audio paths
relative to `data.real.root`) and, per audio file, its size and modification time (the `make`
convention: no audio is read, so a million-file corpus is fingerprinted with one `stat` per
file). The synthetic corpus is generated from params alone and has no source files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from hubert_ee.config import DataConfig
from hubert_ee.data.sources import SourceUtterance


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:  # outside the root: keep it absolute
        return str(Path(path).resolve())


def _stat(path: str) -> list[int] | str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"  # the validator will reject it; a file that appears later re-runs prepare
    return [st.st_size, st.st_mtime_ns]


def fingerprint_sources(utterances: list[SourceUtterance], root: Path) -> dict[str, Any]:
    """The digest of a loader's output plus the size and mtime of every audio file it names."""
    root = root.resolve()
    rows = sorted(
        (u.split, u.id, u.domain, u.text, _relative(u.path, root), u.start, u.duration)
        for u in utterances
    )
    audio = sorted({_relative(u.path, root): u.path for u in utterances}.items())
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row).encode() + b"\n")
    total = 0
    for rel, path in audio:
        st = _stat(path)
        total += st[0] if isinstance(st, list) else 0
        digest.update(json.dumps([rel, st]).encode() + b"\n")
    return {
        "utterances": dict(sorted(Counter(u.split for u in utterances).items())),
        "audio_files": len(audio),
        "audio_bytes": total,
        "sha256": digest.hexdigest(),
    }


def corpus_fingerprint(data: DataConfig) -> dict[str, Any]:
    """What `prepare` will read, summarised; equal fingerprints mean equal source data."""
    if data.corpus == "synthetic":
        return {"corpus": "synthetic", "sources": "generated from params (data.synthetic)"}
    from hubert_ee.data.real_corpora import LOADERS

    utterances = LOADERS[data.corpus](data.real)
    return {"corpus": data.corpus, **fingerprint_sources(utterances, Path(data.real.root))}
