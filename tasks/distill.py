"""Stage `distill`: uncertainty-matching KD from the domain teachers into a small student.

Trains every ablation arm with the same budget (DESIGN §7): student_only, tok_kd, unc_kd and
unc_kd_<teacher>; scores each on the test split of every domain; keeps the student of the arm
with the best target-domain dev WER; measures the teacher/student speed ratio at batch size 1.
The arms train `num_workers` at a time (0: one per core), one torch thread each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.prepare import resolve_workers
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.teacher_outputs import teacher_paths
from hubert_ee.models.checkpoint import load_ctc_model, load_encoder, save_ctc_model
from hubert_ee.plots import table_with_curves
from hubert_ee.tracking import StageTracker
from hubert_ee.train.kd_arms import KDJob, distill_student, kd_data
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    dp, target, domains = params.distill, params.data.target_domain, params.data.teacher_domains
    vocab = CharVocab()
    teachers = {d: load_ctc_model(p) for d, p in teacher_paths(domains, args.teachers).items()}
    data = kd_data(args.manifests, args.teacher_outputs, domains, target, dp.use_unlabeled, vocab)
    dev = domain_split(args.manifests, "dev", target, vocab)
    tests = {d: domain_split(args.manifests, "test", d, vocab) for d in [*domains, target]}
    job = KDJob(
        dp,
        params.seed,
        target,
        load_encoder(args.encoder),
        data,
        dev,
        tests,
        Path(args.state),
        args.stage_key,
        lambda m, step: tracker.log_metrics(m, step=step),
        workers=resolve_workers(params.num_workers),
    )
    run = distill_student(job, teachers)
    out, plots = Path(args.out), Path(args.plots)
    save_ctc_model(run.student, out / "student.safetensors", {"arm": run.best, "domain": target})
    table_with_curves(
        plots,
        ["arm", "domain", "wer"],
        run.table(),
        run.arms.results,
        f"distillation into the student ({target} dev)",
    )
    write_metrics(args.metrics, run.metrics, tracker, plots)
    print(
        f"student ({run.best}) in {out}/student.safetensors; {target} test WER per arm: "
        + ", ".join(f"{a} {m[target]:.3f}" for a, m in run.arms.wer.items())
        + f"; teacher/student speed {run.metrics['speed_ratio']}x"
    )


if __name__ == "__main__":
    parser = stage_parser(
        __doc__,
        "teachers",
        "manifests",
        "state",
        "metrics",
        teacher_outputs="data/teacher_outputs",
        encoder="pretrained encoder (student init)",
        out="models/distill",
        plots="WER per arm and domain (CSV + PNG)",
    )
    run_stage(
        main,
        parser,
        "distill",
        ["seed", "num_workers", "data.teacher_domains", "data.target_domain", "distill"],
        inputs=["teachers", "teacher_outputs", "encoder", "manifests"],
        all_threads=True,
    )
