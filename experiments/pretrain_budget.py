"""Does iteration 1 learn more if it gets iteration 2's time (issue 13)?

The final model's layer table (benchmarks/results/layer_pnmi_pretrain_iter2_default.json) puts
every Transformer layer below its own log-mel input: 600 + 600 steps on this CPU teach the
layers little. This script pretrains iteration 1 again on the default run's MFCC labels with
`--steps` steps (warm-up 10 %), everything else from params.yaml, by running the real stage
(`python -m tasks.pretrain`) on a copy of params.yaml in a scratch folder, then scores every
layer with benchmarks/layer_pnmi.py (dev, K=100, CMVN, faiss). One JSON object: the stage's
valid loss and masked accuracy, its wall time and the layer table. Dev only.

`--snapshots N [N ...]` also keeps the encoder at those steps of the same run (the stage's
resume state is read whenever it is rewritten, every `pretrain.checkpoint_every` steps, so each N
must be a multiple of it; written as `<work>/encoder_step<N>.safetensors`) and scores their
layers too: a curve over pretraining steps from one run, whose earlier points sit mid-schedule
(lr not yet decayed), not at the end of their own schedule. A `--work` whose stage finished on
the same params copy is collected (layer tables, snapshots), not trained again.

`--iteration 2 --previous ENCODER` asks the same of iteration 2 from any iteration-1 encoder: the
DAG's features and kmeans stages build its labels in `--work` (`iterations.iter2`'s layer and K;
`kmeans` in the JSON) and pretraining starts from it, as `pretrain.init_from_previous` does.

`--model-overrides` changes the encoder instead (the front-end probe: does the CNN front end
learn the MFCC targets at all at a short budget? the first GPU run's did not).

Run: `python experiments/pretrain_budget.py --steps 1200 --work /tmp/pretrain_budget
      --out experiments/results/pretrain_budget_iter1_1200.json`
     `python experiments/pretrain_budget.py --steps 6400 --snapshots 800 1600 3200 4800
      --work runs/pretrain_6400 --out experiments/results/pretrain_budget_iter1_6400.json`
     `python experiments/pretrain_budget.py --iteration 2 --previous
      runs/pretrain_6400/model/encoder.safetensors --steps 1600 --snapshots 400 800
      --work runs/it2_6400 --out experiments/results/pretrain_budget_iter2_from_6400.json`
     `python experiments/pretrain_budget.py --steps 100 --work /tmp/fe_cnn_preln
      --model-overrides '{"frontend": "cnn", "layer_norm_first": true}'
      --out experiments/results/frontend_probe_cnn_preln_100.json`
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from report import emit, stage_finished  # experiments/report.py (on sys.path)

from hubert_ee.config import load_params
from hubert_ee.models.checkpoint import save_encoder
from hubert_ee.train.pretrain import initial_encoder


class SnapshotKeeper:
    """Writes the encoder of the stage's resume state whenever that state is at a wanted step.

    The state file is replaced atomically, so the bytes read here are one whole state."""

    def __init__(self, work: Path, steps: list[int], params_path: Path, iteration: int) -> None:
        self.state, self.work = work / "state/last.pt", work
        self.pending = {n for n in steps if not self.path(n).exists()}  # a resumed run kept some
        self.params, self.iteration, self.seen = params_path, iteration, None

    def path(self, step: int) -> Path:
        return self.work / f"encoder_step{step}.safetensors"

    def poll(self) -> None:
        if not self.pending or not self.state.exists():
            return
        stamp = self.state.stat().st_mtime_ns
        if stamp == self.seen:
            return
        self.seen = stamp
        state = torch.load(io.BytesIO(self.state.read_bytes()), weights_only=True)
        step = int(state["step"])
        if step in self.pending:
            encoder = initial_encoder(load_params(self.params).model, 1)  # weights replaced
            prefix = "encoder."
            encoder.load_state_dict(
                {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
            )
            meta = {"iteration": str(self.iteration), "steps": str(step)}
            save_encoder(encoder, self.path(step), meta)
            print(f"kept the encoder at step {step}: {self.path(step)}", flush=True)
            self.pending.discard(step)


EXPERIMENT_ENV = {**os.environ, "HUBERT_EE_TRACKING": "off"}  # an experiment, not a run


def check_previous(work: Path, previous: Path | None) -> None:
    """A --work belongs to one --previous encoder (its labels and its init): refuse another."""
    mark = work / "previous.json"
    if previous is None:
        if mark.exists():
            sys.exit(f"{work} was built from --previous {json.loads(mark.read_text())['path']}; "
                     "pass it again or use another --work")  # fmt: skip
        return
    digest = hashlib.sha256(previous.read_bytes()).hexdigest()
    here = {"path": str(previous), "sha256": digest}
    if mark.exists() and json.loads(mark.read_text()) != here:
        sys.exit(f"{work} was built from another --previous ({mark}); use another --work")
    if not mark.exists() and (work / "params.yaml").exists():
        sys.exit(f"{work} holds a run without --previous; use another --work")
    mark.write_text(json.dumps(here, indent=1) + "\n")


def build_labels(iteration: int, previous: Path, work: Path) -> dict:
    """The DAG's features and kmeans stages on `previous` (its `iterations.iter<N>` layer and K),
    into `work`; the kmeans metrics (PNMI, domain PNMI, MFCC at the same K)."""
    metrics = work / "kmeans.json"
    if not metrics.exists():
        common = ["--iteration", str(iteration), "--manifests", "data/prepared",
                  "--params", str(work / "params.yaml")]  # fmt: skip
        for cmd in (
            ["tasks.features", "--checkpoint", str(previous), "--out", str(work / "features"),
             "--metrics", str(work / "features.json")],
            ["tasks.kmeans", "--features", str(work / "features"),
             "--mfcc-features", "data/features/iter1", "--out", str(work / "labels"),
             "--metrics", str(metrics)],
        ):  # fmt: skip
            subprocess.run([sys.executable, "-m", *cmd, *common], check=True, env=EXPERIMENT_ENV)
    return json.loads(metrics.read_text())


def run_stage(
    iteration: int, work: Path, keeper: SnapshotKeeper, labels: str, previous: Path | None
) -> float:
    """The real stage on the params copy in `work`, keeping snapshots while it trains."""
    t0 = time.perf_counter()
    init = ["--previous", str(previous)] if previous else []
    stage = subprocess.Popen(
        [sys.executable, "-m", "tasks.pretrain", "--iteration", str(iteration),
         "--labels", labels, "--manifests", "data/prepared",
         "--out", str(work / "model"), "--state", str(work / "state"),
         "--metrics", str(work / "metrics.json"), "--plots", str(work / "plots.csv"),
         "--params", str(work / "params.yaml"), *init],
        env=EXPERIMENT_ENV,
    )  # fmt: skip
    while stage.poll() is None:
        keeper.poll()
        time.sleep(2)
    if stage.returncode:
        sys.exit(f"the pretraining stage failed (exit {stage.returncode})")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--iteration", type=int, default=1, help="whose labels (data/labels/iter<N>)")
    ap.add_argument(
        "--previous",
        help="iterations >= 2: the previous iteration's encoder. Its labels are built in --work by "
        "the DAG's features and kmeans stages, and pretraining starts from it "
        "(pretrain.init_from_previous); without it the DAG's data/labels/iter<N> are used",
    )
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
    ap.add_argument(
        "--snapshots",
        type=int,
        nargs="*",
        default=[],
        help="also keep the encoder at these steps (multiples of checkpoint_every)",
    )
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load(Path(args.params).read_text())
    params["pretrain"]["max_steps"] = args.steps
    params["pretrain"]["warmup_steps"] = max(1, args.steps // 10)
    params["model"]["overrides"] = {**params["model"].get("overrides", {}), **args.model_overrides}
    params["pretrain"].update(args.pretrain_overrides)
    every = params["pretrain"]["checkpoint_every"]
    if bad := [n for n in args.snapshots if n % every or not 0 < n < args.steps]:
        ap.error(
            f"--snapshots {bad}: each must be a multiple of checkpoint_every ({every}) "
            f"below --steps ({args.steps})"
        )
    previous = Path(args.previous) if args.previous else None
    if previous is not None and args.iteration < 2:
        ap.error("--previous needs --iteration 2 or later")
    check_previous(work, previous)
    keeper = SnapshotKeeper(work, args.snapshots, work / "params.yaml", args.iteration)
    if stage_finished(work, params):
        print(f"{work}: the stage finished on these params already; collecting its outputs")
        wall = json.loads((work / "metrics.json").read_text())["wall_s"]
        keeper.pending.clear()
        kmeans = json.loads((work / "kmeans.json").read_text()) if previous else None
    else:
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        kmeans = build_labels(args.iteration, previous, work) if previous else None
        labels = str(work / "labels") if previous else f"data/labels/iter{args.iteration}"
        wall = run_stage(args.iteration, work, keeper, labels, previous)
    if keeper.pending:
        print(f"warning: no state was seen at steps {sorted(keeper.pending)}", file=sys.stderr)

    def layer_table(encoder: Path) -> dict:
        out = subprocess.run(
            [sys.executable, "benchmarks/layer_pnmi.py", str(encoder), "--split", "dev",
             "--k", "100"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        return json.loads(out[out.index("{") :])

    metrics = json.loads((work / "metrics.json").read_text())
    report = {
        "command": shlex.join(["python", "experiments/pretrain_budget.py", *sys.argv[1:]]),
        "iteration_labels": args.iteration,
        "previous": args.previous,
        "kmeans": kmeans,
        "steps": args.steps,
        "model_overrides": params["model"]["overrides"],
        "pretrain_overrides": args.pretrain_overrides,
        "wall_s": round(wall, 1),
        "stage_metrics": {k: v for k, v in metrics.items() if not isinstance(v, dict | list)},
        "layer_pnmi": layer_table(work / "model/encoder.safetensors"),
    }
    kept = [n for n in args.snapshots if keeper.path(n).exists()]
    if kept:
        acc = {
            int(r["step"]): float(r["masked_acc"])
            for r in csv.DictReader((work / "plots.csv").open())
        }
        window = params["pretrain"]["log_every"]
        report["snapshots"] = {
            str(n): {
                "encoder": str(keeper.path(n)),
                # the mean over the log interval ending at n, as the stage logs it
                f"train_masked_acc_last_{window}": round(
                    sum(acc[i] for i in range(n - window + 1, n + 1)) / window, 5
                ),
                "layer_pnmi": layer_table(keeper.path(n)),
            }
            for n in kept
        }
    emit(report, args.out)


if __name__ == "__main__":
    main()
