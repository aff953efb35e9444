"""Typed configuration loaded from params.yaml; an unknown key, backbone or dataset is an error.

The dataclasses below are the one source of every default: their values are the offline default, and the
committed params.yaml spells out exactly these values (tests/test_config_cli.py checks that they agree).
``load_params`` checks the whole file before any work starts, so a typo fails in one line.
"""
from __future__ import annotations

import dataclasses
import re
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["ConfigError", "Params", "load_params", "check_params"]


class ConfigError(ValueError):
    """A params.yaml problem, reported as one line naming the key."""


class UndeclaredParam(AttributeError):
    """A stage read a param that its declaration (and so dvc.yaml) does not list."""


@dataclass
class Data:
    datasets: list[str] = field(default_factory=lambda: ["synthetic", "clive"])
    # per-dataset image roots (env NRIQA_ROOT_<NAME> overrides; relative = from the repository root); the
    # /path/to placeholders are where users point the datasets they bring
    roots: dict[str, str] = field(default_factory=lambda: {
        "synthetic": "data/synthetic", "clive": "../shared/datasets/clive",
        **{d: f"/path/to/{d}" for d in ("koniq10k", "kadid10k", "spaq", "agiqa3k", "agiqa1k", "csiq", "tid2013", "live")}})
    synthetic_root: str = "data/synthetic"
    synthetic_seed: int = 0
    limit: int = 0                     # > 0: a seeded sample of this many images per dataset (a quick first try)
    limit_seed: int = 0
    # dataset -> the manifest it reads (data_manifests/<name>.csv; default its own): P1's rows and layouts in the
    # paper profile, e.g. {clive: clive_p1 (all 1169 rows, release order), koniq10k: koniq10k_512x384}
    manifests: dict[str, str] = field(default_factory=dict)
    # decode every image upright as its EXIF orientation tag says (PIL's ImageOps.exif_transpose); false: the
    # pixels as stored, as P1's and P2's code read them (the paper profile)
    exif_transpose: bool = True


@dataclass
class Splits:
    schemes: dict[str, str] = field(default_factory=lambda: {"synthetic": "random", "clive": "clive_liqe",
                                                             "koniq10k": "official"})   # random|official|clive_liqe|p1
    n_splits: int = 10
    ratios: list[float] = field(default_factory=lambda: [0.7, 0.1, 0.2])
    seed: int = 0
    liqe_folder: str = "../shared/labels/clive_liqe_splits"


@dataclass
class Features:
    backbones: list[str] = field(default_factory=lambda: ["tf_efficientnet_lite0", "tf_efficientnet_lite1",
                                                          "tf_efficientnet_lite2", "random_tf_efficientnet_lite0"])
    test_time: str = "squash"          # squash | center_crop | multi_crop
    batch_size: int = 8
    threads: int = 2
    chunk_size: int = 256
    weights: dict[str, str] = field(default_factory=dict)   # backbone -> local weight file
    pretrained: bool = True            # false: seeded random weights everywhere (smoke profile: checks the code path)
    image_size: int = 0                # > 0: every backbone at this input size (ViTs built for it); 0 = its own
    # JPEGs decoded at 1/2, 1/4 or 1/8 scale (PIL draft mode) where that leaves >= this many times the view's
    # size (squash / center_crop / multi_crop); 0 = always full decode. CLIVE (500 px) is never drafted.
    jpeg_draft: float = 2.0


@dataclass
class Train:
    epochs: int = 12
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    hidden: int = 512
    margin_weight: float = 1.0
    margin_scale: float = 0.25
    margin_loss_swapped: bool = False
    micro_batch: int = 0               # > 0: P1's gradient accumulation, micro-batches of this size (P1: 2 of 12)
    # batch: each batch of batch_size is one optimiser step | p1: P1's loop (train.py l.382-420): one pass of
    # micro-batches (last incomplete one dropped), a step every batch_size/micro_batch of them counted across
    # epochs (the counter never resets), gradients zeroed at each epoch start (a partial window is dropped)
    accumulation: str = "batch"
    report_last: bool = False          # also write the last epoch's predictions (P1's code writes those)
    select_on: str = "val"             # val (clean protocol) | test (P1's optimistic, paper-faithful only)
    seed: int = 0
    single_split_seeds: int = 5        # training seeds on a dataset with one split (KonIQ's official one)
    # dataset -> {train key: value} where a dataset differs (P1: epochs 30 for CLIVE, 15 elsewhere)
    per_dataset: dict[str, dict] = field(default_factory=dict)


@dataclass
class T1:
    head: str = "B"


