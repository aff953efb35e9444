"""Fused fine-tuning (issue 36): the independent runs of one backbone and regime (heads x splits) train side by side
as one model, each keeping its own recipe: at every micro-step each run's micro-batch (P1: 2 images) goes through
the backbone together with the others', so one kernel serves k runs where the solo loop launches k times (HFTA,
Wang et al., MLSys 2021, arXiv 2102.02344, fuses repetitive jobs operator by operator). Two ways:

* **one shared backbone** (``p1_frozen`` = P1 as published, and our ``lora``, when every run's frozen weights are
  the same, i.e. pretrained): the base runs once over all k x 2 images (ASPEN, arXiv 2312.02515: many LoRA jobs
  over one frozen model); only the adapters are per run -- peft's Linear/Conv2d LoRA as batched matmuls / a grouped
  convolution, our fused-qkv LoRA as batched matmuls -- and BatchNorm normalises each run's images with its own
  statistics (k-fold channels). Plain autograd under the run's own autocast, so P1's bf16 recipe fuses;
* **stacked copies** (``p1``, ``full``, or frozen weights that differ): torch.func's model ensembling,
  ``functional_call`` under ``vmap``, every trained tensor stacked per run; fp32 only, because torch's vmap does
  not apply autocast (measured with torch 2.14 on CPU: a bf16 convolution under vmap inside torch.autocast gets its
  fp32 input uncast and raises; pytorch issue 192617: nn.Linear's bias is added in fp32): bf16 runs that would
  need it go one by one, said in one line. open_clip's nn.MultiheadAttention LoRA (clip_vit_b16) also takes it.

Per run in both: its own trained leaf tensors and Adam (stacked, differentiably, at each micro-step), so a run
steps when *its* accumulation window closes (P1's windows counted per run) and leaves the group when its epochs
are done; its head; its LoRA dropout masks, drawn by :class:`nriqa_lib.training.finetune.RunDropout` from the run's
own generators seeded as its solo run's global RNG (the DataLoader's per-iterator draw included), so they do not
depend on the group; P1's bf16 autocast cache (one context per epoch: autocast reuses its bf16 copy of each peft
adapter weight, made at the epoch's first micro-batch, for the whole epoch), played by each run's epoch-start
copies; its evaluation, selection, checkpoints and resume, by the solo loop's own code (:func:`finetune._evaluate`,
:func:`finetune._end_epoch`), so a run fused and a run solo read and write the same checkpoint.

Measured on this CPU (AMD EPYC, tests/training/test_fused.py; 3 runs, 2-3 epochs, LoRA dropout 0.05): one shared backbone
gives each run its solo numbers bit for bit in fp32 and bf16 (tiny ViT, a tiny transformers SigLIP, EfficientNet-
Lite0, DINOv3 and CLIP-HF at 64 px) and within 3e-8 on ResNet-50, 7.5e-8 on DINOv2-HF; stacked copies within 1.2e-7
(batched matmuls accumulate in another order) and up to 2e-3 on EfficientNet-Lite0 (BatchNorm over a micro-batch of
2 amplifies rounding); the selected epochs equal. The tests assert 1e-6 (fp32) and 1e-2 (bf16). ``vmap`` refuses
any other random op in the forward (``randomness="error"``).
"""
from __future__ import annotations

import contextlib
import gc
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..core import dist
from ..core.device import autocast, loader_kwargs, training_attention, use_bf16
from .finetune import (P1_MODES, FinetuneConfig, RunDropout, SplitResult, split_dataset, end_epoch, epoch_batches,
                       evaluate_epoch, micro_loss, accumulation_steps, prepare_split, split_result, run_amp)
from . import finetune as _ft
from .trainer import HeadJob, TrainConfig

__all__ = ["RunSpec", "finetune_group", "fuse_size", "fusable"]


