"""Inference speed and memory: teacher vs student vs student + early exit (prints JSON).

Same process, same utterances (target-domain test), fixed threads, interleaved repeats, median:
real-time factor at batch size 1 and in length-bucketed batches. Memory of each model is
measured in a fresh child process: the process peak, and the resident memory the model adds
(weights + activations, sampled after every utterance) over the process after imports and data.
Run after the pipeline: `python benchmarks/inference.py`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hubert_ee.config import load_params  # noqa: E402
from hubert_ee.data.asr_data import ASRData, collate_asr  # noqa: E402
from hubert_ee.data.batching import bucket_batches  # noqa: E402
from hubert_ee.data.manifest import load_split  # noqa: E402
from hubert_ee.data.vocab import CharVocab  # noqa: E402
from hubert_ee.metrics.speed import interleaved_medians  # noqa: E402
from hubert_ee.models.checkpoint import load_ctc_model, load_early_exit_model  # noqa: E402
from hubert_ee.models.inference_form import inference_form  # noqa: E402


def operating_point(root: Path) -> tuple[str, float]:
    point = json.loads((root / "models/threshold_search/operating_point.json").read_text())
    if point["criterion"] is None:  # the search chose no early exit
        return "entropy", -1.0
    return point["criterion"], point["threshold"]


def load_one(root: Path, params, name: str):
    """The model in its inference form (hubert_ee.models.inference_form)."""
    if name == "teacher":
        teacher = params.data.teacher_domains[0]
        model = load_ctc_model(root / f"models/teachers/{teacher}/model.safetensors")
    elif name == "student":
        model = load_ctc_model(root / "models/distill/student.safetensors")
    else:
        model = load_early_exit_model(root / "models/exits/model.safetensors")
    return inference_form(model)


def models(root: Path):
    params = load_params(root / "params.yaml")
    names = ("teacher", "student", "student_ee")
    return params, {n: load_one(root, params, n) for n in names}, operating_point(root)


def runner(name, model, point):
    if name == "student_ee":
        return lambda w, n: model.early_exit(w, n, *point)
    return lambda w, n: model.logits(w, n)


def child(name: str, root: Path, n: int) -> None:
    """Peak RSS of one model alone: after imports (baseline), and after loading + inference."""
    params = load_params(root / "params.yaml")
    data = test_data(params, root, n)
    waves = [data.wave(i)[None] for i in range(len(data))]
    proc = psutil.Process()
    base = proc.memory_info().rss / 2**20
    fn = runner(name, load_one(root, params, name), operating_point(root))
    grown = base
    with torch.inference_mode():
        for w in waves:
            fn(w, None)
            grown = max(grown, proc.memory_info().rss / 2**20)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"baseline_rss_mb": base, "grown_rss_mb": grown, "peak_rss_mb": peak}))


def test_data(params, root: Path, n: int) -> ASRData:
    df = load_split(root / "data/prepared", "test")
    df = df[df["domain"] == params.data.target_domain].head(n).copy()
    df["path"] = [str(root / p) for p in df["path"]]
    return ASRData(df, CharVocab())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default=str(ROOT))
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-seconds", type=float, default=40.0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", help="cpu | cuda (batch-1 and batched on a GPU)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = Path(args.root)
    if args.child:
        return child(args.child, root, args.utterances)
    device = torch.device(args.device)
    params, ms, point = models(root)
    ms = {name: m.to(device).eval() for name, m in ms.items()}
    data = test_data(params, root, args.utterances)
    audio_s = float(data.lengths().sum()) / 16000
    singles = [(data.wave(i)[None].to(device), None) for i in range(len(data))]
    batches = [
        (b["wave"].to(device), b["lengths"].to(device))
        for b in (
            collate_asr([data[i] for i in idx])
            for idx in bucket_batches(data.lengths(), int(args.batch_seconds * 16000), 0, 0)
        )
    ]
    out = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
           "utterances": len(data), "audio_seconds": round(audio_s, 2), "threads": args.threads,
           "operating_point": {"criterion": point[0], "threshold": point[1]}}  # fmt: skip
    for mode, inputs in (("batch1", singles), ("batched", batches)):
        fns = {name: runner(name, m, point) for name, m in ms.items()}
        med = interleaved_medians(
            {k: (lambda x, f=f: f(*x)) for k, f in fns.items()}, inputs, args.repeats, args.threads
        )
        out[mode] = {
            "rtf": {k: round(v / audio_s, 5) for k, v in med.items()},
            "x_realtime": {k: round(audio_s / v, 1) for k, v in med.items()},
            "speedup_vs_teacher": {k: round(med["teacher"] / v, 3) for k, v in med.items()},
        }
    if device.type == "cuda":  # host memory of a CPU deployment means nothing here
        print(json.dumps(out, indent=2))
        return
    out["peak_rss_mb"], out["model_rss_mb"] = {}, {}  # whole process; above the import baseline
    for name in ms:
        p = subprocess.run(
            [sys.executable, __file__, "--root", str(root), "--child", name,
             "--utterances", str(args.utterances)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        mem = json.loads(p.stdout.splitlines()[-1])
        out["peak_rss_mb"][name] = round(mem["peak_rss_mb"], 1)
        out["model_rss_mb"][name] = round(mem["grown_rss_mb"] - mem["baseline_rss_mb"], 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
