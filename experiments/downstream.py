"""What would the DAG's later stages give on another pretrained encoder (issues 13 and 14)?

Off-DAG pretraining runs (`experiments/pretrain_budget.py`) are scored by fine-tuning one
teacher arm (`experiments/low_label.py`). Whether a better encoder also makes a better lecture
teacher, teachers that hear the target, a better student and better distillation is what the
rest of the DAG says. This runs the DAG's own commands (read from dvc.yaml, `foreach` expanded)
for `--stages` in a scratch workspace `--work` whose `models/pretrain_iter2/encoder.safetensors`
is `--encoder` and whose `data/*` and params.yaml are the workspace's (linked, never written;
`data/teacher_outputs` is the run's own). Tracking is off: an experiment, not a run. The code is
this checkout's. One JSON object: each stage's metrics file and wall time.

A stage that finished on the same encoder is not run again (a marker per stage); a killed stage
resumes from its own state under `<work>/checkpoints`, as in the DAG.

Run in a workspace after `pretrain_iter2` (the default profile: the repo root):
  `python experiments/downstream.py --encoder runs/pretrain_6400/model/encoder.safetensors
      --work runs/downstream_6400 --out experiments/results/downstream_iter1_6400.json`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml
from report import emit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_profile import expand_stages  # noqa: E402  (the GPU runner's dvc.yaml reader)

DEFAULT_STAGES = ["supernet", "finetune@read", "finetune@lecture", "teacher_outputs", "distill"]
OWN_DATA = {"teacher_outputs"}  # written by a stage this runs: never linked


def metrics_path(cmd: str) -> str:
    words = shlex.split(cmd)
    return words[words.index("--metrics") + 1]


def link_workspace(root: Path, work: Path, encoder: Path) -> str:
    """`work` sees root's data and params; its iteration-2 encoder is `encoder`. Returns the
    digest of the encoder and the params, which every stage marker records (either changed:
    every stage runs again; a stage's own resume state is checked by the stage)."""
    (work / "data").mkdir(parents=True, exist_ok=True)
    for entry in (root / "data").iterdir():
        link = work / "data" / entry.name
        if entry.name not in OWN_DATA and not link.exists():
            link.symlink_to(entry.resolve())
    params = work / "params.yaml"
    if not params.exists():
        params.write_bytes((root / "params.yaml").read_bytes())
    target = work / "models/pretrain_iter2/encoder.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    weights = encoder.read_bytes()
    target.write_bytes(weights)
    return hashlib.sha256(weights + params.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="the workspace (after pretrain_iter2)")
    ap.add_argument("--encoder", required=True, help="stands in for models/pretrain_iter2")
    ap.add_argument("--work", required=True, help="scratch workspace (linked data, own models)")
    ap.add_argument("--stages", nargs="+", default=DEFAULT_STAGES)
    ap.add_argument("--out")
    args = ap.parse_args()
    root, work = Path(args.root).resolve(), Path(args.work).resolve()
    commands = dict(
        expand_stages(
            yaml.safe_load((REPO / "dvc.yaml").read_text()),
            yaml.safe_load((root / "params.yaml").read_text()),
        )
    )
    if unknown := [s for s in args.stages if s not in commands]:
        ap.error(f"--stages {unknown}: not in dvc.yaml (known: {', '.join(commands)})")
    digest = link_workspace(root, work, Path(args.encoder).resolve())
    env = {**os.environ, "HUBERT_EE_TRACKING": "off", "PYTHONPATH": str(REPO)}
    report: dict = {
        "question": "the DAG's later stages on another pretrained encoder",
        "command": shlex.join(["python", "experiments/downstream.py", *sys.argv[1:]]),
        "encoder": args.encoder,
        "inputs_sha256": digest,
        "stages": {},
    }
    for stage in args.stages:
        cmd, marker = commands[stage], work / "done" / stage
        done = json.loads(marker.read_text()) if marker.exists() else {}
        if done.get("inputs_sha256") == digest:
            seconds = done["wall_s"]
            print(f"{stage}: finished on this encoder already; collecting", flush=True)
        else:
            print(f"{stage}: {cmd}", flush=True)
            t0 = time.perf_counter()
            words = shlex.split(cmd)
            words[0] = sys.executable if words[0] == "python" else words[0]
            if subprocess.run(words, cwd=work, env=env).returncode:
                sys.exit(f"stage {stage} failed; its state is under {work}/checkpoints")
            seconds = round(time.perf_counter() - t0, 1)
            marker.parent.mkdir(exist_ok=True)
            marker.write_text(json.dumps({"inputs_sha256": digest, "wall_s": seconds}))
        report["stages"][stage] = {
            "wall_s": seconds,
            "metrics": json.loads((work / metrics_path(cmd)).read_text()),
        }
        emit(report, args.out, partial=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
