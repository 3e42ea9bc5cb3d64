"""The built-in synthetic multi-domain corpus (DESIGN §3.1).

Determinism: the engine keeps state between utterances, so the plan is cut into fixed shards
(independent of the worker count) and every shard is synthesized in a fresh process. The same
params then give byte-identical audio whatever `num_workers` is.
"""

from __future__ import annotations

import multiprocessing as mp
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hubert_ee.config import SyntheticConfig
from hubert_ee.data import augment
from hubert_ee.data.audio_io import resample, write_wav16
from hubert_ee.data.sources import SourceUtterance
from hubert_ee.data.text import Grammar, held_out_sentences

SAMPLE_RATE = 16000
# Seconds of speech per letter at 1 wpm, fitted on espeak-ng output (see estimate_seconds).
_SEC_PER_LETTER_WPM = 10.66
_SEC_OVERHEAD = 0.14


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to synthesize one utterance, decided up front in the main process."""

    id: str
    split: str
    domain: str
    text: str
    voice: str
    rate_wpm: int
    pitch: int
    pitch_range: int
    seed: int
    noise_kind: str | None = None
    snr_db: float | None = None
    rt60_s: float | None = None
    telephone: bool = False
    babble: tuple[tuple[str, str, int], ...] = field(default=())  # (text, voice, rate) of talkers


def estimate_seconds(text: str, rate_wpm: int) -> float:
    """Expected espeak-ng duration, used only to size splits before synthesis."""
    letters = sum(c.isalpha() for c in text)
    return _SEC_OVERHEAD + _SEC_PER_LETTER_WPM * letters / rate_wpm


def _draw(rng: random.Random, lo_hi: tuple[float, float]) -> float:
    return rng.uniform(lo_hi[0], lo_hi[1])


class CorpusPlanner:
    """Turns audio amounts per split/domain into concrete utterance specs."""

    def __init__(self, cfg: SyntheticConfig, domains: list[str], seed: int):
        self.cfg = cfg
        self.domains = domains
        self.rng = random.Random(seed)
        self.grammar = Grammar(self.rng)
        self.all_voices = sorted({v for d in cfg.domains.values() for v in d.voices})

    def _spec(self, split: str, domain: str, index: int, text: str) -> UtteranceSpec:
        d, rng = self.cfg.domains[domain], self.rng
        kw: dict[str, Any] = {}
        if d.noise is not None and rng.random() < d.noise.prob:
            kw["noise_kind"] = rng.choice(d.noise.kinds)
            kw["snr_db"] = round(_draw(rng, d.noise.snr_db), 2)
            if kw["noise_kind"] == "babble":
                lo, hi = self.cfg.words_per_utterance
                kw["babble"] = tuple(
                    (
                        self.grammar.sentence(lo, hi),
                        rng.choice(self.all_voices),
                        rng.randint(140, 220),
                    )
                    for _ in range(3)
                )
        if d.reverb is not None and rng.random() < d.reverb.prob:
            kw["rt60_s"] = round(_draw(rng, d.reverb.rt60_s), 3)
        return UtteranceSpec(
            id=f"{split}-{domain}-{index:06d}",
            split=split,
            domain=domain,
            text=text,
            voice=rng.choice(d.voices),
            rate_wpm=rng.randint(*d.rate_wpm),
            pitch=rng.randint(*d.pitch),
            pitch_range=rng.randint(*d.pitch_range),
            seed=rng.getrandbits(31),
            telephone=d.telephone,
            **kw,
        )

    def _fill(
        self,
        split: str,
        domain: str,
        seconds: float,
        texts: list[str] | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> list[UtteranceSpec]:
        lo, hi = self.cfg.words_per_utterance
        specs: list[UtteranceSpec] = []
        total = 0.0
        while total < seconds:
            if texts is not None:
                if len(specs) == len(texts):
                    break
                text = texts[len(specs)]
            else:
                text = self.grammar.sentence(lo, hi)
                while text in exclude:
                    text = self.grammar.sentence(lo, hi)
            spec = self._spec(split, domain, len(specs), text)
            specs.append(spec)
            total += estimate_seconds(spec.text, spec.rate_wpm)
        return specs

    def plan(self) -> list[UtteranceSpec]:
        cfg = self.cfg
        lo, hi = cfg.words_per_utterance
        specs: list[UtteranceSpec] = []
        for domain in self.domains:
            specs += self._fill("train", domain, 3600 * cfg.train_hours.get(domain, 0.0))
        train_texts = {s.text for s in specs}
        for split, minutes in (("dev", cfg.dev_minutes), ("test", cfg.test_minutes)):
            for domain in self.domains:
                # Over-provision sentences; _fill stops at the duration target.
                n = int(60 * minutes / estimate_seconds("x" * 5 * lo, 450)) + 10
                texts = held_out_sentences(self.rng, n, train_texts, lo, hi)
                specs += self._fill(split, domain, 60 * minutes, texts)
        # The unlabeled pool never contains a dev/test sentence either.
        held_out = frozenset(s.text for s in specs if s.split in ("dev", "test"))
        per_domain = 3600 * cfg.unlabeled_hours / len(self.domains)
        for domain in self.domains:
            specs += self._fill("unlabeled", domain, per_domain, exclude=held_out)
        return specs


def shard(specs: list[UtteranceSpec], size: int) -> list[list[UtteranceSpec]]:
    return [specs[i : i + size] for i in range(0, len(specs), size)]


def _speech(engine, text: str, voice: str, rate: int, pitch: int, prange: int, seed: int):
    syn = engine.synthesize(text, voice, rate, pitch, prange, seed)
    x = resample(syn.audio.astype(np.float32) / 32768.0, syn.sample_rate, SAMPLE_RATE)
    phones = [
        (p.phone, p.start / syn.sample_rate, (p.end - p.start) / syn.sample_rate)
        for p in syn.phones
    ]
    return augment.normalize_rms(x), phones


def render(spec: UtteranceSpec, engine) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Waveform (16 kHz float32) and phone alignment of one spec."""
    x, phones = _speech(
        engine, spec.text, spec.voice, spec.rate_wpm, spec.pitch, spec.pitch_range, spec.seed
    )
    rng = np.random.default_rng(spec.seed)
    if spec.rt60_s is not None:
        x = augment.reverberate(x, augment.room_impulse_response(rng, spec.rt60_s, SAMPLE_RATE))
    if spec.noise_kind is not None:
        if spec.noise_kind == "white":
            noise = augment.white_noise(rng, len(x))
        elif spec.noise_kind == "pink":
            noise = augment.pink_noise(rng, len(x))
        else:
            noise = np.zeros(len(x), np.float32)
            for text, voice, rate in spec.babble:
                talker, _ = _speech(engine, text, voice, rate, 50, 50, spec.seed)
                noise += np.roll(augment.fit_length(talker, len(x)), int(rng.integers(len(x))))
        x = augment.mix_at_snr(x, noise, spec.snr_db)
    if spec.telephone:
        x = augment.telephone_channel(x, SAMPLE_RATE)
    return augment.normalize_rms(x), phones


