"""A word n-gram language model for the lexicon beam decoder, written as ARPA (KenLM reads it).

Why our own estimator: the LM is fitted on a few thousand training transcripts, which takes
milliseconds in Python, while KenLM's estimator (lmplz) is a C++ build that PyPI does not ship.
Interpolated Kneser–Ney (Chen & Goodman 1998) with one discount per order, D = n1 / (n1 + 2 n2);
lower orders use continuation counts, except n-grams that start with <s>, which have no left
context and keep their raw counts (as KenLM does). Interpolated probabilities are written for
every seen n-gram and γ(h) as h's back-off weight, which makes every p(·|h) sum to 1.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LOG10_ZERO = -99.0  # ARPA's probability of <s> (never predicted)

Gram = tuple[str, ...]


@dataclass
class NgramLM:
    """log10 p of every seen n-gram and log10 γ of every context, per order (index n - 1)."""

    order: int
    logprob: list[dict[Gram, float]]
    backoff: list[dict[Gram, float]]

    def log10_prob(self, word: str, context: Gram) -> float:
        """log10 p(word | context) by the ARPA back-off rule (what KenLM computes)."""
        context = tuple(context[len(context) - self.order + 1 :]) if self.order > 1 else ()
        penalty = 0.0
        while True:
            gram = (*context, word)
            n = len(gram)
            if gram in self.logprob[n - 1]:
                return penalty + self.logprob[n - 1][gram]
            if not context:
                return penalty + self.logprob[0][(UNK,)]
            penalty += self.backoff[len(context) - 1].get(context, 0.0)
            context = context[1:]

    def write_arpa(self, path: str | Path) -> Path:
        path = Path(path)
        lines = ["", "\\data\\"]
        lines += [f"ngram {n + 1}={len(self.logprob[n])}" for n in range(self.order)]
        for n in range(self.order):
            lines += ["", f"\\{n + 1}-grams:"]
            for gram, lp in sorted(self.logprob[n].items()):
                row = f"{lp:.6f}\t{' '.join(gram)}"
                if n + 1 < self.order and gram in self.backoff[n]:
                    row += f"\t{self.backoff[n][gram]:.6f}"
                lines.append(row)
        lines += ["", "\\end\\", ""]
        path.write_text("\n".join(lines))
        return path


def _discount(counts: Counter) -> float:
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)


def fit_kneser_ney(sentences: Iterable[str], order: int = 3) -> NgramLM:
    """Interpolated Kneser–Ney over whitespace-split words; unseen words get <unk>'s share."""
    if order < 1:
        raise ValueError(f"an n-gram LM needs order >= 1, got {order}")
    raw: list[Counter] = [Counter() for _ in range(order)]
    vocab: set[str] = set()
    for sentence in sentences:
        words = sentence.split()
        if not words:
            continue
        vocab.update(words)
        seq = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                gram = tuple(seq[i : i + n])
                if gram != (BOS,):
                    raw[n - 1][gram] += 1
    if not vocab:
        raise ValueError("an n-gram LM needs at least one non-empty sentence")
    # adjusted counts: the highest order and n-grams that start with <s> keep raw counts,
    # the others count their distinct left extensions (Kneser-Ney's continuation counts)
    adjusted: list[Counter] = [Counter() for _ in range(order)]
    adjusted[order - 1] = Counter(raw[order - 1])
    for n in range(1, order):
        left = defaultdict(set)
        for gram in raw[n]:
            left[gram[1:]].add(gram[0])
        for gram, c in raw[n - 1].items():
            adjusted[n - 1][gram] = c if gram[0] == BOS else len(left.get(gram, ()))
        adjusted[n - 1] = +adjusted[n - 1]  # drops grams with no left extension
    discounts = [_discount(c) for c in adjusted]
    totals = [defaultdict(int) for _ in range(order)]  # per context: summed adjusted counts
    types = [defaultdict(int) for _ in range(order)]  # per context: distinct next words
    for n in range(order):
        for gram, c in adjusted[n].items():
            totals[n][gram[:-1]] += c
            types[n][gram[:-1]] += 1
    # unigrams: discounted continuation counts plus the freed mass spread over the vocabulary
    targets = sorted(vocab) + [EOS, UNK]
    total1, d1 = totals[0][()], discounts[0]
    uniform = d1 * types[0][()] / total1 / len(targets)
    prob: list[dict[Gram, float]] = [{} for _ in range(order)]
    for w in targets:
        prob[0][(w,)] = max(adjusted[0].get((w,), 0) - d1, 0) / total1 + uniform
    backoff: list[dict[Gram, float]] = [{} for _ in range(order)]
    for n in range(1, order):
        d = discounts[n]
        for gram, c in adjusted[n].items():
            h = gram[:-1]
            gamma = d * types[n][h] / totals[n][h]
            backoff[n - 1][h] = gamma
            prob[n][gram] = (c - d) / totals[n][h] + gamma * _lower(prob, backoff, gram[1:])
    logprob = [{g: math.log10(p) for g, p in prob[n].items()} for n in range(order)]
    logprob[0][(BOS,)] = LOG10_ZERO
    logbackoff = [{h: math.log10(g) for h, g in backoff[n].items()} for n in range(order)]
    return NgramLM(order, logprob, logbackoff)


def _lower(prob: list[dict], backoff: list[dict], gram: Gram) -> float:
    """p(gram[-1] | gram[:-1]) from the already estimated lower orders (back-off rule)."""
    n = len(gram)
    if gram in prob[n - 1]:
        return prob[n - 1][gram]
    if n == 1:
        return prob[0][(UNK,)]
    return backoff[n - 2].get(gram[:-1], 1.0) * _lower(prob, backoff, gram[1:])
