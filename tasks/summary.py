"""Stage `summary`: the run's headline figures (`hubert_ee.run_report`) in one flat metrics
file, so that `dvc exp show` and `dvc metrics diff` can show them without the other ~300 keys.

Reads every `metrics/*.json` (the stage depends on the folder, so it runs after every stage)
and writes `summary/headline.json` with keys such as `finetune_read/wer/read`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hubert_ee import run_report
from hubert_ee.tracking import StageTracker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics-dir", default="metrics")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    figures = run_report.headline(run_report.read_metrics(args.metrics_dir))
    if not figures:
        raise SystemExit(f"error: no headline figures in {args.metrics_dir}/*.json")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: round(v, 6) for k, v in figures.items()}, indent=1) + "\n")
    with StageTracker("summary") as tracker:  # nested under the pipeline run, like every stage
        tracker.log_metrics(figures)
    print(f"{len(figures)} headline figures in {out}")


if __name__ == "__main__":
    main()
