"""The character vocabulary of the CTC models (fairseq's letter dictionary, blank first).

Index 0 is the CTC blank, index 1 the word boundary `|` (a space in text), then the
apostrophe and a–z: the same alphabet `prepare` admits into labeled transcripts.
"""

from __future__ import annotations

import string

import torch

BLANK = "<blank>"
WORD_BOUNDARY = "|"
TOKENS: tuple[str, ...] = (BLANK, WORD_BOUNDARY, "'", *string.ascii_lowercase)


class CharVocab:
    def __init__(self, tokens: tuple[str, ...] = TOKENS):
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        self.blank = self.index[BLANK]
        self.boundary = self.index[WORD_BOUNDARY]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> torch.Tensor:
        """'the cat' → ids of t h e | c a t; an unknown character is an error naming it."""
        words = text.split()
        ids = []
        for w, word in enumerate(words):
            if w:
                ids.append(self.boundary)
            for ch in word:
                if ch not in self.index or ch == WORD_BOUNDARY:
                    raise ValueError(
                        f"character {ch!r} of transcript {text!r} is not in the CTC vocabulary "
                        f"(letters a-z and apostrophe); prepare normally rejects such transcripts"
                    )
                ids.append(self.index[ch])
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Label ids (already collapsed, no blanks) → text with single spaces."""
        chars = [self.tokens[int(i)] for i in ids if int(i) != self.blank]
        return " ".join("".join(chars).replace(WORD_BOUNDARY, " ").split())
