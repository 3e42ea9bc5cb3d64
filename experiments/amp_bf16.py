"""Does bf16 autocast of training (`amp: bf16`) keep what the read teacher learns? A fine-tuning
step is 1.4x faster in bf16 on a CPU with AVX-512 BF16 (`benchmarks/finetune_step.py --amp
fp32,bf16`), which would bring the default run under the budget on such hosts, if the teachers
still learn. This collects the read teacher's pretrained-arm dev curves of runs that differ only
in where bf16 is used (pretraining, fine-tuning, both, neither) and judges each run's best dev
WER against the fp32 run's with the teachers' seed spread (0.03, README "Teachers"). Dev only.

A run is `LABEL=SOURCE`, SOURCE one of: a stage's plots CSV (`step,dev_wer_pretrained,...`), a
stage's log (JSON lines with `arm`, `step`, `dev_wer`; a killed run's log gives its curve so
far), or `REV:plots/finetune_read.csv` (the committed run at a git revision).
Run: `python experiments/amp_bf16.py --baseline fp32 fp32=06955ef:plots/finetune_read.csv
      bf16_both=<log of the stage> ... [--out experiments/results/amp_bf16.json]`
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
from pathlib import Path

from report import emit

TOLERANCE = 0.03  # the teachers' dev-WER seed spread (0.01-0.03)


def verdict(change: float) -> str:
    """A change of best dev WER against a baseline, judged with the teachers' seed spread."""
    return "tie" if abs(change) <= TOLERANCE else "worse" if change > 0 else "better"


def read_source(source: str, arm: str) -> list[tuple[int, float]]:
    """(step, dev WER) of `arm`, in step order."""
    if ":" in source and not Path(source).exists():
        rev, path = source.split(":", 1)
        text = subprocess.run(["git", "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip
    else:
        text = Path(source).read_text()
    if text.startswith("step,"):
        rows = csv.DictReader(io.StringIO(text))
        return [(int(r["step"]), float(r[f"dev_wer_{arm}"])) for r in rows if r[f"dev_wer_{arm}"]]
    curve = {}
    for line in text.splitlines():
        if line.startswith("{") and '"dev_wer"' in line:
            row = json.loads(line)
            if row.get("arm", arm) == arm:
                curve[int(row["step"])] = float(row["dev_wer"])
    return sorted(curve.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="LABEL=SOURCE")
    ap.add_argument("--baseline", required=True, help="the fp32 run's label")
    ap.add_argument("--arm", default="pretrained")
    ap.add_argument("--note", action="append", default=[], help="LABEL=what differs")
    ap.add_argument("--out")
    args = ap.parse_args()
    notes = dict(n.split("=", 1) for n in args.note)
    curves = {}
    for spec in args.runs:
        label, source = spec.split("=", 1)
        curves[label] = {"source": source, "curve": read_source(source, args.arm)}
    base = dict(curves[args.baseline]["curve"])
    rows = []
    for label, c in curves.items():
        steps = dict(c["curve"])
        last = max(steps)
        best = min(steps.values())
        # a killed run is judged at its last evaluation against the baseline at the same step
        ref = min(v for s, v in base.items() if s <= last)
        change = best - ref
        rows.append({
            "run": label, "what": notes.get(label, ""), "source": c["source"],
            "last_step": last, "best_dev_wer": best, "baseline_best_to_same_step": ref,
            "verdict": verdict(change),
            "dev_curve": c["curve"],
        })  # fmt: skip
    emit({"arm": args.arm, "tolerance": TOLERANCE, "baseline": args.baseline, "runs": rows},
         args.out)  # fmt: skip


if __name__ == "__main__":
    main()
