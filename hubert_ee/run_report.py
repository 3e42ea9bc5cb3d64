"""The headline figures of a pipeline run, and a one-page Markdown report of them.

Users ask one question after a run: is it better than the last one, and where? The answer is
spread over a dozen `metrics/*.json`; this module picks the figures that answer it (DESIGN §11
keys), flattens them to `<stage>/<key path>` names, and compares them with another run's —
another metrics folder or the metrics committed at a git revision.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

# `<stage file stem>/<flattened key>` patterns that make the headline, in report order
HEADLINE = (
    r"kmeans_iter\d+/(pnmi|pnmi/phone|domain_pnmi|pnmi_mfcc_same_k|fit_seconds)",
    r"pretrain_iter\d+/(masked_acc|wall_s)",
    r"finetune_[^/]+/(wer/[^/]+|wer_lexicon/[^/]+|wer_lm/[^/]+|wer_scratch/[^/]+|wer_low_label(_scratch)?/[^/]+)",
    r"finetune_[^/]+/uncertainty/(spearman_cer|auroc_token)",
    r"supernet/(params_subnet|params_ratio|latency_rel|dev_loss_chosen)",
    r"distill/(wer/[^/]+/[^/]+|wer_mean/[^/]+|wer_spread/[^/]+|params_student|param_ratio|speed_ratio)",
    r"threshold_search/(wer_full|wer_ee|wer_teacher|speedup_measured|speedup_teacher_to_ee)",
)
# lower is better for these; the rest (PNMI, accuracy, speed-up, ρ, AUROC) higher is better
LOWER_IS_BETTER = re.compile(
    r"(^|/)(wer|cer|wall_s|fit_seconds|domain_pnmi|params_student|params_subnet|params_ratio"
    r"|latency_rel|dev_loss)"
)


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """{"a": {"b": 1}} → {"a/b": 1.0}; only numbers are kept (lists and strings are not figures)."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            out[name] = float(value)
    return out


def headline(metrics: dict[str, dict]) -> dict[str, float]:
    """{stage stem: metrics dict} → the headline figures, in HEADLINE order."""
    flat = {k: v for stage, m in sorted(metrics.items()) for k, v in flatten(m, stage).items()}
    out: dict[str, float] = {}
    for pattern in HEADLINE:
        rx = re.compile(pattern + "$")
        out.update({k: v for k, v in flat.items() if rx.match(k) and k not in out})
    return out


def read_metrics(directory: str | Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))}


def read_metrics_at(revision: str, directory: str = "metrics", repo: str | Path = ".") -> dict:
    """The metrics committed at a git revision (what the last run committed)."""
    try:
        names = subprocess.run(
            ["git", "ls-tree", "--name-only", f"{revision}:{directory}"],
            cwd=repo, check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
    except subprocess.CalledProcessError as err:
        raise ValueError(
            f"no {directory}/ at git revision {revision!r}: {err.stderr.strip()}"
        ) from None
    out = {}
    for name in names:
        if name.endswith(".json"):
            text = subprocess.run(
                ["git", "show", f"{revision}:{directory}/{name}"],
                cwd=repo, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            out[name[: -len(".json")]] = json.loads(text)
    return out


def verdict(key: str, ours: float, theirs: float) -> str:
    """'better', 'worse' or '=' for this run vs the other on one figure."""
    if math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12):
        return "="
    lower = bool(LOWER_IS_BETTER.search(key))
    return "better" if (ours < theirs) == lower else "worse"


def table(ours: dict[str, float], theirs: dict[str, float] | None = None) -> list[list[str]]:
    """Rows [figure, this run, (other run, change)] for the terminal or Markdown."""
    rows = []
    for key in list(ours) + [k for k in (theirs or {}) if k not in ours]:
        a = ours.get(key)
        row = [key, "—" if a is None else f"{a:.4g}"]
        if theirs is not None:
            b = theirs.get(key)
            row.append("—" if b is None else f"{b:.4g}")
            row.append(verdict(key, a, b) if a is not None and b is not None else "")
        rows.append(row)
    return rows


def render_text(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(
    rows: list[list[str]], header: list[str], title: str, plots: list[Path] | None = None
) -> str:
    """One page: the headline table, then the run's plots (paths relative to the report)."""
    out = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    for plot in plots or []:
        out += ["", f"## {plot.stem}", "", f"![{plot.stem}]({plot.as_posix()})"]
    return "\n".join(out) + "\n"
