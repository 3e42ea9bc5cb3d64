import copy
import re

import pytest
import yaml

from hubert_ee.config import ParamsError, deep_merge, load_params, profile_params, validate_params


def test_default_and_profiles_validate(root):
    p = load_params(root / "params.yaml")
    assert p.data.target_domain == "phone" and p.data.teacher_domains == ["read", "lecture"]
    for profile in ("smoke", "base"):
        validate_params(profile_params(root, profile))


def test_default_profile_sizes_meet_the_brief(root):
    syn = load_params(root / "params.yaml").data.synthetic
    assert syn.unlabeled_hours >= 3.0
    assert all(syn.train_hours[d] >= 1.0 for d in ("read", "lecture"))
    assert syn.train_hours["phone"] * 60 <= 20
    assert syn.dev_minutes >= 10 and syn.test_minutes >= 10


def test_unknown_key_is_named(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["data"]["synthetic"]["unlabelled_hours"] = 1.0
    with pytest.raises(ParamsError) as e:
        validate_params(raw, "params.yaml")
    msg = str(e.value)
    assert "data.synthetic.unlabelled_hours" in msg and "unknown key" in msg


def test_wrong_type_and_out_of_range_name_key_value_and_rule(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["num_workers"] = "many"
    raw["data"]["synthetic"]["domains"]["read"]["rate_wpm"] = [100, 900]
    with pytest.raises(ParamsError) as e:
        validate_params(raw)
    msg = str(e.value)
    assert "num_workers: got 'many'" in msg
    assert (
        "data.synthetic.domains.read.rate_wpm.1: got 900" in msg
        and "less than or equal to 450" in msg
    )


def test_reversed_range_and_unknown_voice_are_rejected(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["data"]["synthetic"]["domains"]["read"]["pitch"] = [70, 30]
    with pytest.raises(ParamsError, match="low <= high"):
        validate_params(raw)
    raw = copy.deepcopy(smoke_raw)
    raw["data"]["synthetic"]["domains"]["read"]["voices"] = ["en-us+f33"]
    with pytest.raises(ParamsError, match="unknown espeak-ng variant 'f33'"):
        validate_params(raw)


def test_domain_consistency(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["data"]["target_domain"] = "read"
    with pytest.raises(ParamsError, match="must not be a teacher domain"):
        validate_params(raw)
    raw = copy.deepcopy(smoke_raw)
    raw["data"]["teacher_domains"] = ["read", "studio"]
    with pytest.raises(ParamsError, match=r"\['studio'\] are not defined"):
        validate_params(raw)


def test_ablation_domains_choose_which_teachers_train_the_ablation_arms(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["finetune"]["ablation_domains"] = ["read"]
    ft = validate_params(raw).finetune
    assert ft.runs_ablations("read") and not ft.runs_ablations("lecture")
    raw["finetune"]["ablation_domains"] = None  # null: every teacher
    ft = validate_params(raw).finetune
    assert ft.runs_ablations("read") and ft.runs_ablations("lecture")
    raw["finetune"]["ablation_domains"] = ["read", "phone"]  # the target has no teacher
    with pytest.raises(ParamsError, match=r"ablation_domains \['read', 'phone'\] must be among"):
        validate_params(raw)


def test_extra_seeds_must_be_new_seeds(smoke_raw):
    raw = copy.deepcopy(smoke_raw)
    raw["distill"]["extra_seeds"] = [raw["seed"] + 1, raw["seed"] + 2]
    assert validate_params(raw).distill.extra_seeds == [raw["seed"] + 1, raw["seed"] + 2]
    for bad in ([raw["seed"]], [raw["seed"] + 1, raw["seed"] + 1]):
        raw["distill"]["extra_seeds"] = bad
        with pytest.raises(ParamsError, match=r"extra_seeds .* must be distinct and leave out"):
            validate_params(raw)


def test_deep_merge_replaces_lists_and_merges_maps():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}


def test_unknown_profile_lists_known_ones(root):
    with pytest.raises(ParamsError, match="known: \\['default', 'base', 'gpu', 'smoke', 'w2v2'\\]"):
        profile_params(root, "nope")
    with pytest.raises(ParamsError, match="unknown profile 'w2v' in 'smoke\\+w2v'"):
        profile_params(root, "smoke+w2v")


def test_profiles_compose_left_to_right(root):
    smoke, both = profile_params(root, "smoke"), profile_params(root, "smoke+w2v2")
    assert both["pretrain"] == {**smoke["pretrain"], "objective": "wav2vec2"}
    assert {k: v for k, v in both.items() if k != "pretrain"} == {
        k: v for k, v in smoke.items() if k != "pretrain"
    }
    assert profile_params(root, "w2v2+smoke") == both  # disjoint keys: order does not matter


def test_bad_yaml_is_a_params_error(tmp_path):
    (tmp_path / "params.yaml").write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ParamsError, match="mapping"):
        load_params(tmp_path / "params.yaml")


def test_stage_view_allows_declared_keys_and_names_an_undeclared_one(smoke_params):
    from hubert_ee.config import ParamsView

    view = ParamsView(smoke_params, ["seed", "data.target_domain", "iterations.iter1", "exits"])
    assert view.seed == smoke_params.seed
    assert view.data.target_domain == "phone"
    assert view.iterations["iter1"].k == smoke_params.iterations["iter1"].k
    assert view.exits.max_steps == smoke_params.exits.max_steps  # whole section declared
    with pytest.raises(ParamsError, match="'data.teacher_domains' but does not declare it"):
        _ = view.data.teacher_domains
    with pytest.raises(ParamsError, match="'iterations.iter2'"):
        _ = view.iterations["iter2"]
    with pytest.raises(ParamsError, match="'distill'"):
        _ = view.distill
    with pytest.raises(ParamsError, match="not a params key"):
        _ = view.data.domains  # a property over keys the stage did not declare


def test_select_params_takes_dotted_keys_and_rejects_missing_ones(smoke_params):
    from hubert_ee.config import select_params

    got = select_params(smoke_params, ["seed", "data.teacher_domains", "kmeans.fit_splits"])
    assert got == {
        "seed": smoke_params.seed,
        "data.teacher_domains": ["read", "lecture"],
        "kmeans.fit_splits": ["unlabeled", "train"],
    }
    with pytest.raises(ParamsError, match="'kmeans.nope'"):
        select_params(smoke_params, ["kmeans.nope"])


def test_check_project_params_finds_a_misspelled_section_no_stage_declares(root, tmp_path):
    import shutil

    from hubert_ee.config import check_project_params

    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(root / "profiles", tmp_path / "profiles")
    assert check_project_params(tmp_path)[0] == "default"
    with open(tmp_path / "params.yaml", "a") as f:
        f.write("pretrian:\n  max_steps: 3\n")
    with pytest.raises(ParamsError, match="pretrian: unknown key"):
        check_project_params(tmp_path)
    shutil.copy(root / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "profiles" / "typo.yaml").write_text("finetune:\n  lr_max: 1.0\n")
    with pytest.raises(ParamsError, match="lr_max: unknown key"):
        check_project_params(tmp_path)


def test_an_unquoted_amp_off_means_off_and_true_is_rejected(smoke_raw):
    """YAML 1.1 reads `amp: off` as false; that is the word the user wrote, not a type error."""
    raw = yaml.safe_load(re.sub(r"amp: \w+", "amp: off", yaml.safe_dump(smoke_raw)))
    assert raw["finetune"]["amp"] is False
    p = validate_params(raw)
    assert p.finetune.amp == p.pretrain.amp == p.distill.amp == "off"
    raw["distill"]["amp"] = True
    with pytest.raises(ParamsError, match="distill.amp"):
        validate_params(raw)
