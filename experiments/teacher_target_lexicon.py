"""How far is a teacher from labelling the target when it may only write words it knows (issue
14)? Each teacher's greedy, beam and beam + lexicon WER on the target domain's dev and test
splits, where the lexicon is the words of the **teacher domains'** training transcripts: a
teacher that hears the target with zero target labels may still know the language. The finetune
stage reports the same figure on test (`wer_lexicon/<domain>`, the teacher's own domain's words).

Reports the lexicon's coverage of the target's words (a word outside it is an error no decoder
can avoid; the synthetic corpus draws every domain's sentences from one vocabulary, so there it
is 1.0). Nothing here chooses a default; test is reported next to dev.
Run: `python experiments/teacher_target_lexicon.py [--teacher NAME=PATH ...] [--target phone]
      [--out experiments/results/teacher_target_lexicon.json]`
"""

from __future__ import annotations

import argparse
import time

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import ASRData, domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.ctc import BeamDecoder
from hubert_ee.decode.emissions import emissions
from hubert_ee.models.checkpoint import load_ctc_model
from hubert_ee.train.teacher import beam_report


def words_of(data: ASRData) -> set[str]:
    return {w for t in data.texts() for w in t.split()}


def coverage(lexicon: set[str], data: ASRData) -> float:
    """Share of the word tokens of `data` that the lexicon holds."""
    tokens = [w for t in data.texts() for w in t.split()]
    return sum(w in lexicon for w in tokens) / max(len(tokens), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", nargs="+", metavar="NAME=PATH", help="default: params' teachers")
    ap.add_argument("--target", default=None, help="default: data.target_domain")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--splits", nargs="+", default=["dev", "test"])
    ap.add_argument("--beam", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    target = args.target or params.data.target_domain
    domains = params.data.teacher_domains
    teachers = dict(t.split("=", 1) for t in args.teacher) if args.teacher else {
        d: f"models/teachers/{d}/model.safetensors" for d in domains
    }  # fmt: skip
    vocab = CharVocab()
    lexicon = set().union(
        *(words_of(domain_split(args.manifests, "train", d, vocab)) for d in domains)
    )
    splits = {s: domain_split(args.manifests, s, target, vocab) for s in args.splits}
    report: dict = {
        "target": target,
        "beam": args.beam,
        "lexicon": {
            "domains": domains,
            "words": len(lexicon),
            **{f"coverage/{s}": round(coverage(lexicon, d), 4) for s, d in splits.items()},
        },
        "teachers": {},
    }
    decoders = {
        "beam": BeamDecoder(vocab, args.beam),
        "beam_lexicon": BeamDecoder(vocab, args.beam, words=lexicon),
    }
    for name, path in teachers.items():
        model = load_ctc_model(path).eval()
        row: dict = {"path": path}
        for split, data in splits.items():
            t0 = time.perf_counter()
            lps = emissions(model, data, 60.0, torch.device("cpu"))
            row[split] = beam_report(lps, data, decoders)
            row[split]["wall_s"] = round(time.perf_counter() - t0, 1)
            print(name, split, row[split], flush=True)
        report["teachers"][name] = row
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
