"""Which student shape lets early exit pay (issue 15, item 3): a deeper, thinner student moves
cost from the part every utterance pays (front end, positional convolution, first layer) to the
layers an early exit skips. For each shape (`distill.student` overrides; layers beyond the
teacher's depth start random, the rest are the teacher's leading slices): the `distill` stage's
`tok_kd` arm (the arm the stage keeps in the committed run; one seed, the stage's budget), the
`exits` stage's branches, then the `threshold_search` stage's own sweep and test report.

Choice on dev: among shapes whose student dev WER is within `--wer-tolerance` of the first
shape's (the current default), the highest dev teacher → early-exit speedup (teacher/student
time ratio measured on dev × the chosen dev point's measured speedup). Test is reported only.
Run in a workspace after `distill` (the default profile runs in the repo root):
  `python experiments/student_shapes.py [--root .]
      [--out experiments/results/student_shapes.json]`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from exit_branches import exits_then_search, load_teachers  # experiments/exit_branches.py
from report import emit  # experiments/report.py (the script's folder is on sys.path)

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.student import parameter_count
from hubert_ee.train.kd_arms import arms, kd_data, speed_ratio, test_scores, train_arm

SHAPES = [
    {},  # the default's distill.student
    {"num_layers": 6, "ffn_dim": 256},
    {"num_layers": 8, "ffn_dim": 256},
]


def shape_arm(root: Path, params, shape: dict, state: Path) -> dict:
    """`state` is this shape's own folder (resume files of its distillation and exit runs)."""
    dp = params.distill.model_copy(update={"student": {**params.distill.student, **shape}})
    target, domains = params.data.target_domain, params.data.teacher_domains
    vocab = CharVocab()
    manifests = root / "data/prepared"
    teachers = load_teachers(root, params)
    data = kd_data(manifests, root / "data/teacher_outputs", domains, target, False, vocab)
    splits = {s: domain_split(manifests, s, target, vocab) for s in ("train", "dev", "test")}
    name = json.dumps(shape, sort_keys=True)
    t0 = time.perf_counter()
    student, result = train_arm(
        "tok_kd",
        arms(dp, domains)["tok_kd"],
        dp,
        params.seed,
        load_encoder(root / "models/pretrain_iter2/encoder.safetensors"),
        data,
        splits["dev"],
        state / "distill.pt",
        f"student_shapes:{name}",
        lambda m, step: None,
    )
    distill_s = time.perf_counter() - t0
    student.eval()
    test_wer = test_scores(student, {target: splits["test"]}, dp.eval_batch_seconds)["wer"][target]
    teacher = next(iter(teachers.values()))
    dev_ratio = speed_ratio(teacher, student, splits["dev"], dp.speed_utterances, dp.speed_repeats)
    run, _, ts, _ = exits_then_search(
        params,
        params.exits,
        student,
        splits,
        teachers,
        state / "exits.pt",
        f"student_shapes:{name}:exits",
        lambda row: None,
    )
    dev_ee = ts["dev"]["chosen_speedup_measured"] or 1.0
    return {
        "student": {**params.distill.student, **shape},
        "params_student": parameter_count(student),
        "distill_s": round(distill_s, 1),
        "dev_wer": round(result.best["wer"], 5),
        "test_wer": round(test_wer, 5),
        "dev_teacher_to_student": dev_ratio["speed_ratio"],
        "dev_teacher_to_ee": round(dev_ratio["speed_ratio"] * dev_ee, 3),
        "exits": run.metrics(),
        "threshold_search": ts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--root", default=".", help="a workspace after `distill` (default profile: the repo root)"
    )
    ap.add_argument("--params", default="params.yaml", help="the workspace's params, or these")
    ap.add_argument("--shapes", type=json.loads, default=SHAPES, help="JSON list of overrides")
    ap.add_argument("--wer-tolerance", type=float, default=0.01)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    report: dict = {"root": str(root), "threads": cpu_threads(), "shapes": []}
    with tempfile.TemporaryDirectory() as state:
        for i, shape in enumerate(args.shapes):
            report["shapes"].append(shape_arm(root, params, shape, Path(state) / f"shape{i}"))
            emit(report, args.out, partial=True)
    base = report["shapes"][0]["dev_wer"]
    ok = [r for r in report["shapes"] if r["dev_wer"] <= base + args.wer_tolerance]
    report["chosen_on_dev"] = max(ok, key=lambda r: r["dev_teacher_to_ee"])["student"]
    emit(report, args.out)


if __name__ == "__main__":
    main()
