"""Every performance figure of the project in one JSON report (`make bench`).

Runs each benchmark in its own process (ours vs the named reference on the same data, where a
reference exists) and writes `benchmarks/report.json` with the machine it ran on. Needs the
default pipeline's outputs (`make repro`) for the feature, k-means and inference figures. The
`cuda` section comes from a GPU box (`benchmarks/gpu_profile.py`, then `--cuda-from`) and is
kept by a CPU run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHES = {  # name → (script args, reference it is measured against)
    "synthesis": (["prepare.py", "--repeats", "1"], None),
    "mfcc_features": (["features.py", "--utterances", "600", "--repeats", "2"], None),
    "kmeans": (
        ["kmeans.py", "--iteration", "1"],
        "our torch Lloyd and sklearn MiniBatchKMeans (fairseq recipe)",
    ),
    "kmeans_iter2": (
        ["kmeans.py", "--iteration", "2", "--arms", "torch,faiss,faiss_100it,faiss_random"],
        "our torch Lloyd",
    ),
    "pretrain_throughput": (["pretrain.py", "--repeats", "3"], "torchaudio hubert_pretrain_model"),
    "objectives": (["objectives.py", "--repeats", "5"], "HuBERT's objective on the same encoder"),
    "inference": (["inference.py"], "the teacher (batch 1 and batched)"),
    "exit_costs": (["exit_costs.py"], "the full student (parts at batch 1, exit ceilings)"),
    "inference_form": (["inference_form.py"], "the same models in their training form"),
}


def parse(stdout: str):
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        rows = []
        for line in stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return rows


def machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        model = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        info["cpu"] = model[0].split(":", 1)[1].strip() if model else None
    except OSError:
        pass
    return info


def cuda_section(gpu_profile_json: Path) -> dict:
    """The GPU figures of a `benchmarks/gpu_profile.py` run (the GPU box has no `make bench`)."""
    run = json.loads(gpu_profile_json.read_text())
    return {
        "source": str(gpu_profile_json.relative_to(HERE.parent)),
        "device": run.get("device"),
        "torch": run.get("torch"),
        "cpus": run.get("cpus"),
        "results": run.get("bench", {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run a subset")
    ap.add_argument("--out", default=str(HERE / "report.json"))
    ap.add_argument(
        "--cuda-from",
        type=Path,
        help="only copy the benchmark rows of a gpu_profile.json into the report's `cuda` section",
    )
    args = ap.parse_args()
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    if args.cuda_from:
        old["cuda"] = cuda_section(args.cuda_from.resolve())
        Path(args.out).write_text(json.dumps(old, indent=2) + "\n")
        return
    report = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "results": {}}
    if "cuda" in old:  # measured on a GPU box; a CPU run keeps it
        report["cuda"] = old["cuda"]
    for name, (cmd, reference) in BENCHES.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        p = subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE.parent,
                           capture_output=True, text=True)  # fmt: skip
        entry = {"reference": reference, "seconds": round(time.perf_counter() - t0, 1)}
        if p.returncode == 0:
            entry["result"] = parse(p.stdout)
        else:
            entry["error"] = (p.stderr or p.stdout)[-2000:]
        report["results"][name] = entry
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
