"""Corpus preparation: load or synthesize, validate, write manifests, reports and metrics."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hubert_ee.config import SPLITS, Params
from hubert_ee.data.sources import SourceUtterance
from hubert_ee.data.validate import ValidationResult, validate
from hubert_ee.device import cpu_threads

# lhotse (torch) and pandas are imported inside functions: worker processes are spawned with
# this module as their main module, and each would otherwise pay ~2 s of imports.


class CorpusError(ValueError):
    """The corpus cannot give the splits and domains that params ask for."""


def resolve_workers(n: int) -> int:
    return n if n > 0 else cpu_threads()


def load_sources(params: Params, out_dir: Path, workers: int) -> list[SourceUtterance]:
    data = params.data
    if data.corpus == "synthetic":
        from hubert_ee.data.synthetic import CorpusPlanner, synthesize

        specs = CorpusPlanner(data.synthetic, data.domains, params.seed).plan()
        return synthesize(specs, out_dir, data.synthetic.shard_utterances, workers)
    from hubert_ee.data.real_corpora import LOADERS

    return LOADERS[data.corpus](data.real)


def write_reports(result: ValidationResult, reports_dir: Path) -> None:
    reports_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        with open(reports_dir / f"rejects_{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "path", "reason"])
            for r in result.rejected:
                if r.utt.split == split:
                    w.writerow([r.utt.id, r.utt.path, r.reason])
        with open(reports_dir / f"repairs_{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "path", "repairs"])
            for a in result.accepted:
                if a.utt.split == split and a.repairs:
                    w.writerow([a.utt.id, a.utt.path, "; ".join(a.repairs)])


def summarize(result: ValidationResult) -> dict:
    """metrics/prepare.json (DESIGN §11): hours and utterances per split and domain."""
    hours: dict[str, dict[str, float]] = {s: {} for s in SPLITS}
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    for a in result.accepted:
        u = a.utt
        hours[u.split][u.domain] = hours[u.split].get(u.domain, 0.0) + u.duration / 3600
        counts[u.split][u.domain] = counts[u.split].get(u.domain, 0) + 1
    return {
        "hours": {s: {d: round(h, 4) for d, h in sorted(v.items())} for s, v in hours.items()},
        "utterances": {s: dict(sorted(v.items())) for s, v in counts.items()},
        "rejected": len(result.rejected),
        "rejected_by_split": {s: sum(r.utt.split == s for r in result.rejected) for s in SPLITS},
        "repaired": sum(bool(a.repairs) for a in result.accepted),
    }


def _check_coverage(params: Params, result: ValidationResult) -> None:
    have = Counter((a.utt.split, a.utt.domain) for a in result.accepted)
    missing = [
        f"{split}/{domain}"
        for domain in params.data.domains
        for split in ("train", "dev", "test")
        if have[(split, domain)] == 0
    ]
    if missing:
        raise CorpusError(
            f"no usable utterances for {missing}: every teacher domain {params.data.teacher_domains} "
            f"and the target domain {params.data.target_domain!r} need train, dev and test data. "
            "Check data.real.parts / part_domains (or the manifest's domain column) and the rejects reports."
        )


@dataclass
class PrepareOutput:
    metrics: dict
    result: ValidationResult


def prepare(params: Params, out_dir: Path, reports_dir: Path) -> PrepareOutput:
    """Run the whole stage. Reports are written before any error about the accepted set."""
    from hubert_ee.data import manifest

    workers = resolve_workers(params.num_workers)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    sources = load_sources(params, out_dir, workers)
    if not sources:
        raise CorpusError(
            f"the {params.data.corpus} corpus yielded no utterances; check data.real.root and parts"
        )
    result = validate(
        sources, out_dir, params.data.min_duration_s, params.data.max_duration_s, workers
    )
    write_reports(result, reports_dir)
    if not result.accepted:
        reasons = Counter(r.reason.split(":")[0] for r in result.rejected).most_common(3)
        raise CorpusError(
            f"all {len(result.rejected)} utterances were rejected (most common: {reasons}); "
            f"see {reports_dir}/rejects_<split>.csv"
        )
    for split in SPLITS:
        manifest.write_split(out_dir, split, [a for a in result.accepted if a.utt.split == split])
    _check_coverage(params, result)
    return PrepareOutput(summarize(result), result)
