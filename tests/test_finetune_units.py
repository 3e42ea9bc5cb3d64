"""The fine-tuning loop's schedule: head-only warm-up, frozen front end, plateau-aware patience."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from hubert_ee.config import CTCTrainParams, ExitsParams, PretrainConfig, TrainLoop
from hubert_ee.data.vocab import CharVocab
from hubert_ee.models.config import tiny
from hubert_ee.models.ctc_model import CTCModel
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.train.finetune import finetune

V = CharVocab()


class TinyASR(torch.utils.data.Dataset):
    """In-memory stand-in for ASRData: noise waves with short transcripts."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.waves = [torch.randn(8000 + 800 * i, generator=g) * 0.1 for i in range(n)]
        self.text = ["a cat" if i % 2 else "the dog" for i in range(n)]
        self.vocab = V

    def __len__(self) -> int:
        return len(self.waves)

    def lengths(self):
        import numpy as np

        return np.array([len(w) for w in self.waves])

    def texts(self, idx=None):
        return self.text if idx is None else [self.text[i] for i in idx]

    def __getitem__(self, i):
        return self.waves[i], V.encode(self.text[i])


def _cfg(**kw) -> CTCTrainParams:
    base = dict(
        max_steps=3, max_batch_seconds=2.0, lr=1e-3, warmup_steps=1, freeze_encoder_steps=0,
        weight_decay=0.0, clip_norm=10.0, mask_time_prob=0.0, mask_time_span=5,
        mask_channel_prob=0.0, mask_channel_span=4, uncertainty=True, uncertainty_samples=2,
        uncertainty_loss="sequence", final_dropout=0.0, eval_every=1, patience=1,
        eval_batch_seconds=2.0, encoder_lr_scale=1.0, schedule="linear", amp="off",
    )  # fmt: skip
    base.update(kw)
    return CTCTrainParams(**base)


def _model() -> CTCModel:
    torch.manual_seed(0)
    return CTCModel(HubertEncoder(replace(tiny(), num_layers=1)), V)


def test_head_only_warm_up_leaves_the_encoder_alone(tmp_path):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(model, TinyASR(4, 0), TinyASR(2, 1), _cfg(max_steps=2, freeze_encoder_steps=2,
             patience=10), 0, tmp_path / "s.pt", "x", torch.device("cpu"))  # fmt: skip
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("head.", "variance_head.")) for k in changed), changed


def test_patience_waits_while_the_model_only_emits_blanks(tmp_path):
    """Two evaluations at WER = CER = 1 do not stop a run with patience 1."""
    model = _model()
    res = finetune(model, TinyASR(4, 0), TinyASR(2, 1), _cfg(max_steps=3, lr=1e-6), 0,
                   tmp_path / "s.pt", "x", torch.device("cpu"))  # fmt: skip
    assert all(e["cer"] >= 1.0 for e in res.evals)
    assert res.steps == 3 and not res.stopped_early


def test_encoder_trains_at_its_scaled_lr_and_heads_at_the_full_one(tmp_path):
    """One plain-SGD-like comparison is hard with Adam; check the optimizer's groups instead."""
    from hubert_ee.train.optim import adamw_with_schedule

    model = _model()
    enc = list(model.encoder.parameters())
    head = [model.head.weight]
    opt, _ = adamw_with_schedule(head, [model.head.bias], 1e-3, 0.01, 1, 10, 1e-8,
                                 scaled=([p for p in enc if p.ndim >= 2],
                                         [p for p in enc if p.ndim < 2], 0.1))  # fmt: skip
    lrs = sorted({round(g["lr"], 8) for g in opt.param_groups})
    assert lrs == [1e-4, 1e-3]
    n_enc = sum(len(g["params"]) for g in opt.param_groups if round(g["lr"], 8) == 1e-4)
    assert n_enc == len(enc)


def test_tri_stage_warms_up_holds_and_decays_to_five_percent():
    from hubert_ee.train.optim import tri_stage_lambda

    f = tri_stage_lambda(warmup=10, total=100)
    assert f(0) == 0.1 and f(9) == 1.0  # linear warm-up
    assert f(10) == f(49) == 1.0  # hold to half
    assert abs(f(75) - 0.05**0.5) < 1e-12  # exponential decay
    assert abs(f(100) - 0.05) < 1e-12 and abs(f(1000) - 0.05) < 1e-12


def test_a_paused_run_continues_exactly_like_an_uninterrupted_one(tmp_path):
    """The lr probes stop at `stop_at` and the chosen one continues from its state."""
    cfg = _cfg(max_steps=4, eval_every=2, patience=10, mask_time_prob=0.2)
    whole = _model()
    finetune(
        whole, TinyASR(4, 0), TinyASR(2, 1), cfg, 0, tmp_path / "a.pt", "x", torch.device("cpu")
    )
    paused = _model()
    r = finetune(paused, TinyASR(4, 0), TinyASR(2, 1), cfg, 0, tmp_path / "b.pt", "x",
                 torch.device("cpu"), stop_at=2)  # fmt: skip
    assert r.steps == 2 and [e["step"] for e in r.evals] == [2]
    resumed = _model()
    r = finetune(resumed, TinyASR(4, 0), TinyASR(2, 1), cfg, 0, tmp_path / "b.pt", "x",
                 torch.device("cpu"))  # fmt: skip
    assert r.steps == 4 and r.resumed_from == 2
    for k, v in whole.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k


