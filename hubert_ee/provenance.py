"""What a result was made from: the project code a program runs and the content of its inputs.

A resume state or a cached result is only valid for the exact code and inputs that produced it;
these digests make that checkable without DVC (the library knows nothing of DVC). Files are
hashed with md5 as DVC does; a folder's digest covers every file's relative path and content.
The code version of a module is the hash of its source and of every project module it imports,
transitively, read from the source (lazy imports inside functions count too).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("hubert_ee", "tasks", "flows")


def file_md5(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def path_digest(path: str | Path) -> str:
    """md5 of a file, or of a folder's sorted (relative path, md5) list; FileNotFoundError if
    the path is missing (a stage must not key its state on an input that is not there)."""
    path = Path(path)
    if path.is_file():
        return file_md5(path)
    if not path.is_dir():
        raise FileNotFoundError(f"input {path} does not exist")
    entries = [
        [f.relative_to(path).as_posix(), file_md5(f)]
        for f in sorted(path.rglob("*"))
        if f.is_file()
    ]
    return hashlib.md5(json.dumps(entries).encode()).hexdigest()


def rows_digest(rows: Iterable[Iterable]) -> str:
    """md5 of a table's rows (e.g. a manifest's id, path, start, duration), in order: a store
    written by position holds other utterances once the rows change."""
    return hashlib.md5(json.dumps([list(r) for r in rows], default=str).encode()).hexdigest()


def _module_file(name: str, root: Path) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, package: str, module_level_only: bool):
        self.package, self.module_level_only = package, module_level_only
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: ast.AST) -> None:
        if not self.module_level_only:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(a.name for a in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, node.module] if node.module else anchor)
        else:
            base = node.module or ""
        self.names.add(base)
        self.names.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`


def _imported_names(path: Path, module: str, module_level_only: bool = False) -> set[str]:
    """Every module name an import statement in `path` may load (relative imports resolved);
    with `module_level_only`, only those that run when the module is imported."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    collector = _ImportCollector(package, module_level_only)
    collector.visit(ast.parse(path.read_text(), str(path)))
    return collector.names


def project_imports(module: str, root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """`module` and every project module it imports, transitively, with their files.

    Imports inside functions count (they run when the function is called). A package that is
    only reached as the parent of an imported module (`hubert_ee` for `hubert_ee.config`)
    contributes the imports its `__init__` runs at import time, not those inside its functions
    (`hubert_ee.load` imports the inference code only when called)."""
    found: dict[str, Path] = {}
    todo: list[tuple[str, bool]] = [(module, False)]  # (name, reached only as a parent)
    parents_only: set[str] = set()
    while todo:
        name, as_parent = todo.pop()
        if name in found and (as_parent or name not in parents_only):
            continue
        parts = name.split(".")
        for i in range(1, len(parts)):  # parent packages execute on import
            parent = ".".join(parts[:i])
            if parent not in found and _module_file(parent, root):
                todo.append((parent, True))
        path = _module_file(name, root)
        if path is None:
            continue
        found[name] = path
        if as_parent:
            parents_only.add(name)
        else:
            parents_only.discard(name)
        todo.extend((n, False) for n in _imported_names(path, name, as_parent) if n not in found)
    return found


def code_version(module: str, root: Path = PROJECT_ROOT) -> str:
    """Hash of the source of `module` and of everything of the project it imports."""
    h = hashlib.sha256()
    for name, path in sorted(project_imports(module, root).items()):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def inputs_digest(paths: Iterable[str | Path]) -> dict[str, str]:
    return {str(p): path_digest(p) for p in paths}
