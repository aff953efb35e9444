"""Typed configuration loaded from params.yaml: pydantic models, one per section; an unknown key, a wrong type, a
value out of range, an unknown backbone or dataset is an error of one line naming the key.

The models below are the one source of every default (their values are the offline default; the committed
params.yaml spells out exactly these values, tests/pipeline/test_config_cli.py checks that they agree) and of every
allowed range (``Field(ge=..., le=...)``) and choice (``Literal``). ``load_params`` validates the whole file before
any work starts (:mod:`nriqa_lib.core.params`: loading, the registry lookups, the view a stage reads through).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["ConfigError", "Params", "Data", "Splits", "Features", "Train", "T1", "T2", "T3", "T4", "T5", "Finetune", "Run",
           "Stats", "REGIME_LABELS"]


# every seed key's bound: job seeds are train.seed x 1000 + split and torch.manual_seed takes < 2**64 (a larger
# train.seed passed `check` and raised OverflowError in the heads stage, issue 37 T1)
SEED_MAX = 2**31 - 1
MIN_SIDE, MAX_SIDE = 32, 4096     # an image side in pixels a size knob may ask for (image_size, squash_<N>, pre_resize)


class ConfigError(ValueError):
    """A params.yaml problem, reported as one line naming the key."""


def _distinct(where: str, v: list[str], allow_empty: bool = False) -> list[str]:
    """A list of names given once each (a head listed twice would be trained and tested twice as two 'heads')."""
    if not v and not allow_empty:
        raise ConfigError(f"params: {where} is empty; list at least one")
    dup = sorted({x for x in v if v.count(x) > 1})
    if dup:
        raise ConfigError(f"params: {where} lists {dup[0]!r} twice")
    return v


class _Section(BaseModel):
    # strict: "12" is not an int and true is not a number (YAML's own types, as written); finite floats only (.inf or
    # .nan would train, select or fuse into wrong numbers); an unknown key is an error, not ignored
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_default=False)


# The Fields' upper bounds (le=) are far beyond any sensible study, low enough that a typo fails here, not after an
# hour or 51 GB.


class Data(_Section):
    datasets: list[str] = Field(default_factory=lambda: ["synthetic", "clive"], min_length=1)
    # per-dataset image roots (env NRIQA_ROOT_<NAME> overrides; relative = from the repository root); the
    # /path/to placeholders are where users point the datasets they bring
    roots: dict[str, str] = Field(default_factory=lambda: {
        "synthetic": "data/synthetic", "clive": "../shared/datasets/clive",
        **{d: f"/path/to/{d}" for d in ("koniq10k", "kadid10k", "spaq", "agiqa3k", "agiqa1k", "csiq", "tid2013", "live")}})
    synthetic_root: str = "data/synthetic"
    synthetic_seed: int = Field(0, ge=0, le=SEED_MAX)
    limit: int = Field(0, ge=0)        # > 0: a seeded sample of this many images per dataset (a quick first try)
    limit_seed: int = Field(0, ge=0, le=SEED_MAX)
    # dataset -> the manifest it reads (data_manifests/<name>.csv; default its own): P1's rows and layouts in the
    # paper profile, e.g. {clive: clive_p1 (all 1169 rows, release order), koniq10k: koniq10k_512x384}
    manifests: dict[str, str] = Field(default_factory=dict)
    # decode every image upright as its EXIF orientation tag says (PIL's ImageOps.exif_transpose); false: the
    # pixels as stored, as P1's and P2's code read them (the paper profile)
    exif_transpose: bool = True

    @model_validator(mode="after")
    def _each_dataset_once(self):
        seen = set()
        for d in self.datasets:
            if d in seen:
                raise ConfigError(f"params: data.datasets lists {d!r} twice (each dataset once)")
            seen.add(d)
        return self


class Splits(_Section):
    schemes: dict[str, Literal["random", "official", "clive_liqe", "p1"]] = Field(
        default_factory=lambda: {"synthetic": "random", "clive": "clive_liqe", "koniq10k": "official"})
    n_splits: int = Field(10, ge=1, le=1000)
    ratios: list[float] = Field(default_factory=lambda: [0.7, 0.1, 0.2])
    seed: int = Field(0, ge=0, le=SEED_MAX)
    liqe_folder: str = "../shared/labels/clive_liqe_splits"

    @model_validator(mode="after")
    def _ratios(self):
        r = self.ratios
        if len(r) not in (2, 3) or min(r) < 0 or abs(sum(r) - 1) > 1e-9:
            raise ConfigError(f"params: splits.ratios={r!r}; use 2 (train, test) or 3 (train, val, test) non-negative "
                              f"numbers summing to 1")
        return self


class Features(_Section):
    backbones: list[str] = Field(default_factory=lambda: ["tf_efficientnet_lite0", "tf_efficientnet_lite1",
                                                          "tf_efficientnet_lite2", "random_tf_efficientnet_lite0"],
                                 min_length=1)
    test_time: Literal["squash", "center_crop", "multi_crop"] = "squash"
    batch_size: int = Field(8, ge=1, le=4096)
    threads: int = Field(2, ge=1, le=1024)
    chunk_size: int = Field(256, ge=1, le=1_000_000)
    weights: dict[str, str] = Field(default_factory=dict)   # backbone -> local weight file
    pretrained: bool = True            # false: seeded random weights everywhere (smoke profile: checks the code path)
    image_size: int = Field(0, ge=0, le=4096)   # >= 32: every backbone at this input size (ViTs built for it); 0 = its own
    # JPEGs decoded at 1/2, 1/4 or 1/8 scale (PIL draft mode) where that leaves >= this many times the view's
    # size (squash / center_crop / multi_crop); 0 = always full decode. CLIVE (500 px) is never drafted.
    jpeg_draft: float = Field(2.0, ge=0, le=16)
    # each random-init control at this many seeded initialisations (seeds 0..N-1): heads use seed 0; T4's
    # magnitude-cue test resamples all N (issue 39: "a random one" is a population, not one draw)
    control_inits: int = Field(5, ge=1, le=100)

    @model_validator(mode="after")
    def _draft(self):
        if 0 < self.jpeg_draft < 1:
            raise ConfigError(f"params: features.jpeg_draft={self.jpeg_draft!r}; use 0 (always a full decode) or a "
                              f"margin in [1, 16] (a draft never below the view's size)")
        if 0 < self.image_size < MIN_SIDE:
            raise ConfigError(f"params: features.image_size={self.image_size}; use 0 (each backbone its own size) or "
                              f"{MIN_SIDE} to {MAX_SIDE} pixels (below {MIN_SIDE} a ViT has at most one patch per side)")
        _distinct("features.backbones", self.backbones)
        return self


class Train(_Section):
    epochs: int = Field(12, ge=1, le=10000)
    lr: float = Field(1e-3, gt=0, le=10)
    batch_size: int = Field(64, ge=1, le=65536)
    weight_decay: float = Field(0.0, ge=0, le=10)
    hidden: int = Field(512, ge=1, le=65536)
    margin_weight: float = Field(1.0, ge=0, le=100)
    margin_scale: float = Field(0.25, ge=0, le=100)
    margin_loss_swapped: bool = False
    # > 0: P1's gradient accumulation, micro-batches of this size (P1: 2 of 12)
    micro_batch: int = Field(0, ge=0, le=65536)
    # batch: each batch of batch_size is one optimiser step | p1: P1's loop (train.py l.382-420): one pass of
    # micro-batches (last incomplete one dropped), a step every batch_size/micro_batch of them counted across
    # epochs (the counter never resets), gradients zeroed at each epoch start (a partial window is dropped)
    accumulation: Literal["batch", "p1"] = "batch"
    report_last: bool = False          # also write the last epoch's predictions (P1's code writes those)
    select_on: Literal["val", "test"] = "val"   # val (clean protocol) | test (P1's optimistic, paper-faithful only)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    # training seeds on a dataset with one split (KonIQ's official one); >= 5 gives a seed-to-seed spread
    single_split_seeds: int = Field(5, ge=1, le=1000)
    # training seeds per split on a dataset with several splits: each split's metric is their mean (seed noise
    # averaged, issue 39; the estimand stays one head's SRCC); 1 = one head per split
    seeds_per_split: int = Field(2, ge=1, le=100)
    # dataset -> {train key: value} where a dataset differs (P1: epochs 30 for CLIVE, 15 elsewhere)
    per_dataset: dict[str, dict] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _accumulation(self):
        if self.micro_batch and self.batch_size % self.micro_batch:
            raise ConfigError(f"params: train.micro_batch={self.micro_batch} must be 0 or divide train.batch_size="
                              f"{self.batch_size}")
        if self.accumulation == "p1" and not self.micro_batch:
            raise ConfigError("params: train.accumulation=p1 needs train.micro_batch > 0 (P1: 2, with batch_size 12)")
        for d, over in self.per_dataset.items():       # each override is a train key of the right type and range
            for k in over:
                if k not in Train.model_fields or k == "per_dataset":
                    raise ConfigError(f"params: train.per_dataset.{d}.{k} is not a train key (known: "
                                      f"{', '.join(n for n in Train.model_fields if n != 'per_dataset')})")
            try:
                Train.model_validate(over)
            except ValidationError as e:
                raise ConfigError(validation_message(e, ("train", "per_dataset", d), Train)) from None
        return self


class T1(_Section):
    head: str = "B"


class T2(_Section):
    heads: list[str] = Field(default_factory=lambda: ["B", "gelu", "sigmoid", "tanh", "leaky_relu", "B_Sig", "ridge"])
    reference: str = "B"
    cross: list[list[str]] = Field(default_factory=lambda: [["synthetic", "clive"]])   # [[train, test], ...]

    @model_validator(mode="after")
    def _lists(self):
        _distinct("t2.heads", self.heads)
        for pair in self.cross:
            if len(pair) == 2 and pair[0] == pair[1]:
                raise ConfigError(f"params: t2.cross entry {pair!r} trains and tests on one dataset (its own training "
                                  f"images among the test ones); cross-dataset means two datasets, within one is T1-T3")
        return self


class T3(_Section):
    candidates: list[str] = Field(default_factory=lambda: ["relu", "gelu", "sigmoid", "tanh", "leaky_relu", "silu"])
    temperature: float = Field(1.0, gt=0, le=100)
    hard: bool = False
    entropy_weight: float = Field(0.0, ge=0, le=100)

    @model_validator(mode="after")
    def _candidates(self):
        if len(self.candidates) < 2 or len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"params: t3.candidates={self.candidates!r}; give at least two distinct activations "
                              f"(the K-way head selects among them per channel)")
        return self


class T4(_Section):
    clip_models: list[str] = Field(default_factory=lambda: ["clip_rn50"])
    lambdas: list[float] = Field(default_factory=lambda: [0.0, 0.3, 0.5, 0.7, 1.0], min_length=1)
    alphas: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0, 2.0, 4.0], min_length=1)
    biases: list[float] = Field(default_factory=lambda: [0.0, 0.4], min_length=1)
    pre_resize: dict[str, list[int]] = Field(default_factory=lambda: {"spaq": [448, 448], "agiqa1k": [224, 224]})

    @model_validator(mode="after")
    def _sizes(self):
        for d, hw in self.pre_resize.items():
            if len(hw) != 2 or not all(MIN_SIDE <= x <= MAX_SIDE for x in hw):
                raise ConfigError(f"params: t4.pre_resize.{d}={hw!r}; give [height, width], each in [{MIN_SIDE}, "
                                  f"{MAX_SIDE}] pixels (P2: spaq [448, 448], agiqa1k [224, 224])")
        return self


class T5(_Section):
    """Input resolution and test-time views as a controlled factor: every policy of ``policies`` on the same
    splits, with the same heads, against ``features.test_time`` (the policy of T1-T4)."""
    policies: list[str] = Field(default_factory=lambda: ["squash", "center_crop", "squash_384"])
    # squash | center_crop | multi_crop | squash_<N> (larger squash) | native (the image as is) | grid (MA-CLIP views)
    backbones: list[str] = Field(default_factory=lambda: ["tf_efficientnet_lite0"])   # empty = pretrained ones
    datasets: list[str] = Field(default_factory=lambda: ["clive"])
    heads: list[str] = Field(default_factory=lambda: ["ridge", "B_Sig"])

    @model_validator(mode="after")
    def _lists(self):
        _distinct("t5.heads", self.heads)
        _distinct("t5.backbones", self.backbones, allow_empty=True)
        return self

    @field_validator("policies")
    @classmethod
    def _policies(cls, v: list[str]) -> list[str]:
        for pol in v:
            if not re.fullmatch(r"squash|center_crop|multi_crop|native|grid|squash_\d+", pol):
                raise ConfigError(f"params: t5.policies has {pol!r}; use squash, center_crop, multi_crop, squash_<N>, "
                                  f"native or grid")
            if pol.startswith("squash_") and not MIN_SIDE <= int(pol[7:]) <= MAX_SIDE:
                raise ConfigError(f"params: t5.policies has {pol!r}; squash_<N> takes N in [{MIN_SIDE}, {MAX_SIDE}] "
                                  f"pixels")
        return _distinct("t5.policies", v)


# how tables name each training regime (T6, run.json)
# p1_frozen: P1's first-commit script (the shipped checkpoints' naming, adapters-only saves): most likely what
# produced P1's published numbers; p1: P1's released train.py (STUDY_SPEC.md section 2, ../shared/reference/README.md)
REGIME_LABELS = {"frozen": "frozen backbone + head", "lora": "LoRA adapters only (ours)",
                 "full": "full fine-tuning at lr_backbone (ours)",
                 "p1_frozen": "P1 as published: LoRA adapters on a frozen backbone (P1's first-commit script)",
                 "p1": "P1's released train.py: LoRA adapters + every backbone weight"}


class Finetune(_Section):
    """P1's image-level regimes (STUDY_SPEC.md section 2): LoRA r 4, alpha 8, dropout 0.05 on the attention q/k
    projections (conv LoRA on CNNs), or full fine-tuning; head, loss, epochs and batches as ``train``."""
    # p1_frozen (P1 as published: LoRA adapters on a frozen backbone, P1's first-commit script) | p1 (P1's released
    # train.py: LoRA adapters + every backbone weight) -- both one Adam at train.lr in p1_precision -- | lora (ours:
    # adapters only) | full (ours: every backbone weight at lr_backbone); empty = off (2 CPU cores cannot afford it)
    regimes: list[Literal["p1_frozen", "p1", "lora", "full"]] = Field(default_factory=list)
    heads: list[str] = Field(default_factory=lambda: ["B"])   # heads fine-tuned with each regime (P1's Table 5: B, B_Sig, B_Gated)
    # P1's two recipes (p1_frozen, p1): bf16 (P1's numerics: bf16 backbone and head, adapters and parametric
    # activations fp32, bf16 autocast, P1's loss on the bf16 score) | fp32 (no autocast)
    p1_precision: Literal["bf16", "fp32"] = "bf16"
    backbones: list[str] = Field(default_factory=list)    # empty = the pretrained ones of features.backbones
    lr_backbone: float = Field(5e-6, gt=0, le=10)   # full fine-tuning; LoRA adapters use train.lr (as P1)
    lora_r: int = Field(4, ge=1, le=4096)
    lora_alpha: int = Field(8, gt=0, le=4096)
    lora_dropout: float = Field(0.05, ge=0, le=1)
    max_splits: int = Field(0, ge=0)   # > 0: only the first N splits (a quick first try)
    # runs (heads x splits) of one backbone and regime trained side by side (nriqa_lib.training.fused): 1 = one by
    # one | N = up to N per group | auto = as many as the device's free memory holds; bf16-autocast runs go one by one
    fuse: Literal["auto"] | Annotated[int, Field(ge=1, le=4096)] = 1

    @model_validator(mode="after")
    def _heads(self):
        if self.regimes and not self.heads:
            raise ConfigError("params: finetune.heads is empty but finetune.regimes is not; list the heads to fine-tune")
        _distinct("finetune.heads", self.heads, allow_empty=True)
        _distinct("finetune.regimes", list(self.regimes), allow_empty=True)
        return self


# words a shell reads as themselves (no quoting needed), separated by single spaces (a newline or tab is a separator
# a shell reads otherwise)
_LAUNCHER = re.compile(r"[A-Za-z0-9_./:=,@+%-]+( [A-Za-z0-9_./:=,@+%-]+)*")


class Run(_Section):
    """Where the work runs (never changes the protocol): device, mixed precision, data-loading workers."""
    device: str = "auto"               # auto (cuda when available) | cpu | cuda | cuda:N
    amp: Literal["auto", "bf16", "off"] = "auto"   # auto (bf16 autocast on CUDA, none on CPU) | bf16 | off
    workers: int = Field(0, ge=0, le=256)   # DataLoader workers (pinned memory + persistent workers when > 0 on CUDA)
    launcher: str = "python"           # how features/finetune start: python | torchrun --nproc_per_node N | srun ...

    @model_validator(mode="after")
    def _where(self):
        if not (self.device in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", self.device)):
            raise ConfigError(f"params: run.device={self.device!r}; use auto, cpu, cuda or cuda:N")
        # DVC runs '<launcher> -m nriqa_lib.cli ...' through a shell: the launcher must be plain words (no quotes,
        # ;, |, &, $, backticks, redirections, globs), its program one of these
        words = self.launcher.split(" ")
        if not _LAUNCHER.fullmatch(self.launcher) or words[0] not in ("python", "python3", "torchrun", "srun"):
            raise ConfigError(f"params: run.launcher={self.launcher!r}; use python, torchrun --nproc_per_node N or "
                              f"srun ... torchrun ... in plain words: letters, digits and _ . / : = , @ + % - "
                              f"(the stage command is '<launcher> -m nriqa_lib.cli ...', run by a shell)")
        return self


class Stats(_Section):
    alpha: float = Field(0.05, gt=0, le=0.5)
    n_boot: int = Field(1000, ge=100, le=1_000_000)
    seed: int = Field(0, ge=0, le=SEED_MAX)


class Params(_Section):
    data: Data = Field(default_factory=Data)
    splits: Splits = Field(default_factory=Splits)
    features: Features = Field(default_factory=Features)
    train: Train = Field(default_factory=Train)
    t1: T1 = Field(default_factory=T1)
    t2: T2 = Field(default_factory=T2)
    t3: T3 = Field(default_factory=T3)
    t4: T4 = Field(default_factory=T4)
    t5: T5 = Field(default_factory=T5)
    finetune: Finetune = Field(default_factory=Finetune)
    run: Run = Field(default_factory=Run)
    stats: Stats = Field(default_factory=Stats)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        """A section written with no keys (``t1:``) is that section's defaults."""
        return {k: ({} if v is None else v) for k, v in raw.items()} if isinstance(raw, dict) else raw

    @model_validator(mode="after")
    def _across_sections(self):
        """Checks that read two sections; each names the keys involved."""
        r, roots = self.splits.ratios, self.data.roots
        if (len(r) == 2 or r[1] == 0) and self.train.select_on == "val":
            raise ConfigError(f"params: splits.ratios={r!r} has no val part but train.select_on=val; give val a ratio "
                              f"> 0 or use select_on: test (P1's optimistic protocol)")
        for d in self.data.datasets:
            if d not in roots:
                raise ConfigError(f"params: dataset {d!r} has no data.roots.{d}")
        for d in self.train.per_dataset:
            if d not in roots:
                raise ConfigError(f"params: train.per_dataset.{d}: no such dataset in data.roots (known: "
                                  f"{', '.join(sorted(roots))})")
        if self.features.test_time not in self.t5.policies:
            raise ConfigError(f"params: t5.policies must include features.test_time={self.features.test_time!r} (the "
                              f"reference every policy is compared with)")
        for d in self.t5.datasets:
            if d not in roots:
                raise ConfigError(f"params: t5.datasets has {d!r}, which has no data.roots.{d} (those not in "
                                  f"data.datasets are skipped)")
        for b in self.finetune.backbones:
            if b not in self.features.backbones:
                raise ConfigError(f"params: finetune.backbones has {b!r}, which is not in features.backbones")
        for pair in self.t2.cross:
            if len(pair) != 2 or any(d not in roots for d in pair):
                raise ConfigError(f"params: t2.cross entry {pair!r} must name two datasets of data.roots "
                                  f"(pairs not both in data.datasets are skipped)")
        return self


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _allowed(model: type[BaseModel], name: str) -> str:
    """The range a numeric field accepts, from its ``Field(ge/gt/le)``: 'in [1, 10000]', 'in (0, 10]', '>= 0'."""
    lo = hi = None
    lo_open = False
    for m in model.model_fields[name].metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, lo_open = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
    if hi is None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]"


