"""Transcription with early exit: what `hubert-ee transcribe`, `hubert_ee.load` and the MLflow
model serve all run.

A model location is a directory holding `model.safetensors` (an early-exit model from the
`exits` stage, or any CTC model: teacher, student) and optionally `operating_point.json`
(criterion + threshold from `threshold_search`); for the pipeline's own layout
(`models/exits`) the operating point is read from `models/threshold_search/` beside it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from hubert_ee.data.audio_io import resample
from hubert_ee.decode.ctc import BeamDecoder, greedy_decode
from hubert_ee.decode.ngram_lm import NgramLM
from hubert_ee.models.checkpoint import (
    EXIT_KEY,
    checkpoint_metadata,
    load_ctc_model,
    load_early_exit_model,
)
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import EarlyExitModel
from hubert_ee.models.inference_form import inference_form

AUDIO_SUFFIXES = (".wav", ".flac")
MIN_SAMPLES = 400  # one 25 ms frame at 16 kHz


class AudioError(ValueError):
    """An input that cannot be transcribed (unreadable, empty, too short)."""


@dataclass
class Transcript:
    text: str
    path: str | None
    exit_layer: int
    num_layers: int
    duration_s: float
    processing_s: float
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def audio_inputs(paths: Iterable[str | Path]) -> list[Path | AudioError]:
    """Files as given, folders expanded (recursively, sorted) to their wav/flac files; a
    missing path or a folder without audio stands in the list as its AudioError, so a batch
    can report it and go on."""
    out: list[Path | AudioError] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
            out.extend(found or [AudioError(f"{p}: folder has no .wav or .flac files")])
        elif p.exists():
            out.append(p)
        else:
            out.append(AudioError(f"{p}: no such file or folder"))
    return out


def audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Like `audio_inputs`, raising the first AudioError."""
    out = audio_inputs(paths)
    for item in out:
        if isinstance(item, AudioError):
            raise item
    return out  # type: ignore[return-value]


def check_threshold(criterion: str | None, threshold: float | None) -> None:
    """Entropy thresholds are >= 0, confidence thresholds in [0, 1] (DESIGN §8)."""
    if threshold is None or criterion is None:
        return
    if criterion == "entropy" and not threshold >= 0:
        raise ValueError(f"an entropy threshold must be >= 0, got {threshold}")
    if criterion == "confidence" and not 0 <= threshold <= 1:
        raise ValueError(f"a confidence threshold must be within [0, 1], got {threshold}")


