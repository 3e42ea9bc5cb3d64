"""A seeded template grammar over a closed vocabulary.

Why a grammar and not random words: the sentences have the word-order statistics that let a
CTC model (and, later, a language model) learn something, while the closed vocabulary lets us
guarantee that every test word was heard in training and no test sentence was.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

NAMES = (
    "anna ben carla david emma frank grace henry iris jack kate leo maria nick olivia paul "
    "rosa sam tina victor wendy"
).split()
NOUNS = (
    "apple bag ball bank basket bed bell bird boat book bottle box bread bridge brother bus cake "
    "camera car card cat chair cheese child church city clock cloud coat coffee computer cook "
    "cup desk doctor dog door dress egg engine farmer field fish flower forest friend garden "
    "gate girl glass hat hill horse house island jacket key king kitchen lake lamp letter lion "
    "machine map market milk mirror money moon mountain mouse nurse ocean office orange painter "
    "paper park pencil phone piano picture pilot plate pocket queen rabbit radio river road "
    "rock room sailor school shirt shoe shop singer sister soldier song station stone street "
    "student sun table teacher ticket tiger tower town train tree truck village wall watch "
    "water window winter wolf woman word"
).split()
ADJECTIVES = (
    "old young big small red green blue yellow black white bright dark quiet loud happy sad "
    "quick slow warm cold heavy light clean dirty empty full strange famous tired hungry "
    "gentle angry brave clever lucky rich poor tall short soft hard sweet bitter"
).split()
VERBS_PAST = (
    "found lost saw painted carried bought sold opened closed watched cleaned fixed moved "
    "pushed pulled counted wanted liked visited followed dropped lifted washed touched "
    "borrowed needed ordered packed checked noticed remembered"
).split()
VERBS_INTRANS = (
    "arrived waited laughed smiled slept walked danced worked rested sang jumped listened "
    "stayed returned shouted"
).split()
ADVERBS = (
    "quickly slowly quietly loudly early late again today yesterday carefully happily "
    "suddenly finally"
).split()
PREPOSITIONS = "near behind under above beside inside outside across toward past".split()
NUMBERS = "two three four five six seven eight nine ten twelve twenty".split()
PLURALS = (
    "apples birds books boxes cards cups eggs flowers keys letters maps shoes stones trees".split()
)
CONTRACTIONS = "didn't couldn't wasn't".split()


def vocabulary() -> list[str]:
    words = {*NAMES, *NOUNS, *ADJECTIVES, *VERBS_PAST, *VERBS_INTRANS, *ADVERBS, *PREPOSITIONS}
    words |= {*NUMBERS, *PLURALS, *CONTRACTIONS, "the", "a", "and", "then", "because", "was", "see"}
    return sorted(words)


class Grammar:
    """Samples sentences; `allowed` restricts every slot to a word subset (for dev/test)."""

    def __init__(self, rng: random.Random, allowed: set[str] | None = None):
        self.rng = rng
        self.allowed = allowed

    def _pick(self, words: Iterable[str]) -> str:
        pool = [w for w in words if self.allowed is None or w in self.allowed]
        if not pool:
            raise LookupError("no allowed word for a slot")
        return self.rng.choice(pool)

    def _noun_phrase(self) -> list[str]:
        r = self.rng.random()
        if r < 0.15:
            return [self._pick(NAMES)]
        if r < 0.3:
            return [self._pick(NUMBERS), self._pick(PLURALS)]
        det = self._pick(("the", "a"))
        if self.rng.random() < 0.5:
            return [det, self._pick(ADJECTIVES), self._pick(NOUNS)]
        return [det, self._pick(NOUNS)]

    def _clause(self) -> list[str]:
        r = self.rng.random()
        subject = self._noun_phrase()
        if r < 0.45:
            words = [*subject, self._pick(VERBS_PAST), *self._noun_phrase()]
        elif r < 0.7:
            words = [*subject, self._pick(VERBS_INTRANS)]
        elif r < 0.85:
            words = [*subject, self._pick(("was", "wasn't")), self._pick(ADJECTIVES)]
        else:
            words = [*subject, self._pick(("didn't", "couldn't")), "see", *self._noun_phrase()]
        if self.rng.random() < 0.5:
            words += [self._pick(PREPOSITIONS), *self._noun_phrase()]
        if self.rng.random() < 0.3:
            words.append(self._pick(ADVERBS))
        return words

    def sentence(self, min_words: int, max_words: int) -> str:
        """A sentence of min..max words (clauses joined by `and`/`then`/`because`)."""
        for _ in range(1000):
            words = self._clause()
            while len(words) < min_words:
                words += [self._pick(("and", "then", "because")), *self._clause()]
            if len(words) <= max_words:
                return " ".join(words)
        raise LookupError(f"grammar cannot make a sentence of {min_words}..{max_words} words")


def words_of(sentences: Iterable[str]) -> set[str]:
    return {w for s in sentences for w in s.split()}


def held_out_sentences(
    rng: random.Random, n: int, train: set[str], min_words: int, max_words: int
) -> list[str]:
    """n distinct sentences made only of words seen in `train`, none of them a train sentence."""
    grammar = Grammar(rng, allowed=words_of(train))
    out: list[str] = []
    seen = set(train)
    for _ in range(200 * n + 1000):
        if len(out) == n:
            return out
        try:
            s = grammar.sentence(min_words, max_words)
        except LookupError:
            continue
        if s not in seen:
            seen.add(s)
            out.append(s)
    raise LookupError(
        f"could only make {len(out)} of {n} held-out sentences from the {len(words_of(train))} "
        "words seen in training; generate more training speech"
    )
