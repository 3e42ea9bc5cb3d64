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


LAYERS = [
    "data",
    "features",
    "cluster",
    "models",
    "decode",
    "train",
]  # each imports only earlier ones
LEAVES = ["metrics"]  # imported by any layer, import none


def _project_imports(path) -> set[str]:
    import ast

    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return {m for m in mods if m.startswith(("hubert_ee.", "tasks"))}


def layering_violations(package_root) -> list[str]:
    out = []
    for path in sorted(package_root.rglob("*.py")):
        parts = path.relative_to(package_root).parts
        own = parts[0] if len(parts) > 1 else None
        if own not in LAYERS + LEAVES:
            continue
        for mod in _project_imports(path):
            other = mod.split(".")[1] if mod.startswith("hubert_ee.") else None
            if other == own or other not in LAYERS + LEAVES:
                continue
            if own in LEAVES or (other in LAYERS and LAYERS.index(other) > LAYERS.index(own)):
                out.append(f"{path.relative_to(package_root.parent)} imports {mod}")
    return out


def test_packages_import_only_earlier_layers(root):
    assert layering_violations(root / "hubert_ee") == []


def test_the_layer_check_catches_a_back_edge(tmp_path):
    pkg = tmp_path / "hubert_ee"
    (pkg / "decode").mkdir(parents=True)
    (pkg / "decode" / "ctc.py").write_text("from hubert_ee.train.finetune import finetune\n")
    (pkg / "metrics").mkdir()
    (pkg / "metrics" / "wer.py").write_text("import hubert_ee.data.text\n")
    assert layering_violations(pkg) == [
        "hubert_ee/decode/ctc.py imports hubert_ee.train.finetune",
        "hubert_ee/metrics/wer.py imports hubert_ee.data.text",
    ]


def test_no_stage_program_imports_another(root):
    for path in (root / "tasks").glob("*.py"):
        others = {m for m in _project_imports(path) if m.startswith("tasks")} - {"tasks.common"}
        assert not others, (
            f"{path.name} imports {sorted(others)}: move the shared code into hubert_ee/"
        )
