"""Threshold search for early exit: WER, mean exit layer and FLOPs per operating point.

Exit decisions depend only on each branch's posteriors, so one pass that computes every
branch's output for every utterance gives exact WER and exit layers for any threshold; the
wall-clock speed of a point is measured separately with the real (stopping) inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from hubert_ee.data.asr_data import ASRData
from hubert_ee.decode.ctc import greedy_decode
from hubert_ee.metrics.wer import wer
from hubert_ee.models.early_exit import (
    EarlyExitModel,
    ExitCriterion,
    confidence_score,
    entropy_score,
)


@dataclass
class ExitTable:
    """Per utterance: each exit's criterion scores, hypothesis, and FLOPs to reach it."""

    layers: list[int]  # branch layers, then the final layer
    entropy: torch.Tensor  # (utterances, exits)
    confidence: torch.Tensor
    hyps: list[list[str]]  # [exit][utterance]
    flops: torch.Tensor  # (utterances, exits): FLOPs when leaving at that exit
    flops_full: torch.Tensor  # (utterances,): the student without branches
    refs: list[str]


def _counted(fn, *args):
    """(fn(*args), the FLOPs torch's counter saw)."""
    with FlopCounterMode(display=False) as counter:
        out = fn(*args)
    return out, counter.get_total_flops()


@torch.no_grad()
def exit_table(model: EarlyExitModel, data: ASRData) -> ExitTable:
    """One batch-size-1 pass per utterance through every layer, branch and the final head.

    FLOPs come from torch's FLOP counter (matmuls, convolutions, attention; the log-mel FFT is
    not counted, and it costs the same whatever the exit)."""
    model.eval()
    tr = model.student.encoder.encoder.transformer
    layers = [*model.cfg.layers, model.num_layers]
    ent, conf, flops, full = [], [], [], []
    hyps: list[list[str]] = [[] for _ in layers]
    for i in range(len(data)):
        (x, _, _), f_front = _counted(model.student.frontend, data.wave(i)[None], None)
        h, f_embed = _counted(tr.embed, x)
        f_front += f_embed
        hs, f_layers = [], []
        for layer in tr.layers:
            h, f = _counted(layer, h, None)
            hs.append(h)
            f_layers.append(f)
        n_frames = torch.tensor([h.shape[1]])
        row_e, row_c, row_f = [], [], []
        f_tested = 0  # branches evaluated before this exit
        for j, layer in enumerate(layers):
            if layer == model.num_layers:
                out, f_exit = _counted(model.student.heads, hs[-1], None)
                logits = out.logits
            else:
                logits, f_exit = _counted(model.branches[str(layer)], hs[layer - 1], None)
            lp = F.log_softmax(logits, -1)
            row_e.append(float(entropy_score(lp, n_frames)))
            row_c.append(float(confidence_score(lp, n_frames)))
            hyps[j].append(greedy_decode(lp, None, data.vocab)[0])
            row_f.append(f_front + sum(f_layers[:layer]) + f_tested + f_exit)
            f_tested += f_exit
        full.append(f_front + sum(f_layers) + f_exit)  # f_exit is now the final head's
        ent.append(row_e)
        conf.append(row_c)
        flops.append(row_f)
    return ExitTable(
        layers,
        torch.tensor(ent),
        torch.tensor(conf),
        hyps,
        torch.tensor(flops, dtype=torch.float64),
        torch.tensor(full, dtype=torch.float64),
        data.texts(),
    )


def threshold_grid(
    table: ExitTable, criterion: str, fixed: list[float], quantiles: int
) -> list[float]:
    """The fixed grid plus `quantiles` evenly spaced quantiles of the branches' scores on this
    data, so that the sweep covers the range where utterances actually exit (a weak model's
    branches never reach the paper's thresholds)."""
    scores = (table.entropy if criterion == "entropy" else table.confidence)[:, :-1].flatten()
    qs = torch.linspace(0.05, 0.95, quantiles) if quantiles > 1 else torch.tensor([0.5])
    found = torch.quantile(scores.double(), qs.double()).tolist() if quantiles else []
    return sorted({*fixed, *(round(v, 6) for v in found)})


def exit_choice(table: ExitTable, criterion: str, threshold: float) -> torch.Tensor:
    """Index (into table.layers) of the exit each utterance takes."""
    rule = ExitCriterion(criterion, threshold)
    ok = rule.accepts(getattr(table, rule.name))
    ok[:, -1] = True  # the final layer always answers
    return ok.float().argmax(1)


def evaluate_point(table: ExitTable, criterion: str, threshold: float) -> dict[str, float]:
    choice = exit_choice(table, criterion, threshold)
    hyps = [table.hyps[int(c)][u] for u, c in enumerate(choice)]
    layers = torch.tensor(table.layers, dtype=torch.float64)[choice]
    spent = table.flops[torch.arange(len(choice)), choice].sum()
    return {
        "wer": wer(table.refs, hyps),
        "mean_exit_layer": float(layers.mean()),
        "speedup_flops": float(table.flops_full.sum() / spent),
        "exit_share": {
            str(layer): float((choice == j).float().mean()) for j, layer in enumerate(table.layers)
        },
    }


def choose_operating_point(rows: list[dict], wer_budget: float) -> dict | None:
    """The fastest point within the WER budget that is faster for real, or None (serve the
    full model). Each row has `wer`, `speedup_flops` and `speedup` (a measured Speedup).

    Timing noise must not decide: a point qualifies only if it saves FLOPs and every paired
    repeat measured it faster than the full model; among the qualifying points whose measured
    range overlaps the fastest one's (timing cannot tell them apart) the higher FLOPs speedup
    wins, then the lower WER."""
    ok = [
        r
        for r in rows
        if r["wer"] <= wer_budget + 1e-12
        and r["speedup_flops"] > 1.0
        and r["speedup"].clearly_faster
    ]
    if not ok:
        return None
    fastest = max(ok, key=lambda r: r["speedup"].median)
    tied = [r for r in ok if r["speedup"].overlaps(fastest["speedup"])]
    return min(tied, key=lambda r: (-r["speedup_flops"], r["wer"], -r["speedup"].median))
