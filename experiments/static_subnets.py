"""Is dynamic early exit better than a smaller static model (issue 15, item 3)? The threshold
search compares the exit point with truncations of the distilled student; this compares it with
the supernet's own shallower subnets, each distilled on its own by the arm `distill` kept.

For every subnet (the chosen width, heads and FFN at depths 1-3 and the chosen depth, plus a
wider 2-layer one): extracted from the trained supernet, trained with the `distill` stage's kept
arm (`metrics/distill.json` best_arm) on several seeds, scored on target dev (choice) and test
(report); on a smaller space (smoke) the depths below the chosen one and the next width if
there is one. Speed: the seed-1234 model of each subnet at batch size 1 on the threshold search's
dev utterances, interleaved with the committed full student (`models/distill`) and the committed
early-exit model at its operating point (`models/exits`, `models/threshold_search`), paired
speedup over the full student as in `threshold_search`, every model in its inference form.

Run in a workspace after `threshold_search` (the default profile: the repo root):
  `python experiments/static_subnets.py [--root .] [--seeds 1234 1235]
      [--out experiments/results/static_subnets.json]`
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

# experiments/report.py (the script's folder is on sys.path)
from kept_arm import kept_arm, retrain_parser
from report import add_row, arm_row, emit

from hubert_ee.config import SupernetSpace, load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.device import cpu_threads
from hubert_ee.metrics.speed import interleaved_times, paired_speedup
from hubert_ee.models.checkpoint import load_ctc_model, load_early_exit_model
from hubert_ee.models.inference_form import inference_form
from hubert_ee.models.supernet import Subnet
from hubert_ee.train.kd_arms import test_scores, train_arm


def subnets(chosen: Subnet, space: SupernetSpace) -> dict[str, Subnet]:
    c = chosen
    depths = [d for d in (1, 2, 3) if d < c.num_layers]
    shapes = {f"depth{d}": Subnet(c.embed_dim, c.num_heads, c.ffn_dim, d) for d in depths}
    # the next width of the space (192 x 4 heads, FFN 384 in the default), 2 layers
    wider = [e for e in sorted(space.embed_dims) if e > c.embed_dim]
    if wider:
        ratio = 2.0 if 2.0 in space.ffn_ratios else max(space.ffn_ratios)
        shapes["wide_depth2"] = Subnet(wider[0], c.num_heads, int(round(wider[0] * ratio)), 2)
    shapes[f"depth{c.num_layers}"] = c  # the student itself, retrained here on the same seeds
    return shapes


def main() -> None:
    args = retrain_parser(__doc__).parse_args()
    root, params = Path(args.root), load_params(args.params)
    torch.set_num_threads(cpu_threads())
    target = params.data.target_domain
    ts = params.threshold_search
    vocab, manifests = CharVocab(), root / "data/prepared"
    dev = domain_split(manifests, "dev", target, vocab)
    test = domain_split(manifests, "test", target, vocab)
    k = kept_arm(root, params, vocab)
    supernet, chosen, arm, dp, kd, data, search = (
        k.supernet, k.chosen, k.arm, k.dp, k.kd, k.data, k.search
    )  # fmt: skip
    report: dict = {
        "root": str(root), "threads": cpu_threads(), "seeds": args.seeds, "arm": arm,
        "dynamic": {
            "criterion": search["criterion"], "threshold": search["threshold"],
            "dev_wer": search["dev"]["chosen_wer"], "test_wer": search["wer_ee"],
            "dev_wer_full": search["dev"]["wer_full"], "dev_wer_budget": search["dev"]["wer_budget"],
        },
        "rows": [],
    }  # fmt: skip
    kept: dict[str, torch.nn.Module] = {}
    with tempfile.TemporaryDirectory() as state:
        for name, sub in subnets(chosen, params.supernet.space).items():
            for seed in args.seeds:
                t0 = time.perf_counter()
                student, result = train_arm(
                    arm, kd, dp, seed, supernet.extract(sub), data, dev,
                    Path(state) / f"{name}_{seed}", f"static_subnets:{name}:{seed}",
                    lambda m, step: None,
                )  # fmt: skip
                student.eval()
                t = test_scores(student, {target: test}, dp.eval_batch_seconds)
                if seed == args.seeds[0]:
                    kept[name] = inference_form(student.cpu())
                row = {"name": name, **sub.as_dict(), "seed": seed,
                       "params": sum(p.numel() for p in student.parameters())}  # fmt: skip
                add_row(
                    report,
                    {**row, **arm_row(result, t, target, time.perf_counter() - t0)},
                    args.out,
                )

    full = inference_form(load_ctc_model(root / "models/distill/student.safetensors"))
    ee = inference_form(load_early_exit_model(root / "models/exits/model.safetensors"))
    crit, th = search["criterion"], search["threshold"]
    waves = [dev.wave(i)[None] for i in range(min(ts.speed_utterances, len(dev)))]
    cands = {
        "full": lambda w: full.logits(w),
        "dynamic": lambda w: ee.early_exit(w, None, crit, th),
    }
    for name, m in kept.items():
        cands[name] = lambda w, m=m: m.logits(w)
    times = interleaved_times(cands, waves, ts.speed_repeats, threads=cpu_threads())
    speed = {k: paired_speedup(times["full"], v) for k, v in times.items() if k != "full"}
    report["dynamic"]["speedup_measured"] = round(speed["dynamic"].median, 4)
    report["dynamic"]["speedup_range"] = [
        round(speed["dynamic"].low, 4),
        round(speed["dynamic"].high, 4),
    ]

    summary = {}
    for name in kept:
        rows = [r for r in report["rows"] if r["name"] == name]
        dev_w = [r["dev_wer"] for r in rows]
        sp = speed[name]
        summary[name] = {
            **{k: rows[0][k] for k in ("embed_dim", "num_heads", "ffn_dim", "num_layers", "params")},
            "dev_wer_mean": round(statistics.mean(dev_w), 5),
            "dev_wer_spread": round(max(dev_w) - min(dev_w), 5),
            "test_wer_mean": round(statistics.mean(r["test_wer"] for r in rows), 5),
            "speedup_measured": round(sp.median, 4),
            "speedup_range": [round(sp.low, 4), round(sp.high, 4)],
            "within_wer_budget": statistics.mean(dev_w) <= search["dev"]["wer_budget"],
        }  # fmt: skip
    report["summary"] = summary
    dyn = speed["dynamic"]
    static_in_budget = {n: s for n, s in summary.items() if s["within_wer_budget"]}
    fastest = max(
        static_in_budget, key=lambda n: static_in_budget[n]["speedup_measured"], default=None
    )
    report["fastest_static_within_budget"] = fastest
    report["dynamic_clearly_faster"] = bool(
        fastest is not None and dyn.low > summary[fastest]["speedup_range"][1]
    )
    emit(report, args.out)


if __name__ == "__main__":
    main()
