"""The early-exit operating point: sweep thresholds on dev with measured speed, choose, and
report the choice on test next to the full student and the teacher (DESIGN §8).

Speeds are wall-clock times at batch size 1 on this process's threads, measured interleaved
with the full student (`hubert_ee.metrics.speed`); WER and FLOPs come from one exit table per
split (`early_exit_search.exit_table`), so every threshold is scored exactly.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from hubert_ee.config import ThresholdSearchParams
from hubert_ee.data.asr_data import ASRData
from hubert_ee.decode.early_exit_search import (
    ExitTable,
    choose_operating_point,
    evaluate_point,
    exit_table,
    threshold_grid,
)
from hubert_ee.decode.emissions import emissions, greedy_scores
from hubert_ee.metrics.speed import Speedup, interleaved_times, paired_speedup
from hubert_ee.metrics.wer import wer
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.early_exit import EarlyExitModel

NOBODY_EXITS = ("entropy", -1.0)  # a threshold no utterance passes: the full student


def measured_speedups(
    model: EarlyExitModel, data: ASRData, points: list[tuple[str, float]], n: int, repeats: int
) -> dict[str, Speedup]:
    """Each point's speedup over the full student, paired repeat by repeat (batch size 1)."""
    waves = [data.wave(i)[None] for i in range(min(n, len(data)))]
    cands = {"full": lambda w: model.student.logits(w)}
    for crit, th in points:
        cands[f"{crit}@{th}"] = lambda w, c=crit, t=th: model.early_exit(w, None, c, t)
    times = interleaved_times(cands, waves, repeats, threads=torch.get_num_threads())
    return {k: paired_speedup(times["full"], v) for k, v in times.items() if k != "full"}


def static_points(model: EarlyExitModel, dev: ASRData, table: ExitTable, n: int, repeats: int):
    """Every branch as a static model (all utterances leave at its layer): dev WER from the
    table, speedup over the full student measured as the sweep's (paired, batch size 1)."""
    waves = [dev.wave(i)[None] for i in range(min(n, len(dev)))]
    cands = {"full": lambda w: model.student.logits(w)}
    for layer in model.cfg.layers:
        cands[str(layer)] = lambda w, k=layer: model.static_exit(w, k)
    times = interleaved_times(cands, waves, repeats, threads=torch.get_num_threads())
    rows = []
    for j, layer in enumerate(model.cfg.layers):
        sp = paired_speedup(times["full"], times[str(layer)])
        rows.append(
            {
                "layer": layer,
                "wer": round(wer(table.refs, table.hyps[j]), 5),
                "speedup_measured": round(sp.median, 4),
                "speedup_low": round(sp.low, 4),
                "speedup_high": round(sp.high, 4),
            }
        )
    return rows


@dataclass
class Sweep:
    rows: list[
        dict
    ]  # one per (criterion, threshold): dev WER, exit layer, FLOPs and measured speed
    wer_full: float  # the full student's dev WER
    wer_budget: float
    chosen: dict | None  # the chosen row; None: serve the full student
    static: list[dict]  # each branch as a static model: layer, dev WER, measured speedup


def sweep(
    model: EarlyExitModel, dev: ASRData, table: ExitTable, ts: ThresholdSearchParams
) -> Sweep:
    """Both criteria over their grids (plus quantiles of the dev scores), each point's measured
    speedup, and the fastest point within `max_wer_increase_rel` of the full student's WER."""
    points = [
        (crit, t)
        for crit, fixed in (("entropy", ts.entropy_grid), ("confidence", ts.confidence_grid))
        for t in threshold_grid(table, crit, fixed, ts.quantile_points)
    ]
    rows = [{"criterion": c, "threshold": t, **evaluate_point(table, c, t)} for c, t in points]
    speed = measured_speedups(model, dev, points, ts.speed_utterances, ts.speed_repeats)
    for r in rows:
        sp = r["speedup"] = speed[f"{r['criterion']}@{r['threshold']}"]
        r["speedup_measured"] = round(sp.median, 4)
        r["speedup_low"], r["speedup_high"] = round(sp.low, 4), round(sp.high, 4)
    wer_full = evaluate_point(table, *NOBODY_EXITS)["wer"]
    budget = wer_full * (1 + ts.max_wer_increase_rel)
    static = static_points(model, dev, table, ts.speed_utterances, ts.speed_repeats)
    return Sweep(rows, wer_full, budget, choose_operating_point(rows, budget), static)


