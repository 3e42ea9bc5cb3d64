"""Is a cheaper positional convolution the lever for teacher → early exit ≥ 5× (issue 15)?

Most utterances leave the student after layer 1, so what an early exit costs is the front end,
the positional convolution, one layer and a branch; the convolution (kernel 32, groups of 16
channels at width 128) is the largest part a student can change. Variants of the committed
student's convolution, each derived from the trained supernet's chosen subnet:

- `as_is`: as the supernet has it (the committed student's: kernel 32, groups of 16 channels;
  retrained here);
- `depthwise`: the same kernel, one channel a group, each channel keeping its own taps (the
  diagonal of its group's block);
- `half_kernel`: the same groups, the central half of each filter's taps.

Each is distilled by the arm `distill` kept (`metrics/distill.json` best_arm) on the seeds and
scored on target dev (choice) and test (report); on the first seed's student the `exits`
stage's recipe trains the branches and the `threshold_search` code chooses the operating point
on dev. Then every variant's early-exit model at its point, its full student and the teacher
`threshold_search` compared with run at batch size 1 on the target test utterances, all
interleaved in one process, in the inference form; paired speedups as in `threshold_search`.
The library's inference form runs a depthwise convolution no faster than the grouped one (a
batched matmul of 128 single-channel products); here the depthwise variant is timed with the
form the library would take with it, one weighted sum over each channel's window
(`DepthwiseWindows`: 0.18 ms vs 0.54 for the convolution at 130 frames on the Zen 3 host).

Run in a workspace after `threshold_search` (the default profile: the repo root):
  `python experiments/cheap_pos_conv.py [--root .] [--seeds 1234 1235]
      [--out experiments/results/cheap_pos_conv.json]`
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

# experiments/report.py (the script's folder is on sys.path)
from kept_arm import kept_arm, retrain_parser
from report import add_row, arm_row, emit

from hubert_ee.config import load_params
from hubert_ee.data.asr_data import domain_split
from hubert_ee.data.vocab import CharVocab
from hubert_ee.decode.operating_point import search_operating_point
from hubert_ee.device import cpu_threads
from hubert_ee.metrics.speed import interleaved_times, paired_speedup
from hubert_ee.models.checkpoint import load_ctc_model
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.inference_form import inference_form
from hubert_ee.train.exit_training import train_exits
from hubert_ee.train.kd_arms import test_scores, train_arm

VARIANTS = ("as_is", "depthwise", "half_kernel")


@torch.no_grad()
def with_pos_conv(encoder: HubertEncoder, kind: str) -> HubertEncoder:
    """`encoder` with its positional convolution made cheaper, the rest of its weights kept."""
    if kind == "as_is":
        return encoder
    cfg = encoder.cfg
    old = encoder.encoder.transformer.pos_conv_embed.conv
    w = old.weight.detach()  # (dim, dim / groups, kernel), the weight norm applied
    if kind == "depthwise":
        new_cfg = dataclasses.replace(cfg, pos_conv_groups=cfg.embed_dim)
        per_group = w.shape[1]
        new_w = w[torch.arange(w.shape[0]), torch.arange(w.shape[0]) % per_group][:, None]
    elif kind == "half_kernel":
        k = cfg.pos_conv_kernel
        new_cfg = dataclasses.replace(cfg, pos_conv_kernel=k // 2)
        new_w = w[..., k // 4 : k // 4 + k // 2]  # kernel 32: offsets -8..7 of -16..15
    else:
        raise ValueError(f"unknown positional convolution variant {kind!r}")
    out = HubertEncoder(new_cfg)
    pos = "encoder.transformer.pos_conv_embed.conv."
    state = {k: v for k, v in encoder.state_dict().items() if not k.startswith(pos)}
    missing, unexpected = out.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(pos) for k in missing), (missing, unexpected)
    conv = out.encoder.transformer.pos_conv_embed.conv
    conv.weight = new_w.contiguous()  # weight norm's right inverse sets its g and v
    conv.bias.copy_(old.bias)
    return out.train(encoder.training)


class DepthwiseWindows(torch.nn.Module):
    """The inference form of a depthwise positional convolution (see the module docstring)."""

    def __init__(self, pos: torch.nn.Module):
        super().__init__()
        conv = pos.conv
        self.k, self.pad = conv.kernel_size[0], conv.padding[0]
        self.weight = conv.weight.detach()[:, 0].clone()  # (dim, kernel)
        self.bias = conv.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        win = F.pad(x.transpose(1, 2), (self.pad, self.pad)).unfold(2, self.k, 1)[..., :t, :]
        return F.gelu((win * self.weight[:, None]).sum(-1).transpose(1, 2) + self.bias)


def fastest_form(ee):
    """`ee` in the inference form, a depthwise positional convolution as `DepthwiseWindows`."""
    ee = inference_form(ee)
    tr = ee.student.encoder.encoder.transformer
    if tr.pos_conv_embed.conv.groups == ee.student.encoder.cfg.embed_dim:
        fast = DepthwiseWindows(tr.pos_conv_embed)
        with torch.no_grad():
            x = torch.randn(1, 50, fast.weight.shape[0])
            assert torch.allclose(fast(x), tr.pos_conv_embed(x), atol=1e-4)
        tr.pos_conv_embed = fast
    return ee


def main() -> None:
    ap = retrain_parser(__doc__)
    ap.add_argument("--repeats", type=int, default=15, help="interleaved timing repeats")
    args = ap.parse_args()
    root, params = Path(args.root), load_params(args.params)
    torch.set_num_threads(cpu_threads())
    target = params.data.target_domain
    ts, vocab, manifests = params.threshold_search, CharVocab(), root / "data/prepared"
    splits = {s: domain_split(manifests, s, target, vocab) for s in ("train", "dev", "test")}
    k = kept_arm(root, params, vocab)
    supernet, chosen, arm, dp, kd, data, search = (
        k.supernet, k.chosen, k.arm, k.dp, k.kd, k.data, k.search
    )  # fmt: skip
    teacher = inference_form(
        load_ctc_model(root / f"models/teachers/{search['teacher']}/model.safetensors")
    )
    report: dict = {"root": str(root), "threads": cpu_threads(), "seeds": args.seeds,
                    "arm": arm, "teacher": search["teacher"], "rows": [], "exits": {}}  # fmt: skip
    early_exits: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as state:
        for name in VARIANTS:
            for seed in args.seeds:
                t0 = time.perf_counter()
                student, result = train_arm(
                    arm, kd, dp, seed, with_pos_conv(supernet.extract(chosen), name), data,
                    splits["dev"], Path(state) / f"{name}_{seed}", f"pos_conv:{name}:{seed}",
                    lambda m, step: None,
                )  # fmt: skip
                student.eval()
                t = test_scores(student, {target: splits["test"]}, dp.eval_batch_seconds)
                cfg = student.encoder.cfg
                row = {"name": name, "seed": seed, "pos_conv_kernel": cfg.pos_conv_kernel,
                       "pos_conv_groups": cfg.pos_conv_groups}  # fmt: skip
                add_row(
                    report,
                    {**row, **arm_row(result, t, target, time.perf_counter() - t0)},
                    args.out,
                )
                if seed != args.seeds[0]:
                    continue
                run = train_exits(
                    params.exits, params.distill.uncertainty_samples, params.seed, student.cpu(),
                    splits, Path(state) / f"exits_{name}.pt", f"pos_conv_exits:{name}",
                    lambda row: None,
                )  # fmt: skip
                ee = fastest_form(run.model)
                _, m = search_operating_point(ee, {search["teacher"]: teacher}, splits["dev"],
                                              splits["test"], ts)  # fmt: skip
                report["exits"][name] = {
                    k: m[k] for k in ("criterion", "threshold", "wer_full", "wer_ee",
                                      "speedup_measured", "speedup_teacher_to_ee",
                                      "mean_exit_layer")
                }  # fmt: skip
                report["exits"][name]["dev_chosen_wer"] = m["dev"]["chosen_wer"]
                early_exits[name] = (ee, m["criterion"], m["threshold"])
                emit(report, args.out, partial=True)

    waves = [
        splits["test"].wave(i)[None] for i in range(min(ts.speed_utterances, len(splits["test"])))
    ]
    cands = {"teacher": lambda w: teacher.logits(w)}
    for name, (ee, crit, th) in early_exits.items():
        cands[f"student/{name}"] = lambda w, ee=ee: ee.student.logits(w)
        if crit is None:  # the search chose no exit: the full student answers
            cands[f"early_exit/{name}"] = cands[f"student/{name}"]
        else:
            cands[f"early_exit/{name}"] = lambda w, ee=ee, c=crit, h=th: ee.early_exit(
                w, None, c, h
            )
    times = interleaved_times(cands, waves, args.repeats, threads=cpu_threads())
    report["timing"] = {"utterances": len(waves), "repeats": args.repeats}
    for name in early_exits:
        for part in ("student", "early_exit"):
            s = paired_speedup(times["teacher"], times[f"{part}/{name}"])
            report["timing"][f"teacher_to_{part}/{name}"] = [
                round(s.median, 3), round(s.low, 3), round(s.high, 3)
            ]  # fmt: skip
    report["summary"] = {
        name: {
            "dev_wer_mean": round(statistics.mean(r["dev_wer"] for r in rows), 5),
            "dev_wer_spread": round(max(r["dev_wer"] for r in rows) - min(r["dev_wer"] for r in rows), 5),
            "test_wer_mean": round(statistics.mean(r["test_wer"] for r in rows), 5),
            "teacher_to_ee": report["timing"][f"teacher_to_early_exit/{name}"],
        }
        for name in early_exits
        if (rows := [r for r in report["rows"] if r["name"] == name])
    }  # fmt: skip
    emit(report, args.out)


if __name__ == "__main__":
    main()
