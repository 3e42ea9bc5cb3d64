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


def probe_result(lr: float, evals: list[dict], probe_steps: int) -> dict:
    """A candidate's probe row from its dev evaluations, counting only those made within the
    probe: the chosen candidate's run goes on in the same state, so a resumed stage must not
    see its later (better) scores and choose differently."""
    within = [e for e in evals if e["step"] <= probe_steps]
    if not within:
        raise ValueError(f"lr {lr:g}: no dev evaluation within the first {probe_steps} steps")
    best = min(within, key=lambda e: (e["wer"], e["cer"]))
    return {"lr": lr, "dev_wer": round(best["wer"], 5), "dev_cer": round(best["cer"], 5)}
