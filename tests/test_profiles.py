"""The pipeline a profile's workspace runs: dvc.yaml as it is for HuBERT, without label stages
for wav2vec 2.0 (nothing may compute labels that nothing reads)."""

from __future__ import annotations

import pytest
import yaml

from hubert_ee.profiles import materialize, pipeline_for_objective


@pytest.fixture
def dag(root) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text())


def _writes(stage: dict) -> set[str]:
    items = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
    return {o if isinstance(o, str) else next(iter(o)) for o in items}


def test_hubert_runs_dvc_yaml_as_it_is(dag):
    assert pipeline_for_objective(dag, "hubert") is dag


def test_wav2vec2_drops_every_label_stage_and_what_read_their_outputs(dag):
    w2v = pipeline_for_objective(dag, "wav2vec2")["stages"]
    gone = set(dag["stages"]) - set(w2v)
    assert gone == {"features_iter1", "kmeans_iter1", "features_iter2", "kmeans_iter2"}
    removed = set().union(*(_writes(dag["stages"][s]) for s in gone))
    assert {"data/labels/iter1", "data/labels/iter2", "data/features/iter1"} <= removed
    for name in ("pretrain_iter1", "pretrain_iter2"):
        stage = w2v[name]
        assert "--labels" not in stage["cmd"] and not removed & set(stage["deps"])
        assert stage["outs"] == dag["stages"][name]["outs"]  # the same encoder path downstream
    assert "--previous models/pretrain_iter1/encoder.safetensors" in w2v["pretrain_iter2"]["cmd"]
    for name in set(w2v) - {"pretrain_iter1", "pretrain_iter2"}:
        assert w2v[name] == dag["stages"][name]  # the rest untouched
    assert dag["stages"]["pretrain_iter1"]["cmd"].count("--labels") == 1  # input not mutated


def test_a_stage_that_still_reads_labels_is_refused(dag):
    dag["stages"]["distill"]["deps"].append("data/labels/iter2")
    with pytest.raises(ValueError, match=r"stage distill reads \['data/labels/iter2'\]"):
        pipeline_for_objective(dag, "wav2vec2")
    with pytest.raises(ValueError, match="no pipeline for it"):
        pipeline_for_objective(dag, "data2vec")


def test_a_w2v2_workspace_gets_the_pruned_dag_and_a_hubert_one_the_file(root, tmp_path):
    ws = materialize(root, "smoke+w2v2", tmp_path / "w2v2")
    text = (ws / "dvc.yaml").read_text()
    assert text.startswith("# GENERATED")
    assert not [s for s in yaml.safe_load(text)["stages"] if "kmeans" in s or "features" in s]
    assert yaml.safe_load((ws / "params.yaml").read_text())["pretrain"]["objective"] == "wav2vec2"
    plain = materialize(root, "smoke", tmp_path / "smoke")
    assert (plain / "dvc.yaml").read_text() == (root / "dvc.yaml").read_text()
