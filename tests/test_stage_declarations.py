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


def test_dvc_deps_name_no_project_module_a_stage_does_not_import(stages, root):
    """The other direction: a module declared but not imported re-runs the stage for nothing
    (and after a module moves, points at code the stage no longer uses)."""
    extra = {}
    for name, (module, deps, _) in stages.items():
        files = {p.relative_to(root) for p in project_imports(module, root).values()}
        code = [d for d in deps if d.parts[0] in ("hubert_ee", "tasks")]
        unused = sorted(str(d) for d in code if not any(f == d or d in f.parents for f in files))
        if unused:
            extra[name] = unused
    assert not extra, f"dvc.yaml deps name modules these stages do not import: {extra}"


def _declared_sections(module: str, cmd: str, root: Path) -> list[str] | None:
    """The params keys a stage program passes to `run_stage` (its ParamsView and MLflow params),
    read from its source; a lambda is called with the stage's own `--iteration`."""
    import argparse
    import ast

    tree = ast.parse((root / (module.replace(".", "/") + ".py")).read_text())
    call = next(
        (
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "run_stage"
        ),
        None,
    )
    if call is None:  # not a tracked stage (e.g. `corpus`, which reads data.* through its own CLI)
        return None
    value = eval(ast.unparse(call.args[3]))  # a list literal or a lambda over the args
    if callable(value):
        m = re.search(r"--iteration (\d+)", cmd)
        value = value(argparse.Namespace(iteration=int(m.group(1)) if m else None))
    return list(value)


def test_dvc_params_cover_every_key_a_stage_program_reads(stages, root):
    """run_stage's list is what the stage may read (its ParamsView raises on anything else) and
    what MLflow logs; dvc.yaml must list at least as much, or a change to it is not a change."""
    with Repo(str(root)) as repo:
        cmds = {s.addressing: s.cmd for s in repo.index.stages}
    gaps = {}
    for name, (module, _, params) in stages.items():
        if name in READS_NO_PARAMS:
            continue
        keys = _declared_sections(module, cmds[name], root) or []
        missing = [k for k in keys if not any(k == p or k.startswith(p + ".") for p in params)]
        if missing:
            gaps[name] = missing
    assert not gaps, f"dvc.yaml params miss keys these stage programs read: {gaps}"