@dataclass
class RunSpec:
    """One split's fine-tuning as :func:`finetune.finetune_split` takes it."""
    job: HeadJob
    cfg: FinetuneConfig
    tcfg: TrainConfig
    ckpt: Path | None = None
    progress: Callable[[str], None] | None = None


def fusable(specs: Sequence[RunSpec]) -> str:
    """Why these runs cannot share a group ('' when they can): one process, P1's micro-batches (a fixed shape),
    the same regime and dtypes (whether bf16 runs can is known once they are built: :class:`_Group`)."""
    c = specs[0].cfg
    if dist.world() > 1:
        return "under torchrun the ranks share each run's batches"
    if not c.micro_batch:
        return "train.micro_batch is 0 (a fused step needs one micro-batch shape)"
    if any((s.cfg.mode, s.cfg.precision, s.cfg.micro_batch) != (c.mode, c.precision, c.micro_batch) for s in specs):
        return "the runs differ in regime, precision or micro-batch"
    return ""


class _NotFusable(Exception):
    """Raised by :class:`_Group` for runs it cannot train side by side with each run's own numbers (why: its
    message)."""


def _gens(device: torch.device) -> dict:
    """Per-run generators starting where the solo run's global ones are now."""
    g = {"cpu": torch.Generator()}
    g["cpu"].set_state(torch.get_rng_state())
    if device.type == "cuda":
        g["cuda"] = torch.Generator(device)
        g["cuda"].set_state(torch.cuda.get_rng_state(device))
    return g


def _rng_now(device: torch.device) -> list[torch.Tensor]:
    return [torch.get_rng_state()] + ([torch.cuda.get_rng_state(device)] if device.type == "cuda" else [])


def _gen_state(g: dict) -> dict:
    return {k: v.get_state() for k, v in g.items()}


def _loader_draw(g: dict) -> None:
    """What creating a DataLoader iterator draws from the global generator (torch's ``_BaseDataLoaderIter``)."""
    torch.empty((), dtype=torch.int64).random_(generator=g["cpu"])


