"""What every stage program does the same way: read params, write metrics, report errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from hubert_ee.config import Params, ParamsError, load_params


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    return parser


def write_metrics(path: str | Path, metrics: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def run_stage(
    main: Callable[[Params, argparse.Namespace], None], parser: argparse.ArgumentParser
) -> None:
    """Validate params before any work; user errors end with a message, not a traceback."""
    args = parser.parse_args()
    try:
        params = load_params(args.params)
        main(params, args)
    except (ParamsError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