_TYPE_NAMES = {"int_type": "int", "int_from_float": "int", "float_type": "float", "string_type": "str",
               "bool_type": "bool", "list_type": "list", "dict_type": "dict"}


def validation_message(e: ValidationError, prefix: tuple = (), model: type[BaseModel] = None) -> str:
    """pydantic's first error as one line naming the key (``train.epochs``, ``splits.ratios[1]``)."""
    err = e.errors(include_url=False)[0]
    loc = (*prefix, *err["loc"])
    key = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc).lstrip(".")
    kind, v = err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), ConfigError):
        return str(ctx["error"])
    if kind == "extra_forbidden":
        owner = _model_at(model or Params, loc[len(prefix):-1])
        return f"params: unknown key {key} (known: {', '.join(sorted(owner.model_fields))})"
    if kind == "model_type":
        return f"params: {key} must be a mapping, got {type(v).__name__}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        owner = _model_at(model or Params, loc[len(prefix):-1])
        if owner.model_fields[loc[-1]].annotation is float and isinstance(v, int):
            v = float(v)        # as the value would have been read (YAML's 0 for a float knob is 0.0)
        return f"params: {key}={v!r} is out of range; allowed: {_allowed(owner, loc[-1])}"
    if kind == "finite_number":
        return f"params: {key}={v!r} is not a finite number"
    if kind == "too_short":
        return f"params: {key} is empty; give at least one value"
    if kind == "literal_error":
        return f"params: {key}={v!r}; use {ctx.get('expected', '').replace(chr(39), '')}"
    if kind in _TYPE_NAMES:
        return f"params: {key} should be {_TYPE_NAMES[kind]}, got {v!r}"
    return f"params: {key}: {err['msg']}"


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel]:
    """The section model that holds the field at ``path`` (a chain of section names from ``model``)."""
    for name in path:
        if isinstance(name, str) and name in model.model_fields:
            ann = model.model_fields[name].annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                model = ann
    return model
