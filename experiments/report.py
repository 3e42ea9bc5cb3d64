"""The one way an experiment hands back its result: JSON on stdout, and in a file when asked."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, out: str | None, partial: bool = False) -> None:
    """`partial=True`: only (re)write the file, so a long run that is stopped keeps the rows it
    finished; the final call prints too."""
    text = json.dumps(report, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    if not partial:
        print(text)
