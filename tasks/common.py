"""What every stage program does the same way: read params, track, write metrics, report errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from hubert_ee.config import Params, ParamsError, load_params
from hubert_ee.tracking import StageTracker

StageMain = Callable[[Params, argparse.Namespace, StageTracker], None]


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    return parser


def iteration_stage_parser(
    description: str, out_help: str | None = None
) -> argparse.ArgumentParser:
    """The arguments every per-iteration stage takes (features, kmeans, pretrain)."""
    parser = stage_parser(description)
    parser.add_argument("--iteration", type=int, required=True)
    parser.add_argument("--manifests", default="data/prepared")
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--metrics", required=True)
    return parser


def write_metrics(path: str | Path, metrics: dict, tracker: StageTracker | None = None) -> None:
    """The DVC metrics file first (it must exist whatever MLflow does), then MLflow."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    if tracker is not None:
        tracker.log_metrics(metrics)
        tracker.log_artifact(path)


def run_stage(
    main: StageMain,
    parser: argparse.ArgumentParser,
    stage: str | Callable[[argparse.Namespace], str],
    sections: list[str],
) -> None:
    """Validate params before any work, run `main` inside an MLflow stage run that logs the
    params `sections` the stage reads; user errors end with a message, not a traceback."""
    args = parser.parse_args()
    try:
        params = load_params(args.params)
        raw = params.model_dump(mode="json")
        name = stage(args) if callable(stage) else stage
        with StageTracker(name, {k: raw[k] for k in sections if k in raw}) as tracker:
            main(params, args, tracker)
    except (ParamsError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