def greedy_wer(model: torch.nn.Module, data: ASRData, batch_s: float = 60.0) -> float:
    return greedy_scores(emissions(model, data, batch_s, torch.device("cpu")), data)["wer"]


def best_on(models: dict[str, torch.nn.Module], data: ASRData) -> str:
    """The name of the model with the lowest greedy WER on `data` (the teacher a student is
    compared with: the best one for the target, chosen on dev)."""
    wers = {name: greedy_wer(m, data) for name, m in models.items()}
    return min(wers, key=wers.get)


def test_report(
    model: EarlyExitModel,
    teacher: CTCModel,
    test: ASRData,
    table: ExitTable,
    chosen: dict | None,
    ts: ThresholdSearchParams,
) -> dict:
    """The chosen point on test: WER and FLOPs from the exit table, wall-clock speed of the
    teacher, the full student and the early-exit student measured together."""
    crit, th = (chosen["criterion"], chosen["threshold"]) if chosen else NOBODY_EXITS
    point = evaluate_point(table, crit, th)
    waves = [test.wave(i)[None] for i in range(min(ts.speed_utterances, len(test)))]
    times = interleaved_times(
        {
            "teacher": lambda w: teacher.logits(w),
            "student": lambda w: model.student.logits(w),
            "early_exit": lambda w: model.early_exit(w, None, crit, th),
        },
        waves,
        ts.speed_repeats,
        threads=torch.get_num_threads(),
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    ee = paired_speedup(times["student"], times["early_exit"])
    audio_s = sum(w.shape[1] for w in waves) / 16000
    return {
        "criterion": crit if chosen else None,
        "threshold": th if chosen else None,
        "wer_full": round(evaluate_point(table, *NOBODY_EXITS)["wer"], 5),
        "wer_ee": round(point["wer"], 5),
        "speedup_measured": round(ee.median, 4),
        "speedup_measured_range": [round(ee.low, 4), round(ee.high, 4)],
        "speedup_flops": round(point["speedup_flops"], 4),
        "mean_exit_layer": round(point["mean_exit_layer"], 4),
        "wer_teacher": round(greedy_wer(teacher, test), 5),
        "speedup_teacher_to_student": round(med["teacher"] / med["student"], 4),
        "speedup_teacher_to_ee": round(med["teacher"] / med["early_exit"], 4),
        "rtf": {k: round(v / audio_s, 5) for k, v in med.items()},
        "exit_share_test": point["exit_share"],
    }


def dev_summary(s: Sweep) -> dict:
    c = s.chosen
    return {
        "wer_full": round(s.wer_full, 5),
        "wer_budget": round(s.wer_budget, 5),
        "chosen_wer": round(c["wer"], 5) if c else None,
        "chosen_speedup_measured": c["speedup_measured"] if c else None,
        "chosen_speedup_range": [c["speedup_low"], c["speedup_high"]] if c else None,
        "static": {
            str(r["layer"]): {k: r[k] for k in ("wer", "speedup_measured")} for r in s.static
        },
        "static_within_budget_fastest": max(
            (r["speedup_measured"] for r in s.static if r["wer"] <= s.wer_budget + 1e-12),
            default=None,
        ),
    }


PARETO_COLUMNS = [
    "criterion", "threshold", "wer", "mean_exit_layer", "speedup_flops",
    "speedup_measured", "speedup_low", "speedup_high", "within_budget",
]  # fmt: skip


def write_pareto_csv(s: Sweep, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PARETO_COLUMNS)
        w.writeheader()
        for r in s.rows:
            row = {k: r[k] for k in PARETO_COLUMNS if k in r}
            w.writerow({**row, "within_budget": r["wer"] <= s.wer_budget + 1e-12})


def search_operating_point(
    model: EarlyExitModel,
    teachers: dict[str, torch.nn.Module],
    dev: ASRData,
    test: ASRData,
    ts: ThresholdSearchParams,
) -> tuple[Sweep, dict]:
    """The `threshold_search` stage's work: sweep and choose on dev, then report the choice on
    test next to the full student and the teacher with the best dev WER; (sweep, metrics)."""
    print(f"scoring every exit on {len(dev)} dev and {len(test)} test utterances")
    dev_table, test_table = exit_table(model, dev), exit_table(model, test)
    s = sweep(model, dev, dev_table, ts)
    tname = best_on(teachers, dev)
    report = test_report(model, teachers[tname], test, test_table, s.chosen, ts)
    metrics = {
        **report,
        "teacher": tname,
        "dev": dev_summary(s),
        "threads": torch.get_num_threads(),
    }
    return s, metrics
