"""Does once-for-all training make the subnets of our encoder worth cutting out (issue 15)?

Today's student is the leading slice of the pretrained encoder: for every width but the full
one, weights that were never trained to work as a smaller network. LightHuBERT trains a
supernet so that every leading slice is a network. This probe, on the default run's outputs:

1. the supernet starts from the teacher (the last pretrained encoder, whose geometry is the
   largest subnet: stage 1 is then already done) and trains `--steps` steps of stage 2 (a
   subnet drawn per micro-batch, `models.supernet_head.SupernetDistillModel` in the real
   pretraining loop, the masks and batches of `pretrain` in params.yaml) to predict the
   teacher's instance-normalised average of its top `--top-k` layers on masked frames;
2. for a spread of subnets (`space_and_probes`; the default student's shape among them), the last layer's phone PNMI on
   dev (K=100, CMVN, faiss, as `benchmarks/layer_pnmi.py`) of the teacher's leading slice (what
   `distill` starts from today) and of the trained supernet's, and the supernet's dev loss.

Dev only. One JSON object.
Run: `python experiments/supernet_probe.py --steps 300 --work /tmp/supernet
      --out experiments/results/supernet_probe.json`
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from report import emit  # experiments/report.py (the script's folder is on sys.path)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from layer_pnmi import pnmi  # noqa: E402  (benchmarks/layer_pnmi.py)

from hubert_ee.config import load_params  # noqa: E402
from hubert_ee.data.audio_io import read_mono_16k  # noqa: E402
from hubert_ee.data.manifest import load_split  # noqa: E402
from hubert_ee.models.checkpoint import load_encoder  # noqa: E402
from hubert_ee.models.config import EncoderConfig  # noqa: E402
from hubert_ee.models.supernet import (  # noqa: E402
    SearchSpace,
    Subnet,
    Supernet,
    parameter_count,
    validity_errors,
)
from hubert_ee.models.supernet_head import SupernetDistillModel  # noqa: E402
from hubert_ee.models.supernet_loss import top_k_layers  # noqa: E402
from hubert_ee.train import distributed  # noqa: E402
from hubert_ee.train.checkpointing import fingerprint  # noqa: E402
from hubert_ee.train.pretrain import evaluate, train  # noqa: E402
from hubert_ee.train.pretrain_data import PretrainData  # noqa: E402


def space_and_probes(teacher: EncoderConfig) -> tuple[SearchSpace, list[Subnet]]:
    """Half, three quarters and all of the teacher's width; half or all of its heads; FFN 2 or
    4 x the width; depths from half to all. Probed: each width at a shallow and a full depth,
    and the default student's shape (half width, FFN 2 x the teacher's width, full depth)."""
    d, h, n = teacher.embed_dim, teacher.num_heads, teacher.num_layers
    half, three_q, low = d // 2, 3 * d // 4, max(1, n // 2)
    space = SearchSpace(
        (half, three_q, d), (max(1, h // 2), h), (2.0, 4.0), tuple(sorted({low, max(1, n - 1), n}))
    )
    probes = [
        Subnet(half, max(1, h // 2), d, low),
        Subnet(half, max(1, h // 2), 2 * d, n),
        Subnet(three_q, h, 2 * three_q, max(1, n - 1)),
        Subnet(three_q, h, 4 * three_q, n),
        Subnet(d, h, 2 * d, low),
        Subnet(d, h, 4 * d, max(1, n - 1)),
        Subnet(d, h, 4 * d, n),
    ]
    return space, sorted({p for p in probes if not validity_errors(p, teacher)})


@torch.inference_mode()
def last_layer_pnmi(encoder, waves, phones, domains, args) -> dict:
    enc = encoder.eval()
    feats = [enc.hidden_states(torch.from_numpy(w)[None])[0][-1][0].numpy() for w in waves]
    return pnmi(feats, phones, domains, enc.cfg.stride, enc.cfg.receptive_field, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--teacher", default="models/pretrain_iter2/encoder.safetensors")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/prepared")
    ap.add_argument("--work", required=True, help="scratch folder (resume state)")
    ap.add_argument("--out")
    args = ap.parse_args()
    params = load_params(args.params)
    km = params.kmeans
    pt = params.pretrain.model_copy(
        update=dict(
            max_steps=args.steps, lr=args.lr, warmup_steps=max(1, args.steps // 10), eval_batches=10
        )
    )
    torch.manual_seed(params.seed)
    teacher = load_encoder(args.teacher).eval()
    space, probes = space_and_probes(teacher.cfg)
    target = top_k_layers(args.top_k, teacher.cfg.num_layers)
    model = SupernetDistillModel(copy.deepcopy(teacher).train(), teacher, space, target)
    data = PretrainData([load_split(args.manifests, s) for s in km.fit_splits], None, teacher.cfg)
    valid = PretrainData([load_split(args.manifests, km.eval_split)], None, teacher.cfg)
    d = distributed.setup()
    run_id = fingerprint({"probe": "supernet", **vars(args), "pretrain": pt.model_dump()})
    t0 = time.perf_counter()
    result = train(
        model, data, valid, pt, params.seed, Path(args.work) / "last.pt", run_id, d,
        lambda r: print(r, flush=True),
    )  # fmt: skip
    wall = time.perf_counter() - t0

    m = load_split(args.manifests, "dev")
    m = m[m["phones"].notna()]
    waves = [read_mono_16k(r.path, r.start, r.duration) for r in m.itertuples()]
    phones, domains = list(m["phones"]), list(m["domain"])
    pn = argparse.Namespace(k=100, seed=0, implementation="faiss", max_iter=25, cmvn=True)
    sliced, trained = Supernet(teacher), Supernet(model.encoder)
    rows = []
    for sub in probes:
        model.fixed = sub  # the loop's evaluate() then scores this subnet
        dev = evaluate(model, valid, pt, params.seed, d.device)
        rows.append(
            {
                **sub.as_dict(),
                "params": parameter_count(sub, teacher.cfg),
                "pnmi_teacher_slice": last_layer_pnmi(sliced.extract(sub), waves, phones, domains, pn),
                "pnmi_supernet": last_layer_pnmi(trained.extract(sub), waves, phones, domains, pn),
                "dev_loss_supernet": round(dev["loss"], 4),
                "dev_cosine_supernet": round(dev["masked_acc"], 4),
            }
        )  # fmt: skip
        print(rows[-1], flush=True)
        emit({"rows": rows}, args.out, partial=True)
    emit(
        {
            "what": "supernet stage 2 from the teacher vs the teacher's leading slices (dev)",
            "teacher": args.teacher,
            "teacher_params": sum(p.numel() for p in teacher.parameters()),
            "space": {k: list(v) for k, v in vars(space).items()},
            "steps": args.steps,
            "lr": args.lr,
            "top_k": args.top_k,
            "train_wall_s": round(wall, 1),
            "final_train_loss": result.history[-1]["loss"] if result.history else None,
            "rows": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
