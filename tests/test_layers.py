"""Only stages read params (issue 24 item 2): below nriqa_lib/stages, functions take data and typed configs (a params
section such as ``Train``, or ``analysis.inputs.TableInputs``), never the params object."""
import ast
import importlib
import inspect
from pathlib import Path

import nriqa_lib
from conftest import library_modules, module_members

PKG = Path(nriqa_lib.__file__).parent
# where params are defined (core.config) and loaded (core.params), the command line (it hands a stage its view) and
# the cost estimate's own command
ENTRY_POINTS = {"nriqa_lib.cli", "nriqa_lib.core.config", "nriqa_lib.core.params", "nriqa_lib.estimate.main"}
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


# what reads or writes a file: the loaders of core.paths, the writers of reporting.export/plots, pandas/numpy/json I/O
_IO_NAMES = {"open", "read_csv", "read_text", "read_bytes", "to_csv", "write_text", "write_bytes", "mkdir", "savefig",
             "save", "load", "table_dirs", "export_table", "write_csv", "write_metrics_json",
             "write_result", "atomic_path", "atomic_write_text", "load_splits"}


def _io_calls(source: str) -> list[str]:
    """Calls to a name of _IO_NAMES or to a ``load_*`` function (a file reader of core.paths) in the functions of
    ``source``, except a table's entry (the function that calls ``write_result``: it reads the inputs, calls
    ``compute`` and writes)."""
    out = []
    for fn in ast.parse(source).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
        names = [(c.func.attr if isinstance(c.func, ast.Attribute) else c.func.id if isinstance(c.func, ast.Name)
                  else "", c.lineno) for c in calls]
        if any(name == "write_result" for name, _ in names) and any(name == "compute" for name, _ in names):
            continue
        out += [f"{fn.name}: {name}() at line {line}" for name, line in names
                if name in _IO_NAMES or name.startswith("load_")]
    return out


def test_analyses_are_pure_functions_of_their_inputs():
    """Issue 24 item 4: each table's ``compute`` takes frames and typed configs and returns a Result (nothing read
    or written); its module's one entry (``t1_backbones``, ...) reads the stages' outputs (core.paths' loaders),
    calls ``compute`` and writes the Result (reporting.export.write_result). Keeping the entry beside ``compute``
    keeps each table stage's code deps to its own module: a change to T3 re-runs T3 only, and a new table re-runs
    no other."""
    files = sorted((PKG / "analysis").glob("*.py"))
    assert len(files) >= 9
    bad = {f.name: calls for f in files if (calls := _io_calls(f.read_text()))}
    assert not bad, bad
    for n in ("t1", "t2", "t3", "t4", "t5", "t6", "overview"):
        mod = importlib.import_module(f"nriqa_lib.analysis.{n}")
        entries = [f for f in ast.parse(Path(mod.__file__).read_text()).body
                   if isinstance(f, ast.FunctionDef) and "write_result" in ast.unparse(f)]
        assert callable(mod.compute) and len(entries) == 1, n


def test_the_purity_check_can_fail():
    assert _io_calls("def compute(x):\n    return pd.read_csv(x)\n") == ["compute: read_csv() at line 2"]
    assert _io_calls("def compute(d):\n    return load_predictions(d)\n") == ["compute: load_predictions() at line 2"]
    assert _io_calls("def compute(d):\n    return d.groupby('a').mean()\n") == []
    entry = "def t(o, r):\n    return write_result(o, compute(load_predictions(r)))\n"
    assert _io_calls(entry) == [] and _io_calls(entry.replace("compute(", "other(")) != []
