"""What the final early-exit student writes on the target's test split (issue 14): greedy, beam
search restricted to a lexicon of the target's training words, and the same with a word n-gram
LM of those training transcripts fused in, each with early exit at the operating point
`threshold_search` chose and with the full model, through the public API
(`hubert_ee.inference.load`, what `hubert-ee transcribe [--lexicon FILE | --lm FILE] [--no-exit]`
runs).

Test split only for reporting: nothing here chooses anything.
Run: `python experiments/ee_lexicon.py [--model models/exits] [--domain phone]
      [--out experiments/results/ee_lexicon.json]`
"""

from __future__ import annotations

import argparse
import time

from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.data.manifest import load_split
from hubert_ee.decode.ngram_lm import fit_kneser_ney
from hubert_ee.inference import Transcript, load
from hubert_ee.metrics.wer import cer, wer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/exits")
    ap.add_argument("--domain", default="phone")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--beam", type=int, default=16)
    ap.add_argument("--lm-order", type=int, default=2, help="0: no LM rows")
    ap.add_argument("--lm-weight", type=float, default=1.0)
    ap.add_argument("--word-score", type=float, default=0.0)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    test = load_split(args.manifests, "test")
    test = test[test["domain"] == args.domain]
    train = load_split(args.manifests, "train")
    texts = list(train[train["domain"] == args.domain]["text"])
    words = sorted({w for t in texts for w in t.split()})
    refs, paths = list(test["text"]), list(test["path"])
    report: dict = {"model": args.model, "domain": args.domain, "utterances": len(refs),
                    "lexicon_words": len(words), "beam": args.beam, "decoding": {}}  # fmt: skip
    decodings = ["greedy", "beam_lexicon"]
    if args.lm_order > 0:
        lm = fit_kneser_ney(texts, args.lm_order)
        report["lm"] = {"order": args.lm_order, "weight": args.lm_weight,
                        "word_score": args.word_score, "sentences": len(texts)}  # fmt: skip
        decodings.append("beam_lexicon_lm")
    for decoding in decodings:
        rec = load(args.model)
        if decoding == "beam_lexicon":
            rec.use_beam(args.beam, words)
        elif decoding == "beam_lexicon_lm":
            rec.use_beam(args.beam, words, lm, args.lm_weight, args.word_score)
        for early_exit in (True, False):
            t0 = time.perf_counter()
            out = rec.transcribe_each(paths, early_exit)
            hyps = [t.text if isinstance(t, Transcript) else "" for t in out]
            name = f"{decoding}/{'early_exit' if early_exit else 'full'}"
            report["decoding"][name] = {
                "wer": round(wer(refs, hyps), 5),
                "cer": round(cer(refs, hyps), 5),
                "failed": sum(not isinstance(t, Transcript) for t in out),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