def _mask(shape, stride, dtype, p: float, g: dict, device: torch.device) -> torch.Tensor:
    """F.dropout's mask as it draws it: ``empty_like(x).bernoulli_(1 - p).div_(1 - p)``."""
    m = torch.empty_strided(shape, stride, dtype=dtype, device=device)
    return m.bernoulli_(1 - p, generator=g[device.type]).div_(1 - p)


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def fuse_size(setting: int | str, n_runs: int, per_run_bytes: float, shared_bytes: float,
              device: torch.device) -> int:
    """Runs per group: ``setting`` itself when an integer; ``auto``: as many as fit in 80% of the device's free
    memory (CUDA: ``torch.cuda.mem_get_info``; CPU: half of MemAvailable) at ``per_run_bytes`` each (trained state
    x 5: weights, gradients, Adam's two moments, the stacked copy; plus activations) over the shared weights."""
    if setting != "auto":
        return max(1, min(int(setting), n_runs))
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0] * 0.8
    else:
        free = _mem_available() * 0.5
    return max(1, min(n_runs, int((free - shared_bytes) // max(per_run_bytes, 1))))


def _mem_available() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2 ** 30


def _memory_model(run, x: torch.Tensor) -> tuple[float, float]:
    """(per-run bytes, shared bytes) of one run at micro-batch ``x``: its trained state x 5 plus the bytes of every
    module output of one forward (what the backward keeps, counted with forward hooks, no gradients taken)."""
    feats = run.model.features
    trained = sum(p.numel() * p.element_size() for p in run.model.parameters() if p.requires_grad)
    shared = sum(p.numel() * p.element_size() for p in feats.parameters() if not p.requires_grad)
    acts = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            acts[0] += out.numel() * out.element_size()
    _recording_forward(feats, x, contextlib.nullcontext(), hook)
    return 5.0 * trained + acts[0], float(shared)


def _recording_forward(feats: nn.Module, x: torch.Tensor, ctx, hook=None) -> list:
    """One forward of ``feats`` on ``x`` under ``ctx`` (no gradients; on copies of its buffers, so BatchNorm's
    running statistics stay as they are), with ``hook`` on every module: returns the LoRA dropout calls it made
    (:class:`RunDropout`'s record: shapes, strides, dtypes, rates, in call order)."""
    hs = [m.register_forward_hook(hook) for m in feats.modules()] if hook else []
    RunDropout.record = []
    try:
        with torch.no_grad(), ctx:
            torch.func.functional_call(feats, {n: b.clone() for n, b in feats.named_buffers()}, (x,))
        return RunDropout.record
    finally:
        RunDropout.record = None
        for h in hs:
            h.remove()


def _lora_layers(module: nn.Module) -> tuple[list[str], list[str], bool]:
    """(peft LoRA layers, our FusedQKLoRA layers, whether any other adapter is there: MHAQKLoRA)."""
    from peft.tuners.lora.layer import LoraLayer
    from .finetune import FusedQKLoRA, MHAQKLoRA
    peft_, fused_, other = [], [], False
    for n, m in module.named_modules():
        if isinstance(m, LoraLayer):
            peft_.append(n)
        elif isinstance(m, FusedQKLoRA):
            fused_.append(n)
        elif isinstance(m, MHAQKLoRA):
            other = True
    return peft_, fused_, other


class _GroupLinear(nn.Module):
    """k runs' LoRA ``nn.Linear`` (no bias) as one: input (k x B, ..., in), run r's rows through its own weight
    (``weight`` (k, out, in); peft reads ``weight.dtype``)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        y = torch.bmm(x.reshape(k, -1, x.shape[-1]), self.weight.transpose(1, 2))
        return y.reshape(*x.shape[:-1], self.weight.shape[1])


class _GroupConv(nn.Module):
    """k runs' LoRA ``nn.Conv2d`` (no bias) as one grouped convolution: input (k x B, C, H, W)."""

    def __init__(self, conv: nn.Conv2d, weight: torch.Tensor):
        super().__init__()
        self.conv, self.weight = conv, weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, o = self.weight.shape[:2]
        b = x.shape[0] // k
        xs = x.reshape(k, b, *x.shape[1:]).transpose(0, 1).reshape(b, k * x.shape[1], *x.shape[2:])
        c = self.conv
        y = nn.functional.conv2d(xs, self.weight.reshape(k * o, *self.weight.shape[2:]), None, c.stride, c.padding,
                                 c.dilation, k)
        return y.reshape(b, k, o, *y.shape[2:]).transpose(0, 1).reshape(k * b, o, *y.shape[2:])


class _Group:
    """k prepared runs of one backbone trained as one model (module docstring). ``shared``: the frozen backbone is
    the same in every run and only LoRA adapters train (p1_frozen, lora): one forward of the base over all runs'
    images, the adapters and BatchNorm per run, under the run's own autocast. Otherwise (p1, full, or frozen weights
    that differ): stacked copies under ``vmap`` (fp32 only, :func:`fusable`)."""

    def __init__(self, runs: list, gens: list[dict], device: torch.device, amp: str, mb_shape: tuple):
        self.runs, self.gens, self.device, self.amp = runs, gens, device, amp
        tmpl = runs[0].model.features
        self.tmpl = tmpl
        named = [dict(r.model.features.named_parameters()) for r in runs]
        self.train = [n for n, p in named[0].items() if p.requires_grad]
        self.frozen_shared, self.frozen_stacked = {}, {}
        for n, p in named[0].items():
            if p.requires_grad:
                continue
            # the pretrained weights: one copy for the group (_share_frozen made equal ones the same tensor already)
            if all(d[n] is p or torch.equal(p, d[n]) for d in named[1:]):
                self.frozen_shared[n] = p
                for r, d in zip(runs[1:], named[1:]):
                    _share(r.model.features, n, p)
            else:
                self.frozen_stacked[n] = torch.stack([d[n].detach() for d in named])
        self.bn = [n for n, m in tmpl.named_modules() if _is_bn(m)]
        bn = {f"{m}.{b}" if m else b for m in self.bn for b, _ in tmpl.get_submodule(m).named_buffers(recurse=False)}
        bufs = [dict(r.model.features.named_buffers()) for r in runs]
        self.buf_batched = [n for n, b in bufs[0].items()
                            if n in bn or not all(torch.equal(b, d[n]) for d in bufs[1:])]
        self.buf_shared = {n: b for n, b in bufs[0].items() if n not in self.buf_batched}
        self.peft, self.qk, other = _lora_layers(tmpl)
        adapters = {f"{n}.lora_{ab}.default.weight" for n in self.peft for ab in "AB"} | {
            f"{n}.lora_{ab}" for n in self.qk for ab in "AB"}
        self.shared = (runs[0].cfg.mode in ("lora", "p1_frozen") and not self.frozen_stacked and not other
                       and set(self.train) == adapters
                       and not [n for n in self.buf_batched if n not in bn]
                       and all(tmpl.get_submodule(m).track_running_stats and tmpl.get_submodule(m).momentum
                               is not None for m in self.bn))
        if not self.shared and use_bf16(device, amp):
            raise _NotFusable("they train more than LoRA adapters on one frozen backbone and run under bf16 "
                              "autocast, which torch's vmap does not apply (pytorch issue 192617)")
        # P1's bf16 loop holds one autocast context per epoch: autocast casts each fp32 leaf weight a matmul or
        # convolution reads (peft's lora_A/lora_B weights) once and reuses that bf16 copy until the context exits, so
        # the run sees its adapters as they were at the epoch's first micro-batch (finetune_split). Each run's
        # epoch-start copies, made at its first micro-batch, play that cache here.
        self.cached = (set(f"{n}.lora_{ab}.default.weight" for n in self.peft for ab in "AB")
                       if runs[0].cfg.mode in P1_MODES and runs[0].cfg.precision == "bf16" else set())
        self.stale: list[dict] = [{} for _ in runs]
        self.eval_s = 0.0
        # the shapes, strides and dtypes of the dropout inputs of one micro-batch, in call order
        # (and whether the backbone draws any other random number in training mode: then its runs' draws could
        # not be their own -- transformers' DINOv3 rescales its RoPE coordinates by a random factor per forward)
        before = _rng_now(device)
        self.drops = _recording_forward(tmpl.train(), torch.zeros(mb_shape, device=device), autocast(device, amp))
        if not all(torch.equal(a, b) for a, b in zip(before, _rng_now(device))):
            raise _NotFusable("the backbone draws random numbers in training mode besides LoRA dropout (e.g. "
                              "transformers' DINOv3 rescales its RoPE coordinates by a random factor per forward), "
                              "which a group could not draw per run")

    def new_epoch(self, i: int) -> None:
        self.stale[i] = {}

    def _weight(self, i: int, n: str) -> torch.Tensor:
        p = self.runs[i].model.features.get_parameter(n)
        if n not in self.cached:
            return p
        if n not in self.stale[i]:          # bf16-exact fp32: autocast's cast of it is the cached bf16 copy
            self.stale[i][n] = p.to(torch.bfloat16).to(torch.float32)
        return self.stale[i][n]

    def step(self, entries: list[tuple[int, list[int], int]], x: torch.Tensor, mos_t: torch.Tensor) -> None:
        """Forward + backward of one micro-batch of each run in ``entries`` (run, indices, its window's
        accumulation count); ``x`` their images in that order."""
        ix = [i for i, _, _ in entries]
        k, mb = len(ix), len(entries[0][1])
        x = x.to(self.device, non_blocking=True)
        self.tmpl.train()          # (the template is run 1's module, which may be evaluating or done)
        bufs = {n: torch.stack([self.runs[i].model.features.get_buffer(n) for i in ix]) for n in self.buf_batched}
        with autocast(self.device, self.amp), training_attention(self.device):
            if self.shared:
                masks = [torch.cat([_mask(*d[:3], d[3], self.gens[i], self.device) for i in ix]) for d in self.drops]
                feats = self._shared_forward(ix, x, bufs, masks).reshape(k, mb, -1)
            else:
                masks = [torch.stack([_mask(*d[:3], d[3], self.gens[i], self.device) for i in ix])
                         for d in self.drops]
                feats = self._vmap_forward(ix, x.reshape(k, mb, *x.shape[1:]), bufs, masks)
            loss = 0
            for j, (i, idx, n_acc) in enumerate(entries):
                r = self.runs[i]
                loss = loss + micro_loss(r.model.head(feats[j]), mos_t[idx].to(self.device), r.cfg, n_acc)
        loss.backward()
        with torch.no_grad():
            for n in self.buf_batched:         # BatchNorm's running statistics, updated in place per run
                for j, i in enumerate(ix):
                    self.runs[i].model.features.get_buffer(n).copy_(bufs[n][j])

    def _vmap_forward(self, ix, x, bufs, masks):
        params = {n: torch.stack([self._weight(i, n) for i in ix]) for n in self.train}
        params.update({n: v[ix] for n, v in self.frozen_stacked.items()})
        shared = {**self.frozen_shared, **self.buf_shared}

        def fwd(pr, bf, ms, xx):
            RunDropout.masks = list(ms)
            try:
                out = torch.func.functional_call(self.tmpl, {**shared, **pr, **bf}, (xx,))
                if RunDropout.masks:
                    raise RuntimeError("fused fine-tuning: the backbone used fewer dropout masks than recorded")
            finally:
                RunDropout.masks = None
            return out

        with warnings.catch_warnings():
            # torch has no batching rule for the CPU's fused attention kernel: vmap loops it per run (same numbers)
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
            return torch.vmap(fwd, randomness="error")(params, bufs, masks, x)

    def _shared_forward(self, ix, x, bufs, masks):
        """The template over all runs' images (k x B), its adapters and BatchNorm layers swapped for per-run ones
        for this call only."""
        t, k = self.tmpl, len(ix)
        feats = [r.model.features for r in (self.runs[i] for i in ix)]
        saved = []
        try:
            for n in self.peft:
                layer = t.get_submodule(n)
                for ab in ("lora_A", "lora_B"):
                    d = getattr(layer, ab)
                    w = torch.stack([self._weight(i, f"{n}.{ab}.default.weight") for i in ix])
                    saved.append((d, "default", d["default"]))
                    g = _GroupConv(d["default"], w) if isinstance(d["default"], nn.Conv2d) else _GroupLinear(w)
                    d._modules["default"] = g
            for n in self.qk:
                layer = t.get_submodule(n)
                layer._group = tuple(torch.stack([f.get_submodule(n).get_parameter(ab) for f in feats])
                                     for ab in ("lora_A", "lora_B"))
            for n in self.bn:
                m = t.get_submodule(n)
                for kind, store in (("weight", m._parameters), ("bias", m._parameters),
                                    ("running_mean", m._buffers), ("running_var", m._buffers)):
                    v = store.get(kind)
                    if v is None:
                        continue
                    saved.append((store, kind, v))
                    full = f"{n}.{kind}" if n else kind
                    store[kind] = bufs[full].reshape(-1) if kind.startswith("running") else v.repeat(k)
                saved.append((m, "forward", None))
                m.forward = _bn_forward(m, k)
            RunDropout.masks = list(masks)
            out = t(x)
            if RunDropout.masks:
                raise RuntimeError("fused fine-tuning: the backbone used fewer dropout masks than recorded")
        finally:
            RunDropout.masks = None
            for n in self.qk:
                t.get_submodule(n)._group = None
            for obj, key, v in reversed(saved):
                if key == "forward":
                    del obj.forward
                elif isinstance(obj, dict):
                    obj[key] = v
                else:
                    obj._modules[key] = v
        for n in self.bn:           # one batch more for each run (the group's counter moved once)
            nb = f"{n}.num_batches_tracked" if n else "num_batches_tracked"
            if nb in bufs:
                bufs[nb] += 1
        return out


def _bn_forward(m: nn.Module, k: int):
    """BatchNorm over k runs' images (k x B, C, ...): as (B, k x C, ...) channels, each run's statistics its own
    (the module's weights and running statistics swapped for k-fold ones by the caller)."""
    cls_forward = type(m).forward
    nb = m._buffers.get("num_batches_tracked")

    def forward(x):
        b = x.shape[0] // k
        xs = x.reshape(k, b, *x.shape[1:]).transpose(0, 1).reshape(b, k * x.shape[1], *x.shape[2:])
        if nb is not None:
            m._buffers["num_batches_tracked"] = nb.clone()      # the runs' counters are moved by the caller
        try:
            y = cls_forward(m, xs)
        finally:
            if nb is not None:
                m._buffers["num_batches_tracked"] = nb
        return y.reshape(b, k, *x.shape[1:]).transpose(0, 1).reshape(x.shape)
    return forward


def _share_frozen(tmpl: nn.Module, module: nn.Module) -> None:
    """``module``'s frozen weights that equal ``tmpl``'s become ``tmpl``'s tensors (its own copies are freed)."""
    mine = dict(module.named_parameters())
    for n, p in tmpl.named_parameters():
        q = mine.get(n)
        if q is not None and q is not p and not p.requires_grad and not q.requires_grad and torch.equal(p, q):
            _share(module, n, p)


def _share(module: nn.Module, name: str, p: nn.Parameter) -> None:
    parent, _, leaf = name.rpartition(".")
    mod = module.get_submodule(parent) if parent else module
    mod._parameters[leaf] = p


def _micro_plan(run) -> list[list[int]]:
    """The run's micro-batches from its resume epoch on, in the order its loop takes them."""
    mb = run.cfg.micro_batch
    out = []
    for ep in range(run.start, run.tcfg.epochs):
        for idx in epoch_batches(run, ep)[0]:
            out += [idx[i:i + mb] for i in range(0, len(idx) - mb + 1, mb)]
    return out


def _loop(g: _Group, i: int, ds, lk: dict, mos: np.ndarray, device: torch.device, amp: str):
    """Run ``i``'s own loop (finetune_split's, step for step); yields at each micro-batch for the group's fused
    forward + backward. Its windows' micro-batch counts go to ``run.step_t`` (made seconds by :func:`_fused`), and
    the seconds of its evaluations and checkpoints to ``g.eval_s``."""
    run, gen = g.runs[i], g.gens[i]
    mb = run.cfg.micro_batch
    for ep in range(run.start, run.tcfg.epochs):
        run.model.train()
        _loader_draw(gen)                      # the solo loop's training DataLoader
        g.new_epoch(i)
        for idx in epoch_batches(run, ep)[0]:
            run.opt.zero_grad(set_to_none=True)
            n_acc, n = accumulation_steps(run.cfg, len(idx)), 0
            for s in range(0, len(idx) - mb + 1, mb):
                yield idx[s:s + mb], n_acc
                n += 1
            run.opt.step()
            run.step_t.append(n)
        _loader_draw(gen)                      # the solo loop's evaluation DataLoader
        t = time.perf_counter()
        pred = evaluate_epoch(run, ds, lk, device, amp)           # (.cpu(): waits for the queued training work too)
        end_epoch(run, ep, pred, mos, _gen_state(gen))
        g.eval_s += time.perf_counter() - t


@dataclass
class _Ctx:
    """What every group of one finetune_group call shares."""
    make_backbone: Callable[[], nn.Module]
    preprocess: object
    paths: Sequence[Path]
    mos: np.ndarray
    ds: object
    lk: dict
    device: torch.device
    amp: str                   # the runs' autocast (P1's recipes: their precision)
    solo_kw: dict              # finetune_split's keyword arguments
    say: Callable[[str], None]

    def solo(self, specs: Sequence[RunSpec]) -> list[SplitResult]:
        return [_ft.finetune_split(self.make_backbone, self.preprocess, self.paths, self.mos, s.job, s.cfg, s.tcfg,
                                   ckpt=s.ckpt, progress=s.progress, **self.solo_kw) for s in specs]


def _fused(c: _Ctx, specs: list[RunSpec], label: str) -> list[SplitResult]:
    if len(specs) == 1:
        return c.solo(specs)
    mos, ds, lk, device, amp, say = c.mos, c.ds, c.lk, c.device, c.amp, c.say
    runs, gens = [], []
    for s in specs:
        r = prepare_split(c.make_backbone, mos, s.job, s.cfg, s.tcfg, s.ckpt, device, s.progress)
        runs.append(r)
        gens.append(_gens(device))
        first = next((x for x in runs if x.model is not None), None)
        if r.model is not None and first is not r:     # one copy of the frozen weights on the device at a time
            _share_frozen(first.model.features, r.model.features)
    live = [i for i, r in enumerate(runs) if r.done is None]
    g = None
    if len(live) > 1:
        x0 = torch.stack([ds[0]] * runs[live[0]].cfg.micro_batch)
        try:
            g = _Group([runs[i] for i in live], [gens[i] for i in live], device, amp, tuple(x0.shape))
        except _NotFusable as e:
            say(f"{label}: {len(live)} runs go one by one: {e}")
    if len(live) == 1 or (live and g is None):
        del runs, gens
        return c.solo(specs)
    if g is not None:
        mos_t = torch.tensor(np.asarray(mos, dtype=np.float32))
        plans = [_micro_plan(r) for r in g.runs]
        ticks = [[(j, p[t]) for j, p in enumerate(plans) if t < len(p)] for t in range(max(map(len, plans)))]
        loops = [_loop(g, j, ds, lk, mos, device, amp) for j in range(len(g.runs))]
        nxt = [next(lp, None) for lp in loops]
        t0, E = time.perf_counter(), max(r.tcfg.epochs for r in g.runs)
        shown = min(len(r.history) for r in g.runs)
        for t, x in enumerate(DataLoader(ds, batch_sampler=[sum((m for _, m in tk), []) for tk in ticks], **lk)):
            entries = [(j, *nxt[j]) for j, _ in ticks[t]]
            if any(nxt[j][0] != m for j, m in ticks[t]):
                raise RuntimeError("fused fine-tuning: a run's loop left its micro-batch plan")
            g.step(entries, x, mos_t)         # (no host sync per step: the evaluations synchronise)
            for j, _ in ticks[t]:
                try:
                    nxt[j] = loops[j].send(None)
                except StopIteration:
                    nxt[j] = None
            ep = min([len(r.history) for r in g.runs if len(r.history) < r.tcfg.epochs] or [E])
            if ep > shown:
                shown = ep
                done = sum(len(r.history) == r.tcfg.epochs for r in g.runs)
                el = time.perf_counter() - t0
                eta = el / (t + 1) * (len(ticks) - t - 1)
                say(f"{label}: {len(g.runs)} runs fused, epoch {ep}/{E}: {done} done, {len(g.runs) - done} left, "
                    f"{el:.0f} s so far, ETA {eta:.0f} s")
        for j, lp in enumerate(loops):          # what is left after the last micro-batch (an epoch without any)
            while nxt[j] is not None:
                nxt[j] = next(lp, None)
        # the group's training seconds per micro-step (wall time less evaluations and checkpoints), so a run's
        # window of n micro-batches took n of them: measured between the evaluations' synchronisations
        tick_s = max(time.perf_counter() - t0 - g.eval_s, 0.0) / max(len(ticks), 1)
        for r in g.runs:
            r.step_t = [n * tick_s for n in r.step_t]
    return [r.done if r.done is not None else split_result(r.parts, r.eval_idx, mos, r.best, r.last, r.history, r.step_t)
            for r in runs]


def finetune_group(make_backbone: Callable[[], nn.Module], preprocess, paths: Sequence[Path], mos: np.ndarray,
                   specs: Sequence[RunSpec], fuse: int | str = 1, device: torch.device = torch.device("cpu"),
                   amp: str = "off", workers: int = 0, test_time: str = "squash",
                   pixels: np.ndarray | None = None, exif: bool = True,
                   say: Callable[[str], None] | None = None, label: str = "finetune") -> list[SplitResult]:
    """Fine-tune every run of ``specs`` (one backbone), ``fuse`` runs at a time side by side (module docstring);
    ``fuse: 1`` (or runs that cannot share a group, said in one line) is :func:`finetune_split` run by run, as is a
    group of one. Groups are consecutive runs in ``specs`` order (a deterministic function of params). A CUDA
    out-of-memory error halves the group and resumes its runs from their checkpoints (said in one line). Returns
    one result per spec."""
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    specs = list(specs)
    if not specs:
        return []
    kw = dict(device=device, amp=amp, workers=workers, test_time=test_time, pixels=pixels, exif=exif)
    c = _Ctx(make_backbone, preprocess, paths, mos, None, {}, device, amp, kw, say)
    why = "" if fuse == 1 or len(specs) == 1 else fusable(specs)
    if why:
        say(f"{label}: finetune.fuse {fuse}: {len(specs)} runs go one by one: {why}")
    if fuse == 1 or len(specs) == 1 or why:
        return c.solo(specs)
    c.amp = run_amp(specs[0].cfg, device, amp)
    c.ds = split_dataset(preprocess, paths, test_time, pixels, exif)
    c.lk = loader_kwargs(device, workers)
    k = fuse
    if fuse == "auto":
        probe = prepare_split(make_backbone, mos, specs[0].job, specs[0].cfg, specs[0].tcfg, None, device)
        x0 = torch.stack([c.ds[0]] * specs[0].cfg.micro_batch).to(device)
        with autocast(device, c.amp):
            per, shared = _memory_model(probe, x0)
        del probe
        k = fuse_size("auto", len(specs), per, shared, device)
        say(f"{label}: finetune.fuse auto: {k} of {len(specs)} runs per group ({per / 2 ** 20:.0f} MiB per run, "
            f"{shared / 2 ** 20:.0f} MiB shared, {device})")
    out: list[SplitResult] = []
    groups = [specs[i:i + k] for i in range(0, len(specs), k)]
    for gi, grp in enumerate(groups):
        out += _with_halving(c, grp, f"{label} group {gi + 1}/{len(groups)}")
    return out


def _with_halving(c: _Ctx, specs: list[RunSpec], label: str) -> list[SplitResult]:
    try:
        return _fused(c, specs, label)
    except torch.OutOfMemoryError:
        if len(specs) == 1:
            raise
    gc.collect()                                # (outside the except block: its frames hold the group's tensors)
    if c.device.type == "cuda":
        torch.cuda.empty_cache()
    h = math.ceil(len(specs) / 2)
    c.say(f"{label}: out of memory with {len(specs)} runs fused; halving to {h} + {len(specs) - h} and resuming "
          f"each run from its last checkpoint")
    return _with_halving(c, specs[:h], label + "a") + _with_halving(c, specs[h:], label + "b")