def test_time_masks_feed_the_encoders_mask_embedding():
    model = _model().eval()
    wave, lengths = torch.randn(1, 8000), torch.tensor([8000])
    frames = int(model.encoder.frame_lengths(lengths)[0])
    mask = torch.zeros(1, frames, dtype=torch.bool)
    mask[0, 2:5] = True
    x, _, _ = model.frontend(wave, lengths, mask)
    assert torch.equal(x[0, 3], model.encoder.mask_embedding)
    assert not torch.equal(x[0, 6], model.encoder.mask_embedding)


def test_every_training_stage_reads_one_loop_section_and_arms_replace_only_known_fields():
    """DESIGN §2: one typed loop section (TrainLoop; the CTC loop of finetune, distill and exits
    on top), the training functions take the section itself; an arm's recipe is a copy."""
    assert all(issubclass(c, TrainLoop) for c in (PretrainConfig, CTCTrainParams, ExitsParams))
    loop_keys = set(TrainLoop.model_fields)
    assert {"max_steps", "lr", "warmup_steps", "clip_norm"} <= loop_keys
    cfg = _cfg()
    arm = cfg.with_fields(lr=5e-4, encoder_lr_scale=0.3)
    assert (arm.lr, arm.encoder_lr_scale, cfg.lr) == (5e-4, 0.3, 1e-3)
    assert arm.noise_samples == 2 and cfg.with_fields(uncertainty=False).noise_samples == 0
    with pytest.raises(ValueError, match="unknown training field"):
        cfg.with_fields(learning_rate=1.0)


def test_a_teachers_arms_train_on_one_thread_each_and_a_lone_arm_on_all(
    smoke_params, monkeypatch, tmp_path
):
    """The decision of `teacher.train_units`: several arms train on one torch thread each, so a
    figure does not depend on how many ran side by side; one arm keeps every thread."""
    from hubert_ee.train import teacher

    torch.set_num_threads(2)
    enc = HubertEncoder(tiny())
    encoder = (enc.cfg, enc.state_dict())
    ft = smoke_params.finetune
    seen: dict[str, int] = {}

    def fake_unit(unit, log_metrics=None):
        seen[unit.arm + unit.tag] = torch.get_num_threads()
        model = teacher.ctc_model(HubertEncoder(unit.encoder[0]), unit.ft)
        for p in model.parameters():  # a recognisable "trained" model per arm
            p.data.fill_(0.5 if unit.from_scratch else 0.25)
        result = type("R", (), {"best": {"wer": 0.5}})()
        rows = [] if log_metrics else [({f"{unit.arm}/loss": 1.0}, 3)]
        if log_metrics:
            log_metrics({f"{unit.arm}/loss": 1.0}, 3)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        return teacher.TeacherOutcome(state, result, {"chosen": unit.ft.lr}, rows)

    monkeypatch.setattr(teacher, "train_teacher_unit", fake_unit)
    common = {"encoder": encoder, "ft": ft, "seed": 1, "train": None, "dev": None,
              "state_dir": tmp_path, "stage_key": "k", "recipe": {}}  # fmt: skip
    units = [teacher.TeacherUnit("pretrained", False, **common),
             teacher.TeacherUnit("scratch", True, **common)]  # fmt: skip
    logged: list = []
    got = teacher.train_units(units, 1, lambda m, step: logged.append((m, step)))
    assert seen == {"pretrained": 1, "scratch": 1}
    assert torch.get_num_threads() == 2  # given back to the stage
    assert [float(next(m.parameters()).flatten()[0]) for m, _, _ in got] == [0.25, 0.5]
    assert logged == [({"pretrained/loss": 1.0}, 3), ({"scratch/loss": 1.0}, 3)]
    seen.clear()
    logged.clear()
    (only,) = teacher.train_units(units[:1], 4, lambda m, step: logged.append((m, step)))
    assert seen == {"pretrained": 2} and logged == [({"pretrained/loss": 1.0}, 3)]


def test_bf16_autocast_trains_the_forward_in_bf16_and_the_objective_in_fp32(tmp_path):
    """`amp: bf16`: the encoder's matmuls run in bf16, the objective still gets fp32 tensors,
    and the weights (fp32 masters) move; `amp: off` keeps every activation in fp32."""
    seen: dict[str, set] = {"objective": set(), "linear": set()}

    def objective(out, batch, gen):
        seen["objective"].add(out.logits.dtype)
        return torch.nn.functional.mse_loss(out.logits, torch.zeros_like(out.logits)), {}

    for amp in ("off", "bf16"):
        seen["objective"].clear(), seen["linear"].clear()
        model = _model()
        hook = model.head.register_forward_hook(lambda m, i, o: seen["linear"].add(o.dtype))
        before = model.head.weight.detach().clone()
        finetune(model, TinyASR(4, 0), TinyASR(2, 1), _cfg(max_steps=2, amp=amp, eval_every=10),
                 0, tmp_path / f"{amp}.pt", "x", torch.device("cpu"), objective=objective)  # fmt: skip
        hook.remove()
        assert seen["objective"] == {torch.float32}
        assert model.head.weight.dtype == torch.float32
        assert not torch.equal(model.head.weight, before)
        # the dev evaluation runs in fp32 either way, so the training forwards carry the bf16
        expected = {torch.float32, torch.bfloat16} if amp == "bf16" else {torch.float32}
        assert seen["linear"] == expected, (amp, seen["linear"])
