"""Training form vs inference form (hubert_ee.models.inference_form) of the committed teacher,
student and early-exit student, timed as `threshold_search` times them: batch size 1 on the
target-domain test utterances, fixed threads, all six interleaved in one process, medians.

Prints JSON: ms per utterance of each, the teacher → student + early exit ratio in each form,
how much faster each model got, and how far the two forms' outputs are apart (max |Δ log p|,
exit layers that differ). Run after the pipeline:
`python benchmarks/inference_form.py [--root .] [--repeats 15]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.inference import operating_point, test_data  # noqa: E402
from hubert_ee.config import load_params  # noqa: E402
from hubert_ee.device import cpu_threads  # noqa: E402
from hubert_ee.metrics.speed import interleaved_times, paired_speedup  # noqa: E402
from hubert_ee.models.checkpoint import load_ctc_model, load_early_exit_model  # noqa: E402
from hubert_ee.models.inference_form import inference_form  # noqa: E402


def load(root: Path, teacher: str) -> dict:
    return {
        "teacher": load_ctc_model(root / f"models/teachers/{teacher}/model.safetensors"),
        "student_ee": load_early_exit_model(root / "models/exits/model.safetensors"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    root = Path(args.root)
    params = load_params(root / "params.yaml")
    threads = params.threshold_search.threads or cpu_threads()
    teacher = params.data.teacher_domains[0]
    point = operating_point(root)
    data = test_data(params, root, params.threshold_search.speed_utterances)
    waves = [data.wave(i)[None] for i in range(len(data))]
    trained = {k: m.eval() for k, m in load(root, teacher).items()}
    folded = {k: inference_form(m) for k, m in load(root, teacher).items()}
    fns = {}
    for form, ms in (("training", trained), ("inference", folded)):
        fns[f"teacher/{form}"] = lambda w, m=ms["teacher"]: m.logits(w)
        fns[f"student/{form}"] = lambda w, m=ms["student_ee"]: m.student.logits(w)
        fns[f"early_exit/{form}"] = lambda w, m=ms["student_ee"]: m.early_exit(w, None, *point)
    times = interleaved_times(fns, waves, args.repeats, threads=threads)
    n = len(waves)
    ms_per = {k: round(1000 * statistics.median(v) / n, 3) for k, v in times.items()}
    report = {
        "root": str(root),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "threads": threads,
        "utterances": n,
        "audio_seconds": round(sum(w.shape[1] for w in waves) / 16000, 2),
        "repeats": args.repeats,
        "operating_point": {"criterion": point[0], "threshold": point[1]},
        "ms_per_utterance": ms_per,
    }
    for form in ("training", "inference"):
        t, ee = times[f"teacher/{form}"], times[f"early_exit/{form}"]
        s = paired_speedup(t, ee)
        report[f"teacher_to_ee/{form}"] = [round(s.median, 3), round(s.low, 3), round(s.high, 3)]
        st = paired_speedup(times[f"student/{form}"], ee)
        report[f"student_to_ee/{form}"] = [round(st.median, 3), round(st.low, 3), round(st.high, 3)]
    for m in ("teacher", "student", "early_exit"):
        s = paired_speedup(times[f"{m}/training"], times[f"{m}/inference"])
        report[f"inference_form_gain/{m}"] = [round(s.median, 3), round(s.low, 3), round(s.high, 3)]
    report.update(agreement(trained, folded, waves, point))
    print(json.dumps(report, indent=1))


@torch.inference_mode()
def agreement(trained: dict, folded: dict, waves: list, point) -> dict:
    d_lp, moved = 0.0, 0
    for w in waves:
        for k in ("teacher",):
            a, b = trained[k].logits(w).logits, folded[k].logits(w).logits
            d_lp = max(d_lp, (a.log_softmax(-1) - b.log_softmax(-1)).abs().max().item())
        ra = trained["student_ee"].early_exit(w, None, *point)
        rb = folded["student_ee"].early_exit(w, None, *point)
        moved += ra.exit_layer != rb.exit_layer
        if ra.exit_layer == rb.exit_layer:
            d_lp = max(d_lp, (ra.log_probs[0] - rb.log_probs[0]).abs().max().item())
    return {"max_abs_log_prob_diff": float(f"{d_lp:.3g}"), "exit_layer_changed": int(moved)}


if __name__ == "__main__":
    main()
