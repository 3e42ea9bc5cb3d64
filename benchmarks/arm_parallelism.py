"""Would two training arms side by side, one thread each, beat one after the other on both cores?

The default DAG trains its arms one after another with every core (`finetune@read`: the
pretrained and scratch arms; `distill`: six arms), and on a slow host it runs over the 60-min
budget (README, "Budget"). This measures whether arm-level parallelism would buy time there: the
stage's fine-tuning step (the default recipe's model and 20 s batches of real training
utterances, uncertainty head with S samples, AdamW) run

- `sequential`: one process with `--threads` threads, `--steps` steps twice in a row;
- `parallel`: two processes with one thread each, `--steps` steps each at the same time,

alternating for `--repeats` rounds; the wall time of each round, medians and the ratio
sequential / parallel (> 1: parallel arms are faster). The answer depends on the host (how well
a small model's kernels use two threads, and whether the two cores share execution units).
Run in a workspace after `prepare`: `python benchmarks/arm_parallelism.py [--steps 30]
      [--repeats 3] [--out benchmarks/results/arm_parallelism_<date>.json]`
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import time
from pathlib import Path

import torch

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import collate_asr, domain_split
from hubert_ee.data.batching import bucket_batches
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.train.finetune import ctc_objective


def train_steps(
    params_path: str, manifests: str, steps: int, threads: int, arms: int, start, results
) -> None:
    """Put on `results` the wall seconds of `arms` arms of `steps` fine-tuning steps each, one
    after the other, timed from `start` (a barrier: every process of a round has imported and
    loaded its batches by then)."""
    torch.set_num_threads(threads)
    params = load_params(params_path)
    vocab = CharVocab()
    data = domain_split(manifests, "train", "read", vocab)
    ft = params.finetune
    batches = bucket_batches(data.lengths(), int(ft.max_batch_seconds * 16000), params.seed, 0)
    loaded = [collate_asr([data[i] for i in batches[s % len(batches)]]) for s in range(steps)]
    objective = ctc_objective(ft.noise_samples, ft.uncertainty_loss)
    start.wait()
    t0 = time.perf_counter()
    for arm in range(arms):
        torch.manual_seed(params.seed + arm)
        model = CTCModel(HubertEncoder(params.model.encoder_config()), vocab, ft.uncertainty,
                         ft.final_dropout).train()  # fmt: skip
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=ft.lr)
        for s, batch in enumerate(loaded):
            out = model(batch["wave"], batch["lengths"])
            loss, _ = objective(out, batch, torch.Generator().manual_seed(s))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    results.put(time.perf_counter() - t0)


def timed_round(ctx, job: tuple, layout: list[tuple[int, int]]) -> float:
    """Wall seconds of one round: a process per (threads, arms) in `layout`, started together;
    the round lasts as long as its slowest process."""
    start, results = ctx.Barrier(len(layout)), ctx.Queue()
    procs = [ctx.Process(target=train_steps, args=(*job, t, a, start, results)) for t, a in layout]
    for p in procs:
        p.start()
    times = [results.get() for _ in procs]
    for p in procs:
        p.join()
    return max(times)


def host() -> str:
    """The CPU model, with the vector extensions that decide how a matmul uses a thread."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    lines = text.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    family = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("cpu family")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} (family {family}; {' '.join(simd)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="threads of the sequential process")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--out")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")  # fresh interpreters: no thread pool inherited from this one
    job = (args.params, args.manifests, args.steps)
    layouts = {"sequential": [(args.threads, 2)], "parallel": [(1, 1), (1, 1)]}
    rounds: dict[str, list[float]] = {k: [] for k in layouts}
    for _ in range(args.repeats):  # alternating, so that drift on a shared host hits both
        for name, layout in layouts.items():
            rounds[name].append(timed_round(ctx, job, layout))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    report = {
        "host": host(),
        "steps_per_arm": args.steps,
        "threads_sequential": args.threads,
        "rounds_s": {k: [round(t, 2) for t in v] for k, v in rounds.items()},
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "sequential_over_parallel": round(med["sequential"] / med["parallel"], 3),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