def audio_relpath(spec: UtteranceSpec) -> str:
    return f"audio/{spec.split}/{spec.domain}/{spec.id}.wav"


def synthesize_shard(job: tuple[list[UtteranceSpec], str]) -> list[dict[str, Any]]:
    """Worker entry point: render a shard into `out_dir` and return one record per utterance."""
    from hubert_ee.data.espeak import EspeakEngine

    specs, out_dir = job
    engine = EspeakEngine()
    records = []
    for spec in specs:
        x, phones = render(spec, engine)
        write_wav16(Path(out_dir) / audio_relpath(spec), x, SAMPLE_RATE)
        records.append({"id": spec.id, "num_samples": len(x), "phones": phones})
    return records


def fresh_process_context() -> mp.context.BaseContext:
    """Forkserver: each shard gets a new process (fresh engine state) forked from a server
    that already imported numpy and scipy.signal, so a shard does not pay their imports
    (`hubert_ee.data.augment` imports scipy.signal where it is used, which in a fresh process
    per shard meant once per shard)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["hubert_ee.data.synthetic", "hubert_ee.data.validate", "scipy.signal"]
    )
    return ctx


def synthesize(
    specs: list[UtteranceSpec], out_dir: Path, shard_size: int, workers: int
) -> list[SourceUtterance]:
    """Render all specs (fresh process per shard) and describe them for validation."""
    jobs = [(s, str(out_dir)) for s in shard(specs, shard_size)]
    ctx = fresh_process_context()
    records: list[dict[str, Any]] = []
    with ctx.Pool(max(1, min(workers, len(jobs))), maxtasksperchild=1) as pool:
        with tqdm(total=len(specs), desc="synthesize", unit="utt") as bar:
            for shard_records in pool.imap(synthesize_shard, jobs):
                records += shard_records
                bar.update(len(shard_records))
    by_id = {r["id"]: r for r in records}
    out = []
    for spec in specs:
        rec = by_id[spec.id]
        custom = {
            k: v
            for k, v in asdict(spec).items()
            if k not in ("id", "split", "domain", "text", "voice", "babble")
        }
        out.append(
            SourceUtterance(
                id=spec.id,
                path=str(out_dir / audio_relpath(spec)),
                split=spec.split,
                domain=spec.domain,
                text=spec.text,
                speaker=spec.voice,
                phones=[(p, round(s, 5), round(d, 5)) for p, s, d in rec["phones"]],
                custom=custom,
            )
        )
    return out
