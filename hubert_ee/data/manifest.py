"""Manifests in lhotse's format: `recordings_<split>.jsonl` + `supervisions_<split>.jsonl`.

Plain (not gzipped) JSONL so that the same corpus gives byte-identical files: gzip headers
carry a timestamp. Paths are written as given (relative to the project root for our stages).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from lhotse import AudioSource, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.supervision import AlignmentItem

from hubert_ee.data.validate import TARGET_SR, Accepted


def recordings_path(manifest_dir: Path, split: str) -> Path:
    return Path(manifest_dir) / f"recordings_{split}.jsonl"


def supervisions_path(manifest_dir: Path, split: str) -> Path:
    return Path(manifest_dir) / f"supervisions_{split}.jsonl"


def to_lhotse(accepted: list[Accepted]) -> tuple[RecordingSet, SupervisionSet]:
    recordings: dict[str, Recording] = {}
    supervisions = []
    for a in accepted:
        u = a.utt
        if u.recording_id not in recordings:
            recordings[u.recording_id] = Recording(
                id=u.recording_id,
                sources=[AudioSource(type="file", channels=[0], source=a.audio_path)],
                sampling_rate=TARGET_SR,
                num_samples=a.num_samples,
                duration=a.num_samples / TARGET_SR,
                channel_ids=[0],
            )
        alignment = None
        if u.phones:
            alignment = {
                "phone": [
                    AlignmentItem(symbol=p, start=round(u.start + s, 5), duration=d)
                    for p, s, d in u.phones
                ]
            }
        custom = {"domain": u.domain, **u.custom}
        if a.repairs:
            custom["repairs"] = a.repairs
        supervisions.append(
            SupervisionSegment(
                id=u.id,
                recording_id=u.recording_id,
                start=u.start,
                duration=u.duration,
                channel=0,
                text=u.text,
                speaker=u.speaker,
                language="en",
                custom=custom,
                alignment=alignment,
            )
        )
    return RecordingSet.from_recordings(recordings.values()), SupervisionSet.from_segments(
        supervisions
    )


def write_split(manifest_dir: Path, split: str, accepted: list[Accepted]) -> None:
    recs, sups = to_lhotse(accepted)
    Path(manifest_dir).mkdir(parents=True, exist_ok=True)
    recs.to_file(recordings_path(manifest_dir, split))
    sups.to_file(supervisions_path(manifest_dir, split))


def load_split(manifest_dir: str | Path, split: str) -> pd.DataFrame:
    """One row per utterance: the flat view the feature and training stages consume."""
    recs = {r.id: r for r in RecordingSet.from_file(recordings_path(Path(manifest_dir), split))}
    rows = []
    for s in SupervisionSet.from_file(supervisions_path(Path(manifest_dir), split)):
        rec = recs[s.recording_id]
        phones = [
            (a.symbol, a.start - s.start, a.duration) for a in (s.alignment or {}).get("phone", [])
        ]
        custom = dict(s.custom or {})
        rows.append(
            {
                "id": s.id,
                "recording_id": s.recording_id,
                "path": rec.sources[0].source,
                "start": s.start,
                "duration": s.duration,
                "num_samples": int(round(s.duration * rec.sampling_rate)),
                "sample_rate": rec.sampling_rate,
                "text": s.text,
                "speaker": s.speaker,
                "domain": custom.pop("domain", None),
                "phones": phones or None,
                **custom,
            }
        )
    return pd.DataFrame(rows)