@dataclass
class T2:
    heads: list[str] = field(default_factory=lambda: ["B", "gelu", "sigmoid", "tanh", "leaky_relu", "B_Sig", "ridge"])
    reference: str = "B"
    cross: list[list[str]] = field(default_factory=lambda: [["synthetic", "clive"]])   # [[train, test], ...]


@dataclass
class T3:
    candidates: list[str] = field(default_factory=lambda: ["relu", "gelu", "sigmoid", "tanh", "leaky_relu", "silu"])
    temperature: float = 1.0
    hard: bool = False
    entropy_weight: float = 0.0


@dataclass
class T4:
    clip_models: list[str] = field(default_factory=lambda: ["clip_rn50"])
    lambdas: list[float] = field(default_factory=lambda: [0.0, 0.3, 0.5, 0.7, 1.0])
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0])
    biases: list[float] = field(default_factory=lambda: [0.0, 0.4])
    pre_resize: dict[str, list[int]] = field(default_factory=lambda: {"spaq": [448, 448], "agiqa1k": [224, 224]})


@dataclass
class T5:
    """Input resolution and test-time views as a controlled factor: every policy of ``policies`` on the same
    splits, with the same heads, against ``features.test_time`` (the policy of T1-T4)."""
    policies: list[str] = field(default_factory=lambda: ["squash", "center_crop", "squash_384"])
    # squash | center_crop | multi_crop | squash_<N> (larger squash) | native (the image as is) | grid (MA-CLIP views)
    backbones: list[str] = field(default_factory=lambda: ["tf_efficientnet_lite0"])   # empty = pretrained ones
    datasets: list[str] = field(default_factory=lambda: ["clive"])
    heads: list[str] = field(default_factory=lambda: ["ridge", "B_Sig"])


# how tables name each training regime (T6, run.json)
REGIME_LABELS = {"frozen": "frozen backbone + head", "lora": "LoRA adapters only (ours)",
                 "full": "full fine-tuning at lr_backbone (ours)",
                 "p1": "P1's regime: LoRA adapters + full backbone"}


@dataclass
class Finetune:
    """P1's image-level regimes (STUDY_SPEC.md section 2): LoRA r 4, alpha 8, dropout 0.05 on the attention q/k
    projections (conv LoRA on CNNs), or full fine-tuning; head, loss, epochs and batches as ``train``."""
    # lora (adapters only) | full (every backbone weight at lr_backbone) | p1 (P1's regime: LoRA adapters + the whole
    # backbone, one Adam at train.lr, P1's precision); empty = off (2 CPU cores cannot afford it)
    regimes: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=lambda: ["B"])   # heads fine-tuned with each regime (P1's Table 5: B, B_Sig, B_Gated)
    p1_precision: str = "bf16"         # the p1 regime: bf16 (P1: bf16 backbone and head, parametric activations fp32,
                                       # bf16 autocast) | fp32 (no autocast: the equivalence test's setting)
    backbones: list[str] = field(default_factory=list)    # empty = the pretrained ones of features.backbones
    lr_backbone: float = 5e-6          # full fine-tuning; LoRA adapters use train.lr (as P1)
    lora_r: int = 4
    lora_alpha: int = 8
    lora_dropout: float = 0.05
    max_splits: int = 0                # > 0: only the first N splits (a quick first try)


@dataclass
class Run:
    """Where the work runs (never changes the protocol): device, mixed precision, data-loading workers."""
    device: str = "auto"               # auto (cuda when available) | cpu | cuda | cuda:N
    amp: str = "auto"                  # auto (bf16 autocast on CUDA, none on CPU) | bf16 | off
    workers: int = 0                   # DataLoader workers (pinned memory + persistent workers when > 0 on CUDA)
    launcher: str = "python"           # how features/finetune start: python | torchrun --nproc_per_node N | srun ...


@dataclass
class Stats:
    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0


@dataclass
class Params:
    data: Data = field(default_factory=Data)
    splits: Splits = field(default_factory=Splits)
    features: Features = field(default_factory=Features)
    train: Train = field(default_factory=Train)
    t1: T1 = field(default_factory=T1)
    t2: T2 = field(default_factory=T2)
    t3: T3 = field(default_factory=T3)
    t4: T4 = field(default_factory=T4)
    t5: T5 = field(default_factory=T5)
    finetune: Finetune = field(default_factory=Finetune)
    run: Run = field(default_factory=Run)
    stats: Stats = field(default_factory=Stats)


