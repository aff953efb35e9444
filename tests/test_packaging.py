"""Every package nriqa_lib imports is declared in pyproject.toml (issue 38: pydantic and transformers arrived only
through dvc and peft)."""
import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from conftest import REPO



def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    mods = set()
    for f in (REPO / "nriqa_lib").rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.Import):
                mods |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
                mods.add(n.module.split(".")[0])
    third = sorted(m for m in mods if m not in sys.stdlib_module_names and m != "nriqa_lib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_norm(re.split(r"[=<>!~\[; ]", d)[0])
                for d in project["dependencies"] + sum(project["optional-dependencies"].values(), [])}
    dists = packages_distributions()
    missing = {m: dists.get(m) for m in third if not {_norm(d) for d in dists.get(m, [])} & declared}
    assert not missing, f"imported by nriqa_lib but not declared in pyproject.toml (module: distributions): {missing}"
    assert "pydantic" in declared and len(third) > 10       # the scan saw the library
