"""The subnet search (DESIGN §9): every subnet of the trained supernet scored on dev (the
distillation loss on the same batches and masks for all) and timed on this machine (batch 1
and padded batches, interleaved with the teacher in one process), then the best dev loss under
a size budget and a latency budget.

The latency budget is a ratio to the teacher's time measured in the same run, so that a
choice means the same on a fast and on a slow host (timings differ 3x between this project's
machines); an absolute per-utterance budget can be added on top.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from hubert_ee.config import PretrainConfig, SupernetParams
from hubert_ee.metrics.speed import interleaved_medians
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.inference_form import inference_form
from hubert_ee.models.student import parameter_count
from hubert_ee.models.supernet import Subnet
from hubert_ee.models.supernet_head import SupernetDistillModel
from hubert_ee.train.pretrain import evaluate
from hubert_ee.train.pretrain_data import PretrainData


@dataclass
class Candidate:
    embed_dim: int
    num_heads: int
    ffn_dim: int
    num_layers: int
    params: int
    params_ratio: float  # / the teacher's
    dev_loss: float
    dev_cosine: float
    batch1_ms: float  # median per utterance
    batched_ms: float  # median per utterance in padded batches
    latency_rel: float  # batch-1 time / the teacher's
    batched_rel: float
    within_budget: bool = False
    pareto: bool = False

    @property
    def subnet(self) -> Subnet:
        return Subnet(self.embed_dim, self.num_heads, self.ffn_dim, self.num_layers)

    def row(self) -> dict:
        return asdict(self)


@torch.no_grad()
def dev_scores(
    model: SupernetDistillModel,
    subnets: list[Subnet],
    valid: PretrainData,
    cfg: PretrainConfig,
    seed: int,
    device: torch.device,
) -> dict[Subnet, dict[str, float]]:
    """The loop's held-out evaluation run as each subnet (fixed batches and masks: a
    difference between two subnets is theirs, not the sample's)."""
    out = {}
    try:
        for sub in subnets:
            model.fixed = sub
            out[sub] = evaluate(model, valid, cfg, seed, device)
    finally:
        model.fixed = None
    return out


def _padded(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([w.shape[-1] for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.shape[-1]] = w.reshape(-1)
    return batch, lengths


def latencies(
    encoders: dict[str, HubertEncoder],
    waves: list[torch.Tensor],
    batch: int,
    repeats: int,
    threads: int,
) -> dict[str, dict[str, float]]:
    """Median ms per utterance of each encoder's forward, at batch 1 over `waves` and over
    padded batches of `batch` of them, all candidates interleaved (metrics.speed)."""
    for e in encoders.values():
        inference_form(e.cpu())
    singles = [w.reshape(1, -1) for w in waves]
    batches = [_padded(waves[i : i + batch]) for i in range(0, len(waves), batch)]
    one = interleaved_medians({n: e for n, e in encoders.items()}, singles, repeats, threads)
    many = interleaved_medians(
        {n: (lambda b, e=e: e(*b)) for n, e in encoders.items()}, batches, repeats, threads
    )
    n = len(waves)
    return {
        name: {"batch1_ms": 1000 * one[name] / n, "batched_ms": 1000 * many[name] / n}
        for name in encoders
    }


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """Which (cost, loss) points no other point beats on both (lower is better on both; a
    point equal on one and better on the other dominates)."""
    return [
        not any(
            (c2 <= c and l2 <= lo) and (c2 < c or l2 < lo)
            for j, (c2, l2) in enumerate(points)
            if j != i
        )
        for i, (c, lo) in enumerate(points)
    ]


def mark_budget(
    cands: list[Candidate],
    max_params_ratio: float,
    latency_budget_rel: float,
    latency_budget_ms: float | None,
) -> None:
    for c in cands:
        c.within_budget = (
            c.params_ratio <= max_params_ratio
            and c.latency_rel <= latency_budget_rel
            and (latency_budget_ms is None or c.batch1_ms <= latency_budget_ms)
        )
    front = pareto_front([(c.latency_rel, c.dev_loss) for c in cands])
    for c, f in zip(cands, front, strict=True):
        c.pareto = f


def choose(cands: list[Candidate]) -> Candidate:
    """The lowest dev loss among the candidates within budget (`mark_budget` first); on a tie
    the faster one."""
    ok = [c for c in cands if c.within_budget]
    if not ok:
        smallest = min(cands, key=lambda c: c.params_ratio)
        fastest = min(cands, key=lambda c: c.latency_rel)
        raise ValueError(
            "no subnet fits supernet.max_params_ratio and the latency budget: the smallest "
            f"has {smallest.params_ratio:.3f} of the teacher's parameters, the fastest takes "
            f"{fastest.latency_rel:.3f} of its time ({fastest.batch1_ms:.2f} ms); widen the "
            "budgets or add smaller widths/depths to supernet.space"
        )
    return min(ok, key=lambda c: (c.dev_loss, c.latency_rel))


def search(
    model: SupernetDistillModel,
    sp: SupernetParams,
    loop: PretrainConfig,
    valid: PretrainData,
    waves: list[torch.Tensor],
    seed: int,
    device: torch.device,
    threads: int,
) -> tuple[list[Candidate], Candidate, dict[str, float]]:
    """Every subnet of `sp.space` scored, timed and marked; the chosen one; the teacher's
    times (ms per utterance at batch 1 and batched)."""
    subnets = model.space.all(model.encoder.cfg)
    scores = dev_scores(model, subnets, valid, loop, seed, device)
    extracted = {str(s): model.supernet.extract(s) for s in subnets}
    times = latencies(
        {"teacher": model.teacher, **extracted},
        waves,
        sp.latency_batch,
        sp.latency_repeats,
        threads,
    )
    t, teacher_params = times["teacher"], parameter_count(model.teacher)
    cands = []
    for sub in subnets:
        m, n = times[str(sub)], parameter_count(extracted[str(sub)])
        cands.append(
            Candidate(
                **sub.as_dict(),
                params=n,
                params_ratio=round(n / teacher_params, 4),
                dev_loss=round(scores[sub]["loss"], 4),
                dev_cosine=round(scores[sub]["masked_acc"], 4),
                batch1_ms=round(m["batch1_ms"], 3),
                batched_ms=round(m["batched_ms"], 3),
                latency_rel=round(m["batch1_ms"] / t["batch1_ms"], 4),
                batched_rel=round(m["batched_ms"] / t["batched_ms"], 4),
            )
        )
    mark_budget(cands, sp.max_params_ratio, sp.latency_budget_rel, sp.latency_budget_ms)
    return cands, choose(cands), t