def _build(cls, raw, where: str):
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"params: {where} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    pre = f"{where}." if where else ""
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"params: unknown key {pre}{unknown[0]} (known: {', '.join(sorted(names))})")
    kw = {}
    for k, v in raw.items():
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kw[k] = _build(t, v, pre + k)
            continue
        kw[k] = _typed(v, t, pre + k)
    return cls(**kw)


def _typed(v, t, key: str):
    """``v`` as type ``t`` (int, float, str, bool, list[...], dict[str, ...]), element by element."""
    base = typing.get_origin(t) or t
    args = typing.get_args(t)
    name = str(t).replace("typing.", "") if args else getattr(base, "__name__", str(base))
    if base is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, base) or (base in (int, float) and isinstance(v, bool)):
        raise ConfigError(f"params: {key} should be {name}, got {v!r}")
    if base is float and not math.isfinite(v):     # .inf / .nan would train, select or fuse into wrong numbers
        raise ConfigError(f"params: {key}={v!r} is not a finite number")
    if base is list and args:
        return [_typed(x, args[0], f"{key}[{i}]") for i, x in enumerate(v)]
    if base is dict and args:
        return {str(a): _typed(b, args[1], f"{key}.{a}") for a, b in v.items()}
    return v


# Ranges of the numeric knobs, checked up front (one line naming the key and the allowed range). Written
# out as a table rather than with a validation library: the dataclasses above already give types, and a
# range table reads as the documentation of what each knob accepts.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {   # key: (low, high, low exclusive)
    # upper bounds: far beyond any sensible study, low enough that a typo fails here, not after an hour or 51 GB
    "data.synthetic_seed": (0, None, False),
    "data.limit": (0, None, False),
    "data.limit_seed": (0, None, False),
    "splits.n_splits": (1, 1000, False),
    "splits.seed": (0, None, False),
    "features.batch_size": (1, 4096, False),
    "features.threads": (1, 1024, False),
    "features.chunk_size": (1, 1_000_000, False),
    "features.image_size": (0, 4096, False),
    "features.jpeg_draft": (0, 16, False),
    "train.epochs": (1, 10000, False),
    "train.lr": (0, 10, True),
    "train.batch_size": (1, 65536, False),
    "train.weight_decay": (0, 10, False),
    "train.hidden": (1, 65536, False),
    "train.margin_weight": (0, 100, False),
    "train.margin_scale": (0, 100, False),
    "train.micro_batch": (0, 65536, False),
    "train.seed": (0, None, False),
    "train.single_split_seeds": (1, 1000, False),
    "finetune.lr_backbone": (0, 10, True),
    "finetune.lora_r": (1, 4096, False),
    "finetune.lora_alpha": (0, 4096, True),
    "finetune.lora_dropout": (0, 1, False),
    "finetune.max_splits": (0, None, False),
    "run.workers": (0, 256, False),
    "t3.temperature": (0, 100, True),
    "t3.entropy_weight": (0, 100, False),
    "stats.alpha": (0, 0.5, True),
    "stats.n_boot": (100, 1_000_000, False),
    "stats.seed": (0, None, False),
}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _check_ranges(p: "Params") -> None:
    for key, (lo, hi, lo_open) in RANGES.items():
        sec, name = key.split(".")
        v = getattr(getattr(p, sec), name)
        bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi)
        if bad:
            rng = (f"{'>' if lo_open else '>='} {_num(lo)}" if hi is None else
                   f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]")
            raise ConfigError(f"params: {key}={v!r} is out of range; allowed: {rng}")
    if 0 < p.features.jpeg_draft < 1:
        raise ConfigError(f"params: features.jpeg_draft={p.features.jpeg_draft!r}; use 0 (always a full decode) or a "
                          f"margin in [1, 16] (a draft never below the view's size)")
    r = p.splits.ratios
    if len(r) == 3 and r[1] == 0 and p.train.select_on == "val":
        raise ConfigError(f"params: splits.ratios={r!r} has no val part but train.select_on=val; give val a ratio "
                          f"> 0 or use select_on: test (P1's optimistic protocol)")
    if len(r) not in (2, 3) or min(r) < 0 or abs(sum(r) - 1) > 1e-9:
        raise ConfigError(f"params: splits.ratios={r!r}; use 2 (train, test) or 3 (train, val, test) non-negative "
                          f"numbers summing to 1")
    if len(r) == 2 and p.train.select_on == "val":
        raise ConfigError("params: splits.ratios has no val part but train.select_on=val; add a val ratio or use "
                          "select_on: test (P1's optimistic protocol)")
    for k in ("lambdas", "alphas", "biases"):
        if not getattr(p.t4, k):
            raise ConfigError(f"params: t4.{k} is empty; give at least one value")


