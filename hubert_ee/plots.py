"""PNG plots (dvc's HTML plots load Vega from a CDN and are blank offline)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def training_curves(rows: list[dict], keys: list[str], path: Path, title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2))
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys, strict=True):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def arm_curves(
    histories: dict[str, list[dict]], evals: dict[str, list[dict]], path: Path, title: str
) -> None:
    """Train loss and dev WER of several training arms on shared axes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(9, 3.2))
    for arm, rows in histories.items():
        ax_loss.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=arm, lw=0.8)
        ev = evals.get(arm, [])
        ax_wer.plot([e["step"] for e in ev], [e["wer"] for e in ev], marker="o", label=arm)
    ax_loss.set_ylabel("train loss")
    ax_wer.set_ylabel("dev WER (greedy)")
    for ax in (ax_loss, ax_wer):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pareto_plot(
    rows: list[dict], wer_full: float, budget: float, chosen: dict | None, path: Path
) -> None:
    """Dev WER against measured speedup for every (criterion, threshold) point."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for crit, marker in (("entropy", "o"), ("confidence", "s")):
        pts = [r for r in rows if r["criterion"] == crit]
        ax.plot([r["speedup_measured"] for r in pts], [r["wer"] for r in pts], marker,
                label=crit, alpha=0.8)  # fmt: skip
    ax.axhline(wer_full, color="k", lw=0.8, label="full student")
    ax.axhline(budget, color="r", lw=0.8, ls="--", label="WER budget")
    if chosen:
        ax.plot([chosen["speedup_measured"]], [chosen["wer"]], "*", ms=16, color="gold",
                markeredgecolor="k", label=f"chosen: {chosen['criterion']} {chosen['threshold']}")  # fmt: skip
    ax.set_xlabel("measured speedup vs full student (batch 1)")
    ax.set_ylabel("dev WER")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
