"""Does a word language model take a teacher the rest of the way to labelling the target (issue
14)? Each teacher's phone WER with beam search restricted to its own domain's training words
(what the finetune stage reports as `wer_lexicon`) and then with a Kneser-Ney word n-gram LM
fitted on the same training transcripts fused in (hubert_ee.decode.ngram_lm): zero target labels
in the model, the lexicon and the LM.

The decoder's values (beam size, LM order, LM weight, word score) are chosen on a dev split and
the choice is reported on test: once on the teacher's own domain's dev split (no target audio at
all), once on the target's dev split (its labels choose two decoder scalars, nothing is
trained on them). Nothing is chosen on test.
Run: `python experiments/teacher_target_lm.py [--teacher NAME=DOMAIN=PATH ...] [--beams 16 64]
      [--orders 2 3 4] [--lm-weights ...] [--word-scores ...] [--out experiments/results/X.json]`
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import ASRData, domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.ctc import BeamDecoder
from hubert_ee.decode.emissions import emissions
from hubert_ee.decode.ngram_lm import fit_kneser_ney
from hubert_ee.metrics.wer import cer, wer
from hubert_ee.models.checkpoint import load_ctc_model


def decode_scores(decoder: BeamDecoder, lps: list[torch.Tensor], data: ASRData) -> dict:
    hyps = [decoder(lp[None], None)[0] for lp in lps]
    return {"wer": round(wer(data.texts(), hyps), 5), "cer": round(cer(data.texts(), hyps), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", nargs="+", metavar="NAME=DOMAIN=PATH",
                    help="default: params' teachers at models/teachers/<domain>")  # fmt: skip
    ap.add_argument("--target", default=None, help="default: data.target_domain")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--orders", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--lm-weights", type=float, nargs="+", default=[0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    ap.add_argument("--word-scores", type=float, nargs="+", default=[-1.0, 0.0, 1.0, 2.0])
    ap.add_argument("--beams", type=int, nargs="+", default=[16])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    target = args.target or params.data.target_domain
    teachers = [t.split("=", 2) for t in args.teacher] if args.teacher else [
        (d, d, f"models/teachers/{d}/model.safetensors") for d in params.data.teacher_domains
    ]  # fmt: skip
    vocab = CharVocab()
    grid = list(itertools.product(args.beams, args.orders, args.lm_weights, args.word_scores))
    report: dict = {"target": target, "beams": args.beams, "grid": len(grid), "teachers": {}}
    for name, domain, path in teachers:
        t0 = time.perf_counter()
        train_texts = domain_split(args.manifests, "train", domain, vocab).texts()
        words = {w for t in train_texts for w in t.split()}
        lms = {n: fit_kneser_ney(train_texts, order=n) for n in args.orders}
        model = load_ctc_model(path).eval()
        splits = {
            "own_dev": domain_split(args.manifests, "dev", domain, vocab),
            "target_dev": domain_split(args.manifests, "dev", target, vocab),
            "target_test": domain_split(args.manifests, "test", target, vocab),
        }
        lps = {s: emissions(model, d, 60.0, torch.device("cpu")) for s, d in splits.items()}
        lexicons = {b: BeamDecoder(vocab, b, words=words) for b in args.beams}
        row: dict = {
            "domain": domain,
            "path": path,
            "lm_sentences": len(train_texts),
            "lexicon_words": len(words),
            "lexicon_only": {
                f"beam{b}": {s: decode_scores(dec, lps[s], d) for s, d in splits.items()}
                for b, dec in lexicons.items()
            },
            "dev_grid": [],
        }
        for beam, order, weight, ws in grid:
            dec = BeamDecoder(vocab, beam, words=words, lm=lms[order], lm_weight=weight,
                              word_score=ws)  # fmt: skip
            point = {"beam": beam, "order": order, "lm_weight": weight, "word_score": ws}
            for s in ("own_dev", "target_dev"):
                point[s] = decode_scores(dec, lps[s], splits[s])
            row["dev_grid"].append(point)
        for chooser in ("own_dev", "target_dev"):
            best = min(row["dev_grid"], key=lambda p, c=chooser: (p[c]["wer"], p[c]["cer"]))
            dec = BeamDecoder(vocab, best["beam"], words=words, lm=lms[best["order"]],
                              lm_weight=best["lm_weight"], word_score=best["word_score"])  # fmt: skip
            row[f"chosen_on_{chooser}"] = {
                **{k: best[k] for k in ("beam", "order", "lm_weight", "word_score")},
                "dev": best[chooser],
                "target_test": decode_scores(dec, lps["target_test"], splits["target_test"]),
            }
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        summary = {k: row[k] for k in row if k.startswith("chosen_on")}
        print(name, row["lexicon_only"], summary, flush=True)
        report["teachers"][name] = row
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
