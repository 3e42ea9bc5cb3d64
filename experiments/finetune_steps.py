"""How far is a teacher from the issue's in-domain goal (greedy test WER <= 0.25) as a function of
its fine-tuning budget? The lecture teacher ends at dev 0.399 after 2,100 steps with its curve
still falling (0.422 at 1,900, 0.400 at 2,000), so the budget, not the recipe, may be what
holds it. This trains the `finetune@<domain>` stage's pretrained arm at several `max_steps`
(linear decay to each budget's end, everything else the stage's recipe), side by side, one
torch thread each, from the workspace's pretrained encoder, and reports each budget's dev curve
(the choice) with the test WER of its best checkpoint (reported only), plus each budget's
dev WER by speaking rate (characters per second, in quartiles of the dev split): lecture speech
is fast (about 2 encoder frames per character at 50 Hz against 3 for read), and the rows say
whether the fast utterances are what the extra steps buy.

A budget's verdict against `--baseline` (a committed run's plots CSV of the same stage, or
one of the budgets) is "better" only when its best dev WER is lower by more than the teachers'
seed spread (0.03, README "Teachers").

Run in a workspace after `pretrain_iter2` (the default profile: the repo root):
  `python experiments/finetune_steps.py --domain lecture --steps 3000 4200
      [--baseline HEAD:plots/finetune_lecture.csv] [--out experiments/results/finetune_steps_lecture.json]`
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from amp_bf16 import TOLERANCE, read_source, verdict
from report import emit, stage_finished

REPO = Path(__file__).resolve().parents[1]


def pinned(source: str, root: Path) -> str:
    """`REV:path` with REV as a commit hash (HEAD moves); a file as given."""
    if ":" in source and not (root / source).exists():
        rev, path = source.split(":", 1)
        sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        return f"{sha}:{path}"
    return source


def budget_params(params: dict, steps: int) -> dict:
    p = copy.deepcopy(params)
    p["finetune"]["max_steps"] = steps
    if "steps_scale" in p["finetune"]:  # a per-domain factor (not in params.yaml today)
        p["finetune"]["steps_scale"] = None  # `steps` is the arm's budget, not a factor's base
    p["finetune"]["scratch_arm"] = False  # the pretrained arm only: the teacher the stage keeps
    return p


def launch(root: Path, params: dict, domain: str, steps: int, work: Path) -> subprocess.Popen:
    """The stage's own entry point on a params copy with `max_steps` changed, one thread."""
    work.mkdir(parents=True, exist_ok=True)
    p = budget_params(params, steps)
    (work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HUBERT_EE_TRACKING": "off",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    cmd = [sys.executable, "-m", "tasks.finetune", "--domain", domain,
           "--encoder", str(root / "models/pretrain_iter2/encoder.safetensors"),
           "--manifests", str(root / "data/prepared"), "--out", str(work / "teacher"),
           "--state", str(work / "state"), "--metrics", str(work / "metrics.json"),
           "--plots", str(work / "curve.csv"), "--params", str(work / "params.yaml")]  # fmt: skip
    log = open(work / "stage.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)


def wer_by_rate(root: Path, domain: str, model_path: Path, quartiles: int = 4) -> list[dict]:
    """Greedy dev WER of the teacher in speaking-rate quartiles (characters per second)."""
    import torch

    from hubert_ee.data.asr_data import domain_split
    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.decode.ctc import greedy_decode
    from hubert_ee.decode.emissions import emissions
    from hubert_ee.metrics.wer import wer
    from hubert_ee.models.checkpoint import load_ctc_model

    dev = domain_split(root / "data/prepared", "dev", domain, CharVocab())
    log_probs = emissions(load_ctc_model(model_path), dev, 60.0, torch.device("cpu"))
    hyps = [greedy_decode(lp[None], None, dev.vocab)[0] for lp in log_probs]
    refs = dev.texts()
    rates = (dev.rows["text"].str.len() / dev.rows["duration"]).tolist()
    order = sorted(range(len(refs)), key=rates.__getitem__)
    out = []
    for q in range(quartiles):
        part = order[q * len(order) // quartiles : (q + 1) * len(order) // quartiles]
        out.append({
            "chars_per_s": [round(rates[part[0]], 1), round(rates[part[-1]], 1)],
            "frames_per_char_50hz": round(50 / statistics.median(rates[i] for i in part), 2),
            "dev_wer": round(wer([refs[i] for i in part], [hyps[i] for i in part]), 5),
            "utterances": len(part),
        })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="the workspace (after pretrain_iter2)")
    ap.add_argument("--domain", default="lecture")
    ap.add_argument("--steps", type=int, nargs="+", required=True)
    ap.add_argument("--baseline", help="a committed stage CSV (REV:plots/finetune_<d>.csv)")
    ap.add_argument("--baseline-model", help="that run's teacher, for its WER by rate")
    ap.add_argument("--work", default="runs/finetune_steps")
    ap.add_argument("--out")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    params = yaml.safe_load((root / "params.yaml").read_text())
    baseline = args.baseline and pinned(args.baseline, root)
    report: dict = {"domain": args.domain, "tolerance": TOLERANCE, "baseline": baseline,
                    "recipe": {k: params["finetune"][k] for k in ("lr", "schedule", "warmup_steps",
                               "max_batch_seconds", "amp")}, "rows": []}  # fmt: skip
    work = root / args.work / args.domain
    t0 = time.time()
    # a budget whose stage already finished here (same params copy) is collected, not retrained
    procs = {s: launch(root, params, args.domain, s, work / f"steps{s}") for s in args.steps
             if not stage_finished(work / f"steps{s}", budget_params(params, s))}  # fmt: skip
    for steps, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(
                f"budget {steps}: the stage failed, see {work / f'steps{steps}'}/stage.log"
            )
    if baseline and (root / baseline).exists():
        baseline = str(root / baseline)  # a file of the workspace, not a git revision
    base = read_source(baseline, "pretrained") if baseline else []
    if base:
        row = {"max_steps": max(s for s, _ in base), "source": report["baseline"],
               "best_dev_wer": min(w for _, w in base), "dev_curve": base}  # fmt: skip
        if args.baseline_model:
            row["dev_wer_by_rate"] = wer_by_rate(root, args.domain, root / args.baseline_model)
        report["rows"].append(row)
    ref = min(w for _, w in base) if base else None
    for steps in args.steps:
        d = work / f"steps{steps}"
        metrics = json.loads((d / "metrics.json").read_text())
        curve = read_source(str(d / "curve.csv"), "pretrained")
        best = min(w for _, w in curve)
        row = {
            "max_steps": steps, "best_dev_wer": best, "best_step": metrics["best_step"],
            "test_wer": metrics["wer"][args.domain], "test_cer": metrics["cer"][args.domain],
            "train_audio_seconds_per_s": metrics.get("train_audio_seconds_per_s"),
            "dev_curve": curve,
            "dev_wer_by_rate": wer_by_rate(root, args.domain, d / "teacher/model.safetensors"),
        }  # fmt: skip
        if ref is not None:
            change = best - ref
            row["verdict"] = verdict(change)
        report["rows"].append(row)
    report["wall_s"] = round(time.time() - t0, 1)
    emit(report, args.out)


if __name__ == "__main__":
    main()
