"""CTC decoding: greedy (best path) and beam search (torchaudio's flashlight decoder).

The beam decoder runs lexicon-free by default (any letter sequence); given a word list it
constrains the output to those words (a lexicon built from the training transcripts, no LM).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from hubert_ee.data.vocab import BLANK, WORD_BOUNDARY, CharVocab


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


CLOSING_FLOOR = -30.0  # log-prob of every other token on the closing frame


class BeamDecoder:
    """Beam search over the character vocabulary; `words` turns on the lexicon constraint."""

    def __init__(
        self,
        vocab: CharVocab,
        beam_size: int = 16,
        words: Iterable[str] | None = None,
        beam_threshold: float = 25.0,
    ):
        try:
            from torchaudio.models.decoder import ctc_decoder
        except (ImportError, RuntimeError) as err:  # pragma: no cover - dependency pinned
            raise RuntimeError(
                "beam search needs the flashlight-text package: pip install flashlight-text"
            ) from err
        self.vocab = vocab
        self.lexicon_words = sorted(set(words)) if words is not None else None
        with tempfile.TemporaryDirectory() as tmp:  # the decoder reads the lexicon at build time
            lexicon = None
            if self.lexicon_words is not None:
                lexicon = Path(tmp) / "lexicon.txt"
                lexicon.write_text(
                    "".join(f"{w} {' '.join(w)} {WORD_BOUNDARY}\n" for w in self.lexicon_words)
                )
            self._decoder = ctc_decoder(
                lexicon=str(lexicon) if lexicon else None,
                tokens=list(vocab.tokens),
                lm=None,
                beam_size=beam_size,
                beam_threshold=beam_threshold,
                blank_token=BLANK,
                sil_token=WORD_BOUNDARY,
                unk_word="<unk>",
                word_score=0.0,
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
