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
        if mod.startswith(("nriqa_lib.stages", "nriqa_lib.pipeline")) or mod in ENTRY_POINTS:
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


_WRITERS = {"to_csv", "write_text", "write_bytes", "mkdir", "savefig", "save", "export_table", "write_csv",
            "write_metrics_json", "write_result", "atomic_path", "atomic_write_text", "write_predictions"}


def _io_calls(source: str) -> list[str]:
    """Calls that read or write a file in the functions of ``source``: a name of _IO_NAMES or a ``load_*`` function
    (a file reader of core.paths); except, in a table's entry (the function that calls ``compute``), the readers: it
    reads the inputs and calls ``compute``, and nothing in a table writes (its notebook writes the Result)."""
    out = []
    for fn in ast.parse(source).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)]
        names = [(c.func.attr if isinstance(c.func, ast.Attribute) else c.func.id if isinstance(c.func, ast.Name)
                  else "", c.lineno) for c in calls]
        entry = any(name == "compute" for name, _ in names)
        out += [f"{fn.name}: {name}() at line {line}" for name, line in names
                if (name in _IO_NAMES or name.startswith("load_")) and not (entry and name not in _WRITERS)]
    return out


def test_analyses_are_pure_functions_of_their_inputs():
    """Issue 24 item 4: each table's ``compute`` takes frames and typed configs and returns a Result (nothing read
    or written); its module's one entry (``t1_backbones``, ...) reads the stages' outputs (core.paths' loaders) and
    calls ``compute``; nothing below the reporting layer writes a table (the notebook writes the Result with
    reporting.export.write_result). The entry beside ``compute`` keeps each table stage's code deps to its own
    module: a change to T3 re-runs T3 only, and a new table re-runs no other."""
    from nriqa_lib.tables.registry import registry
    files = sorted((PKG / "analysis").glob("*.py")) + sorted((PKG / "tables").glob("*.py"))
    assert len(files) >= 15
    bad = {f.name: calls for f in files if (calls := _io_calls(f.read_text()))}
    assert not bad, bad
    for t in registry():
        mod = importlib.import_module(t.module)
        entries = [f for f in ast.parse(Path(mod.__file__).read_text()).body
                   if isinstance(f, ast.FunctionDef) and f.name != "compute" and "compute(" in ast.unparse(f)]
        assert callable(mod.compute) and len(entries) == 1, t.name


def test_the_purity_check_can_fail():
    assert _io_calls("def compute(x):\n    return pd.read_csv(x)\n") == ["compute: read_csv() at line 2"]
    assert _io_calls("def compute(d):\n    return load_predictions(d)\n") == ["compute: load_predictions() at line 2"]
    assert _io_calls("def compute(d):\n    return d.groupby('a').mean()\n") == []
    entry = "def t(r):\n    return compute(load_predictions(r))\n"
    assert _io_calls(entry) == [] and _io_calls(entry.replace("compute(", "other(")) != []
    assert _io_calls("def t(o, r):\n    return write_result(o, compute(load_predictions(r)))\n") != []


# Issue 38: the layers, lowest first; a module may import its own layer and those below (ARCHITECTURE.md)
LAYERS = (("core",), ("data", "backbones", "heads"), ("features", "extraction", "training", "zeroshot"), ("analysis",), ("tables",),
          ("reporting",), ("report",), ("stages", "pipeline"), ("cli", "estimate", "bench"))
_LAYER = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}


def _module_name(f: Path) -> str:
    rel = f.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def _resolve(node: ast.ImportFrom, mod: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def _edges(source: str, mod: str, is_pkg: bool):
    """(line, imported nriqa_lib module, imported names) of every import of ``source`` (function-level included)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name, ()) for a in node.names if a.name.startswith("nriqa_lib"))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, mod, is_pkg)
            if base.startswith("nriqa_lib"):
                yield node.lineno, base, tuple(a.name for a in node.names)


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    return _LAYER.get(parts[1]) if len(parts) > 1 else None


def layer_violations(files: list[Path]) -> list[str]:
    """Imports from a lower layer to a higher one, and imports of another module's private name (``from x import
    _y``, or ``x._y`` on a module or class imported from nriqa_lib)."""
    bad = []
    for f in files:
        mod, is_pkg = _module_name(f), f.name == "__init__.py"
        src = f.read_text()
        imported = {}
        for line, target, names in _edges(src, mod, is_pkg):
            lo, hi = _layer(mod), _layer(target)
            if lo is not None and hi is not None and hi > lo:
                bad.append(f"{mod}:{line} imports {target} (layer {hi} > {lo})")
            for n in names:
                if n.startswith("_") and not n.startswith("__") and target != mod:
                    bad.append(f"{mod}:{line} imports the private {target}.{n}")
                imported[n] = target
        for node in ast.walk(ast.parse(src)):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{mod}:{node.lineno} uses the private {node.value.id}.{node.attr} of {imported[node.value.id]}")
    return bad


def test_layers_only_point_down_and_no_module_uses_anothers_private_names():
    files = sorted(PKG.rglob("*.py"))
    assert {_module_name(f).split(".")[1] for f in files if "." in _module_name(f)} - set(_LAYER) <= {"__init__"}
    assert layer_violations(files) == []


def test_the_layer_check_can_fail(tmp_path):
    """The check above reports an upward import, a private import and a private attribute of an imported class."""
    pkg = tmp_path / "nriqa_lib"
    (pkg / "core").mkdir(parents=True)
    f = pkg / "core" / "bad.py"
    f.write_text("from ..reporting.plots import forest\nfrom .io import _private\n"
                 "from ..training.finetune import RunDropout\nx = RunDropout._record\n")
    global PKG
    real = PKG
    try:
        PKG = pkg
        found = layer_violations([f])
    finally:
        PKG = real
    assert [b.split(" ", 1)[1] for b in found] == [
        "imports nriqa_lib.reporting.plots (layer 5 > 0)", "imports the private nriqa_lib.core.io._private",
        "imports nriqa_lib.training.finetune (layer 2 > 0)",
        "uses the private RunDropout._record of nriqa_lib.training.finetune"], found
