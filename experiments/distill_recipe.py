"""Is the student alone's all-blank plateau a recipe artifact (issue 14)? The `distill` stage's
student_only, tok_kd and unc_kd arms under a few variants of the distillation recipe (peak lr,
batch size), on several seeds, from the same student initialisation the stage uses.

With the stage's recipe the student alone stays at dev WER 1.0 for 300 steps on some seeds
(`experiments/results/distill_steps_600.json`), which makes its seed spread the size of every
difference between arms. A recipe under which every arm leaves the plateau makes the
comparison decisive, whichever way it goes. Decision on dev (mean over seeds, with the spread);
test is reported only.

The β variants ask the other question of issue 14: uncertainty KD differs from token KD only by
β · ‖σ̂^k − σ̂^s‖², which at the section's β = 1 ends training at about a thousandth of the
token-KD term; the hypothesis is that the two arms then differ only by noise. If matching the teachers' σ² teaches the student
anything, a β that makes the term count must move unc_kd away from tok_kd on dev.

The `size` variants match the size of the teachers' σ² per frame (log Σ_c σ²) instead of its
normalised shape, which is one fixed class on every frame (results/sigma_classes.json) while
the size ranks their errors (uncertainty/spearman_cer); `frame_weights` weighs the two teachers
frame by frame by their certainty (r_k,t ∝ 1 / Σ_c σ²_k,t). `profile` matches log Σ_c σ²
centred over each utterance: where in it the teachers are unsure, not their level (`size`
left every seed on the all-blank plateau: results/distill_uncertainty_size_abs.json);
`profile_beta3` / `profile_beta10` weigh it more (at β = 1 it ends near 0.03 per teacher).

`alpha025` / `alpha075` / `tau2` vary the weight of the teacher terms (α) and the temperature
of their posteriors (τ), which the section took from DESIGN §7 without a measurement;
`steps1200` trains every arm 1,200 steps instead of 900 (the default since a1cce1a), `steps2400`
twice the default's;
`warmup120` warms the learning rate up over 120 steps instead of 30; `amp_native` trains the arms
under bf16 autocast where the CPU computes bf16 (`amp: native`, as the teachers do).

The arms train `--workers` at a time (0: one per core), one torch thread each, as the stage's
do: a row reproduces the stage's arm of the same seed to the digit.

Run in a workspace after `teacher_outputs` (the default profile: the repo root):
  `python experiments/distill_recipe.py [--root .] [--variants base lr1e-3 lr1e-2 batch10]
      [--seeds 1234 1235] [--out experiments/results/distill_recipe.json]`
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

# experiments/ (the script's folder is on sys.path)
from kept_arm import retrain_parser
from report import add_row, arm_row, emit

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.device import cpu_threads
from hubert_ee.models.checkpoint import load_encoder
from hubert_ee.parallel import Executor, run_units
from hubert_ee.train.kd_arms import ArmUnit, arms, kd_data, train_unit

VARIANTS: dict[str, dict] = {  # overrides of params.distill
    "base": {},
    "lr1e-3": {"lr": 1.0e-3},
    "lr1e-2": {"lr": 1.0e-2},
    "batch10": {"max_batch_seconds": 10},
    # β, the weight of the σ̂-matching term (unc_kd only; at β = 1 it ends at ~1e-3 of the KD loss)
    "beta3": {"beta": 3.0},
    "beta10": {"beta": 10.0},
    "beta30": {"beta": 30.0},
    "beta300": {"beta": 300.0},
    "beta3000": {"beta": 3000.0},
    # what of the teachers' σ² the student is taught: its per-frame size (log Σσ², which ranks the
    # teachers' errors) instead of its per-frame shape σ̂ (one fixed class: sigma_classes.json)
    "size": {"uncertainty_match": "size"},
    "profile": {"uncertainty_match": "profile"},
    "profile_beta3": {"uncertainty_match": "profile", "beta": 3.0},
    "profile_beta10": {"uncertainty_match": "profile", "beta": 10.0},
    # the teachers weighed frame by frame by their certainty (r_k,t ∝ 1 / Σσ²_k,t)
    "frame_weights": {"teacher_weights": "frame_uncertainty"},
    # how much the student listens to the teachers (α, the section's 0.5) and how soft their
    # posteriors are (τ, the section's 1): neither was chosen on dev before
    "alpha025": {"alpha": 0.25},
    "alpha075": {"alpha": 0.75},
    "tau2": {"temperature": 2.0},
    # the budget the side-by-side arms freed: most dev curves still fell at 900 steps
    "steps1200": {"max_steps": 1200},
    # twice the default's steps: is the student's budget what holds KD from teachers that hear
    # the target at 0.93x (distill_self_trained_teachers.json)?
    "steps2400": {"max_steps": 2400},
    # 30 warm-up steps to 3e-3: on a Zen 4 host two of six arms never left the all-blank plateau
    "warmup120": {"warmup_steps": 120},
    # bf16 autocast of the arms' forward where the CPU computes bf16 (finetune's `native`): the
    # budget's next ~2-3 min, if no arm stalls on the plateau in bf16
    "amp_native": {"amp": "native"},
}
ARMS = ("student_only", "tok_kd", "unc_kd")


def main() -> None:
    ap = retrain_parser(__doc__)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--workers", type=int, default=0, help="arms at once (0: one per core)")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    target, domains = params.data.target_domain, params.data.teacher_domains
    vocab, manifests = CharVocab(), root / "data/prepared"
    dp0 = params.distill.model_copy(update={"arm_recipe": {}})  # every arm the variant's recipe
    data = kd_data(
        manifests, root / "data/teacher_outputs", domains, target, dp0.use_unlabeled, vocab
    )
    dev = domain_split(manifests, "dev", target, vocab)
    test = domain_split(manifests, "test", target, vocab)
    encoder = load_encoder(root / "models/supernet/student.safetensors")
    report: dict = {
        "root": str(root),
        "threads": cpu_threads(),
        "seeds": args.seeds,
        "variants": {v: VARIANTS[v] for v in args.variants},
        "rows": [],
    }
    weights = {k: v.detach() for k, v in encoder.state_dict().items()}
    with tempfile.TemporaryDirectory() as state:
        units = []
        for variant in args.variants:
            dp = dp0.model_copy(update=VARIANTS[variant])
            every_arm = arms(dp, domains)
            for arm in args.arms:
                unc_only = {"beta", "uncertainty_match"} & set(VARIANTS[variant])
                if unc_only and every_arm[arm].beta == 0:
                    continue  # β and L_unc only shape the uncertainty term: this arm is the base's
                if every_arm[arm].alpha == 0 and {"teacher_weights", "alpha", "temperature"} & set(
                    VARIANTS[variant]
                ):
                    continue  # the student alone has no teachers: the base's arm
                for seed in args.seeds:
                    name = f"{variant}:{arm}:{seed}"
                    units.append(
                        ArmUnit(name, arm, every_arm[arm], dp, seed, (encoder.cfg, weights), data,
                                dev, {target: test}, Path(state) / name.replace(":", "_"),
                                f"distill_recipe:{name}")
                    )  # fmt: skip
        workers = args.workers or cpu_threads()
        report["workers"], report["threads_per_arm"] = workers, 1
        for got in run_units(train_unit, units, Executor("local", workers)):
            variant, arm, seed = got.name.split(":")
            curve = [[e["step"], round(e["wer"], 4), round(e["cer"], 4)] for e in got.result.evals]
            row = {"variant": variant, "arm": arm, "seed": int(seed), "dev_curve": curve}
            add_row(
                report, {**row, **arm_row(got.result, got.scores, target, got.seconds)}, args.out
            )
    report["rows"].sort(
        key=lambda r: [u.name for u in units].index(f"{r['variant']}:{r['arm']}:{r['seed']}")
    )
    summary: dict = {}
    for variant in args.variants:
        for arm in args.arms:
            rows = [r for r in report["rows"] if r["variant"] == variant and r["arm"] == arm]
            if not rows:
                continue
            dev_w = [r["dev_wer"] for r in rows]
            summary[f"{variant}:{arm}"] = {
                "dev_wer_mean": round(statistics.mean(dev_w), 5),
                "dev_wer_spread": round(max(dev_w) - min(dev_w), 5),
                "test_wer_mean": round(statistics.mean(r["test_wer"] for r in rows), 5),
                "test_cer_mean": round(statistics.mean(r["test_cer"] for r in rows), 5),
            }
    report["summary"] = summary
    emit(report, args.out)


if __name__ == "__main__":
    main()
