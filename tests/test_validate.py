import copy
import csv
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from fixtures import BROKEN_CASES, tone, write, write_broken_corpus
from hubert_ee.config import validate_params
from hubert_ee.data.manifest import load_split
from hubert_ee.data.prepare import CorpusError, prepare
from hubert_ee.data.validate import normalize_text


def _params(smoke_raw, root: Path, manifest_names: dict[str, list[str]]):
    raw = copy.deepcopy(smoke_raw)
    raw["num_workers"] = 2
    raw["data"].update(
        corpus="manifest",
        teacher_domains=["a", "b"],
        target_domain="c",
        synthetic=None,
        real={"root": str(root), "parts": manifest_names},
    )
    raw["finetune"]["ablation_domains"] = (
        None  # every teacher: the default names the synthetic read
    )
    return validate_params(raw)


def _split_manifests(root: Path, manifest: Path) -> dict[str, list[str]]:
    df = pd.read_csv(manifest, keep_default_na=False)
    parts = {}
    for split, g in df.groupby("split"):
        g.drop(columns="split").to_csv(root / f"{split}.csv", index=False)
        parts[split] = [f"{split}.csv"]
    return parts


def _read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_broken_corpus_every_case_is_repaired_or_reported(tmp_path, smoke_raw, monkeypatch):
    corpus = tmp_path / "corpus"
    manifest = write_broken_corpus(corpus)
    params = _params(smoke_raw, corpus, _split_manifests(corpus, manifest))
    monkeypatch.chdir(tmp_path)
    out = prepare(params, Path("data/prepared"), Path("reports"))

    rejects = {
        (r["id"], Path(r["path"]).name): r["reason"]
        for s in ("train", "dev", "test", "unlabeled")
        for r in _read_csv(Path(f"reports/rejects_{s}.csv"))
    }
    repairs = {
        r["id"]: r["repairs"]
        for s in ("train", "dev", "test", "unlabeled")
        for r in _read_csv(Path(f"reports/repairs_{s}.csv"))
    }
    accepted = {s: load_split("data/prepared", s) for s in ("train", "dev", "test", "unlabeled")}
    accepted_ids = {i for df in accepted.values() for i in df["id"]}

    for utt_id, fname, _split, _dom, _text, expected in BROKEN_CASES:
        kind, _, detail = expected.partition(": ")
        if kind == "rejected":
            assert detail in rejects[(utt_id, fname)], (utt_id, rejects)
        elif kind == "repaired":
            assert utt_id in accepted_ids and detail in repairs[utt_id]
        else:
            assert utt_id in accepted_ids
    # Nothing vanishes: every input row is either in a manifest or in a rejects report.
    n_input = len(pd.read_csv(manifest))
    assert len(accepted_ids) + len(rejects) == n_input
    assert out.metrics["rejected"] == len(rejects) == 9
    assert out.metrics["repaired"] == 3

    train = accepted["train"].set_index("id")
    assert train.loc["shouty", "text"] == "hello world"
    for utt in ("rate8k", "stereo"):
        info = sf.info(train.loc[utt, "path"])
        assert (info.samplerate, info.channels) == (16000, 1)
        assert "repaired" in train.loc[utt, "path"]
    assert train.loc["rate8k", "num_samples"] == 16000
    assert accepted["unlabeled"].set_index("id").loc["unl-notext", "text"] is None


def test_all_rejected_is_a_clear_error_with_a_report(tmp_path, smoke_raw, monkeypatch):
    (tmp_path / "x.wav").write_bytes(b"not audio")
    write(tmp_path / "y.wav", tone(0.001))
    pd.DataFrame({"id": ["x", "y"], "path": ["x.wav", "y.wav"], "text": ["hi", "hi"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    params = _params(smoke_raw, tmp_path, {"train": ["m.csv"]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match="all 2 utterances were rejected"):
        prepare(params, Path("out"), Path("reports"))
    assert len(_read_csv(Path("reports/rejects_train.csv"))) == 2


def test_missing_domain_coverage_is_a_clear_error(tmp_path, smoke_raw, monkeypatch):
    write(tmp_path / "ok.wav", tone(1.0))
    pd.DataFrame({"id": ["ok"], "path": ["ok.wav"], "text": ["hi"], "domain": ["a"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    params = _params(smoke_raw, tmp_path, {"train": ["m.csv"]})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match=r"no usable utterances for \['dev/a'"):
        prepare(params, Path("out"), Path("reports"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Hello, World!", "hello world"), ("it\u2019s  OK", "it's ok"), ("a - b", "a b"), ("", "")],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw)[0] == expected
