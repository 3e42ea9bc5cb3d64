"""The corpus-independent description of an utterance before validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Phone = tuple[str, float, float]  # symbol, start (s, from the segment start), duration (s)


@dataclass
class SourceUtterance:
    """One utterance as a corpus loader found it; the validator decides if it is usable.

    `start`/`duration` locate a segment inside `path` (TED-LIUM talks); `duration=None` means
    the whole file.
    """

    id: str
    path: str
    split: str
    domain: str
    text: str | None
    speaker: str | None = None
    recording_id: str = ""
    start: float = 0.0
    duration: float | None = None
    phones: list[Phone] | None = None
    custom: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.recording_id:
            self.recording_id = self.id
