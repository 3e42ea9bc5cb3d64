"""Is the early-exit speed the committed runs report on test a property of the criterion the
threshold search chose, or of the host's day? Two committed runs of the same models chose
different criteria (a04e69f: entropy θ = 0.024235, test 1.21×; 21c2cf9: confidence θ = 0.757364,
test 1.38×), points whose dev exits are the same (mean exit layer 3.496 for both). This times
both points and the full student in one process, interleaved as `threshold_search` does, in
several rounds, and gives each point's paired speedup over the full student per round and the
two points' paired ratio over all repeats, next to their WER, mean exit layer and FLOPs speedup
from the exit table.

Nothing is chosen here; the test rows report only. Run in a workspace after `threshold_search`:
  `python experiments/exit_criteria_paired.py [--points entropy@0.024235 confidence@0.757364]
      [--rounds 5] [--out experiments/results/exit_criteria_paired.json]`
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.decode.early_exit_search import evaluate_point, exit_table
from hubert_ee.device import cpu_threads
from hubert_ee.metrics.speed import interleaved_times, paired_speedup
from hubert_ee.models.checkpoint import load_early_exit_model
from hubert_ee.models.inference_form import inference_form


def parse_point(text: str) -> tuple[str, float]:
    crit, _, th = text.partition("@")
    if crit not in ("entropy", "confidence") or not th:
        raise argparse.ArgumentTypeError(f"{text!r}: write CRITERION@THRESHOLD, e.g. entropy@0.02")
    return crit, float(th)


def speed_row(sp) -> dict:
    return {"median": round(sp.median, 4), "low": round(sp.low, 4), "high": round(sp.high, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/exits/model.safetensors")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument(
        "--points",
        nargs="+",
        type=parse_point,
        default=[("entropy", 0.024235), ("confidence", 0.757364)],
    )
    ap.add_argument("--splits", nargs="+", default=["dev", "test"])
    ap.add_argument("--rounds", type=int, default=5, help="sweeps of speed_repeats repeats each")
    ap.add_argument("--out")
    args = ap.parse_args()
    params = load_params(args.params)
    ts, target = params.threshold_search, params.data.target_domain
    torch.set_num_threads(ts.threads or cpu_threads())
    model = inference_form(load_early_exit_model(args.model))
    names = [f"{c}@{t}" for c, t in args.points]
    report = {
        "question": __doc__.split("\n\n")[0],
        "model": args.model,
        "points": names,
        "threads": torch.get_num_threads(),
        "speed_utterances": ts.speed_utterances,
        "speed_repeats": ts.speed_repeats,
        "rounds": args.rounds,
        "splits": {},
    }
    for split in args.splits:
        data = domain_split(args.manifests, split, target, model.student.vocab)
        table = exit_table(model, data)
        waves = [data.wave(i)[None] for i in range(min(ts.speed_utterances, len(data)))]
        cands = {"full": lambda w: model.student.logits(w)}
        for (crit, th), name in zip(args.points, names, strict=True):
            cands[name] = lambda w, c=crit, t=th: model.early_exit(w, None, c, t)
        times: dict[str, list[float]] = {k: [] for k in cands}
        per_round = []
        t0 = time.time()
        for _ in range(args.rounds):
            got = interleaved_times(cands, waves, ts.speed_repeats, torch.get_num_threads())
            for k, v in got.items():
                times[k].extend(v)
            per_round.append(
                {n: round(paired_speedup(got["full"], got[n]).median, 4) for n in names}
            )
        points = {}
        for (crit, th), name in zip(args.points, names, strict=True):
            ev = evaluate_point(table, crit, th)
            points[name] = {
                "wer": round(ev["wer"], 5),
                "mean_exit_layer": round(ev["mean_exit_layer"], 4),
                "speedup_flops": round(ev["speedup_flops"], 4),
                "speedup_measured_all_repeats": speed_row(
                    paired_speedup(times["full"], times[name])
                ),
                "speedup_measured_by_round": [r[name] for r in per_round],
            }
        a, b = names[0], names[1]
        report["splits"][split] = {
            "utterances": len(data),
            "points": points,
            f"paired_{a}_over_{b}": speed_row(paired_speedup(times[b], times[a])),
            "full_seconds_per_pass_median": round(statistics.median(times["full"]), 4),
            "wall_s": round(time.time() - t0, 1),
        }
        print(split, report["splits"][split], flush=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
