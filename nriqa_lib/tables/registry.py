"""The registry of declared tables: every module of nriqa_lib/tables with a ``TABLE``
(:class:`nriqa_lib.analysis.table.Table`), imported by name; a new module is a new table everywhere."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace
from functools import lru_cache

__all__ = ["registry", "table"]

_PACKAGE = importlib.import_module(__name__.rpartition(".")[0])


@lru_cache(maxsize=1)
def registry() -> tuple:
    """Every declared table, in module-name order (the data overview, then t1, t2, ...); a duplicate name or
    folder is refused."""
    out = []
    for m in sorted(i.name for i in pkgutil.iter_modules(_PACKAGE.__path__) if i.name != "registry"):
        mod = importlib.import_module(f"{_PACKAGE.__name__}.{m}")
        t = getattr(mod, "TABLE", None)
        if t is not None:
            out.append(replace(t, module=mod.__name__))
    for attr in ("name", "folder"):
        seen = [getattr(t, attr) for t in out]
        dup = sorted({x for x in seen if seen.count(x) > 1})
        if dup:
            raise ValueError(f"two tables of nriqa_lib/tables declare the {attr} {dup[0]!r}")
    return tuple(out)


def table(name: str):
    """The declared table ``name`` (its stage name or its folder: ``t2``)."""
    for t in registry():
        if name in (t.name, t.folder):
            return t
    raise KeyError(f"unknown table {name!r}; known: {', '.join(t.name for t in registry())}")
