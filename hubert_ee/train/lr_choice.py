"""Choosing a fine-tuning arm's peak lr on dev (DESIGN §6: each arm gets its own recipe).

Every candidate trains the first `lr_probe_steps` of the same schedule; the one with the
lowest dev (WER, CER) continues to the end. Ties go to the smaller lr, the one that moves the
weights least. Test splits never enter.
"""

from __future__ import annotations


def pick_lr(probes: list[dict]) -> float:
    """probes: [{"lr", "dev_wer", "dev_cer"}, ...] → the chosen lr."""
    if not probes:
        raise ValueError("no lr probes to choose from")
    best = min(probes, key=lambda p: (p["dev_wer"], p["dev_cer"], p["lr"]))
    return float(best["lr"])
