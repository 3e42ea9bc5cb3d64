"""Stage `supernet`: LightHuBERT once-for-all training from the last pretrained encoder, then
the subnet search (DESIGN §9): every subnet scored on dev and timed on this machine; the best
dev loss within the size and latency budgets, extracted as a plain encoder, is `distill`'s
student.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.data.audio_io import read_mono_16k
from hubert_ee.data.manifest import load_split
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import load_encoder, save_encoder
from hubert_ee.models.student import parameter_count
from hubert_ee.plots import subnet_pareto_plot
from hubert_ee.tracking import StageTracker
from hubert_ee.train import distributed
from hubert_ee.train.pretrain_data import PretrainData
from hubert_ee.train.subnet_search import search
from hubert_ee.train.supernet import loop_config, train_supernet
from tasks.common import run_stage, stage_parser, write_metrics


def _timing_waves(manifests: str, n: int, seed: int) -> list[torch.Tensor]:
    """A seeded sample of dev utterances of every domain (the same for every candidate)."""
    dev = load_split(manifests, "dev")
    rows = dev.sample(n=min(n, len(dev)), random_state=seed).sort_values("id")
    return [torch.from_numpy(read_mono_16k(r.path, r.start, r.duration)) for r in rows.itertuples()]


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    sp, pt, km = params.supernet, params.pretrain, params.kmeans
    d = distributed.setup()
    teacher = load_encoder(args.encoder).eval()
    data = PretrainData([load_split(args.manifests, s) for s in km.fit_splits], None, teacher.cfg)
    valid = PretrainData([load_split(args.manifests, km.eval_split)], None, teacher.cfg)

    def log(row: dict) -> None:
        print(json.dumps(row), flush=True)
        step = row["step"] + (sp.stage1_steps if row["stage"] == "stage2" else 0)
        tracker.log_metrics(
            {f"train/{k}": v for k, v in row.items() if k in ("loss", "masked_acc")}, step=step
        )

    t0 = time.perf_counter()
    run = train_supernet(
        teacher, sp, pt, params.seed, data, valid, Path(args.state), args.stage_key, d, log
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cands, chosen, teacher_ms = search(
        run.model,
        sp,
        loop_config(pt, sp, 0),
        valid,
        _timing_waves(args.manifests, sp.latency_utterances, params.seed),
        params.seed,
        d.device,
        cpu_threads(),
    )
    search_s = time.perf_counter() - t0
    out, plots = Path(args.out), Path(args.plots)
    supernet = run.model.encoder
    save_encoder(supernet, out / "supernet.safetensors", {"role": "supernet"})
    student = run.model.supernet.extract(chosen.subnet)
    save_encoder(
        student,
        out / "student.safetensors",
        {"role": "subnet", **{k: str(v) for k, v in chosen.subnet.as_dict().items()}},
    )
    rows = [c.row() for c in cands]
    budget_ms = sp.latency_budget_rel * teacher_ms["batch1_ms"]
    if sp.latency_budget_ms is not None:
        budget_ms = min(budget_ms, sp.latency_budget_ms)
    subnet_pareto_plot(rows, chosen.row(), sp.max_params_ratio, sp.latency_budget_rel, plots)

    def name(r: dict) -> str:
        return f"e{r['embed_dim']}_h{r['num_heads']}_f{r['ffn_dim']}_l{r['num_layers']}"

    metrics = {
        "subnet": chosen.subnet.as_dict(),
        "params_subnet": chosen.params,
        "params_supernet": parameter_count(supernet),
        "params_teacher": parameter_count(teacher),
        "params_ratio": chosen.params_ratio,
        "latency_rel": chosen.latency_rel,
        "batched_rel": chosen.batched_rel,
        "dev_loss_chosen": chosen.dev_loss,
        "teacher_batch1_ms": round(teacher_ms["batch1_ms"], 3),
        "teacher_batched_ms": round(teacher_ms["batched_ms"], 3),
        "budget_ms": round(budget_ms, 3),
        "budget_rel": sp.latency_budget_rel,
        "max_params_ratio": sp.max_params_ratio,
        "scored": len(rows),
        "within_budget": sum(r["within_budget"] for r in rows),
        "latency_ms": {name(r): r["batch1_ms"] for r in rows},
        "latency_batched_ms": {name(r): r["batched_ms"] for r in rows},
        "dev_loss": {name(r): r["dev_loss"] for r in rows},
        "stages": {
            k: {
                "steps": r.steps,
                "final_loss": r.history[-1]["loss"] if r.history else None,
                "valid_loss": round(r.valid.get("loss", float("nan")), 4),
                "valid_cosine": round(r.valid.get("masked_acc", float("nan")), 4),
                "resumed_from_step": r.resumed_from,
            }
            for k, r in run.results.items()
        },
        "train_wall_s": round(train_s, 1),
        "search_wall_s": round(search_s, 1),
        "threads": cpu_threads(),
    }
    write_metrics(args.metrics, metrics, tracker, plots)
    print(
        f"supernet in {out}/supernet.safetensors; chosen subnet {chosen.subnet.as_dict()} "
        f"({chosen.params_ratio:.3f} of the teacher's parameters, {chosen.latency_rel:.3f} of "
        f"its batch-1 time, dev loss {chosen.dev_loss}) in {out}/student.safetensors"
    )


if __name__ == "__main__":
    parser = stage_parser(
        __doc__,
        "manifests",
        "state",
        "metrics",
        encoder="the last pretrained encoder (teacher of the supernet)",
        out="models/supernet",
        plots="every scored subnet: dev loss vs measured latency (CSV + PNG)",
    )
    run_stage(
        main,
        parser,
        "supernet",
        ["seed", "pretrain", "kmeans.fit_splits", "kmeans.eval_split", "supernet"],
        inputs=["encoder", "manifests"],
        all_threads=True,
    )
