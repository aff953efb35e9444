"""What each DVC stage reads, derived from the code: the params its Stage declares and the library files it imports
(the static closure of its module's imports, function-level imports included). tests/pipeline/test_pipeline.py checks
that dvc.yaml declares exactly these params and at least these files; ``python -m nriqa_lib.pipeline.declare``
prints them."""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from .registry import registry
from .spec import Stage

PKG = Path(__file__).resolve().parents[1]           # nriqa_lib/
__all__ = ["import_closure", "stage_files", "stage_deps", "stage_params"]


def _module_file(mod: str) -> Path | None:
    rel = Path(*mod.split("."))
    for cand in (PKG.parent / rel.with_suffix(".py"), PKG.parent / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _module_name(f: Path) -> str:
    rel = f.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=None)
def _imports(f: Path) -> tuple[str, ...]:
    name = _module_name(f)
    return _parsed_imports(f.read_text(), name if f.name == "__init__.py" else name.rpartition(".")[0])


def _type_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:`` (imports for annotations only: they never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for b in node.body for n in ast.walk(b)}
    return out


def _parsed_imports(text: str, pkg: str) -> tuple[str, ...]:
    """The nriqa_lib modules a source imports (relative imports resolved against its package ``pkg``), function-level
    imports included, those under ``if TYPE_CHECKING:`` not."""
    out = []
    tree = ast.parse(text)
    skip = _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("nriqa_lib")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if not base.startswith("nriqa_lib"):
                continue
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names if _module_file(f"{base}.{a.name}")]
            reg = _registry_package(base)
            if reg is not None:     # a registry (nriqa_lib.tables.registry): every module of its package, by name
                pkg_name = base.rpartition(".")[0]
                out += [f"{pkg_name}.{g.stem}" for g in sorted(reg.glob("*.py")) if g.name != "__init__.py"]
    return tuple(out)


# the declaration of the pipeline: what these files say about a stage (its params, deps, outputs, command) is
# written into dvc.yaml, which DVC compares itself; as code deps they would re-run every stage when a table is added
DECLARATIONS = frozenset((PKG / "pipeline").glob("*.py"))


@lru_cache(maxsize=None)
def runs_code(f: Path) -> bool:
    """False for a module that is only a docstring (a package's ``__init__.py`` that re-exports nothing): loading it
    runs nothing that could change a stage's output, so it is no code dep; one statement more and it is."""
    body = ast.parse(f.read_text()).body
    return not (len(body) <= 1 and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body))


def _registry_package(base: str) -> Path | None:
    """The folder of the package of module ``base`` if ``base`` is a registry that imports every module of its
    package by name (``pkgutil.iter_modules``: nriqa_lib.tables.registry), else None."""
    f = _module_file(base)
    return f.parent if f is not None and f.name != "__init__.py" and "pkgutil.iter_modules(" in f.read_text() else None


def import_closure(module: str, skip: frozenset[Path] = DECLARATIONS) -> set[Path]:
    """Every nriqa_lib file that importing ``module`` and calling its functions can load (with parents) and that runs
    code (:func:`runs_code`), not entering the files of ``skip``."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        parts = m.split(".")
        for i in range(1, len(parts) + 1):           # a module loads its packages' __init__ too
            f = _module_file(".".join(parts[:i]))
            if f is not None and f not in seen and f not in skip:
                seen.add(f)
                todo += list(_imports(f))
    return {f for f in seen if runs_code(f)}


def notebook_imports(source: Path) -> list[str]:
    """The nriqa_lib modules a notebook source (notebooks/<name>.py, jupytext percent) imports."""
    return list(_parsed_imports(source.read_text(), ""))


def stage_files(stage: Stage | str) -> list[str]:
    """Library files (relative to the repository root) that a stage (or its name) depends on; for a notebook stage
    also what its notebook imports (the display helpers, the report's published-vs-reproduced table)."""
    s = stage if isinstance(stage, Stage) else registry()[stage]
    files = import_closure(s.module)
    if s.is_notebook:
        files |= import_closure("nriqa_lib.stages.notebook")
        src = PKG.parent / "notebooks" / f"{s.name}.py"
        for m in notebook_imports(src) if src.is_file() else []:
            files |= import_closure(m)
    return sorted(str(f.relative_to(PKG.parent)) for f in files)


# the foundation (config, the params loader, paths, io, cache keys, devices, metrics): every stage loads most of it and
# it changes rarely, so a stage that loads any of it depends on all of it (one dvc.yaml entry instead of up to ten)
FOUNDATION = "nriqa_lib/core/"


def stage_deps(stage: Stage | str) -> list[str]:
    """:func:`stage_files` as dvc.yaml lists them: a package folder (``nriqa_lib/heads/``) where the stage loads every
    one of its files that runs code (with its subfolders), the single files elsewhere, and the whole of
    :data:`FOUNDATION` where it loads any of it (.dvcignore leaves ``__pycache__`` out of a folder's hash)."""
    files = set(stage_files(stage))
    if any(f.startswith(FOUNDATION) for f in files):
        files |= {str(f.relative_to(PKG.parent)) for f in (PKG.parent / FOUNDATION).glob("*.py") if runs_code(f)}
    root = PKG.parent
    folders = sorted({d for d in PKG.rglob("*") if d.is_dir() and d.name != "__pycache__"},
                     key=lambda d: len(d.parts))
    out: list[str] = []
    covered: set[str] = set()
    for d in folders:                                 # outermost first: a whole package before its subpackages
        if any(str(d.relative_to(root)).startswith(c) for c in covered):
            continue
        inside = {str(f.relative_to(root)) for f in d.rglob("*.py") if "__pycache__" not in f.parts and runs_code(f)}
        if inside and inside <= files:
            covered.add(str(d.relative_to(root)) + "/")
            out.append(str(d.relative_to(root)) + "/")
    out += [f for f in files if not any(f.startswith(c) for c in covered)]
    return sorted(out)


def stage_params(name: str) -> tuple[str, ...]:
    return registry()[name].params


if __name__ == "__main__":
    for n in registry():
        print(f"{n}:\n  params: {list(stage_params(n))}\n  files: {stage_files(n)}")
