"""The one way an experiment hands back its result: JSON on stdout, and in a file when asked."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def emit(report: dict, out: str | None, partial: bool = False) -> None:
    """`partial=True`: only (re)write the file, so a long run that is stopped keeps the rows it
    finished; the final call prints too."""
    text = json.dumps(report, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    if not partial:
        print(text)


def arm_row(result, scores: dict, target: str, seconds: float) -> dict:
    """The fields every trained-arm row reports: best dev WER (the choice), test WER and CER of
    the target (reported only) and the arm's wall time in seconds."""
    return {
        "dev_wer": round(result.best["wer"], 5),
        "test_wer": scores["wer"][target],
        "test_cer": scores["cer"][target],
        "wall_s": round(seconds, 1),
    }


def add_row(report: dict, row: dict, out: str | None) -> None:
    """Append a finished row, show it, and keep the partial report on disk."""
    report["rows"].append(row)
    print(row, flush=True)
    emit(report, out, partial=True)


def stage_finished(work: Path, params: dict) -> bool:
    """A stage run in `work` wrote its metrics from a params copy equal to `params`: collect its
    outputs instead of training again."""
    copy_path = work / "params.yaml"
    return (
        (work / "metrics.json").exists()
        and copy_path.exists()
        and yaml.safe_load(copy_path.read_text()) == params
    )
