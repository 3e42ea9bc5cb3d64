"""CTC decoding: greedy (best path) and beam search (torchaudio's flashlight decoder).

The beam decoder runs lexicon-free by default (any letter sequence); given a word list it
constrains the output to those words (a lexicon built from the training transcripts), and given
a word n-gram LM (hubert_ee.decode.ngram_lm, fitted on the same transcripts) it adds
`lm_weight` x its log-probability and `word_score` per word (shallow fusion, as in fairseq's and
torchaudio's KenLM decoding).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from hubert_ee.data.vocab import BLANK, WORD_BOUNDARY, CharVocab
from hubert_ee.decode.ngram_lm import NgramLM


def greedy_ids(log_probs: torch.Tensor, length: int, blank: int = 0) -> list[int]:
    """Best path of one utterance: argmax per frame, repeats merged, blanks removed."""
    best = log_probs[:length].argmax(-1)
    keep = torch.ones_like(best, dtype=torch.bool)
    keep[1:] = best[1:] != best[:-1]
    best = best[keep]
    return best[best != blank].tolist()


def greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor | None, vocab: CharVocab
) -> list[str]:
    """(batch, frames, classes) scores → one transcript per utterance."""
    if lengths is None:
        lengths = torch.full((log_probs.shape[0],), log_probs.shape[1])
    return [
        vocab.decode(greedy_ids(lp, int(n), vocab.blank))
        for lp, n in zip(log_probs.detach().float().cpu(), lengths.tolist(), strict=True)
    ]


@contextlib.contextmanager
def _quiet_native_output(active: bool) -> Iterator[None]:
    """Silences what C++ code writes to the process's stdout/stderr (file descriptors 1 and
    2, which Python's redirect_stdout does not reach) while the block runs."""
    if not active:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _lm_path(lm: NgramLM | str | Path | None, tmp: Path) -> str | None:
    if lm is None:
        return None
    if isinstance(lm, NgramLM):
        return str(lm.write_arpa(tmp / "lm.arpa"))
    if not Path(lm).is_file():
        raise FileNotFoundError(f"language model {lm}: no such file")
    return str(lm)


CLOSING_FLOOR = -30.0  # log-prob of every other token on the closing frame


class BeamDecoder:
    """Beam search over the character vocabulary; `words` turns on the lexicon constraint,
    `lm` (which needs `words`) the word language model: an NgramLM, or the path of a KenLM
    model (.arpa or KenLM binary) over the same words."""

    def __init__(
        self,
        vocab: CharVocab,
        beam_size: int = 16,
        words: Iterable[str] | None = None,
        beam_threshold: float = 25.0,
        lm: NgramLM | str | Path | None = None,
        lm_weight: float = 1.0,
        word_score: float = 0.0,
    ):
        try:
            from torchaudio.models.decoder import ctc_decoder
        except (ImportError, RuntimeError) as err:  # pragma: no cover - dependency pinned
            raise RuntimeError(
                "beam search needs the flashlight-text package: pip install flashlight-text"
            ) from err
        if lm is not None and words is None:
            raise ValueError("a word LM needs a lexicon: pass `words` with `lm`")
        self.vocab = vocab
        self.lexicon_words = sorted(set(words)) if words is not None else None
        with tempfile.TemporaryDirectory() as tmp:  # the decoder reads both files at build time
            lexicon = None
            if self.lexicon_words is not None:
                lexicon = Path(tmp) / "lexicon.txt"
                lexicon.write_text(
                    "".join(f"{w} {' '.join(w)} {WORD_BOUNDARY}\n" for w in self.lexicon_words)
                )
            with _quiet_native_output(lm is not None):  # KenLM prints a progress bar per load
                self._decoder = ctc_decoder(
                    lexicon=str(lexicon) if lexicon else None,
                    tokens=list(vocab.tokens),
                    lm=_lm_path(lm, Path(tmp)),
                    lm_weight=lm_weight if lm is not None else 0.0,
                    beam_size=beam_size,
                    beam_threshold=beam_threshold,
                    blank_token=BLANK,
                    sil_token=WORD_BOUNDARY,
                    unk_word="<unk>",
                    word_score=word_score,
                    sil_score=0.0,
                )

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor | None) -> list[str]:
        emissions = log_probs.detach().float().cpu().contiguous()
        n = None if lengths is None else lengths.cpu().int()
        if self.lexicon_words is not None:
            emissions, n = self._close_last_word(emissions, n)
        hyps = self._decoder(emissions, n)
        out = []
        for nbest in hyps:
            if not nbest:
                out.append("")
            elif self.lexicon_words is not None:
                out.append(" ".join(w for w in nbest[0].words if w != "<unk>"))
            else:
                out.append(self.vocab.decode(nbest[0].tokens))
        return out

    def _close_last_word(
        self, emissions: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One certain word-boundary frame after each utterance's last frame.

        The lexicon decoder completes a word only at a word boundary; an utterance ends
        without one, and flashlight then kept or dropped the last word from call to call
        (same decoder, same emissions: 'bet a' or 'bet'). The closing frame makes every
        utterance end on a boundary, so the last word is scored like the others."""
        b, t, c = emissions.shape
        n = torch.full((b,), t, dtype=torch.int32) if lengths is None else lengths
        closed = torch.full((b, t + 1, c), CLOSING_FLOOR)
        closed[:, :t] = emissions
        closed[torch.arange(b), n.long()] = CLOSING_FLOOR
        closed[torch.arange(b), n.long(), self.vocab.boundary] = 0.0
        return closed.contiguous(), n + 1
