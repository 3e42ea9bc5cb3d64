import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hubert_ee.data.text import Grammar, held_out_sentences, vocabulary, words_of


def test_vocabulary_is_closed_and_few_hundred_words():
    vocab = set(vocabulary())
    assert 200 <= len(vocab) <= 500
    g = Grammar(random.Random(0))
    assert words_of(g.sentence(6, 16) for _ in range(3000)) <= vocab
    assert all(set(w) <= set("abcdefghijklmnopqrstuvwxyz'") for w in vocab)


def test_grammar_is_seeded_and_varied():
    a = [Grammar(random.Random(7)).sentence(6, 16) for _ in range(1)]
    b = [Grammar(random.Random(7)).sentence(6, 16) for _ in range(1)]
    assert a == b
    g = Grammar(random.Random(1))
    sentences = [g.sentence(6, 16) for _ in range(2000)]
    assert len(set(sentences)) > 1900


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_train=st.integers(30, 200))
def test_held_out_sentences_use_only_train_words_and_never_a_train_sentence(seed, n_train):
    rng = random.Random(seed)
    g = Grammar(rng)
    train = {g.sentence(6, 16) for _ in range(n_train)}
    held = held_out_sentences(rng, 20, train, 6, 16)
    assert len(held) == len(set(held)) == 20
    assert not set(held) & train
    assert words_of(held) <= words_of(train)
    assert all(6 <= len(s.split()) <= 16 for s in held)
