"""Stage `threshold_search`: pick the early-exit operating point by measured speed (DESIGN §8).

Sweeps the entropy and the confidence criterion over their grids on the dev split (WER, mean
exit layer, FLOPs speedup, measured wall-clock speedup against the full student at batch size
1), chooses the fastest point whose dev WER is within `max_wer_increase_rel` of the full
student's, and reports it on test next to the teacher and the full student.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.decode.early_exit_search import (
    choose_operating_point,
    evaluate_point,
    exit_table,
    threshold_grid,
)
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.metrics.speed import Speedup, interleaved_times, paired_speedup
from hubert_ee.models.checkpoint import load_ctc_model, load_early_exit_model
from hubert_ee.plots import pareto_plot
from hubert_ee.tracking import StageTracker
from hubert_ee.train.asr_data import ASRData, domain_split
from tasks.common import run_stage, stage_parser, write_metrics
from tasks.teacher_outputs import teacher_paths


def measured_speedups(
    model, data: ASRData, points: list[tuple[str, float]], n: int, repeats: int
) -> dict[str, Speedup]:
    """Each point's speedup over the full student, paired repeat by repeat (batch size 1)."""
    waves = [data.wave(i)[None] for i in range(min(n, len(data)))]
    cands = {"full": lambda w: model.student(w)}
    for crit, th in points:
        cands[f"{crit}@{th}"] = lambda w, c=crit, t=th: model.early_exit(w, None, c, t)
    times = interleaved_times(cands, waves, repeats, threads=torch.get_num_threads())
    return {k: paired_speedup(times["full"], v) for k, v in times.items() if k != "full"}


def greedy_wer(model, data: ASRData, batch_s: float) -> float:
    return greedy_scores(emissions(model, data, batch_s, torch.device("cpu")), data)["wer"]


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    torch.set_num_threads(params.threshold_search.threads or max(1, os.cpu_count() or 1))
    ts, target = params.threshold_search, params.data.target_domain
    model = load_early_exit_model(args.model)
    vocab = model.student.vocab
    dev = domain_split(args.manifests, "dev", target, vocab)
    test = domain_split(args.manifests, "test", target, vocab)
    print(f"scoring every exit on {len(dev)} dev and {len(test)} test utterances")
    dev_table, test_table = exit_table(model, dev), exit_table(model, test)
    points = [
        (crit, t)
        for crit, fixed in (("entropy", ts.entropy_grid), ("confidence", ts.confidence_grid))
        for t in threshold_grid(dev_table, crit, fixed, ts.quantile_points)
    ]
    rows = []
    for crit, th in points:
        rows.append({"criterion": crit, "threshold": th, **evaluate_point(dev_table, crit, th)})
    speed = measured_speedups(model, dev, points, ts.speed_utterances, ts.speed_repeats)
    for r in rows:
        sp = r["speedup"] = speed[f"{r['criterion']}@{r['threshold']}"]
        r["speedup_measured"] = round(sp.median, 4)
        r["speedup_low"], r["speedup_high"] = round(sp.low, 4), round(sp.high, 4)
    full_dev = evaluate_point(dev_table, "entropy", -1.0)["wer"]  # nobody exits early
    budget = full_dev * (1 + ts.max_wer_increase_rel)
    chosen = choose_operating_point(rows, budget)  # None: serve the full student

    # Test: the chosen point, the full student and the teacher, speeds measured together.
    teachers = {d: load_ctc_model(p) for d, p in teacher_paths(params, args.teachers).items()}
    teacher_dev = {name: greedy_wer(t, dev, 60.0) for name, t in teachers.items()}
    tname = min(teacher_dev, key=teacher_dev.get)  # best teacher for the target, chosen on dev
    teacher = teachers[tname]
    crit, th = (chosen["criterion"], chosen["threshold"]) if chosen else ("entropy", -1.0)
    test_point = evaluate_point(test_table, crit, th)
    waves = [test.wave(i)[None] for i in range(min(ts.speed_utterances, len(test)))]
    times = interleaved_times(
        {
            "teacher": lambda w: teacher(w),
            "student": lambda w: model.student(w),
            "early_exit": lambda w: model.early_exit(w, None, crit, th),
        },
        waves,
        ts.speed_repeats,
        threads=torch.get_num_threads(),
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    ee = paired_speedup(times["student"], times["early_exit"])
    audio_s = sum(w.shape[1] for w in waves) / 16000
    metrics = {
        "criterion": crit if chosen else None,
        "threshold": th if chosen else None,
        "wer_full": round(evaluate_point(test_table, "entropy", -1.0)["wer"], 5),
        "wer_ee": round(test_point["wer"], 5),
        "speedup_measured": round(ee.median, 4),
        "speedup_measured_range": [round(ee.low, 4), round(ee.high, 4)],
        "speedup_flops": round(test_point["speedup_flops"], 4),
        "mean_exit_layer": round(test_point["mean_exit_layer"], 4),
        "wer_teacher": round(greedy_wer(teacher, test, 60.0), 5),
        "teacher": tname,
        "speedup_teacher_to_student": round(med["teacher"] / med["student"], 4),
        "speedup_teacher_to_ee": round(med["teacher"] / med["early_exit"], 4),
        "rtf": {k: round(v / audio_s, 5) for k, v in med.items()},
        "dev": {
            "wer_full": round(full_dev, 5),
            "wer_budget": round(budget, 5),
            "chosen_wer": round(chosen["wer"], 5) if chosen else None,
            "chosen_speedup_measured": chosen["speedup_measured"] if chosen else None,
            "chosen_speedup_range": [chosen["speedup_low"], chosen["speedup_high"]]
            if chosen
            else None,
        },
        "exit_share_test": test_point["exit_share"],
        "threads": torch.get_num_threads(),
    }
    plots = Path(args.plots)
    plots.parent.mkdir(parents=True, exist_ok=True)
    with open(plots, "w", newline="") as f:
        w = csv.DictWriter(
            f, fieldnames=["criterion", "threshold", "wer", "mean_exit_layer", "speedup_flops",
                           "speedup_measured", "speedup_low", "speedup_high", "within_budget"],
        )  # fmt: skip
        w.writeheader()
        for r in rows:
            w.writerow({**{k: r[k] for k in w.fieldnames if k in r},
                        "within_budget": r["wer"] <= budget + 1e-12})  # fmt: skip
    pareto_plot(rows, full_dev, budget, chosen, plots.with_suffix(".png"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "operating_point.json").write_text(
        json.dumps({"criterion": metrics["criterion"], "threshold": metrics["threshold"]}, indent=2)
        + "\n"
    )
    write_metrics(args.metrics, metrics, tracker)
    tracker.log_artifact(plots)
    tracker.log_artifact(plots.with_suffix(".png"))
    print(
        f"chosen: {crit} {th} → test WER {metrics['wer_ee']} (full {metrics['wer_full']}), "
        f"measured speedup {metrics['speedup_measured']}x (FLOPs {metrics['speedup_flops']}x); "
        f"teacher {tname} → student+EE {metrics['speedup_teacher_to_ee']}x"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, help="models/exits/model.safetensors")
    parser.add_argument("--teachers", required=True, help="models/teachers (one folder per domain)")
    parser.add_argument("--manifests", default="data/prepared")
    parser.add_argument("--out", required=True, help="models/threshold_search")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True, help="Pareto table CSV (+ PNG)")
    run_stage(
        main,
        parser,
        "threshold_search",
        ["seed", "data.teacher_domains", "data.target_domain", "threshold_search"],
    )