def check_params(p: Params) -> None:
    """Ranges (:data:`RANGES`) and cross-field checks: known backbones, heads, split schemes, protocol."""
    from .backbones import REGISTRY, unknown_backbone_message
    from .heads import ACTIVATIONS, get_predictor
    _check_ranges(p)
    if not p.features.backbones:
        raise ConfigError("params: features.backbones is empty; list at least one backbone")
    if not p.data.datasets:
        raise ConfigError("params: data.datasets is empty; list at least one dataset")
    for b in p.features.backbones + p.t4.clip_models:
        if b not in REGISTRY:
            raise ConfigError("params: " + unknown_backbone_message(b, "features.backbones/t4.clip_models"))
    for d in p.data.datasets:
        if d not in p.data.roots:
            raise ConfigError(f"params: dataset {d!r} has no data.roots.{d}")
    for d, s in p.splits.schemes.items():
        if s not in ("random", "official", "clive_liqe", "p1"):
            raise ConfigError(f"params: splits.schemes.{d}={s!r}; use random, official, clive_liqe or p1")
    for h in [p.t1.head, *p.t2.heads, p.t2.reference]:
        try:
            get_predictor(h)
        except KeyError as e:
            raise ConfigError(f"params: {e.args[0]}") from None
    for c in p.t3.candidates:
        if c not in ACTIVATIONS:
            raise ConfigError(f"params: t3.candidates has unknown activation {c!r}")
    if p.train.select_on not in ("val", "test"):
        raise ConfigError(f"params: train.select_on={p.train.select_on!r}; use val or test")
    if p.features.test_time not in ("squash", "center_crop", "multi_crop"):
        raise ConfigError(f"params: features.test_time={p.features.test_time!r}; use squash, center_crop or multi_crop")
    if p.train.micro_batch < 0 or (p.train.micro_batch and p.train.batch_size % p.train.micro_batch):
        raise ConfigError(f"params: train.micro_batch={p.train.micro_batch} must be 0 or divide train.batch_size="
                          f"{p.train.batch_size}")
    if p.train.single_split_seeds < 1:
        raise ConfigError(f"params: train.single_split_seeds={p.train.single_split_seeds}; use an integer >= 1 (>= 5 "
                          f"gives single-split datasets a seed-to-seed spread)")
    seen = set()
    for d in p.data.datasets:
        if d in seen:
            raise ConfigError(f"params: data.datasets lists {d!r} twice (each dataset once)")
        seen.add(d)
    for d, over in p.train.per_dataset.items():
        if d not in p.data.roots:
            raise ConfigError(f"params: train.per_dataset.{d}: no such dataset in data.roots (known: "
                              f"{', '.join(sorted(p.data.roots))})")
        names = typing.get_type_hints(Train)
        for k, v in (over or {}).items():
            if k not in names or k == "per_dataset":
                raise ConfigError(f"params: train.per_dataset.{d}.{k} is not a train key (known: "
                                  f"{', '.join(n for n in names if n != 'per_dataset')})")
            _typed(v, names[k], f"train.per_dataset.{d}.{k}")
    import re
    for pol in p.t5.policies:
        if not re.fullmatch(r"squash|center_crop|multi_crop|native|grid|squash_\d+", pol):
            raise ConfigError(f"params: t5.policies has {pol!r}; use squash, center_crop, multi_crop, squash_<N>, "
                              f"native or grid")
    if p.features.test_time not in p.t5.policies:
        raise ConfigError(f"params: t5.policies must include features.test_time={p.features.test_time!r} (the "
                          f"reference every policy is compared with)")
    for d in p.t5.datasets:
        if d not in p.data.roots:
            raise ConfigError(f"params: t5.datasets has {d!r}, which has no data.roots.{d} (those not in "
                              f"data.datasets are skipped)")
    for b in p.t5.backbones:
        if b not in REGISTRY:
            raise ConfigError("params: " + unknown_backbone_message(b, "t5.backbones"))
    for h in p.t5.heads:
        try:
            get_predictor(h)
        except KeyError as e:
            raise ConfigError(f"params: t5.heads: {e.args[0]}") from None
    for r in p.finetune.regimes:
        if r not in ("lora", "full", "p1"):
            raise ConfigError(f"params: finetune.regimes has {r!r}; use lora, full and/or p1 (frozen = the heads stage)")
    for h in p.finetune.heads:
        try:
            spec = get_predictor(h)
        except KeyError as e:
            raise ConfigError(f"params: finetune.heads: {e.args[0]}") from None
        if spec.kind != "mlp":
            raise ConfigError(f"params: finetune.heads has {h!r}, which is not an MLP head (fine-tuning trains the "
                              f"backbone through the head's gradient)")
    if p.finetune.regimes and not p.finetune.heads:
        raise ConfigError("params: finetune.heads is empty but finetune.regimes is not; list the heads to fine-tune")
    if p.finetune.p1_precision not in ("bf16", "fp32"):
        raise ConfigError(f"params: finetune.p1_precision={p.finetune.p1_precision!r}; use bf16 (P1) or fp32")
    if p.train.accumulation not in ("batch", "p1"):
        raise ConfigError(f"params: train.accumulation={p.train.accumulation!r}; use batch or p1 (P1's loop)")
    if p.train.accumulation == "p1" and not p.train.micro_batch:
        raise ConfigError("params: train.accumulation=p1 needs train.micro_batch > 0 (P1: 2, with batch_size 12)")
    from .data.manifest import known_datasets
    cards = known_datasets()
    for d, m in p.data.manifests.items():
        if m not in cards:
            raise ConfigError(f"params: data.manifests.{d}={m!r} has no card data_manifests/{m}.yaml (known: "
                              f"{', '.join(cards)})")
    for b in p.finetune.backbones:
        if b not in p.features.backbones:
            raise ConfigError(f"params: finetune.backbones has {b!r}, which is not in features.backbones")
    if not (p.run.device in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", p.run.device)):
        raise ConfigError(f"params: run.device={p.run.device!r}; use auto, cpu, cuda or cuda:N")
    if not p.run.launcher.split() or p.run.launcher.split()[0] not in ("python", "python3", "torchrun", "srun"):
        raise ConfigError(f"params: run.launcher={p.run.launcher!r}; use python, torchrun --nproc_per_node N or "
                          f"srun ... torchrun ... (the stage command is '<launcher> -m nriqa_lib.cli ...')")
    if p.run.amp not in ("auto", "bf16", "off"):
        raise ConfigError(f"params: run.amp={p.run.amp!r}; use auto, bf16 or off")
    for pair in p.t2.cross:
        if len(pair) != 2 or any(d not in p.data.roots for d in pair):
            raise ConfigError(f"params: t2.cross entry {pair!r} must name two datasets of data.roots "
                              f"(pairs not both in data.datasets are skipped)")


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error (YAML's loaders keep the last
    one silently, so a second ``train:`` section would replace the first)."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for k, _ in node.value:
            key = self.construct_object(k, deep=deep)
            if key in keys:
                raise ConfigError(f"params file line {k.start_mark.line + 1}: duplicate key {key!r} (YAML would keep "
                                  f"only the last)")
            keys.add(key)
        return super().construct_mapping(node, deep)


def load_params(path: str | Path = "params.yaml", check: bool = True) -> Params:
    """Read and check params.yaml; raise ConfigError with one line on any problem."""
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
    p = _build(Params, raw, "")
    if check:
        check_params(p)
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
        keys = self._keys if self._keys is not None else [f.name for f in dataclasses.fields(self._s)]

        def value(k: str):      # per-dataset settings (data.roots, splits.schemes, ...): only the run's datasets
            v = getattr(self._s, k)
            return {d: x for d, x in v.items() if d in used} if used and isinstance(v, dict) and set(v) & used else v
        return f"{self._name}(" + ", ".join(f"{k}={value(k)!r}" for k in sorted(keys)) + ")"


class ParamsView:
    """What one stage may read of :class:`Params`: the sections/keys it declares (``PARAMS``), nothing else.

    Reading anything else raises :class:`UndeclaredParam`, so a stage cannot depend on a param that
    dvc.yaml does not list for it (tests/test_pipeline.py runs every stage under its view).
    """

    def __init__(self, p: Params, declared, owner: str = "this stage"):
        secs: dict[str, set[str] | None] = {}
        for key in declared:
            sec, _, sub = key.partition(".")
            if sec not in {f.name for f in dataclasses.fields(Params)}:
                raise ValueError(f"unknown params section in declaration {key!r}")
            if not sub:
                secs[sec] = None
            elif secs.get(sec, set()) is not None:
                secs.setdefault(sec, set()).add(sub)
        object.__setattr__(self, "_p", p)
        object.__setattr__(self, "_secs", {k: (frozenset(v) if v is not None else None) for k, v in secs.items()})
        object.__setattr__(self, "_owner", owner)

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
