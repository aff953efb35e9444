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


def test_the_wheel_holds_and_imports_every_module(tmp_path):
    """Issue 38: `pip install .` (not editable) installs every module of nriqa_lib (a package folder without an
    __init__.py is silently left out of a wheel) and its HTML templates, and each module imports from the install."""
    import shutil
    import subprocess
    import zipfile
    src = tmp_path / "src"                 # a copy: building in the checkout would leave build/ and egg-info there
    shutil.copytree(REPO / "nriqa_lib", src / "nriqa_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "w")], check=True, capture_output=True)
    wheel = next((tmp_path / "w").glob("nriqa-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {str(f.relative_to(REPO)) for f in (REPO / "nriqa_lib").rglob("*")
            if f.is_file() and "__pycache__" not in f.parts}
    assert want - names == set()
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    mods = sorted(".".join(f.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for f in (REPO / "nriqa_lib").rglob("*.py") if "__pycache__" not in f.parts)
    code = ("import importlib, sys; from pathlib import Path\n"
            f"for m in {mods!r}:\n    mod = importlib.import_module(m)\n"
            f"    assert Path(mod.__file__).is_relative_to({str(tmp_path / 'site')!r}), mod.__file__\n"
            "print(len(sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
