"""What every stage program does the same way: read params, track, write metrics, report errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hubert_ee.config import Params, ParamsError, ParamsView, load_params, select_params
from hubert_ee.device import cpu_threads
from hubert_ee.provenance import code_version, inputs_digest
from hubert_ee.tracking import StageTracker
from hubert_ee.train.checkpointing import begin_stage, complete_stage, fingerprint

StageMain = Callable[[Params, argparse.Namespace, StageTracker], None]


STANDARD_PATHS = {  # argument → help, for the path arguments many stages share
    "manifests": "the prepared corpus (default: %(default)s)",
    "teachers": "models/teachers (one folder per domain)",
    "state": "resume state directory (kept across runs)",
    "metrics": "metrics JSON (DVC metrics; logged to MLflow)",
}


def stage_parser(description: str, *standard: str, **paths: str) -> argparse.ArgumentParser:
    """--params, the `standard` path arguments (STANDARD_PATHS; --manifests defaults to
    data/prepared, the others are required) and the stage's own required `paths` (name → help;
    underscores become dashes)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    for name in standard:
        default = {"default": "data/prepared"} if name == "manifests" else {"required": True}
        parser.add_argument(f"--{name}", help=STANDARD_PATHS[name], **default)
    for name, text in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, help=text)
    return parser


def iteration_stage_parser(
    description: str, out_help: str | None = None
) -> argparse.ArgumentParser:
    """The arguments every per-iteration stage takes (features, kmeans, pretrain)."""
    parser = stage_parser(description, "manifests", "metrics", out=out_help or "output folder")
    parser.add_argument("--iteration", type=int, required=True)
    return parser


def write_metrics(
    path: str | Path,
    metrics: dict,
    tracker: StageTracker | None = None,
    plots: str | Path | None = None,
) -> None:
    """The DVC metrics file first (it must exist whatever MLflow does), then MLflow: the metrics,
    the file, and the stage's plot (`plots`: its CSV and the PNG beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    if tracker is not None:
        tracker.log_metrics(metrics)
        tracker.log_artifact(path)
        if plots is not None:
            tracker.log_artifact(Path(plots))
            tracker.log_artifact(Path(plots).with_suffix(".png"))


def stage_key(module: str, declared: dict, inputs: dict[str, str]) -> str:
    """What a stage's result is made of: its code (with every project module it imports), the
    params it declares and the content of its inputs. Resume states carry it."""
    return fingerprint({"code": code_version(module), "params": declared, "inputs": inputs})


def run_stage(
    main: StageMain,
    parser: argparse.ArgumentParser,
    stage: str | Callable[[argparse.Namespace], str],
    sections: Sequence[str] | Callable[[argparse.Namespace], Sequence[str]],
    inputs: Sequence[str] = (),
    all_threads: bool = False,
) -> None:
    """Validate the whole params file before any work, run `main` inside an MLflow stage run
    that logs the params `sections` the stage declares (top-level sections or dotted keys);
    user errors end with a message, not a traceback. `main` gets a view of params limited to
    `sections`: reading an undeclared key is an error (DESIGN §2).

    `inputs` names the arguments that are input paths: with `sections` and the code version
    they make `args.stage_key`, which the training loops' resume states carry. A stage with a
    `--state` folder resumes only its own unfinished run (hubert_ee.train.checkpointing).
    `all_threads`: torch's intra-op pool on every core (the training and inference stages)."""
    args = parser.parse_args()
    try:
        params = load_params(args.params)
        keys = sections(args) if callable(sections) else sections
        declared = select_params(params, keys)
        name = stage(args) if callable(stage) else stage
        module = main.__module__
        if module == "__main__":
            module = sys.modules["__main__"].__spec__.name
        args.stage_key = stage_key(
            module,
            declared,
            inputs_digest(p for a in inputs if (p := getattr(args, a)) is not None),
        )
        state = Path(args.state) if getattr(args, "state", None) else None
        rank0 = int(os.environ.get("RANK", "0")) == 0
        if state is not None and rank0:
            begin_stage(state)
        if all_threads:
            import torch

            torch.set_num_threads(cpu_threads())
        with StageTracker(name, declared, background=True) as tracker:
            main(ParamsView(params, keys), args, tracker)
        if state is not None and rank0:
            complete_stage(state, args.stage_key)
    except (ParamsError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
