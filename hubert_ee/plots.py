"""PNG plots (dvc's HTML plots load Vega from a CDN and are blank offline)."""

from __future__ import annotations

import csv
from pathlib import Path


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported when a stage draws (every
    stage imports this module; few draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: list[dict], keys: list[str], path: Path, title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
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
    plt = _pyplot()
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


def history_with_csv(history: list[dict], columns: list[str], csv_path: Path, title: str) -> None:
    """A training history as a CSV (dvc plots; `columns` of each row) and, when any step ran,
    its loss and masked accuracy as a PNG beside it."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(history)
    if history:
        training_curves(history, ["loss", "masked_acc"], csv_path.with_suffix(".png"), title)


def arm_curves_with_csv(results: dict, csv_path: Path, title: str) -> None:
    """Dev WER per evaluation for each arm as a CSV (dvc plots) and `arm_curves` as a PNG beside
    it; `results` maps an arm to its run (anything with `.history` and `.evals`)."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    steps = sorted({e["step"] for r in results.values() for e in r.evals})
    by_arm = {arm: {e["step"]: e["wer"] for e in r.evals} for arm, r in results.items()}
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *[f"dev_wer_{arm}" for arm in results]])
        for s in steps:
            w.writerow([s, *[by_arm[arm].get(s, "") for arm in results]])
    arm_curves(
        {arm: r.history for arm, r in results.items()},
        {arm: r.evals for arm, r in results.items()},
        csv_path.with_suffix(".png"),
        title,
    )


def table_with_curves(
    csv_path: Path, header: list[str], rows: list[list], results: dict, title: str
) -> None:
    """A stage's result table as a CSV (dvc plots) and its arms' training curves (`arm_curves`
    of `results`: arm → run with `.history` and `.evals`) as a PNG beside it."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    arm_curves(
        {arm: r.history for arm, r in results.items()},
        {arm: r.evals for arm, r in results.items()},
        csv_path.with_suffix(".png"),
        title,
    )


def pareto_plot(
    rows: list[dict],
    wer_full: float,
    budget: float,
    chosen: dict | None,
    path: Path,
    static: list[dict] = (),
) -> None:
    """Dev WER against measured speedup for every (criterion, threshold) point, and the static
    alternatives (`static`: the student's first k layers + branch k, every utterance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for crit, marker in (("entropy", "o"), ("confidence", "s")):
        pts = [r for r in rows if r["criterion"] == crit]
        ax.plot([r["speedup_measured"] for r in pts], [r["wer"] for r in pts], marker,
                label=crit, alpha=0.8)  # fmt: skip
    if static:
        ax.plot([r["speedup_measured"] for r in static], [r["wer"] for r in static], "^--",
                color="tab:green", label="static: first k layers + branch k")  # fmt: skip
        for r in static:
            ax.annotate(str(r["layer"]), (r["speedup_measured"], r["wer"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
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


SUBNET_COLUMNS = [
    "embed_dim", "num_heads", "ffn_dim", "num_layers", "params", "params_ratio", "dev_loss",
    "dev_cosine", "batch1_ms", "batched_ms", "latency_rel", "batched_rel", "within_budget",
    "pareto",
]  # fmt: skip


def subnet_pareto_plot(
    rows: list[dict],
    chosen: dict,
    max_params_ratio: float,
    latency_budget_rel: float,
    csv_path: Path,
) -> None:
    """The subnet search: every scored subnet's dev distillation loss against its measured
    batch-1 latency (a fraction of the teacher's), the Pareto front, the budgets, the choice;
    the rows as a CSV beside it (PNG)."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUBNET_COLUMNS)
        w.writeheader()
        w.writerows({k: r[k] for k in SUBNET_COLUMNS} for r in rows)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for small, style, label in (
        (True, dict(color="tab:blue"), f"params <= {max_params_ratio:g} x teacher"),
        (False, dict(color="0.65"), "larger"),
    ):
        pts = [r for r in rows if (r["params_ratio"] <= max_params_ratio) == small]
        ax.scatter([r["latency_rel"] for r in pts], [r["dev_loss"] for r in pts], s=18,
                   label=label, **style)  # fmt: skip
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["latency_rel"])
    ax.plot([r["latency_rel"] for r in front], [r["dev_loss"] for r in front], "k-", lw=0.8,
            label="Pareto front")  # fmt: skip
    if latency_budget_rel <= 1.5 * max(r["latency_rel"] for r in rows):  # else off the chart
        ax.axvline(latency_budget_rel, color="r", lw=0.8, ls="--", label="latency budget")
    ax.plot([chosen["latency_rel"]], [chosen["dev_loss"]], "*", ms=16, color="gold",
            markeredgecolor="k", label="chosen: {embed_dim}/{num_heads}/{ffn_dim}/{num_layers}".format(**chosen))  # fmt: skip
    ax.set_xlabel("measured batch-1 time / teacher's")
    ax.set_ylabel("dev distillation loss (masked L1)")
    ax.set_title("subnet search: width / heads / FFN / depth")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(csv_path.with_suffix(".png"), dpi=110)
    plt.close(fig)
