"""Where does a teacher's σ² carry its uncertainty (issue 14, DESIGN §6)?

`finetune` reports `uncertainty/auroc_token` from Σ_c σ²_t at the frame where a greedy token is
emitted, and the default run measured it *below* 0.5 (σ² ranks wrong tokens as the surer
ones). Before touching the loss, this script asks whether the head is wrong or the read-out is:
on a teacher's dev split (and any other domain's dev split) it scores wrong-vs-right greedy
tokens with several read-outs of the same σ² and, for reference, with the softmax itself:

- `sum_var`: Σ_c σ²_t at the emitting frame (today's metric);
- `emitted_var`: σ² of the emitted class only;
- `mean_var_span`: Σ_c σ² averaged over the token's frames (its first frame up to the next
  token's first frame, blanks included: CTC spikes put the emission on one frame, the doubt
  may sit on the blanks around it);
- `var_over_margin`: σ_emitted / (logit margin of the emitted class over the runner-up), the
  chance that noise of that size flips the decision;
- `one_minus_conf`: 1 − max softmax at the emitting frame (no σ² at all: the baseline any
  uncertainty head must beat to be worth its cost).

Prints one JSON object (AUROC per read-out, and Spearman ρ of utterance mean against CER for
the utterance-level read-outs). Dev only.

Run: `python experiments/uncertainty_probe.py models/teachers/read/model.safetensors
      --domain read --other-domains phone --out experiments/results/uncertainty_probe_read.json`
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.emissions import outputs
from hubert_ee.metrics.uncertainty import greedy_tokens, tokens_correct
from hubert_ee.metrics.wer import cer
from hubert_ee.models.checkpoint import load_ctc_model

READOUTS = ("sum_var", "emitted_var", "mean_var_span", "var_over_margin", "one_minus_conf")


def token_scores(lp: torch.Tensor, var: torch.Tensor, ids: list[int], frames: list[int]) -> dict:
    """Every read-out for each greedy token of one utterance (higher = less sure)."""
    total = var.sum(-1)
    top2 = lp.topk(2, dim=-1).values  # log-probs; their gap is the logit margin
    out: dict[str, list[float]] = {k: [] for k in READOUTS}
    ends = [*frames[1:], lp.shape[0]]
    for c, t, end in zip(ids, frames, ends, strict=True):
        out["sum_var"].append(float(total[t]))
        out["emitted_var"].append(float(var[t, c]))
        out["mean_var_span"].append(float(total[t:end].mean()))
        margin = float(top2[t, 0] - top2[t, 1])
        out["var_over_margin"].append(float(var[t, c].sqrt()) / max(margin, 1e-6))
        out["one_minus_conf"].append(1.0 - float(lp[t].exp().max()))
    return out


def probe(model, data, vocab, batch_seconds: float) -> dict:
    scores: dict[str, list[float]] = {k: [] for k in READOUTS}
    wrong: list[bool] = []
    utt_cer, utt_var, utt_conf = [], [], []
    for (lp, var), ref in zip(outputs(model, data, batch_seconds, torch.device("cpu")),
                              data.texts(), strict=True):  # fmt: skip
        ids, frames = greedy_tokens(lp, vocab.blank)
        for k, v in token_scores(lp, var, ids, frames).items():
            scores[k].extend(v)
        wrong.extend(not ok for ok in tokens_correct(vocab.encode(ref).tolist(), ids))
        utt_cer.append(cer([ref], [vocab.decode(ids)]) if ref else 0.0)
        utt_var.append(float(var.sum(-1).mean()))
        utt_conf.append(1.0 - float(lp.exp().max(-1).values.mean()))
    row: dict = {"tokens": len(wrong), "wrong_share": round(float(np.mean(wrong)), 4)}
    if 0 < sum(wrong) < len(wrong):
        row["auroc_token"] = {
            k: round(float(roc_auc_score(wrong, v)), 4) for k, v in scores.items()
        }
        row["mean_right_vs_wrong"] = {
            k: [round(float(np.mean([s for s, w in zip(v, wrong, strict=True) if not w])), 5),
                round(float(np.mean([s for s, w in zip(v, wrong, strict=True) if w])), 5)]
            for k, v in scores.items()
        }  # fmt: skip
    row["spearman_cer"] = {
        "mean_sum_var": round(float(spearmanr(utt_var, utt_cer).statistic), 4),
        "mean_one_minus_conf": round(float(spearmanr(utt_conf, utt_cer).statistic), 4),
    }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a fine-tuned CTC model with an uncertainty head")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--other-domains", default="", help="comma-separated dev splits to probe too")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    vocab = CharVocab()
    model = load_ctc_model(args.model)
    if model.variance_head is None:
        raise SystemExit(f"{args.model} has no uncertainty head (fine-tune with uncertainty: true)")
    report: dict = {"model": args.model, "domains": {}}
    for d in [args.domain, *filter(None, args.other_domains.split(","))]:
        data = domain_split(args.manifests, "dev", d, vocab)
        report["domains"][d] = probe(model, data, vocab, params.finetune.eval_batch_seconds)
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
