"""Loaders for real corpora into `SourceUtterance`s (DESIGN §3.2).

No loader opens audio: the validator reads every file exactly once and turns a corrupt one
into a rejects-report line. (lhotse's `prepare_librispeech` opens each file while listing and
aborts the whole corpus on the first broken one, so we list LibriSpeech ourselves and reuse
lhotse's STM parser for TED-LIUM.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from hubert_ee.config import RealCorpusConfig
from hubert_ee.data.sources import SourceUtterance


class CorpusLayoutError(ValueError):
    """The corpus on disk does not have the layout its loader expects."""


def _domain(cfg: RealCorpusConfig, part: str) -> str:
    return cfg.part_domains.get(part, cfg.default_domain)


def load_librispeech(cfg: RealCorpusConfig) -> list[SourceUtterance]:
    """`<root>/LibriSpeech/<part>/<spk>/<chap>/<spk>-<chap>.trans.txt` + `*.flac`."""
    root = Path(cfg.root)
    base = root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root
    out = []
    for split, parts in cfg.parts.items():
        for part in parts:
            part_dir = base / part
            if not part_dir.is_dir():
                raise CorpusLayoutError(f"LibriSpeech part {part!r} not found at {part_dir}")
            for trans in sorted(part_dir.rglob("*.trans.txt")):
                for line in trans.read_text().splitlines():
                    if not line.strip():
                        continue
                    utt_id, _, text = line.strip().partition(" ")
                    out.append(
                        SourceUtterance(
                            id=utt_id,
                            path=str(trans.parent / f"{utt_id}.flac"),
                            split=split,
                            domain=_domain(cfg, part),
                            text=text,
                            speaker=utt_id.split("-")[0],
                        )
                    )
    return out


_TED_MARKUP = re.compile(r"<[^>]*>|\[[^\]]*\]|\{[^}]*\}|\([^)]*\)")


def clean_tedlium_text(text: str) -> str:
    """Drop <unk>/[NOISE]-style markers and re-attach split clitics ("it 's" → "it's")."""
    text = _TED_MARKUP.sub(" ", text)
    return re.sub(r"\s+'", "'", " ".join(text.split()))


def load_tedlium(cfg: RealCorpusConfig) -> list[SourceUtterance]:
    """`<root>/legacy/<part>/{sph,stm}` (TED-LIUM release 3 layout; `legacy/` optional)."""
    from lhotse.recipes.tedlium import _parse_stm_file

    root = Path(cfg.root)
    out = []
    for split, parts in cfg.parts.items():
        for part in parts:
            part_dir = root / "legacy" / part if (root / "legacy").is_dir() else root / part
            stms = sorted((part_dir / "stm").glob("*.stm"))
            if not stms:
                raise CorpusLayoutError(
                    f"no STM files for TED-LIUM part {part!r} under {part_dir / 'stm'}"
                )
            for stm in stms:
                for seg in _parse_stm_file(stm):
                    out.append(
                        SourceUtterance(
                            id=seg.id,
                            path=str(part_dir / "sph" / f"{seg.recording_id}.sph"),
                            split=split,
                            domain=_domain(cfg, part),
                            text=clean_tedlium_text(seg.text),
                            speaker=seg.speaker,
                            recording_id=seg.recording_id,
                            start=seg.start,
                            duration=seg.duration,
                        )
                    )
    return out


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"id": str, "text": str}, keep_default_na=False)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows)


def _fairseq_tsv(path: Path) -> pd.DataFrame:
    """fairseq wav2vec/HuBERT manifest: first line the root, then `relpath<TAB>num_samples`.

    Transcripts come from a sibling `<stem>.wrd` (one line per row), if present.
    """
    lines = path.read_text().splitlines()
    if not lines:
        raise CorpusLayoutError(f"{path} is empty")
    audio_root = Path(lines[0].strip())
    rel = [ln.split("\t")[0] for ln in lines[1:] if ln.strip()]
    wrd = path.with_suffix(".wrd")
    texts: list[str | None] = wrd.read_text().splitlines() if wrd.exists() else [None] * len(rel)
    if len(texts) != len(rel):
        raise CorpusLayoutError(f"{wrd} has {len(texts)} lines but {path} lists {len(rel)} files")
    return pd.DataFrame(
        {
            "id": [Path(r).stem for r in rel],
            "path": [str(audio_root / r) for r in rel],
            "text": texts,
        }
    )


def _kaldi_dir(path: Path) -> pd.DataFrame:
    """Kaldi data dir: wav.scp (plain paths only), text, optional utt2spk and segments."""

    def table(name: str) -> dict[str, str]:
        f = path / name
        if not f.exists():
            return {}
        return dict(ln.split(maxsplit=1) for ln in f.read_text().splitlines() if ln.strip())

    wav, text, spk = table("wav.scp"), table("text"), table("utt2spk")
    if not wav:
        raise CorpusLayoutError(f"{path} has no wav.scp")
    rows = []
    segments = path / "segments"
    if segments.exists():
        for ln in segments.read_text().splitlines():
            if ln.strip():
                utt, rec, start, end = ln.split()
                rows.append(
                    {"id": utt, "recording_id": rec, "path": wav.get(rec, ""), "start": float(start),
                     "duration": float(end) - float(start), "text": text.get(utt), "speaker": spk.get(utt)}
                )  # fmt: skip
    else:
        for utt, p in wav.items():
            rows.append({"id": utt, "path": p, "text": text.get(utt), "speaker": spk.get(utt)})
    df = pd.DataFrame(rows)
    piped = df["path"].str.strip().str.endswith("|")
    # Piped commands are not run; the validator reports them as missing files.
    df.loc[piped, "path"] = "unsupported piped wav.scp entry: " + df.loc[piped, "path"]
    return df


def load_manifest_file(path: Path) -> pd.DataFrame:
    """A manifest of any supported kind as a frame with at least id, path, text."""
    if path.is_dir():
        df = _kaldi_dir(path)
    elif path.suffix == ".tsv":
        df = _fairseq_tsv(path)
    elif path.suffix in (".csv", ".jsonl", ".json"):
        df = _read_table(path)
    else:
        raise CorpusLayoutError(
            f"{path}: unsupported manifest (want a Kaldi dir, .tsv, .csv or .jsonl)"
        )
    missing = {"id", "path"} - set(df.columns)
    if missing:
        raise CorpusLayoutError(
            f"{path} lacks column(s) {sorted(missing)}; it has {sorted(df.columns)}"
        )
    return df


def load_generic(cfg: RealCorpusConfig) -> list[SourceUtterance]:
    out = []
    for split, parts in cfg.parts.items():
        for part in parts:
            path = Path(cfg.root) / part
            df = load_manifest_file(path)
            base = path if path.is_dir() else path.parent
            for row in df.to_dict("records"):
                p = Path(str(row["path"]))
                text = row.get("text")
                out.append(
                    SourceUtterance(
                        id=str(row["id"]),
                        path=str(
                            p if p.is_absolute() or str(p).startswith("unsupported") else base / p
                        ),
                        split=split,
                        domain=str(row.get("domain") or _domain(cfg, part)),
                        text=None
                        if text is None or (isinstance(text, float) and pd.isna(text))
                        else str(text),
                        speaker=None if pd.isna(row.get("speaker")) else str(row.get("speaker")),
                        recording_id=str(row.get("recording_id") or row["id"]),
                        start=float(row.get("start") or 0.0),
                        duration=None if pd.isna(row.get("duration")) else float(row["duration"]),
                    )
                )
    return out


LOADERS = {"librispeech": load_librispeech, "tedlium": load_tedlium, "manifest": load_generic}
