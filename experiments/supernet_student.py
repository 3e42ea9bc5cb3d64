"""Does the once-for-all supernet give `distill` a better student than the teacher's leading
slice (issue 15)? At the shape the subnet search chose (`models/supernet/student.safetensors`)
and at the previous default's shape (6 x 128, FFN 256), the `distill` stage's `tok_kd` arm (the
arm the stage kept in the committed runs) from two initialisations, on several seeds:

- `slice`: leading slices of the last pretrained encoder (what `distill` did before the
  `supernet` stage; layers beyond the teacher's depth random);
- `supernet`: the subnet extracted from the trained supernet.

Decision on dev (mean over seeds, with the spread); test is reported only.
Run in a workspace after `supernet` and `teacher_outputs` (the default profile: the repo root):
  `python experiments/supernet_student.py [--root .] [--seeds 1234 1235 1236]
      [--out experiments/results/supernet_student.json]`
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

# experiments/report.py (the script's folder is on sys.path)
from report import add_row, arm_row, emit

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.models.supernet import Subnet, Supernet
from hubert_ee.train.kd_arms import arms, kd_data, test_scores, train_arm

PREVIOUS_DEFAULT = Subnet(128, 2, 256, 6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=".", help="a workspace after `supernet` (default: repo root)")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1234, 1235, 1236])
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    target, domains = params.data.target_domain, params.data.teacher_domains
    vocab, manifests = CharVocab(), root / "data/prepared"
    data = kd_data(manifests, root / "data/teacher_outputs", domains, target, False, vocab)
    dev = domain_split(manifests, "dev", target, vocab)
    test = domain_split(manifests, "test", target, vocab)
    teacher = load_encoder(root / "models/pretrain_iter2/encoder.safetensors")
    supernet = Supernet(load_encoder(root / "models/supernet/supernet.safetensors"))
    chosen = json.loads((root / "metrics/supernet.json").read_text())["subnet"]
    shapes = {"chosen": Subnet(**chosen)}
    if shapes["chosen"] != PREVIOUS_DEFAULT:
        shapes["previous_default"] = PREVIOUS_DEFAULT
    report: dict = {"root": str(root), "threads": cpu_threads(), "seeds": args.seeds, "rows": []}
    with tempfile.TemporaryDirectory() as state:
        for shape_name, sub in shapes.items():
            inits = {
                "slice": (teacher, sub.as_dict()),
                "supernet": (supernet.extract(sub), {}),
            }
            for init, (encoder, overrides) in inits.items():
                dp = params.distill.model_copy(update={"student": overrides})
                for seed in args.seeds:
                    name = f"{shape_name}:{init}:{seed}"
                    t0 = time.perf_counter()
                    student, result = train_arm(
                        "tok_kd", arms(dp, domains)["tok_kd"], dp, seed, encoder, data, dev,
                        Path(state) / name.replace(":", "_"), f"supernet_student:{name}",
                        lambda m, step: None,
                    )  # fmt: skip
                    student.eval()
                    t = test_scores(student, {target: test}, dp.eval_batch_seconds)
                    row = {"shape": shape_name, **sub.as_dict(), "init": init, "seed": seed}
                    add_row(
                        report,
                        {**row, **arm_row(result, t, target, time.perf_counter() - t0)},
                        args.out,
                    )
    summary = {}
    for shape_name in shapes:
        for init in ("slice", "supernet"):
            rows = [r for r in report["rows"] if r["shape"] == shape_name and r["init"] == init]
            dev_w = [r["dev_wer"] for r in rows]
            summary[f"{shape_name}:{init}"] = {
                "dev_wer_mean": round(statistics.mean(dev_w), 5),
                "dev_wer_sd": round(statistics.stdev(dev_w), 5) if len(dev_w) > 1 else None,
                "test_wer_mean": round(statistics.mean(r["test_wer"] for r in rows), 5),
            }
    report["summary"] = summary
    c = summary
    report["supernet_better_on_dev"] = (
        c["chosen:supernet"]["dev_wer_mean"] < c["chosen:slice"]["dev_wer_mean"]
    )
    emit(report, args.out)


if __name__ == "__main__":
    main()
