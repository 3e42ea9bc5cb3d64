"""Does iteration 1 learn more if it gets iteration 2's time (issue 13)?

The final model's layer table (benchmarks/results/layer_pnmi_pretrain_iter2_default.json) puts
every Transformer layer below its own log-mel input: 600 + 600 steps on this CPU teach the
layers little. This script pretrains iteration 1 again on the default run's MFCC labels with
`--steps` steps (warm-up 10 %), everything else from params.yaml, by running the real stage
(`python -m tasks.pretrain`) on a copy of params.yaml in a scratch folder, then scores every
layer with benchmarks/layer_pnmi.py (dev, K=100, CMVN, faiss). One JSON object: the stage's
valid loss and masked accuracy, its wall time and the layer table. Dev only.

`--model-overrides` changes the encoder instead (the front-end probe: does the CNN front end
learn the MFCC targets at all at a short budget? the first GPU run's did not).

Run: `python experiments/pretrain_budget.py --steps 1200 --work /tmp/pretrain_budget
      --out experiments/results/pretrain_budget_iter1_1200.json`
     `python experiments/pretrain_budget.py --steps 100 --work /tmp/fe_cnn_preln
      --model-overrides '{"frontend": "cnn", "layer_norm_first": true}'
      --out experiments/results/frontend_probe_cnn_preln_100.json`
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from report import emit  # experiments/report.py (the script's folder is on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--iteration", type=int, default=1, help="whose labels (data/labels/iter<N>)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--work", required=True, help="scratch folder (model, resume state, metrics)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument(
        "--model-overrides",
        type=json.loads,
        default={},
        help='JSON merged into model.overrides, e.g. \'{"frontend": "cnn", "layer_norm_first": true}\'',
    )
    ap.add_argument(
        "--pretrain-overrides",
        type=json.loads,
        default={},
        help="JSON merged into the pretrain section, e.g. '{\"feature_grad_mult\": 1.0}'",
    )
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(Path(args.params).read_text())
    params["pretrain"]["max_steps"] = args.steps
    params["pretrain"]["warmup_steps"] = max(1, args.steps // 10)
    params["model"]["overrides"] = {**params["model"].get("overrides", {}), **args.model_overrides}
    params["pretrain"].update(args.pretrain_overrides)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tasks.pretrain", "--iteration", str(args.iteration),
         "--labels", f"data/labels/iter{args.iteration}", "--manifests", "data/prepared",
         "--out", str(work / "model"), "--state", str(work / "state"),
         "--metrics", str(work / "metrics.json"), "--plots", str(work / "plots.csv"),
         "--params", str(work / "params.yaml")],
        check=True, env={**os.environ, "HUBERT_EE_TRACKING": "off"},  # an experiment, not a run
    )  # fmt: skip
    wall = time.perf_counter() - t0
    layers = subprocess.run(
        [sys.executable, "benchmarks/layer_pnmi.py", str(work / "model/encoder.safetensors"),
         "--split", "dev", "--k", "100"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    metrics = json.loads((work / "metrics.json").read_text())
    report = {
        "iteration_labels": args.iteration,
        "steps": args.steps,
        "model_overrides": params["model"]["overrides"],
        "pretrain_overrides": args.pretrain_overrides,
        "wall_s": round(wall, 1),
        "stage_metrics": {k: v for k, v in metrics.items() if not isinstance(v, dict | list)},
        "layer_pnmi": json.loads(layers[layers.index("{") :]),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
