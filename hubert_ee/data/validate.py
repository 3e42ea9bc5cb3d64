"""Bad-input policy (DESIGN §3.3): every utterance is accepted, repaired or rejected with a reason.

Repairs (each one listed in reports/repairs_<split>.csv):
- multi-channel audio → mean of the channels (downmix);
- a sample rate other than 16 kHz → polyphase resampling to 16 kHz;
  the repaired audio is written under <out>/audio/repaired/ and the source file is left alone;
- transcript → lower case, typographic apostrophes → "'", other punctuation → space,
  whitespace collapsed.
Rejections (reports/rejects_<split>.csv): missing or unreadable file, empty audio,
NaN/inf samples, shorter than min_duration_s (and never less than one 25 ms frame), longer
than max_duration_s, a segment beyond the end of its file, an empty or out-of-vocabulary
transcript in a labeled split, a duplicated utterance id.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from hubert_ee.data.audio_io import read_audio, resample, write_wav16
from hubert_ee.data.sources import SourceUtterance

TARGET_SR = 16000
FRAME_S = 0.025
LABELED_SPLITS = frozenset({"train", "dev", "test"})
ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz' ")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_PUNCT = re.compile(r"[.,!?;:\"()\[\]{}\-\u2013\u2014/\\]+")


@dataclass
class Accepted:
    utt: SourceUtterance
    audio_path: str  # the file to read (the repaired copy if a repair was needed)
    num_samples: int  # of the whole (repaired) file
    repairs: list[str] = field(default_factory=list)


@dataclass
class Rejected:
    utt: SourceUtterance
    reason: str


def normalize_text(text: str) -> tuple[str, list[str]]:
    """The transcript repair rule; returns the text and what was changed."""
    changes = []
    t = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    if t != t.lower():
        changes.append("lower-cased")
        t = t.lower()
    stripped = _PUNCT.sub(" ", t)
    if stripped != t:
        changes.append("punctuation removed")
    t = " ".join(stripped.split())
    return t, changes


def check_text(utt: SourceUtterance) -> tuple[str | None, str | None, list[str]]:
    """(normalized text, reject reason, repairs) for one utterance."""
    if utt.text is None or not utt.text.strip():
        return None, ("empty transcript" if utt.split in LABELED_SPLITS else None), []
    text, changes = normalize_text(utt.text)
    oov = sorted(set(text) - ALPHABET)
    if oov:
        if utt.split in LABELED_SPLITS:
            return None, f"out-of-vocabulary characters {''.join(oov)!r} in transcript", []
        return None, None, ["transcript dropped (out-of-vocabulary characters)"]
    if not text:
        return None, ("empty transcript" if utt.split in LABELED_SPLITS else None), []
    return text, None, [f"transcript {c}" for c in changes]


def _repaired_path(out_dir: Path, utt: SourceUtterance) -> Path:
    digest = hashlib.sha1(str(Path(utt.path)).encode()).hexdigest()[:10]
    return out_dir / "audio" / "repaired" / utt.split / f"{Path(utt.path).stem}-{digest}.wav"


def check_file(
    job: tuple[str, list[SourceUtterance], str, float, float],
) -> list[Accepted | Rejected]:
    """Read one audio file once and judge every utterance that lives in it."""
    path, utts, out_dir, min_s, max_s = job
    if not Path(path).is_file():
        return [Rejected(u, f"missing file {path}") for u in utts]
    try:
        data, sr = read_audio(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
        return [Rejected(u, f"unreadable audio: {err}") for u in utts]
    if data.shape[0] == 0:
        return [Rejected(u, "empty audio (0 samples)") for u in utts]
    if not np.isfinite(data).all():
        return [Rejected(u, "non-finite samples (NaN or inf)") for u in utts]
    repairs = []
    audio_path = path
    if data.shape[1] > 1:
        repairs.append(f"downmixed {data.shape[1]} channels to mono")
    if sr != TARGET_SR:
        repairs.append(f"resampled {sr} Hz to {TARGET_SR} Hz")
    x = data.mean(axis=1)
    if repairs:
        x = resample(x, sr, TARGET_SR)
        audio_path = str(_repaired_path(Path(out_dir), utts[0]))
        write_wav16(audio_path, x, TARGET_SR)
    file_s = len(x) / TARGET_SR
    min_s = max(min_s, FRAME_S)
    out: list[Accepted | Rejected] = []
    for u in utts:
        dur = file_s - u.start if u.duration is None else u.duration
        if u.start + dur > file_s + 0.01:
            out.append(
                Rejected(
                    u,
                    f"segment [{u.start:.2f}, {u.start + dur:.2f}] s beyond the {file_s:.2f} s file",
                )
            )
            continue
        if dur < min_s:
            out.append(Rejected(u, f"too short: {dur:.3f} s < {min_s} s"))
            continue
        if dur > max_s:
            out.append(Rejected(u, f"too long: {dur:.1f} s > max_duration_s {max_s} s"))
            continue
        text, reason, text_repairs = check_text(u)
        if reason:
            out.append(Rejected(u, reason))
            continue
        u.text, u.duration = text, round(dur, 6)
        out.append(Accepted(u, audio_path, len(x), repairs + text_repairs))
    return out


@dataclass
class ValidationResult:
    accepted: list[Accepted]
    rejected: list[Rejected]


def validate(
    utts: list[SourceUtterance], out_dir: Path, min_s: float, max_s: float, workers: int
) -> ValidationResult:
    """Judge all utterances, reading each file once, in parallel; keeps the input order."""
    seen: dict[str, str] = {}
    rejected: list[Rejected] = []
    groups: dict[str, list[SourceUtterance]] = defaultdict(list)
    for u in utts:
        if u.id in seen:
            rejected.append(Rejected(u, f"duplicate id (first seen in {seen[u.id]})"))
            continue
        seen[u.id] = u.path
        groups[u.path].append(u)
    jobs = [(p, g, str(out_dir), min_s, max_s) for p, g in groups.items()]
    results: list[Accepted | Rejected] = []
    chunks = max(1, len(jobs) // (8 * max(workers, 1)))
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("forkserver").Pool(workers) as pool:
            it = pool.imap(check_file, jobs, chunksize=chunks)
            for r in tqdm(it, total=len(jobs), desc="validate", unit="file"):
                results += r
    else:
        for job in tqdm(jobs, desc="validate", unit="file"):
            results += check_file(job)
    order = {u.id: i for i, u in enumerate(utts)}
    accepted = sorted(
        (r for r in results if isinstance(r, Accepted)), key=lambda r: order[r.utt.id]
    )
    rejected += [r for r in results if isinstance(r, Rejected)]
    return ValidationResult(accepted, rejected)
