"""Why does a teacher's σ² rank its errors backwards, and what data must the head see (issue 14)?

Hypothesis: the variance head is fitted on the utterances the CTC head is fitted on. There the
model is mostly right, so the integrated likelihood mostly teaches "noise hurts here": σ² is
pushed down on the fragile (small-margin) frames and left alone on the sure ones. Wrong tokens
sit on fragile frames, so σ² comes out *lower* on them (dev token AUROC 0.30–0.33 in every
recipe tried). If so, a head fitted on utterances the model has not been trained on (where its
errors look like its test errors) must rank the right way round.

The test, with the teacher's encoder and CTC head frozen (both heads read the same final hidden
state h_t, cached once): a fresh variance head σ²_t = softplus(W h_t + b), initialised as in
training, is fitted with the frame-level integrated likelihood (DESIGN §6, f fixed)
    mean_t  − Σ_c γ_t(c) · log( 1/S · Σ_s softmax(f_t + σ_t ⊙ ε_s)_c )
on (a) the domain's train split, as training does, and (b) one half of its dev split, scored on
the other half (two folds; dev only, test is never read). Every fit is scored with the
pipeline's `uncertainty_quality` (token AUROC of Σ_c σ², Spearman ρ of utterance mean Σσ²
against CER) on the same held-out dev half as the teacher's own head and as 1 − max p.

`--train-views` fits the train-split heads on the train split heard through some of the
target's channel conditions as well (`experiments/phone_gap.py`'s: `noise`, `line`,
`noise+line`, ...; `clean` is the split as it is), concatenated: the hypothesis of the second
round is that the head needs confidently wrong frames to learn that noise pays, and a teacher
trained on clean speech makes them on the channel. Every train-fitted head (and the teacher's
own, and 1 − max p) is also scored on the whole own dev split (the stage's metric);
`--target` adds the whole target dev split and the whole own dev split through `noise+line`:
what distillation needs is a σ² that is high where a teacher is wrong on the target.

Variants (`--variants`): the head is training's linear map (`linear`), a one-hidden-layer MLP on
h (`mlp`), an MLP on h and the frame's log-softmax (`mlp_logits`) or on the log-softmax alone
(`logits`), each optionally with a
prior towards no noise (`@<weight>`: + weight × mean Σ_c σ²). Each is scored per dev fold
(a list of two: evaluated on half B, then on half A).

Run: `python experiments/uncertainty_head_fit.py models/teachers/read/model.safetensors
      --domain read --out experiments/results/uncertainty_head_fit_read.json`
     `python experiments/uncertainty_head_fit.py models/teachers/read/model.safetensors
      --domain read --target phone --train-views clean,noise+line --variants linear,mlp_logits
      --out experiments/results/uncertainty_head_fit_read_channel.json`
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F
from phone_gap import CONDITIONS  # experiments/phone_gap.py: the target's channel, piecewise
from report import emit  # experiments/report.py (the script's folder is on sys.path)
from sklearn.metrics import roc_auc_score

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import ASRData, AugmentedASRData, collate_asr, domain_split
from hubert_ee.data.batching import bucket_batches
from hubert_ee.data.vocab import CharVocab
from hubert_ee.metrics.uncertainty import greedy_tokens, tokens_correct, uncertainty_quality
from hubert_ee.models.checkpoint import load_ctc_model
from hubert_ee.train.losses import alignment_posteriors


@torch.no_grad()
def cache(model, data: ASRData, batch_seconds: float) -> list[dict]:
    """Per utterance: final hidden state h, logits f, teacher σ², CTC alignment posterior γ."""
    seen: dict = {}
    hook = model.head.register_forward_hook(lambda m, i, o: seen.__setitem__("h", i[0]))
    rows: list = [None] * len(data)
    for idx in bucket_batches(data.lengths(), int(batch_seconds * 16000), seed=0, epoch=0):
        batch = collate_asr([data[i] for i in idx])
        res = model(batch["wave"], batch["lengths"])
        gamma, valid = alignment_posteriors(
            res.logits, res.frame_lengths, batch["targets"], batch["target_lengths"]
        )
        for j, i in enumerate(idx):
            n = int(res.frame_lengths[j])
            rows[i] = {"h": seen["h"][j, :n].float(), "f": res.logits[j, :n].float(),
                       "var": res.variance[j, :n].float(), "gamma": gamma[j, :n],
                       "valid": bool(valid[j, :n].all())}  # fmt: skip
    hook.remove()
    return rows


class VarianceHead(torch.nn.Module):
    """softplus of a linear map of h (training's head), of a one-hidden-layer MLP on h (`mlp`),
    or of an MLP on h and the frame's log-softmax (`mlp_logits`: the margin, which predicts
    errors, is a max over classes that no linear map of h can compute), or of an MLP on the
    log-softmax alone (`logits`). The last layer starts at zero weights and bias `bias`, as
    training's head does."""

    def __init__(self, kind: str, dim: int, classes: int, bias: float, hidden: int = 256):
        super().__init__()
        self.kind = kind
        inputs = {"mlp_logits": dim + classes, "logits": classes}.get(kind, dim)
        self.body = torch.nn.Identity() if kind == "linear" else torch.nn.Sequential(
            torch.nn.Linear(inputs, hidden), torch.nn.GELU())  # fmt: skip
        self.out = torch.nn.Linear(inputs if kind == "linear" else hidden, classes)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.constant_(self.out.bias, bias)

    def forward(self, h: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if self.kind == "logits":
            return F.softplus(self.out(self.body(F.log_softmax(f, -1))))
        x = torch.cat([h, F.log_softmax(f, -1)], -1) if self.kind == "mlp_logits" else h
        return F.softplus(self.out(self.body(x)))


def fit_head(rows: list[dict], kind: str, dim: int, classes: int, steps: int, lr: float,
             samples: int, seed: int, bias: float, penalty: float) -> VarianceHead:  # fmt: skip
    """A fresh variance head fitted by the frame-level integrated likelihood, f fixed, plus
    `penalty` × mean Σ_c σ² (a prior towards no noise: without it the σ² of classes that
    no noise draw can promote is free and swamps the sum over classes)."""
    torch.manual_seed(seed)
    head = VarianceHead(kind, dim, classes, bias)
    use = [r for r in rows if r["valid"]]
    h = torch.cat([r["h"] for r in use])
    f = torch.cat([r["f"] for r in use])
    gamma = torch.cat([r["gamma"] for r in use])
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    batch = min(8192, len(h))
    for _ in range(steps):
        pick = torch.randint(len(h), (batch,), generator=gen)
        var = head(h[pick], f[pick])
        std = (var + 1e-8).sqrt()  # sqrt's gradient at 0 is inf
        noisy = f[pick][None] + std[None] * torch.randn((samples, batch, classes), generator=gen)
        log_mean_p = torch.logsumexp(F.log_softmax(noisy, -1), 0) - math.log(samples)
        loss = -(gamma[pick] * log_mean_p).sum(-1).mean() + penalty * var.sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


@torch.no_grad()
def score(rows: list[dict], refs: list[str], vocab, head: VarianceHead | None) -> dict:
    """The pipeline's uncertainty metrics for `head`'s σ² (None: the teacher's own head), plus
    the same token AUROC for 1 − max p and the mean Σσ² of right and wrong tokens."""
    outs, conf, wrong, right_var, wrong_var = [], [], [], [], []
    for r, ref in zip(rows, refs, strict=True):
        lp = F.log_softmax(r["f"], -1)
        var = r["var"] if head is None else head(r["h"], r["f"])
        outs.append((lp, var))
        ids, frames = greedy_tokens(lp, vocab.blank)
        ok = tokens_correct(vocab.encode(ref).tolist(), ids)
        for t, c in zip(frames, ok, strict=True):
            conf.append(1.0 - float(lp[t].exp().max()))
            wrong.append(not c)
            (right_var if c else wrong_var).append(float(var[t].sum()))
    q = uncertainty_quality(outs, refs, vocab)
    return {"auroc_token": round(q["auroc_token"], 4), "spearman_cer": round(q["spearman_cer"], 4),
            "auroc_one_minus_conf": round(float(roc_auc_score(wrong, conf)), 4),
            "mean_sum_var_right_wrong": [round(float(np.mean(right_var)), 5),
                                         round(float(np.mean(wrong_var)), 5)]}  # fmt: skip


def variant(name: str) -> tuple[str, float]:
    """`linear`, `mlp`, `mlp_logits`, each optionally `@<penalty>`: (head kind, penalty)."""
    kind, _, penalty = name.partition("@")
    if kind not in ("linear", "mlp", "mlp_logits", "logits"):
        raise SystemExit(
            f"unknown head {kind!r} in variant {name!r} (linear | mlp | mlp_logits | logits)"
        )
    return kind, float(penalty or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a fine-tuned CTC model with an uncertainty head")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--variants", default="linear,mlp,mlp_logits,linear@0.1,mlp_logits@0.1",
                    help="heads to fit, each `kind[@penalty]`")  # fmt: skip
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--bias", type=float, default=-4.0, help="initial bias (training's: -4)")
    ap.add_argument("--batch-seconds", type=float, default=40.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--train-views",
        default="clean",
        help=f"train-split views the train-fitted heads see: {','.join(CONDITIONS)}",
    )
    ap.add_argument(
        "--target",
        help="also score on this domain's dev split and on the own "
        "dev split through noise+line (e.g. phone)",
    )
    ap.add_argument("--params", default="params.yaml", help="the seed of the channel draws")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vocab = CharVocab()
    model = load_ctc_model(args.model)
    shape = {"dim": model.head.in_features, "classes": model.head.out_features}
    train = domain_split(args.manifests, "train", args.domain, vocab)
    dev = domain_split(args.manifests, "dev", args.domain, vocab)
    seed = load_params(args.params).seed
    views = args.train_views.split(",")
    if unknown := [v for v in views if v not in CONDITIONS]:
        raise SystemExit(f"unknown --train-views {unknown} (choose from {list(CONDITIONS)})")

    def view(data: ASRData, name: str) -> ASRData:
        aug = CONDITIONS[name]
        return data if aug is None else AugmentedASRData(data, aug, seed)

    train_rows = [r for v in views for r in cache(model, view(train, v), args.batch_seconds)]
    dev_rows, refs = cache(model, dev, args.batch_seconds), dev.texts()
    # the whole own dev split too: the stage's metric (`uncertainty/*` of metrics/finetune_<d>)
    extra: dict[str, tuple[list[dict], list[str]]] = {f"{args.domain}_dev": (dev_rows, refs)}
    if args.target:
        target = domain_split(args.manifests, "dev", args.target, vocab)
        extra[f"{args.target}_dev"] = (cache(model, target, args.batch_seconds), target.texts())
        own = cache(model, view(dev, "noise+line"), args.batch_seconds)
        extra[f"{args.domain}_dev+noise+line"] = (own, refs)
    order = np.random.default_rng(args.seed).permutation(len(dev))
    halves = [np.sort(order[: len(dev) // 2]), np.sort(order[len(dev) // 2 :])]
    folds = [(halves[0], halves[1]), (halves[1], halves[0])]
    common = {"steps": args.steps, "lr": args.lr, "samples": args.samples, "seed": args.seed,
              "bias": args.bias}  # fmt: skip
    report: dict = {"model": args.model, "domain": args.domain, "fit": common,
                    "train_utterances": len(train), "dev_utterances": len(dev),
                    "train_views": views, "channel_seed": seed,
                    "teacher_head": [], "variants": {}}  # fmt: skip
    for name, (rows_x, refs_x) in extra.items():
        report[f"teacher_head/{name}"] = score(rows_x, refs_x, vocab, None)
    for _, eval_idx in folds:
        held = [dev_rows[i] for i in eval_idx]
        report["teacher_head"].append(score(held, [refs[i] for i in eval_idx], vocab, None))
    for name in args.variants.split(","):
        kind, penalty = variant(name)
        fit = {**common, **shape, "kind": kind, "penalty": penalty}
        on_train = fit_head(train_rows, **fit)
        rows = {"fit_on_train": [], "fit_on_other_dev_half": []}
        for fit_idx, eval_idx in folds:
            held, held_refs = [dev_rows[i] for i in eval_idx], [refs[i] for i in eval_idx]
            on_dev = fit_head([dev_rows[i] for i in fit_idx], **fit)
            rows["fit_on_train"].append(score(held, held_refs, vocab, on_train))
            rows["fit_on_other_dev_half"].append(score(held, held_refs, vocab, on_dev))
        for where, (rows_x, refs_x) in extra.items():
            rows[f"fit_on_train/{where}"] = score(rows_x, refs_x, vocab, on_train)
        report["variants"][name] = rows
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
