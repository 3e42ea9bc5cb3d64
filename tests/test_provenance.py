"""What a result is made of: code version from the import closure, content digests of inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubert_ee.provenance import code_version, path_digest, project_imports


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    return _tree(
        tmp_path,
        {
            "hubert_ee/__init__.py": "",
            "hubert_ee/a.py": "from hubert_ee.b import f\n",
            "hubert_ee/b.py": "import numpy\nfrom . import c\n",
            "hubert_ee/c.py": "def lazy():\n    from hubert_ee.pkg import d\n",
            "hubert_ee/pkg/__init__.py": "",
            "hubert_ee/pkg/d.py": "X = 1\n",
            "hubert_ee/unused.py": "Y = 2\n",
            "tasks/__init__.py": "",
            "tasks/stage.py": "from hubert_ee import a\nimport tasks.common\n",
            "tasks/common.py": "",
        },
    )


def test_import_closure_is_transitive_and_includes_packages_relative_and_lazy_imports(project):
    found = set(project_imports("tasks.stage", project))
    assert found == {
        "tasks",
        "tasks.stage",
        "tasks.common",
        "hubert_ee",
        "hubert_ee.a",
        "hubert_ee.b",  # from hubert_ee.b import f
        "hubert_ee.c",  # from . import c (relative)
        "hubert_ee.pkg",  # parent package of d runs on import
        "hubert_ee.pkg.d",  # imported inside a function
    }  # numpy is not the project's; unused.py is imported by nobody


def test_code_version_changes_with_any_imported_module_and_only_those(project):
    before = code_version("tasks.stage", project)
    (project / "hubert_ee/unused.py").write_text("Y = 3\n")
    assert code_version("tasks.stage", project) == before
    (project / "hubert_ee/pkg/d.py").write_text("X = 1\n#\n")
    assert code_version("tasks.stage", project) != before


def test_path_digest_follows_content_not_metadata(tmp_path):
    d = _tree(tmp_path / "d", {"x.txt": "1", "sub/y.txt": "2"})
    first = path_digest(d)
    (d / "x.txt").write_text("1")  # rewritten, same bytes: same digest
    assert path_digest(d) == first
    (d / "sub/y.txt").write_text("3")
    assert path_digest(d) != first
    assert path_digest(d / "x.txt") == "c4ca4238a0b923820dcc509a6f75849b"  # md5("1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        path_digest(tmp_path / "nope")


def test_every_stage_program_imports_resolve_to_project_files():
    closure = project_imports("tasks.finetune")
    assert "hubert_ee.train.finetune" in closure and "tasks.common" in closure
    assert all(p.is_file() for p in closure.values())
