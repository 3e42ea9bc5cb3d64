"""ctypes binding to the libespeak-ng shipped by the `espeakng-loader` wheel.

Why ctypes and not a subprocess: we need the engine's phoneme events (sample-accurate phone
boundaries) to get frame-level phone alignments, and the synchronous callback API gives them
together with the audio. The engine is process-global, so one `EspeakEngine` per process.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

# espeak_EVENT_TYPE values (speak_lib.h)
_EV_LIST_TERMINATED = 0
_EV_WORD = 1
_EV_PHONEME = 7

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4

# Variants that do not sound like a human talker; never offered as domain voices.
NON_HUMAN_VARIANTS = frozenset(
    {"croak", "whisper", "whisperf", "Demonic", "UniRobot", "anikaRobot", "Tweaky", "klatt"}
    | {f"robosoft{i}" for i in ("", 2, 3, 4, 5, 6, 7, 8)}
)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class PhoneSpan:
    """One phone as the engine spoke it: [start, end) in samples at the engine rate."""

    phone: str
    start: int
    end: int


@dataclass(frozen=True)
class Synthesis:
    audio: np.ndarray  # int16, mono, engine sample rate
    sample_rate: int
    phones: list[PhoneSpan]


def _package_dir() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.__file__).parent


@cache
def available_variants() -> frozenset[str]:
    """Names of the voice variants (`+f3`, `+m1`, ...) the shipped data knows."""
    return frozenset(os.listdir(_package_dir() / "espeak-ng-data" / "voices" / "!v"))


@cache
def available_languages() -> frozenset[str]:
    """Language/accent voice names (lower case, as `espeak_SetVoiceByName` takes them)."""
    names = set()
    for path in (_package_dir() / "espeak-ng-data" / "lang").rglob("*"):
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("language "):
                    names.add(line.split()[1].lower())
                    break
    return frozenset(names)


def validate_voice(voice: str) -> None:
    """Raise ValueError for a voice name the engine would silently replace by its default."""
    lang, _, variant = voice.partition("+")
    if lang.lower() not in available_languages():
        raise ValueError(
            f"unknown espeak-ng voice {lang!r} in {voice!r}; "
            f"known English ones: {sorted(v for v in available_languages() if v.startswith('en'))}"
        )
    if variant and variant not in available_variants():
        raise ValueError(
            f"unknown espeak-ng variant {variant!r} in {voice!r}; known: "
            f"{sorted(available_variants() - NON_HUMAN_VARIANTS)}"
        )


class EspeakEngine:
    """The process's one espeak-ng engine, synthesizing one utterance at a time."""

    _instance: EspeakEngine | None = None

    def __new__(cls) -> EspeakEngine:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._init()
        return cls._instance

    def _init(self) -> None:
        pkg = _package_dir()
        self._lib = ctypes.CDLL(str(pkg / "libespeak-ng.so"))
        self._libc = ctypes.CDLL(None)
        data = str(pkg / "espeak-ng-data").encode()
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT
        )
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data at {data!r}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: C holds a pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip

    def _on_audio(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EV_PHONEME:
                self._events.append((ev.type, ev.sample, ev.id.string.decode("ascii", "replace")))
            elif ev.type == _EV_WORD:
                self._events.append((ev.type, ev.sample, ""))
            i += 1
        return 0

    def synthesize(
        self, text: str, voice: str, rate_wpm: int, pitch: int, pitch_range: int, seed: int
    ) -> Synthesis:
        """Speak `text`; bit-exact for the same arguments (rand seeds are reset each call)."""
        validate_voice(voice)
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak_SetVoiceByName({voice!r}) failed")
        # Rate/pitch persist across voice changes: set them for every utterance.
        for param, value in (
            (_PARAM_RATE, rate_wpm),
            (_PARAM_PITCH, pitch),
            (_PARAM_RANGE, pitch_range),
        ):
            self._lib.espeak_SetParameter(param, int(value), 0)
        self._libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed & 0x7FFFFFFF))
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        err = self._lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for text {text!r}")
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return Synthesis(
            audio=audio, sample_rate=self.sample_rate, phones=self._phone_spans(len(audio))
        )

    def _phone_spans(self, n_samples: int) -> list[PhoneSpan]:
        marks = [(s, p) for t, s, p in self._events if t == _EV_PHONEME]
        spans = []
        for i, (start, phone) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else n_samples
            if end > start and phone:
                spans.append(PhoneSpan(phone, start, min(end, n_samples)))
        return spans
