import copy

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


def test_deep_merge_replaces_lists_and_merges_maps():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}


def test_unknown_profile_lists_known_ones(root):
    with pytest.raises(ParamsError, match="known: \\['default', 'base', 'smoke'\\]"):
        profile_params(root, "nope")


def test_bad_yaml_is_a_params_error(tmp_path):
    (tmp_path / "params.yaml").write_text("data: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ParamsError, match="mapping"):
        load_params(tmp_path / "params.yaml")
