"""Does pretraining pay where the HuBERT paper says it pays most, with a few minutes of labels
(issue 13: in the low-label arm, pretrained <= 0.8x scratch)?

With all of a teacher domain's labels the pretrained and scratch arms are level here (read dev
1.02x, test 0.90x, README "Teachers"). The low-label arm has been off since the budget cut: at
200 steps of the recipe of the time both arms stayed near the all-blank plateau (dev WER
0.77-0.82), which measured nothing. This trains the `finetune` stage's low-label arms (the
same code: `TeacherUnit` with the stage's `subset_minutes` draw, the stage's recipe, augmentation
and step-time arithmetic) at several step budgets and seeds, side by side, one torch thread
each, from the workspace's pretrained encoder. The labeled subset is the stage's (drawn with
`params.seed`); `--seeds` vary what training draws (head init, batch order, augmentation);
`--subset-seed` draws another labeled subset (its arms keep their own states), for the spread
of the draw itself.

Per budget: each arm's best dev WER (the choice; mean and spread over the seeds), the ratio
pretrained / scratch of the dev means, a verdict by DESIGN §11's rule (a difference smaller than
either arm's spread is a tie), and test WER of each best checkpoint (reported, never chosen on).
Dev curves (every `eval_every` steps) go into the JSON.

`--recipe NAME[:ARMS]=JSON` adds a named variant: the JSON overrides the section's training
fields (`finetune.*`, e.g. `{"lr": 1e-3}` or `{"freeze_encoder_steps": 100, "encoder_lr_scale":
0.3}`) for every arm of `--arms`, or for the comma-separated ARMS only (a head-only phase means
nothing for random weights); `stage` (the stage's recipe, the scratch arm with `finetune.scratch`)
is the default and always the first. Each arm's recipe is then chosen on dev, as the issue asks
(the same grid for both arms), and the summary compares the two arms at their dev choices too.

Run in a workspace after `pretrain_iter2` (the default profile: the repo root):
  `python experiments/low_label.py --domain read --minutes 10 --steps 400 1000
      --seeds 1234 1235 [--recipe 'lr1e-3={"lr": 0.001}'] [--arms pretrained scratch]
      [--out experiments/results/low_label_read.json]`
States are kept under `--work`: a killed run resumes where each arm stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from report import emit

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import AugmentedASRData, domain_split, subset_minutes
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.train.kd_arms import call_difference
from hubert_ee.train.teacher import TeacherUnit, score, train_units

RECIPE_FIELDS = (
    "lr",
    "schedule",
    "warmup_steps",
    "max_batch_seconds",
    "amp",
    "eval_every",
    "patience",
)


def unit_tag(recipe: str, steps: int, seed: int, draw: str = "") -> str:
    """The state folder's name; `draw` marks a labeled subset other than the stage's."""
    return ("" if recipe == "stage" else f"_{recipe}") + f"_low_label{draw}_n{steps}_s{seed}"


def named_recipe(text: str) -> tuple[str, dict, list[str] | None]:
    """NAME[:ARM,ARM]=JSON -> (name, overrides, the arms it trains; None: every --arms)."""
    head, _, body = text.partition("=")
    name, _, only = head.partition(":")
    if not name or not body:
        raise argparse.ArgumentTypeError(f"--recipe {text!r}: expected NAME[:ARMS]=JSON")
    return name, json.loads(body), only.split(",") if only else None


def seed_stats(rows: list[dict]) -> dict:
    dev_w, test_w = [r["best_dev_wer"] for r in rows], [r["test_wer"] for r in rows]
    return {
        "dev": dev_w, "dev_mean": round(statistics.mean(dev_w), 5),
        "dev_spread": round(max(dev_w) - min(dev_w), 5),
        "test": test_w, "test_mean": round(statistics.mean(test_w), 5),
        "test_spread": round(max(test_w) - min(test_w), 5),
    }  # fmt: skip


def compare(p: dict, s: dict) -> dict:
    """Pretrained against scratch: ratios of the seed means and DESIGN §11's call on dev."""
    return {
        "dev_ratio": round(p["dev_mean"] / s["dev_mean"], 3),
        "test_ratio": round(p["test_mean"] / s["test_mean"], 3),
        "dev_verdict": call_difference(p["dev"], s["dev"]),
    }


