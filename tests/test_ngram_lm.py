"""The word n-gram LM of the lexicon decoder: Kneser-Ney values by hand, normalisation, ARPA."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubert_ee.decode.ngram_lm import BOS, EOS, UNK, fit_kneser_ney

# "a b", "a b", "a c": unigram continuation counts a 1, b 1, c 1, </s> 2 (total 5, D1 = 3/5);
# bigram counts <s> a 3, a b 2, a c 1, b </s> 2, c </s> 1 (D2 = 2 / (2 + 2 * 2) = 1/3)
SENTENCES = ["a b", "a b", "a c"]
P1_A = (1 - 0.6) / 5 + 0.6 * 4 / 5 / 5  # 0.176: discounted count + freed mass over 5 targets
P1_EOS = (2 - 0.6) / 5 + 0.6 * 4 / 5 / 5
GAMMA_A = (1 / 3) * 2 / 3  # D2 x 2 continuations of "a" / 3


def test_kneser_ney_matches_the_hand_computed_bigram():
    lm = fit_kneser_ney(SENTENCES, order=2)
    assert 10 ** lm.log10_prob("a", ()) == pytest.approx(P1_A)
    assert 10 ** lm.log10_prob("b", ("a",)) == pytest.approx((2 - 1 / 3) / 3 + GAMMA_A * P1_A)
    assert 10 ** lm.log10_prob("c", ("a",)) == pytest.approx((1 - 1 / 3) / 3 + GAMMA_A * P1_A)
    # unseen after "a": the back-off weight times the unigram
    assert 10 ** lm.log10_prob(EOS, ("a",)) == pytest.approx(GAMMA_A * P1_EOS)
    assert 10 ** lm.log10_prob("zebra", ("a",)) == pytest.approx(GAMMA_A * 0.6 * 4 / 5 / 5)
    assert lm.logprob[0][(BOS,)] == -99.0


def _total(lm, context: tuple[str, ...], targets: list[str]) -> float:
    return sum(10 ** lm.log10_prob(w, context) for w in targets)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abcde"), min_size=1, max_size=6), min_size=1, max_size=12),
    st.integers(1, 4),
)
def test_every_conditional_distribution_sums_to_one(sentences, order):
    lm = fit_kneser_ney([" ".join(s) for s in sentences], order=order)
    targets = sorted({w for s in sentences for w in s}) + [EOS, UNK]
    contexts = {(), (BOS,), ("a",), ("b", "a"), ("zebra",)}
    contexts |= {g[:-1] for table in lm.logprob for g in table}
    for context in contexts:
        assert _total(lm, context, targets) == pytest.approx(1.0, abs=1e-9)


def test_arpa_lists_every_gram_with_its_backoff(tmp_path):
    lm = fit_kneser_ney(SENTENCES, order=2)
    text = lm.write_arpa(tmp_path / "lm.arpa").read_text().splitlines()
    assert "ngram 1=6" in text and "ngram 2=5" in text  # a b c </s> <unk> <s>; 5 bigrams
    logp, _, backoff = next(r.split("\t") for r in text if r.split("\t")[1:2] == ["a"])
    assert float(logp) == pytest.approx(math.log10(P1_A), abs=1e-6)
    assert float(backoff) == pytest.approx(math.log10(GAMMA_A), abs=1e-6)
    assert text[-1] == "\\end\\"


def test_an_empty_corpus_is_refused():
    with pytest.raises(ValueError, match="non-empty sentence"):
        fit_kneser_ney(["", "  "])


def test_the_lm_picks_the_word_the_language_expects_over_a_slightly_likelier_spelling():
    """'bat' is acoustically likelier (0.55 vs 0.45 on the vowel's frames), but after training
    on sentences where only 'bet a' occurs, the LM-fused beam writes 'bet a'."""
    import torch

    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.decode.ctc import BeamDecoder

    v = CharVocab()
    a, b, t, e = v.index["a"], v.index["b"], v.index["t"], v.index["e"]
    path = [0, b, 0, a, a, t, v.boundary, a, 0]
    x = torch.full((len(path), len(v)), -20.0)
    x[torch.arange(len(path)), torch.tensor(path)] = 0.0
    x[3] = torch.full((len(v),), -20.0)
    x[3, a], x[3, e] = math.log(0.55), math.log(0.45)
    x[4] = x[3]
    lp = x.log_softmax(-1)[None]
    words = {"bat", "bet", "a"}
    assert BeamDecoder(v, 8, words=words)(lp, None) == ["bat a"]
    lm = fit_kneser_ney(["bet a"] * 20 + ["a bat"] * 2, order=2)
    assert BeamDecoder(v, 8, words=words, lm=lm, lm_weight=1.0)(lp, None) == ["bet a"]
    with pytest.raises(ValueError, match="needs a lexicon"):
        BeamDecoder(v, 8, lm=lm)


def test_teachers_are_scored_with_the_lm_only_when_finetune_asks_for_one():
    from types import SimpleNamespace

    from hubert_ee.config import load_params
    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.train.teacher import teacher_decoders

    ft = load_params("params.yaml").finetune
    train = SimpleNamespace(vocab=CharVocab(), texts=lambda: ["bet a", "a bat"])
    assert set(teacher_decoders(ft.model_copy(update={"lm_order": 2}), train)) == {
        "beam", "beam_lexicon", "beam_lexicon_lm"
    }  # fmt: skip
    assert set(teacher_decoders(ft.model_copy(update={"lm_order": 0}), train)) == {
        "beam", "beam_lexicon"
    }  # fmt: skip


def test_beam_report_decodes_greedy_only_when_asked_and_agrees_with_it():
    import numpy as np
    import pandas as pd
    import torch

    from hubert_ee.data.asr_data import ASRData
    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.decode.ctc import BeamDecoder
    from hubert_ee.train.teacher import beam_report

    v = CharVocab()
    path = [v.blank, *v.encode("bet"), v.blank, v.boundary, *v.encode("a"), v.blank]
    lp = torch.full((len(path), len(v)), -20.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    data = ASRData(pd.DataFrame({"text": ["bet a"], "num_samples": [16000]}), v)
    lexicon = {"beam_lexicon": BeamDecoder(v, 8, words=["bet", "a", "bat"])}
    both = beam_report([lp], data, lexicon)
    assert both["wer_greedy"] == both["wer_beam_lexicon"] == 0.0
    assert np.isfinite(both["decode_xrt_greedy"])
    lexicon_only = beam_report([lp], data, lexicon, greedy=False)
    assert set(lexicon_only) == {"wer_beam_lexicon", "cer_beam_lexicon", "decode_xrt_beam_lexicon"}
