"""Distillation math: KD losses against hand-computed values, teacher weights, student init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hubert_ee.models.config import tiny
from hubert_ee.models.encoder import HubertEncoder
from hubert_ee.models.student import init_from_teacher, parameter_count, student_config
from hubert_ee.train.distill import KDConfig, teacher_weights, uncertainty_match_loss
from hubert_ee.train.losses import (
    _masked_frame_mean,
    normalized_variance,
    token_kd_loss,
    uncertainty_kd_loss,
    uncertainty_profile_loss,
    uncertainty_size_loss,
)


def test_token_kd_is_tau_squared_kl_over_valid_frames():
    t = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
    s = torch.log(torch.tensor([[[0.25, 0.75], [0.9, 0.1], [0.5, 0.5]]]))
    valid = torch.tensor([[True, True, False]])
    kl0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert token_kd_loss(s, t, valid, 1.0).item() == pytest.approx(kl0 / 2, rel=1e-5)
    # temperature 2: KL between the softened distributions, times 4
    pt, ps = torch.softmax(t[0, 0] / 2, -1), torch.softmax(s[0, 0] / 2, -1)
    kl_t = float((pt * (pt.log() - ps.log())).sum())
    assert token_kd_loss(s[:, :1], t[:, :1], valid[:, :1], 2.0).item() == pytest.approx(
        4 * kl_t, rel=1e-5
    )
    assert token_kd_loss(t, t, valid, 1.0).item() == pytest.approx(0.0, abs=1e-7)


def test_uncertainty_kd_is_mse_of_l2_normalized_variances():
    tv = torch.tensor([[[3.0, 4.0]]])  # normalized (0.6, 0.8)
    sv = torch.tensor([[[1.0, 0.0]]])  # normalized (1, 0)
    valid = torch.tensor([[True]])
    assert normalized_variance(tv)[0, 0].tolist() == pytest.approx([0.6, 0.8])
    expected = (0.6 - 1.0) ** 2 + 0.8**2
    assert uncertainty_kd_loss(sv, tv, valid).item() == pytest.approx(expected, rel=1e-6)
    # scale-free: only the shape of the variance vector matters
    assert uncertainty_kd_loss(sv * 7, tv * 0.01, valid).item() == pytest.approx(expected, rel=1e-5)


def test_row_weights_scale_each_utterance():
    t = torch.log(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]))
    s = torch.log(torch.tensor([[[0.25, 0.75]], [[0.5, 0.5]]]))
    valid = torch.ones(2, 1, dtype=torch.bool)
    per = [token_kd_loss(s[i : i + 1], t[i : i + 1], valid[:1], 1.0).item() for i in range(2)]
    got = token_kd_loss(s, t, valid, 1.0, torch.tensor([0.25, 1.0])).item()
    assert got == pytest.approx((0.25 * per[0] + 1.0 * per[1]) / 2, rel=1e-5)


def test_teacher_weights_fixed_and_per_utterance():
    var = torch.tensor([[[[1.0]], [[1.0]]], [[[3.0]], [[1.0]]]])  # (K=2, batch=2, frames=1, C=1)
    valid = torch.ones(2, 1, dtype=torch.bool)
    fixed = teacher_weights(KDConfig(0.5, 1.0, 1.0, (0.7, 0.3), 0), var, valid)
    assert fixed[:, 0].tolist() == pytest.approx([0.7, 0.3])
    per = teacher_weights(KDConfig(0.5, 1.0, 1.0, (0.5, 0.5), 0, per_utterance=True), var, valid)
    # utterance 0: teacher 1 is 3x less sure → r = (3/4, 1/4); utterance 1: equal
    assert per[:, 0].tolist() == pytest.approx([0.75, 0.25])
    assert per[:, 1].tolist() == pytest.approx([0.5, 0.5])
    assert per.sum(0).tolist() == pytest.approx([1.0, 1.0])


def test_student_is_cut_from_the_teacher():
    teacher = HubertEncoder(tiny())
    cfg = student_config(teacher.cfg, {"embed_dim": 128, "num_heads": 2, "ffn_dim": 512})
    student = HubertEncoder(cfg)
    report = init_from_teacher(student, teacher)
    assert parameter_count(student) * 3 <= parameter_count(teacher)
    q_s = student.encoder.transformer.layers[0].attention.q_proj.weight
    q_t = teacher.encoder.transformer.layers[0].attention.q_proj.weight
    assert torch.equal(q_s, q_t[:128, :128])  # first heads (head size 64 kept), first channels
    assert report["encoder.transformer.layers.0.attention.q_proj.weight"] == "sliced"
    with pytest.raises(ValueError, match="unknown student encoder field"):
        student_config(teacher.cfg, {"width": 3})


def test_teacher_output_store_keeps_small_variances(tmp_path):
    """σ² is matched after normalisation, so its small values matter: the cache must not round
    them away (float16 turns a σ² of 1e-9 into 0)."""
    import pandas as pd
    import soundfile as sf

    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.decode.teacher_outputs import cache_split, teacher_frames
    from hubert_ee.models.ctc_model import CTCModel

    torch.manual_seed(0)
    model = CTCModel(HubertEncoder(tiny()), CharVocab(), uncertainty=True).eval()
    torch.nn.init.constant_(model.variance_head.bias, -21.0)  # softplus(-21) ≈ 7.6e-10
    wave = (0.1 * torch.randn(8000)).numpy()
    sf.write(tmp_path / "a.wav", wave, 16000)
    rows = pd.DataFrame(
        [{"id": "a", "path": str(tmp_path / "a.wav"), "start": 0.0, "duration": 0.5,
          "num_samples": 8000}]
    )  # fmt: skip
    store = cache_split(model, rows, tmp_path / "store", 1, 10.0, "test")
    [(uid, stored)] = list(store)
    expected = teacher_frames(model, [sf.read(tmp_path / "a.wav", dtype="float32")[0]])[0]
    classes = model.head.out_features
    assert uid == "a" and stored.shape == expected.shape
    assert (stored[:, classes:] > 0).all()
    np.testing.assert_allclose(stored[:, classes:], expected[:, classes:], rtol=1e-6)


def test_teacher_store_resumes_its_own_shards_and_not_another_teachers(tmp_path, capsys):
    """A killed cache resumes at its first missing shard, but only for the same weights: another
    teacher's shards under the same path are deleted, not read as this teacher's."""
    import pandas as pd
    import soundfile as sf

    from hubert_ee.data.vocab import CharVocab
    from hubert_ee.decode.teacher_outputs import cache_split
    from hubert_ee.features.store import shard_name
    from hubert_ee.models.checkpoint import weights_digest
    from hubert_ee.models.ctc_model import CTCModel

    rows = []
    for i in range(3):
        sf.write(tmp_path / f"{i}.wav", (0.1 * torch.randn(4000 + 800 * i)).numpy(), 16000)
        rows.append({"id": f"u{i}", "path": str(tmp_path / f"{i}.wav"), "start": 0.0,
                     "duration": (4000 + 800 * i) / 16000, "num_samples": 4000 + 800 * i})  # fmt: skip
    rows = pd.DataFrame(rows)
    torch.manual_seed(0)
    a = CTCModel(HubertEncoder(tiny()), CharVocab(), uncertainty=True).eval()
    b = CTCModel(HubertEncoder(tiny()), CharVocab(), uncertainty=True).eval()
    assert weights_digest(a) != weights_digest(b)
    out = tmp_path / "store"
    expected = {m: dict(cache_split(m, rows, tmp_path / f"ref{i}", 3, 10.0, "t")) for i, m in
                enumerate((a, b))}  # fmt: skip
    cache_split(a, rows, out, 3, 10.0, "t")
    first = out / f"{shard_name(0, 3)}.npy"
    before = first.stat().st_mtime_ns
    (out / f"{shard_name(2, 3)}.ids.txt").unlink()  # killed while writing shard 2
    cache_split(a, rows, out, 3, 10.0, "t")  # the same teacher: resumes, shard 0 untouched
    assert first.stat().st_mtime_ns == before and "other inputs" not in capsys.readouterr().out
    (out / f"{shard_name(2, 3)}.ids.txt").unlink()
    got = dict(cache_split(b, rows, out, 3, 10.0, "t"))  # another teacher, same folder
    assert "shard files were made from other inputs" in capsys.readouterr().out
    for uid, frames in got.items():
        np.testing.assert_array_equal(frames, expected[b][uid])
        assert not np.array_equal(frames, expected[a][uid])


def test_weights_digest_follows_the_tensors_not_the_object():
    from hubert_ee.models.checkpoint import weights_digest

    torch.manual_seed(0)
    enc = HubertEncoder(tiny())
    twin = HubertEncoder(tiny())
    twin.load_state_dict(enc.state_dict())
    assert weights_digest(enc) == weights_digest(twin)
    with torch.no_grad():
        next(twin.parameters()).view(-1)[0] += 1e-6
    assert weights_digest(enc) != weights_digest(twin)
    half = HubertEncoder(tiny())
    half.load_state_dict(enc.state_dict())
    assert weights_digest(half.to(torch.bfloat16)) != weights_digest(enc)  # dtype counts


def test_a_teacher_no_better_than_the_student_alone_is_flagged():
    from hubert_ee.train.distill import weak_teacher_warnings

    arms = {"student_only": 0.80, "tok_kd": 0.85}
    warned = weak_teacher_warnings({"read": 0.97, "lecture": 0.55}, arms, "phone")
    assert len(warned) == 1 and warned[0].startswith("teacher read has phone dev WER 0.970")
    assert "(0.800)" in warned[0]
    assert weak_teacher_warnings({"read": 0.80}, arms, "phone")  # a tie teaches nothing either
    assert weak_teacher_warnings({"read": 0.97}, {"tok_kd": 0.9}, "phone") == []


def test_the_kd_ablation_arms_and_the_arm_choice(smoke_params):
    from hubert_ee.train.kd_arms import arms, best_arm, relative_wer_change

    dp = smoke_params.distill.model_copy(update={"single_teacher_arms": True})
    got = arms(dp, ["read", "lecture"])
    assert list(got) == ["student_only", "tok_kd", "unc_kd", "unc_kd_read", "unc_kd_lecture"]
    assert got["student_only"].alpha == 0.0 and got["student_only"].beta == 0.0
    assert got["tok_kd"].alpha == dp.alpha and got["tok_kd"].beta == 0.0
    assert got["unc_kd"].teacher_weights == (0.5, 0.5)
    assert got["unc_kd_lecture"].teacher_weights == (0.0, 1.0)
    weighted = arms(dp.model_copy(update={"teacher_weights": [3.0, 1.0]}), ["read", "lecture"])
    assert weighted["unc_kd"].teacher_weights == (0.75, 0.25)
    with pytest.raises(ValueError, match="has 1 values for 2 teachers"):
        arms(dp.model_copy(update={"teacher_weights": [1.0]}), ["read", "lecture"])

    assert best_arm({"student_only": 0.9, "tok_kd": 0.8, "unc_kd": 0.8}) == "tok_kd"  # first tie
    wer = {"student_only": {"phone": 0.8}, "unc_kd": {"phone": 0.6}}
    assert relative_wer_change(wer, "phone") == {"student_only": 0.0, "unc_kd": -0.25}


def test_a_difference_is_called_only_beyond_the_seed_spread():
    from hubert_ee.train.kd_arms import call_difference, seed_report

    base = [0.90, 0.92]  # mean 0.91, spread 0.02
    assert call_difference([0.85, 0.86], base) == "better"  # 0.055 below, spreads 0.01 / 0.02
    assert call_difference([0.89, 0.91], base) == "tie"  # 0.01 below, within the spread
    assert call_difference([0.95, 0.99], base) == "worse"  # 0.06 above, spread 0.04
    assert call_difference([0.80, 0.90], base) == "tie"  # 0.06 below, but its own spread 0.10
    assert call_difference([0.5], base) == "one seed"
    report = seed_report({"student_only": {1: 0.9, 2: 0.92}, "unc_kd": {1: 0.85, 2: 0.86}})
    assert report["wer_spread"] == {"student_only": 0.02, "unc_kd": 0.01}
    assert report["wer_mean"] == {"student_only": 0.91, "unc_kd": 0.855}
    assert report["wer_seeds"]["unc_kd"] == {"1": 0.85, "2": 0.86}
    assert report["vs_student_only"] == {"unc_kd": "better"}


def test_an_arm_can_have_its_own_recipe(smoke_params):
    from hubert_ee.config import DistillParams

    raw = smoke_params.distill.model_dump()
    dp = DistillParams(**{**raw, "arm_recipe": {"student_only": {"lr": 1.0e-3}}})
    assert dp.for_arm("student_only").lr == 1.0e-3
    assert dp.for_arm("tok_kd").lr == dp.lr == raw["lr"]
    assert dp.for_arm("tok_kd") is dp  # no recipe of its own: the section itself
    with pytest.raises(ValueError, match="unknown arm 'teacher'"):
        DistillParams(**{**raw, "arm_recipe": {"teacher": {"lr": 1.0e-3}}})
    with pytest.raises(ValueError, match=r"arm_recipe.tok_kd has unknown field\(s\) \['alpha'\]"):
        DistillParams(**{**raw, "arm_recipe": {"tok_kd": {"alpha": 0.1}}})  # an objective field
    with pytest.raises(ValueError, match="less than or equal to 1"):
        DistillParams(**{**raw, "arm_recipe": {"unc_kd_read": {"lr": 3.0}}})


def test_a_single_teacher_arm_recipe_must_name_a_teacher(smoke_raw):
    import copy

    from hubert_ee.config import validate_params

    raw = copy.deepcopy(smoke_raw)
    raw["distill"]["arm_recipe"] = {"unc_kd_read": {"lr": 1.0e-3}}
    assert validate_params(raw).distill.for_arm("unc_kd_read").lr == 1.0e-3
    raw["distill"]["arm_recipe"] = {"unc_kd_raed": {"lr": 1.0e-3}}  # a typo: never trained
    with pytest.raises(ValueError, match="'raed' is not among data.teacher_domains"):
        validate_params(raw)


def test_every_seed_of_an_arm_trains_with_its_recipe(smoke_params, tmp_path):
    from hubert_ee.train import kd_arms

    recipe = {"student_only": {"lr": 1.0e-3}, "unc_kd": {"max_steps": 7}}
    dp = smoke_params.distill.model_copy(update={"arm_recipe": recipe, "extra_seeds": [9]})
    encoder = type("Encoder", (), {"cfg": None, "state_dict": lambda self: {}})()
    tests = {"read": None, "phone": None}
    job = kd_arms.KDJob(dp, 1, "phone", encoder, {}, None, tests, tmp_path, "k", print)
    units = {u.name: u for u in kd_arms.arm_units(job, ["read", "lecture"])}
    seen = {name: (u.dp.lr, u.dp.max_steps, u.seed) for name, u in units.items()}
    steps = dp.max_steps
    assert seen["student_only"] == (1.0e-3, steps, 1)
    assert seen["student_only-seed9"] == (1.0e-3, steps, 9)
    assert seen["tok_kd"] == (dp.lr, steps, 1) and seen["tok_kd-seed9"] == (dp.lr, steps, 9)
    assert seen["unc_kd"][:2] == seen["unc_kd-seed9"][:2] == (dp.lr, 7)
    # the stage's seed is scored on every test split, the extra seeds on the target's only
    assert list(units["unc_kd"].tests) == ["read", "phone"]
    assert list(units["unc_kd-seed9"].tests) == ["phone"]
    # each unit resumes from its own state and fingerprint
    assert len({u.state_path for u in units.values()}) == len({u.run_id for u in units.values()})
    assert len({u.run_id for u in units.values()}) == len(units)


def test_teacher_weights_per_frame_follow_each_frames_certainty():
    # (K=2, batch=1, frames=2, C=2): frame 0 teacher 0 is 3x less sure, frame 1 teacher 1 is
    var = torch.tensor([[[[1.0, 2.0], [0.5, 0.5]]], [[[0.5, 0.5], [1.0, 2.0]]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    cfg = KDConfig(0.5, 1.0, 1.0, (0.5, 0.5), 0, per_frame=True)
    r = teacher_weights(cfg, var, valid)
    assert r.shape == (2, 1, 2)
    assert r[:, 0, 0].tolist() == pytest.approx([0.25, 0.75])
    assert r[:, 0, 1].tolist() == pytest.approx([0.75, 0.25])
    # a teacher with fixed weight 0 never weighs
    off = teacher_weights(KDConfig(0.5, 1.0, 1.0, (1.0, 0.0), 0, per_frame=True), var, valid)
    assert off[0, 0].tolist() == pytest.approx([1.0, 1.0])
    assert off[1, 0].tolist() == pytest.approx([0.0, 0.0])


def test_frame_weights_scale_each_frame():
    per_frame = torch.tensor([[1.0, 3.0, 5.0]])
    valid = torch.tensor([[True, True, False]])
    got = _masked_frame_mean(per_frame, valid, torch.tensor([[0.5, 2.0, 9.0]]))
    assert got.item() == pytest.approx((0.5 * 1.0 + 2.0 * 3.0) / 2)


def test_uncertainty_size_loss_matches_log_total_variance():
    teacher = torch.tensor([[[1.0, 1.0], [0.1, 0.1]]])  # totals 2, 0.2
    student = torch.tensor([[[0.5, 1.5], [2.0, 0.0]]])  # totals 2, 2
    valid = torch.ones(1, 2, dtype=torch.bool)
    expected = (0.0 + math.log(0.2 / 2.0) ** 2) / 2
    assert uncertainty_size_loss(student, teacher, valid).item() == pytest.approx(expected)
    # unlike σ̂-matching it sees the size: the same shape at another size costs
    assert uncertainty_size_loss(teacher * 10, teacher, valid).item() == pytest.approx(
        math.log(10) ** 2
    )
    assert uncertainty_kd_loss(teacher * 10, teacher, valid).item() == pytest.approx(0.0, abs=1e-6)


def test_uncertainty_match_by_name():
    assert uncertainty_match_loss("size") is uncertainty_size_loss
    assert uncertainty_match_loss("classes") is uncertainty_kd_loss
    assert uncertainty_match_loss("profile") is uncertainty_profile_loss
    with pytest.raises(ValueError, match="classes \\| size \\| profile"):
        uncertainty_match_loss("shape")


def test_uncertainty_profile_loss_ignores_each_utterances_level():
    teacher = torch.tensor([[[1.0], [4.0], [9.0]]])  # log totals 0, log 4, (padding)
    valid = torch.tensor([[True, True, False]])
    # the same profile at any level costs nothing; padding frames never count
    student = torch.tensor([[[0.01], [0.04], [1e6]]])
    assert uncertainty_profile_loss(student, teacher, valid).item() == pytest.approx(0.0, abs=1e-9)
    # a flat student: centred teacher profile is ∓ log(4)/2 on the two frames
    flat = torch.tensor([[[3.0], [3.0], [3.0]]])
    expected = (math.log(4) / 2) ** 2
    assert uncertainty_profile_loss(flat, teacher, valid).item() == pytest.approx(expected)
