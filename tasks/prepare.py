"""Stage `prepare`: the corpus (synthetic or real) → validated lhotse manifests + rejects reports."""

from __future__ import annotations

import argparse
from pathlib import Path

from hubert_ee.config import Params
from hubert_ee.data.prepare import prepare
from hubert_ee.tracking import StageTracker
from tasks.common import run_stage, stage_parser, write_metrics


def main(params: Params, args: argparse.Namespace, tracker: StageTracker) -> None:
    out = prepare(params, Path(args.out), Path(args.reports))
    write_metrics(args.metrics, out.metrics, tracker)
    tracker.log_artifact(args.reports)
    hours = out.metrics["hours"]
    print(
        f"corpus ready in {args.out}/ (manifests: recordings_<split>.jsonl, supervisions_<split>.jsonl)"
    )
    for split, per_domain in hours.items():
        print(f"  {split:10s} " + "  ".join(f"{d}={h:.3f} h" for d, h in per_domain.items()))
    print(
        f"  rejected {out.metrics['rejected']}, repaired {out.metrics['repaired']} (see {args.reports}/)"
    )


if __name__ == "__main__":
    parser = stage_parser(__doc__)
    parser.add_argument("--out", default="data/prepared")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--metrics", default="metrics/prepare.json")
    run_stage(main, parser, "prepare", ["seed", "num_workers", "data"])