def load_audio(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Mono float32 at 16 kHz, with notices for what was repaired; AudioError otherwise."""
    notices: list[str] = []
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for bad files
        raise AudioError(f"{path}: unreadable audio ({err})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if data.shape[1] > 1:
        notices.append(f"downmixed {data.shape[1]} channels to mono")
        data = data.mean(axis=1, keepdims=True)
    x = data[:, 0]
    if sr != 16000:
        notices.append(f"resampled {sr} Hz to 16000 Hz")
        x = resample(x, sr, 16000)
    return check_samples(x, str(path)), notices


def check_samples(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if len(x) < MIN_SAMPLES:
        raise AudioError(f"{what}: too short ({len(x)} samples; at least {MIN_SAMPLES} at 16 kHz)")
    if not np.isfinite(x).all():
        raise AudioError(f"{what}: audio contains NaN or inf samples")
    return x


class Recognizer:
    """`Recognizer.load("models/exits").transcribe(["a.wav"])`."""

    def __init__(
        self,
        model: EarlyExitModel | CTCModel,
        criterion: str | None = None,
        threshold: float | None = None,
    ):
        self.model = model.eval()
        self.criterion = criterion
        self.threshold = threshold
        self.beam: BeamDecoder | None = None  # greedy unless use_beam() was called

    @property
    def vocab(self):
        return (
            self.model.student.vocab if isinstance(self.model, EarlyExitModel) else self.model.vocab
        )

    def use_beam(
        self,
        beam_size: int = 16,
        words: Iterable[str] | None = None,
        lm: NgramLM | str | Path | None = None,
        lm_weight: float = 1.0,
        word_score: float = 0.0,
    ) -> Recognizer:
        """Beam search instead of greedy; `words` restricts the output to a lexicon (e.g. the
        training vocabulary), which is where beam search pays without a language model; `lm`
        (with `words`) fuses a word n-gram LM in (hubert_ee.decode.ngram_lm.fit_kneser_ney, or
        a KenLM file)."""
        if beam_size < 1:
            raise ValueError(f"beam size must be at least 1, got {beam_size}")
        self.beam = BeamDecoder(
            self.vocab, beam_size, words=words, lm=lm, lm_weight=lm_weight, word_score=word_score
        )
        return self

    def _decode(self, log_probs: torch.Tensor) -> str:
        if self.beam is not None:
            return self.beam(log_probs[None], None)[0]
        return greedy_decode(log_probs[None], None, self.vocab)[0]

    @classmethod
    def load(cls, location: str | Path) -> Recognizer:
        path = Path(location)
        ckpt = path / "model.safetensors" if path.is_dir() else path
        if not ckpt.exists():
            raise FileNotFoundError(f"{location}: no model.safetensors there")
        if EXIT_KEY in checkpoint_metadata(ckpt):
            model: EarlyExitModel | CTCModel = load_early_exit_model(ckpt)
        else:
            model = load_ctc_model(ckpt)
        point = {"criterion": None, "threshold": None}
        for cand in (ckpt.parent / "operating_point.json",
                     ckpt.parent.parent / "threshold_search" / "operating_point.json"):  # fmt: skip
            if isinstance(model, EarlyExitModel) and cand.exists():
                point = json.loads(cand.read_text())
                break
        return cls(inference_form(model), point["criterion"], point["threshold"])

    @property
    def num_layers(self) -> int:
        enc = (
            self.model.student.encoder
            if isinstance(self.model, EarlyExitModel)
            else self.model.encoder
        )
        return enc.cfg.num_layers

    @torch.inference_mode()
    def _one(self, x: np.ndarray, early_exit: bool, threshold: float | None) -> tuple[str, int]:
        wave = torch.from_numpy(x)[None]
        th = self.threshold if threshold is None else threshold
        check_threshold(self.criterion, th)
        if isinstance(self.model, EarlyExitModel):
            if early_exit and self.criterion is not None and th is not None:
                res = self.model.early_exit(wave, None, self.criterion, th)
                return self._decode(res.log_probs[0]), res.exit_layer[0]
            out = self.model.student.logits(wave)
        else:
            out = self.model.logits(wave)
        return self._decode(out.logits[0].log_softmax(-1)), self.num_layers

    def transcribe_array(
        self,
        audio: np.ndarray,
        sample_rate: int = 16000,
        early_exit: bool = True,
        threshold: float | None = None,
    ) -> Transcript:
        notices = []
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim == 2:
            notices.append(f"downmixed {x.shape[1]} channels to mono")
            x = x.mean(axis=1)
        if sample_rate != 16000:
            notices.append(f"resampled {sample_rate} Hz to 16000 Hz")
            x = resample(x, sample_rate, 16000)
        x = check_samples(x, "audio array")
        return self._timed(x, None, notices, early_exit, threshold)

    def _timed(self, x, path, notices, early_exit, threshold) -> Transcript:
        t0 = time.perf_counter()
        text, layer = self._one(x, early_exit, threshold)
        return Transcript(
            text, path, layer, self.num_layers, round(len(x) / 16000, 3),
            round(time.perf_counter() - t0, 4), notices,
        )  # fmt: skip

    def transcribe(
        self,
        paths: str | Path | Iterable[str | Path],
        early_exit: bool = True,
        threshold: float | None = None,
    ) -> list[Transcript]:
        """Files or folders; raises AudioError on the first bad input (`transcribe_each`
        reports each bad input and goes on)."""
        out = []
        for item in self.transcribe_each(paths, early_exit, threshold):
            if isinstance(item, AudioError):
                raise item
            out.append(item)
        return out

    def transcribe_each(
        self,
        paths: str | Path | Iterable[str | Path],
        early_exit: bool = True,
        threshold: float | None = None,
    ) -> list[Transcript | AudioError]:
        """One entry per input file, in order: its Transcript, or the AudioError that says why
        it could not be transcribed (missing, unreadable, empty, too short)."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        check_threshold(self.criterion, self.threshold if threshold is None else threshold)
        out: list[Transcript | AudioError] = []
        for f in audio_inputs(paths):
            if isinstance(f, AudioError):
                out.append(f)
                continue
            try:
                x, notices = load_audio(f)
            except AudioError as err:
                out.append(err)
                continue
            out.append(self._timed(x, str(f), notices, early_exit, threshold))
        return out


def load(location: str | Path) -> Recognizer:
    """A local model directory/file, or an MLflow model URI (`models:/hubert-ee@champion`)."""
    s = str(location)
    if "://" in s or s.startswith("models:/") or s.startswith("runs:/"):
        from hubert_ee.tracking import download_model

        return Recognizer.load(download_model(s))
    return Recognizer.load(location)
