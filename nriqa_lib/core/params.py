"""params.yaml to a checked :class:`~nriqa_lib.core.config.Params`: the YAML read (a key given twice is an error),
the models' validation (:mod:`nriqa_lib.core.config`), and :class:`ParamsView`, what a stage may read. The names
(backbones, heads, manifests) are looked up in their registries by the check stage
(:func:`nriqa_lib.stages.check.check_params`), which imports them: core imports nothing above it."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from .config import ConfigError, Params, validation_message

__all__ = ["load_params", "ParamsView", "UndeclaredParam"]


class UndeclaredParam(AttributeError):
    """A stage read a param that its declaration (and so dvc.yaml) does not list."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (YAML's loaders keep the last
    one silently, so a second ``train:`` section would replace the first)."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for k, _ in node.value:
            if k.tag == "tag:yaml.org,2002:merge":   # `<<: *anchor` (YAML's merge key): its keys are defaults
                continue                              # that the mapping's own keys may override
            key = self.construct_object(k, deep=deep)
            if key in keys:
                raise ConfigError(f"params file line {k.start_mark.line + 1}: duplicate key {key!r} (YAML would keep "
                                  f"only the last)")
            keys.add(key)
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml (types, ranges, choices); raise ConfigError with one line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    text = path.read_text()
    if not text.strip():
        raise ConfigError(f"params file {path} is empty (an empty file is not 'the defaults': copy params.yaml)")
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
        if raw is None:
            raise ConfigError(f"params file {path} is empty (only comments)")
        if not isinstance(raw, dict):
            raise ConfigError(f"params file {path}: the top level must be a mapping of sections, got "
                              f"{type(raw).__name__}")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"params file {path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    try:
        p = Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(validation_message(e)) from None
    return p


class _SectionView:
    """Read-only view of one params section exposing only the declared keys."""

    def __init__(self, section, name: str, keys: frozenset[str] | None, owner: str):
        object.__setattr__(self, "_s", section)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, k: str):
        if self._keys is not None and k not in self._keys:
            raise UndeclaredParam(f"{self._owner} reads {self._name}.{k}, which its PARAMS (and dvc.yaml) do not declare")
        return getattr(self._s, k)

    def __setattr__(self, k, v):
        raise AttributeError("params are read-only inside a stage")

    def __repr__(self) -> str:
        return self._repr(set(getattr(self._s, "datasets", None) or ()))

    def _repr(self, used: set) -> str:
        keys = self._keys if self._keys is not None else list(type(self._s).model_fields)

        def value(k: str):      # per-dataset settings (data.roots, splits.schemes, ...): only the run's datasets
            v = getattr(self._s, k)
            return {d: x for d, x in v.items() if d in used} if used and isinstance(v, dict) and set(v) & used else v
        return f"{self._name}(" + ", ".join(f"{k}={value(k)!r}" for k in sorted(keys)) + ")"


class ParamsView:
    """What one stage may read of :class:`Params`: the sections/keys it declares (``PARAMS``), nothing else.

    Reading anything else raises :class:`UndeclaredParam`, so a stage cannot depend on a param that
    dvc.yaml does not list for it (tests/pipeline/test_pipeline.py runs every stage under its view).
    """

    def __init__(self, p: Params, declared, owner: str = "this stage"):
        secs: dict[str, set[str] | None] = {}
        for key in declared:
            sec, _, sub = key.partition(".")
            if sec not in Params.model_fields:
                raise ValueError(f"unknown params section in declaration {key!r}")
            if not sub:
                secs[sec] = None
            elif secs.get(sec, set()) is not None:
                secs.setdefault(sec, set()).add(sub)
        object.__setattr__(self, "_p", p)
        object.__setattr__(self, "_secs", {k: (frozenset(v) if v is not None else None) for k, v in secs.items()})
        object.__setattr__(self, "_owner", owner)

    def declares(self, key: str) -> bool:
        """Whether the stage declares ``key`` ("train.select_on" or a whole section "stats")."""
        sec, _, sub = key.partition(".")
        return sec in self._secs and (self._secs[sec] is None or sub in self._secs[sec])

    def __getattr__(self, sec: str):
        if sec not in self._secs:
            raise UndeclaredParam(f"{self._owner} reads params section {sec!r}, which its PARAMS (and dvc.yaml) do "
                                  f"not declare")
        return _SectionView(getattr(self._p, sec), sec, self._secs[sec], self._owner)

    def __setattr__(self, k, v):
        raise AttributeError("params are read-only inside a stage")

    def __repr__(self) -> str:
        used = set(self._p.data.datasets)
        return "\n".join(getattr(self, s)._repr(used) for s in self._secs)

    def _repr_html_(self) -> str:
        """In a notebook: the params of the run once, folded under one line."""
        import html
        return ("<details><summary>Parameters of this run (the params this stage reads; dvc.yaml declares the "
                f"same)</summary><pre>{html.escape(repr(self))}</pre></details>")
