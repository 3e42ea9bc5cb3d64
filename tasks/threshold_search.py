"""Stage `threshold_search`: pick the early-exit operating point by measured speed (DESIGN §8).

Sweeps the entropy and the confidence criterion over their grids on the dev split (WER, mean
exit layer, FLOPs speedup, measured wall-clock speedup against the full student at batch size
1), chooses the fastest point whose dev WER is within `max_wer_increase_rel` of the full
student's, and reports it on test next to the teacher and the full student.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.decode.operating_point import search_operating_point, write_pareto_csv
from hubert_ee.decode.teacher_outputs import teacher_paths
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import load_ctc_model, load_early_exit_model
from hubert_ee.models.inference_form import inference_form
from hubert_ee.plots import pareto_plot
from hubert_ee.tracking import StageTracker
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    ts, target = params.threshold_search, params.data.target_domain
    torch.set_num_threads(ts.threads or cpu_threads())
    model = inference_form(load_early_exit_model(args.model))
    dev = domain_split(args.manifests, "dev", target, model.student.vocab)
    test = domain_split(args.manifests, "test", target, model.student.vocab)
    teachers = {
        d: inference_form(load_ctc_model(p))
        for d, p in teacher_paths(params.data.teacher_domains, args.teachers).items()
    }
    s, metrics = search_operating_point(model, teachers, dev, test, ts)
    plots = Path(args.plots)
    write_pareto_csv(s, plots)
    pareto_plot(s.rows, s.wer_full, s.wer_budget, s.chosen, plots.with_suffix(".png"), s.static)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    point = {"criterion": metrics["criterion"], "threshold": metrics["threshold"]}
    (out / "operating_point.json").write_text(json.dumps(point, indent=2) + "\n")
    write_metrics(args.metrics, metrics, tracker, plots)
    print(
        f"chosen: {point} → test WER {metrics['wer_ee']} (full {metrics['wer_full']}), "
        f"measured speedup {metrics['speedup_measured']}x (FLOPs {metrics['speedup_flops']}x); "
        f"teacher {metrics['teacher']} → student+EE {metrics['speedup_teacher_to_ee']}x"
    )


if __name__ == "__main__":
    parser = stage_parser(
        __doc__,
        "teachers",
        "manifests",
        "metrics",
        model="models/exits/model.safetensors",
        out="models/threshold_search",
        plots="Pareto table CSV (+ PNG)",
    )
    run_stage(
        main,
        parser,
        "threshold_search",
        ["seed", "data.teacher_domains", "data.target_domain", "threshold_search"],
    )