def summarise(rows: list[dict], steps_list: list[int], arms: list[str]) -> dict:
    """Per budget: every (recipe, arm) over its seeds, pretrained vs scratch under the stage's
    recipe, and each arm's recipe chosen on dev (lowest dev mean) compared the same way."""
    out: dict = {}
    for steps in steps_list:
        at = [r for r in rows if r["max_steps"] == steps]
        cells = {}
        for r in at:
            cells.setdefault(r["recipe"], {}).setdefault(r["arm"], []).append(r)
        stats = {rec: {arm: seed_stats(rs) for arm, rs in by.items()} for rec, by in cells.items()}
        entry: dict = {"recipes": stats}
        if {"pretrained", "scratch"} <= set(arms):
            if {"pretrained", "scratch"} <= set(stats.get("stage", {})):
                entry["stage_recipe"] = compare(
                    stats["stage"]["pretrained"], stats["stage"]["scratch"]
                )
            chosen = {
                arm: min((rec for rec in stats if arm in stats[rec]),
                         key=lambda rec, a=arm: stats[rec][a]["dev_mean"])
                for arm in ("pretrained", "scratch")
            }  # fmt: skip
            entry["chosen_on_dev"] = {
                **chosen,
                **compare(stats[chosen["pretrained"]]["pretrained"],
                          stats[chosen["scratch"]]["scratch"]),
            }  # fmt: skip
        out[str(steps)] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="the workspace (after pretrain_iter2)")
    ap.add_argument("--domain", default="read")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, nargs="+", default=[600])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1234, 1235])
    ap.add_argument("--subset-seed", type=int,
                    help="draw the labeled subset with this seed (default params.seed: the stage's)")  # fmt: skip
    ap.add_argument("--arms", nargs="+", default=["pretrained", "scratch"],
                    choices=["pretrained", "scratch"])  # fmt: skip
    ap.add_argument(
        "--recipe",
        type=named_recipe,
        action="append",
        default=[],
        help="NAME[:ARMS]=JSON: a variant of the section's training fields (every --arms, or ARMS)",
    )
    ap.add_argument("--encoder", default="models/pretrain_iter2/encoder.safetensors",
                    help="the pretrained arm's encoder (the stage's: the last iteration's)")  # fmt: skip
    ap.add_argument("--workers", type=int, default=2, help="arms side by side, one thread each")
    ap.add_argument("--work", default="runs/low_label")
    ap.add_argument("--out")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    params = load_params(root / "params.yaml")
    ft = params.finetune
    vocab = CharVocab()
    manifests = root / "data/prepared"
    clean = domain_split(manifests, "train", args.domain, vocab)
    dev = domain_split(manifests, "dev", args.domain, vocab)
    test = domain_split(manifests, "test", args.domain, vocab)
    subset_seed = params.seed if args.subset_seed is None else args.subset_seed
    few = subset_minutes(clean, args.minutes, subset_seed)  # params.seed: the stage's draw
    draw = "" if subset_seed == params.seed else f"_d{subset_seed}"
    train = few if ft.augment is None else AugmentedASRData(few, ft.augment.chain(), params.seed)
    pretrained = load_encoder(root / args.encoder)
    encoder = (pretrained.cfg, {k: v.detach() for k, v in pretrained.state_dict().items()})
    state_dir = root / args.work / args.domain
    recipes = {"stage": {}, **{name: over for name, over, _ in args.recipe}}
    arms_of = {"stage": args.arms, **{n: only or args.arms for n, _, only in args.recipe}}
    named = [
        (name, TeacherUnit(arm, arm == "scratch", encoder, ft, seed, train, dev, state_dir,
                           f"low_label@{args.domain}",
                           {**(ft.scratch if arm == "scratch" else {}), **over, "max_steps": steps},
                           tag=unit_tag(name, steps, seed, draw), probe=False))
        for steps in args.steps for name, over in recipes.items()
        for seed in args.seeds for arm in args.arms if arm in arms_of[name]
    ]  # fmt: skip
    units = [unit for _, unit in named]
    report: dict = {
        "question": "low-label arm: pretrained vs scratch on a few minutes of labels",
        "command": shlex.join(["python", "experiments/low_label.py", *sys.argv[1:]]),
        "domain": args.domain,
        "labeled_minutes": round(float(few.lengths().sum()) / 16000 / 60, 2),
        "labeled_utterances": len(few),
        "subset_seed": subset_seed,
        "encoder": args.encoder,
        "recipe": {k: getattr(ft, k) for k in RECIPE_FIELDS},
        "variants": {n: {"overrides": recipes[n], "arms": arms_of[n]} for n in recipes},
        "augment": ft.augment is not None,
        "rows": [],
    }
    t0 = time.time()
    trained = train_units(units, args.workers, lambda m, step: None)
    for (name, unit), (model, result, _) in zip(named, trained, strict=True):
        scores, _ = score(model, test, ft.eval_batch_seconds)
        report["rows"].append({
            "arm": unit.arm, "recipe": name, "seed": unit.seed,
            "max_steps": unit.recipe["max_steps"],
            "train_audio_seconds_per_s": round(result.audio_seconds_per_s, 1),
            "best_dev_wer": round(result.best["wer"], 5), "best_step": result.best["step"],
            "stopped_early": result.stopped_early,
            "test_wer": round(scores["wer"], 5), "test_cer": round(scores["cer"], 5),
            "dev_curve": [[e["step"], round(e["wer"], 5)] for e in result.evals],
        })  # fmt: skip
    report["wall_s"] = round(time.time() - t0, 1)
    report["threads"] = torch.get_num_threads()
    report["summary"] = summarise(report["rows"], args.steps, args.arms)
    emit(report, args.out)


if __name__ == "__main__":
    main()
