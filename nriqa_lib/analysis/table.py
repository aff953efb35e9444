"""How a table is declared, in one place beside its analysis (pyiqa's per-metric default configs as data): the
params its stage reads, the parameter tag of its notebook's file names, the data it reads, the tables and figures the
report shows, and its claims (a claim name per level of a test table). ``nriqa_lib/tables/<module>.py`` holds one
``TABLE = Table(...)`` beside its ``compute``; :func:`nriqa_lib.tables.registry` collects them, and the pipeline
(its notebook stage in dvc.yaml), the report and summary, scripts/check_outputs.py, the smoke and the tests iterate
that registry. Adding a table: docs/extending.md."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import pandas as pd

__all__ = ["Claims", "Table", "CellRow", "PooledRef", "FAMILIES", "OUTSIDE", "family_of"]

# The families of the findings (issue 39), declared by the first word of a claim's name: a family is the set of
# claims one question asks, adjusted together (Bonferroni over the family's claims in a run); "control" (positive
# controls: they check the pipeline, they test nothing of the papers) and "descriptive" (a row shown beside a claim
# it repeats) belong to no family and are read at the unadjusted level.
FAMILIES = {"P1": "P1's claims (replications)", "P2": "P2's claims (replications)",
            "ours": "our claims (exploratory)"}
OUTSIDE = {"control": "positive control (outside any family)",
           "descriptive": "descriptive (repeats another claim; no verdict)"}


def family_of(claim: str) -> str:
    """The family of a claim, from its name's first word (P1, P2, ours, control, descriptive); ValueError on
    another."""
    import re
    m = re.match(r"(P1|P2|ours|control|descriptive)\b", claim)
    if m is None:
        raise ValueError(f"claim {claim!r}: its name must start with one of {[*FAMILIES, *OUTSIDE]} (its family)")
    return m.group(1)

# a claim on one cell of a test table: (claim, where, estimate in the claimed direction, its table's Holm p)
CellRow = tuple[str, str, float, float]
# a pooled row as a claim: (claim, the pooled row, sign: +1 where the row's direction is the claim's, a prefix of its
# "rests on" text)
PooledRef = tuple[str, object, float, str]


@dataclass(frozen=True)
class Claims:
    """How one test table of a table becomes claims. ``tests``: the per-cell tests (tables/<tests>.csv, one row per
    cell and level; "" none), ``pooled``: their pooled rows (tables/<pooled>.csv; "" none); ``level``: the column
    whose value a claim is about (a head, policy, regime); ``names``: the claim name of a level, ``default`` the name
    of any other level (``{key}``: the level). ``cells``: "rows" (every test row is a claim's cell, in file order) or
    "named" (only the named levels, name by name); ``where``: the columns that name a cell; ``diff``: the estimate's
    column; ``equivalence``: level -> margin (SRCC) of a claim of no difference, tested by TOST (two one-sided
    tests) within +-margin instead of a difference test. A table whose claims need more (an orientation, a name
    parsed from a label) subclasses this."""
    tests: str = ""
    pooled: str = ""
    level: str = "a"
    names: Mapping[str, str] = field(default_factory=dict)
    default: str = "{key}"
    cells: str = "rows"
    where: tuple[str, ...] = ("dataset", "backbone")
    diff: str = "diff"
    equivalence: Mapping[str, float] = field(default_factory=dict)

    def name(self, key: str) -> str:
        return self.names.get(key) or self.default.format(key=key)

    def margin(self, claim: str) -> float | None:
        """The equivalence margin of the claim named ``claim`` (None: a difference claim)."""
        return next((m for k, m in self.equivalence.items() if self.name(k) == claim), None)

    def cell_rows(self, tests: pd.DataFrame) -> list[CellRow]:
        """The claims' cells of the test table ``tests`` (empty or without the level column: none)."""
        if not len(tests) or self.level not in tests:
            return []
        where = [c for c in self.where if c in tests]
        if self.cells == "named":
            groups = [(n, tests[tests[self.level] == k]) for k, n in self.names.items()]
        else:
            groups = [(None, tests)]
        return [(n or self.name(str(getattr(r, self.level))), "/".join(str(getattr(r, c)) for c in where),
                 getattr(r, self.diff), r.p_holm) for n, g in groups for r in g.itertuples()]

    def untestable(self, read: Callable[[str], pd.DataFrame]) -> list[tuple[str, str, str]]:
        """Claims this run could not test: (claim, where, why); ``read(name)`` gives tables/<name>.csv."""
        return []

    def pooled_refs(self, pooled: pd.DataFrame) -> list[PooledRef]:
        """The pooled rows as claims, in file order."""
        if not len(pooled) or self.level not in pooled:
            return []
        return [(self.name(str(getattr(r, self.level))), r, 1.0, "") for r in pooled.itertuples()]


@dataclass(frozen=True)
class Table:
    """One table: its notebook stage (``name``: the stage, notebooks/<name>.py) writing results/<folder>/, what it
    reads (``params``, data ``deps``), the parameter label of its notebook's file names (``tag``: ``${...}`` of
    declared params only), what the report shows (``shown`` then ``pooled_shown`` under tables/, ``figures`` under
    figures/), the figures dvc.yaml lists as ``plots``, and its ``claims``. ``findings_rank`` orders its pooled
    claims in the findings (lower first); ``metrics``: it writes results/<folder>/metrics.json; ``whole_folder``: its
    output is its whole folder (the data overview)."""
    name: str
    folder: str
    desc: str
    params: tuple[str, ...]
    tag: str
    deps: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    pooled_shown: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    claims: tuple[Claims, ...] = ()
    findings_rank: int = 50
    metrics: bool = True
    whole_folder: bool = False
    module: str = ""                  # filled by the registry: the module that declares it
