"""DESIGN §2: what a stage declares in dvc.yaml is what it uses.

An undeclared import or param means `dvc repro` (and so the scheduled retraining) can skip a
stage whose code or values changed: a stale result that looks fresh.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dvc.repo import Repo

from hubert_ee.provenance import project_imports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stages() -> dict:
    """name → (stage program module, dep paths, declared params keys), from dvc.yaml."""
    out = {}
    with Repo(str(ROOT)) as repo:
        for stage in repo.index.stages:
            module = re.search(r"python -m (tasks\.\w+)", stage.cmd).group(1)
            deps = [Path(d.def_path) for d in stage.deps if not d.def_path.endswith(".yaml")]
            params = [k for d in stage.deps if d.def_path.endswith("params.yaml") for k in d.params]
            out[stage.addressing] = (module, deps, params)
    return out


def _covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


def test_dvc_deps_cover_every_project_module_a_stage_imports(stages, root):
    missing = {}
    for name, (module, deps, _) in stages.items():
        files = {p.relative_to(root) for p in project_imports(module, root).values()}
        gaps = sorted(str(f) for f in files if not _covered(f, deps))
        if gaps:
            missing[name] = gaps
    assert not missing, f"dvc.yaml deps miss modules these stages import: {missing}"


READS_NO_PARAMS = {"summary"}  # it summarises metrics files; nothing in params changes it


def test_every_stage_declares_params(stages, root):
    assert all(params for name, (_, _, params) in stages.items() if name not in READS_NO_PARAMS)
    for name in READS_NO_PARAMS:  # and the exemption stays true
        source = (root / (stages[name][0].replace(".", "/") + ".py")).read_text()
        assert "params" not in source.replace("no params", ""), f"{name} reads params"
    assert {"seed", "data.target_domain", "threshold_search"} <= set(stages["threshold_search"][2])
