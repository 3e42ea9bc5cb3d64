"""DESIGN §2: the library knows nothing of Prefect or DVC."""

import pkgutil
import subprocess
import sys

import hubert_ee


def test_hubert_ee_imports_neither_prefect_nor_dvc():
    modules = [m.name for m in pkgutil.walk_packages(hubert_ee.__path__, "hubert_ee.")]
    assert "hubert_ee.data.prepare" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'dvc'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stage_programs_do_not_import_prefect(root):
    for path in (root / "tasks").glob("*.py"):
        text = path.read_text()
        assert "import prefect" not in text and "from prefect" not in text, path
