"""Only stages read params (issue 24 item 2): below nriqa_lib/stages, functions take data and typed configs (a params
section such as ``Train``, or ``analysis.inputs.TableInputs``), never the params object."""
import ast
import importlib
import inspect
from pathlib import Path

import nriqa_lib
from conftest import library_modules, module_members

PKG = Path(nriqa_lib.__file__).parent
# where params are loaded: the command line (it hands a stage its view) and the cost estimate's own command
ENTRY_POINTS = {"nriqa_lib.cli", "nriqa_lib.core.config", "nriqa_lib.estimate.main"}
PARAMS_NAMES = {"p", "P", "params", "view"}


def _functions(mod):
    for name, obj in module_members(mod):
        if inspect.isfunction(obj):
            yield f"{mod.__name__}.{name}", obj
        elif inspect.isclass(obj):
            for mname, meth in vars(obj).items():
                if inspect.isfunction(meth):
                    yield f"{mod.__name__}.{name}.{mname}", meth


def test_no_library_function_takes_the_params_object():
    bad, n = [], 0
    for mod in library_modules(skip=ENTRY_POINTS):
        for where, fn in _functions(mod):
            if where in ENTRY_POINTS:
                continue
            n += 1
            for arg, prm in inspect.signature(fn).parameters.items():
                ann = str(prm.annotation)
                if "Params" in ann or (arg in PARAMS_NAMES and prm.annotation is inspect.Parameter.empty):
                    bad.append(f"{where}({arg}: {ann})")
    assert n > 300 and not bad, bad


def test_no_library_module_loads_or_views_params():
    """The source below the stages never calls ``load_params`` nor builds a ``ParamsView`` (function-level code
    included), except the entry points' ``main``."""
    bad = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if mod.startswith("nriqa_lib.stages") or mod in ENTRY_POINTS:
            continue
        tree = ast.parse(f.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            if f"{mod}.{fn.name}" in ENTRY_POINTS:
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Name) and node.id in ("load_params", "ParamsView", "Params"):
                    bad.append(f"{mod}.{fn.name} uses {node.id}")
    assert not bad, bad


def test_the_check_catches_a_function_that_takes_params(tmp_path, monkeypatch):
    """The test above can fail: a module whose function takes ``p`` is reported."""
    import sys
    src = "def run_heads(p, dataset: str):\n    return p.train.epochs\n"
    (tmp_path / "fake_lib_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("fake_lib_mod")
    try:
        found = [w for w, fn in _functions(mod) for a, prm in inspect.signature(fn).parameters.items()
                 if a in PARAMS_NAMES and prm.annotation is inspect.Parameter.empty]
    finally:
        sys.modules.pop("fake_lib_mod", None)
    assert found == ["fake_lib_mod.run_heads"]
