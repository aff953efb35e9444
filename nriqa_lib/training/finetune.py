"""P1's image-level regimes (STUDY_SPEC.md section 2), trained with P1's head and loss
(:func:`nriqa_lib.training.trainer.iqa_loss`, micro-batched as ``train.micro_batch``), the epoch chosen as ``train.select_on``:

* ``p1_frozen``: P1 as published (most likely): the training script of P1's first commit (344d615,
  ``F_AAAI_train_baseline_siglip2_param_activation_gating_MSE_seed_8.py``, l.167-361), whose naming and
  adapters-only saves every shipped checkpoint carries: ``model.requires_grad_(True)`` comes *before*
  ``get_peft_model``, so only the LoRA adapters (r 4, alpha 8, dropout 0.05 on q/k) and the head train, on a
  **frozen** backbone; one Adam at ``train.lr`` (frozen tensors get no gradient, so Adam skips them).
* ``p1``: P1's *released* train.py (l.260-319): ``get_peft_model`` first, then ``model.requires_grad_(True)``: the
  adapters *and* every backbone weight train, one Adam over all of them and the head at ``train.lr``.
* ``lora`` (ours): the adapters only, the backbone frozen, in the run's precision; ``full`` (ours): every backbone
  weight at ``lr_backbone`` (5e-6), no adapters.

Both P1 recipes run in ``precision`` (``finetune.p1_precision``); bf16 is P1's numerics: backbone and head weights
bf16, the adapters fp32 (peft's ``get_peft_model`` upcasts them), the head's parametric activations fp32 and
computed as P1 computes them (:class:`nriqa_lib.heads.activations.PReLU`), training under bf16 autocast with the
loss in P1's form on the bf16 score (:func:`p1_loss`), evaluation on an fp32 copy under bf16 autocast (P1's
``evaluate``). fp32 runs take today's fp32 path (no autocast, :func:`iqa_loss` on the score).

Where LoRA goes (:func:`add_lora`), by what the backbone has:

* ``q_proj``/``k_proj`` Linear layers (transformers models, open_clip's RN50 attention pool; ``query``/``key`` in
  transformers' DINOv2): peft, on exactly those (P1's ``target_modules``; a MAP pooling head's own attention is left alone, as in P1).
* a fused ``qkv`` Linear (timm ViTs and EVA: DINOv2, DINOv3, PE, open_clip's SigLIP2 trunk): our
  :class:`FusedQKLoRA`, because peft can only adapt the whole fused layer (q, k *and* v), where P1 adapts q, k.
* ``nn.MultiheadAttention`` (open_clip's CLIP ViTs): our :class:`MHAQKLoRA`, a parametrization of
  ``in_proj_weight`` (the fused kernel reads the weight, not a module), q and k rows only. Dropout cannot act
  on the adapter's input inside that kernel: this adapter has no dropout (the one documented deviation).
* no attention (ResNet, EfficientNet-Lite): peft's conv LoRA on the 1x1/3x3 convolutions with groups 1.

Under ``torchrun`` (``run.launcher``) each global batch's micro-batches are shared among the ranks
(DistributedDataParallel; each rank's loss x world size, so the averaged gradient is the one-process sum): the
global batch, the protocol and the results do not depend on the number of processes up to floating-point
reduction order (and the ranks' own dropout draws). Val/test predictions are shared out and gathered.

Checkpoints (:func:`finetune_split`): the trainable tensors (LoRA adapters, or the whole backbone in full
fine-tuning), the head, the optimiser, the RNG state and the history, written atomically after every
epoch; an interrupted run resumes from the last finished epoch and gives the same numbers.
"""
from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from ..core import dist
from ..core.device import autocast, loader_kwargs, training_attention
from ..features.decode import ImageDataset
from ..features.transforms import build_transform
from ..core.config import REGIME_LABELS, Finetune, Train
from ..core.io import atomic_path
from ..core.metrics import plcc
from ..core.metrics import selection_srcc
from .trainer import HeadJob, TrainConfig, init_head, iqa_loss, train_order


def _plcc(p: np.ndarray, y: np.ndarray) -> float:
    """Test PLCC of one epoch (no logistic fit: P1's ``metric.calculate_plcc``); NaN for constant predictions."""
    if len(y) < 3 or np.ptp(p) == 0:
        return float("nan")
    return plcc(p, y)

__all__ = ["FinetuneConfig", "ImageIQAModel", "FusedQKLoRA", "MHAQKLoRA", "add_lora", "finetune", "finetune_split",
           "CONV_TARGETS", "REGIME_LABELS", "P1_MODES", "check_bf16", "p1_dtypes", "p1_loss", "p1_margin"]

P1_MODES = ("p1_frozen", "p1")      # P1's recipes: as published (first commit) and as released

# ResNet bottleneck (timm), EfficientNet(-Lite) blocks, transformers' ResNet ("convolution")
CONV_TARGETS = ("conv1", "conv2", "conv3", "conv_pw", "conv_pwl", "convolution")


_T, _F = Train(), Finetune()     # params.yaml's defaults (nriqa_lib.core.config), the one source of them


@dataclass
class FinetuneConfig:
    """One regime's settings: the ``finetune`` section's LoRA/backbone knobs and the ``train`` section's loss,
    epochs and batches (the stage fills every field from params; the defaults are params.yaml's)."""
    mode: Literal["lora", "full", "p1", "p1_frozen"] = "lora"
    epochs: int = _T.epochs
    lr_head: float = _T.lr             # the head, and the LoRA adapters (as P1)
    lr_backbone: float = _F.lr_backbone    # full fine-tuning only
    lora_r: int = _F.lora_r
    lora_alpha: int = _F.lora_alpha
    lora_dropout: float = _F.lora_dropout
    target_modules: Sequence[str] | None = None     # None: by what the backbone has (module docstring)
    margin_weight: float = _T.margin_weight
    margin_scale: float = _T.margin_scale
    margin_loss_swapped: bool = _T.margin_loss_swapped
    micro_batch: int = _T.micro_batch
    batch_size: int = 0                # the batch the accumulation count refers to (0: each batch's own size)
    precision: Literal["fp32", "bf16"] = _F.p1_precision     # P1's recipes' weights and autocast (P1: bf16)

    @classmethod
    def from_train(cls, tcfg: TrainConfig, regime: str, finetune: Finetune) -> "FinetuneConfig":
        """A regime's settings from the head's training settings (:meth:`TrainConfig.from_params`: epochs, lr, loss,
        batches, after ``train.per_dataset``) and the ``finetune`` section (LoRA, the backbone's lr, P1's
        precision): the one place the two are joined."""
        return cls(mode=regime, epochs=tcfg.epochs, lr_head=tcfg.lr, lr_backbone=finetune.lr_backbone,
                   lora_r=finetune.lora_r, lora_alpha=finetune.lora_alpha, lora_dropout=finetune.lora_dropout,
                   margin_weight=tcfg.margin_weight, margin_scale=tcfg.margin_scale,
                   margin_loss_swapped=tcfg.margin_loss_swapped, micro_batch=tcfg.micro_batch,
                   batch_size=tcfg.batch_size, precision=finetune.p1_precision)


def check_bf16(device: torch.device) -> None:
    """Refuse, in one line, a bf16 run where the device cannot do bf16 (never fp32 under a bf16 label)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"finetune.p1_precision=bf16 but {device} has no bf16 support; "
                           f"use a GPU with bf16 (Ampere or newer) or finetune.p1_precision: fp32 (not P1's dtypes)")
    if device.type not in ("cuda", "cpu"):
        raise RuntimeError(f"finetune.p1_precision=bf16 is supported on cuda and cpu, not {device.type}")


def p1_dtypes(features: nn.Module, head: nn.Module) -> None:
    """P1's dtypes in place (train.py l.260, 294-298 and peft's adapter upcast): every weight bf16 except the LoRA
    adapters and the head's parametric activations (our ParamSigmoid / PReLU = P1's ParamSigmoid2 /
    ParamLeakyReLU2), which stay fp32. GatedBlend's gate g is bf16 in P1 too (GatedBlend is not in its list)."""
    from ..heads.activations import ParamSigmoid
    features.to(torch.bfloat16)
    for n, prm in features.named_parameters():
        if "lora_" in n:
            prm.data = prm.data.float()
    head.to(torch.bfloat16)
    for m in head.modules():
        if isinstance(m, (ParamSigmoid, nn.PReLU)):       # (our PReLU is an nn.PReLU)
            m.float()


class ImageIQAModel(nn.Module):
    """features(x) -> head -> score; ``features`` is any module giving (B, D) pooled features."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _lora_pair(n_in: int, n_out: int, r: int, k: int = 1) -> tuple[nn.Parameter, nn.Parameter]:
    """peft's initialisation: A Kaiming-uniform (a = sqrt 5), B zero (the adapted layer starts as the base)."""
    a = torch.empty(k, r, n_in)
    for i in range(k):
        nn.init.kaiming_uniform_(a[i], a=math.sqrt(5))
    return nn.Parameter(a), nn.Parameter(torch.zeros(k, n_out, r))


class FusedQKLoRA(nn.Module):
    """LoRA on the q and k thirds of a fused ``qkv`` Linear: out = base(x) + [B_q A_q d(x); B_k A_k d(x); 0] *
    alpha / r, d = dropout (Hu et al. 2021, eq. 3, applied to two of the three output blocks)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float):
        super().__init__()
        if base.out_features % 3:
            raise ValueError(f"fused qkv layer with {base.out_features} outputs (not 3 x dim)")
        self.base, self.dim, self.scaling = base, base.out_features // 3, alpha / r
        self.lora_A, self.lora_B = _lora_pair(base.in_features, self.dim, r, k=2)
        self.drop = nn.Dropout(dropout)
        self._group: tuple[torch.Tensor, torch.Tensor] | None = None    # k runs' (A, B) in a fused group (fused.py)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(x)
        if self._group is not None:           # k runs' rows (k x B, ..., in), each through its own adapters
            a, b = self._group
            hs = h.reshape(a.shape[0], -1, h.shape[-1])
            q = torch.bmm(torch.bmm(hs, a[:, 0].transpose(1, 2)), b[:, 0].transpose(1, 2)).reshape(*h.shape[:-1], -1)
            k = torch.bmm(torch.bmm(hs, a[:, 1].transpose(1, 2)), b[:, 1].transpose(1, 2)).reshape(*h.shape[:-1], -1)
            return torch.cat([q, k, torch.zeros_like(q)], -1) * self.scaling
        q = h @ self.lora_A[0].T @ self.lora_B[0].T
        k = h @ self.lora_A[1].T @ self.lora_B[1].T
        return torch.cat([q, k, torch.zeros_like(q)], -1) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.delta(x)


class MHAQKLoRA(nn.Module):
    """Parametrization of ``nn.MultiheadAttention.in_proj_weight``: W + [B_q A_q; B_k A_k; 0] * alpha / r."""

    def __init__(self, dim: int, r: int, alpha: float):
        super().__init__()
        self.scaling = alpha / r
        self.lora_A, self.lora_B = _lora_pair(dim, dim, r, k=2)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        dq = self.lora_B[0] @ self.lora_A[0]
        dk = self.lora_B[1] @ self.lora_A[1]
        return w + torch.cat([dq, dk, torch.zeros_like(dq)], 0).to(w.dtype) * self.scaling


def _set(module: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, new)


def add_lora(module: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """Add LoRA adapters where the module docstring says; everything else frozen. Returns the module."""
    module.requires_grad_(False)
    named = dict(module.named_modules())
    leaf = {n: n.rsplit(".", 1)[-1] for n in named}
    lin = [n for n, m in named.items() if isinstance(m, nn.Linear)]
    if cfg.target_modules:                       # explicit names: peft on those Linear / Conv layers
        targets = [t for t in cfg.target_modules if any(leaf[n] == t for n, m in named.items()
                                                         if isinstance(m, (nn.Linear, nn.Conv2d)))]
        if not targets:
            raise ValueError(f"no Linear/Conv2d layer named {list(cfg.target_modules)} in the backbone; its Linear "
                             f"layers are named {sorted({leaf[n] for n in lin})[:10]}")
        return _peft(module, cfg, targets)
    qk = ([t for t in ("q_proj", "k_proj") if any(leaf[n] == t for n in lin)]
          or [t for t in ("query", "key") if any(leaf[n] == t for n in lin)])     # transformers' DINOv2 names
    fused = [n for n in lin if leaf[n] == "qkv"]
    mha = [n for n, m in named.items() if isinstance(m, nn.MultiheadAttention)]
    if qk:                                       # HF-style projections: peft on exactly those, as P1
        module = _peft(module, cfg, qk)
    elif fused or mha:
        for n in fused:
            parent = module.get_submodule(n.rpartition(".")[0]) if "." in n else module
            if getattr(parent, "qkv_bias_separate", None) is False:   # EVA reads qkv.weight in F.linear: add the
                parent.qkv_bias_separate = True                       # bias after the module (same sum)
            _set(module, n, FusedQKLoRA(named[n], cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
        for n in mha:
            m = named[n]
            if not m._qkv_same_embed_dim:
                raise ValueError(f"{n}: MultiheadAttention with separate q/k/v weights is not supported")
            parametrize.register_parametrization(m, "in_proj_weight", MHAQKLoRA(m.embed_dim, cfg.lora_r,
                                                                                cfg.lora_alpha))
    else:
        convs = [t for t in CONV_TARGETS if any(leaf[n] == t and isinstance(m, nn.Conv2d) and m.groups == 1
                                                for n, m in named.items())]
        if not convs:
            raise ValueError("no attention projection (q_proj/k_proj, fused qkv, nn.MultiheadAttention) and no "
                             f"convolution named {list(CONV_TARGETS)} for LoRA in this backbone")
        module = _peft(module, cfg, convs)
    for n, p in module.named_parameters():
        p.requires_grad_("lora_" in n)
    return module


def _peft(module: nn.Module, cfg: FinetuneConfig, targets: list[str]) -> nn.Module:
    from peft import LoraConfig, inject_adapter_in_model
    # exclude depthwise convolutions that share a target name (peft's conv LoRA needs groups == 1)
    names = [n for n, m in module.named_modules() if n.rsplit(".", 1)[-1] in targets
             and isinstance(m, (nn.Linear, nn.Conv2d)) and getattr(m, "groups", 1) == 1]
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=names)
    return inject_adapter_in_model(lcfg, module)


def _groups(features: nn.Module, head: nn.Module, cfg: FinetuneConfig) -> tuple[nn.Module, list[dict]]:
    if cfg.mode == "lora":
        features = add_lora(features, cfg)
        groups = [{"params": [p for p in features.parameters() if p.requires_grad], "lr": cfg.lr_head}]
    elif cfg.mode == "full":
        features.requires_grad_(True)
        groups = [{"params": list(features.parameters()), "lr": cfg.lr_backbone}]
    elif cfg.mode in P1_MODES:
        if cfg.precision == "bf16":
            features.to(torch.bfloat16)          # P1 loads the backbone in bf16, then adds the adapters
        features = add_lora(features, cfg)       # adapters trainable, every backbone weight frozen
        if cfg.precision == "bf16":
            p1_dtypes(features, head)
        if cfg.mode == "p1":                     # released: get_peft_model, then model.requires_grad_(True)
            features.requires_grad_(True)
        head.requires_grad_(True)
        _run_dropouts(features)
        # one Adam group over what trains and the head at train.lr (released l.315-319; first commit l.361, where
        # the frozen backbone tensors are in the list but never get a gradient, so Adam never moves them)
        return features, [{"params": [p for p in features.parameters() if p.requires_grad] + list(head.parameters()),
                           "lr": cfg.lr_head}]
    else:
        raise ValueError(f"mode must be lora, full, p1 or p1_frozen, got {cfg.mode!r}")
    _run_dropouts(features)
    groups.append({"params": list(head.parameters()), "lr": cfg.lr_head})
    return features, groups


def p1_margin(y: torch.Tensor, yp: torch.Tensor, lambda_: float = 0.25) -> torch.Tensor:
    """P1's ``util.margin_loss(y, yp)`` op for op (STUDY_SPEC.md section 1): ``2/(n(n-1)) sum_{i<j, y_i != y_j}
    max(0, -sign(y_i - y_j)(yp_i - yp_j) + lambda std_pop(y))``, a Python loop over pairs accumulated in P1's order,
    in the dtypes of its inputs. Written out (not :func:`iqa_loss`'s vectorised form) because in bf16 the order and
    dtype of each operation decide the bits; P1's code is a test oracle, never imported by the library."""
    n = y.size(0)
    m = lambda_ * torch.std(y, unbiased=False)
    loss, count = 0.0, 0
    for i in range(n):
        for j in range(i + 1, n):
            sign = torch.sign(y[i] - y[j])
            if sign != 0:
                loss += torch.clamp(-(sign * (yp[i] - yp[j])) + m, min=0.0)
                count += 1
    if count == 0:
        return torch.tensor(0.0, device=y.device)
    return (2.0 / (n * (n - 1))) * loss


def p1_loss(score: torch.Tensor, target: torch.Tensor, cfg: FinetuneConfig) -> torch.Tensor:
    """P1's loss as its loop computes it (released train.py l.399-401, first commit l.459-463): ``mse_loss(score, y)
    + margin_loss(score, y)`` on the head's own (bf16) score under the run's autocast, P1's argument order unless
    ``margin_loss_swapped`` is off. Used by P1's recipes in bf16; fp32 runs keep :func:`iqa_loss`."""
    loss = torch.nn.functional.mse_loss(score, target)
    if cfg.margin_weight:
        a, b = (score, target) if cfg.margin_loss_swapped else (target, score)
        margin = p1_margin(a, b, cfg.margin_scale)
        loss = loss + (margin if cfg.margin_weight == 1 else cfg.margin_weight * margin)
    return loss


def micro_loss(pred: torch.Tensor, y: torch.Tensor, cfg: FinetuneConfig, n_acc: int, scale: float = 1.0
                ) -> torch.Tensor:
    """One micro-batch's loss as :func:`_loss` backpropagates it (``pred`` the model's output for it)."""
    if cfg.mode in P1_MODES and cfg.precision == "bf16":
        loss = p1_loss(pred.reshape(-1), y.float().reshape(-1), cfg) / n_acc
        return loss * scale if scale != 1.0 else loss
    pred = pred.float().reshape(1, -1)
    return iqa_loss(pred, y.float().reshape(1, -1), torch.ones_like(pred), cfg.margin_weight, cfg.margin_scale,
                    cfg.margin_loss_swapped).sum() / n_acc * scale


def accumulation_steps(cfg: FinetuneConfig, n: int) -> int:
    return max((cfg.batch_size or n) // cfg.micro_batch, 1) if cfg.micro_batch else 1


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: FinetuneConfig, scale: float = 1.0) -> float:
    """Forward + backward of one batch (or of this rank's micro-batches of it); with ``micro_batch`` P1's
    accumulation: each complete micro-batch's loss / (batch_size // micro_batch), as
    :func:`nriqa_lib.training.trainer.micro_batched_loss` (incomplete micro-batches dropped as P1's drop_last), which also
    bounds activation memory. Under DDP only the last backward all-reduces (``no_sync`` before it). P1's recipes in
    bf16 take P1's loss on the bf16 score (:func:`p1_loss`); everything else one loss on a float32 copy."""
    mb = cfg.micro_batch or len(x)
    n_acc = accumulation_steps(cfg, len(x))
    starts = list(range(0, len(x) - mb + 1, mb))
    total = 0.0
    for j, i in enumerate(starts):
        sync = j == len(starts) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync():
            loss = micro_loss(model(x[i:i + mb]), y[i:i + mb], cfg, n_acc, scale)
            loss.backward()
        total += float(loss.detach())
    return total


def finetune(features: nn.Module, head: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             cfg: FinetuneConfig) -> tuple[ImageIQAModel, list[float]]:
    """Train head + backbone (LoRA adapters or all weights) on in-memory (images, mos) batches; returns the
    model and the loss per step. The stage uses :func:`finetune_split` (data loading, selection, resume)."""
    features, groups = _groups(features, head, cfg)
    model = ImageIQAModel(features, head).train()
    opt = torch.optim.Adam(groups)
    losses = []
    batches = list(batches)
    for _ in range(cfg.epochs):
        for x, y in batches:
            opt.zero_grad()
            losses.append(_loss(model, x, y, cfg))
            opt.step()
    return model.eval(), losses


@dataclass
class SplitResult:
    predictions: pd.DataFrame          # part, index, pred, mos at the selected epoch (val and test parts)
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    step_seconds: float = float("nan")
    last_predictions: pd.DataFrame | None = None   # the same columns at the last epoch (what P1's code writes)


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint holds: the trained tensors (adapters, or the whole backbone, and the head) plus every
    *persistent* buffer (BatchNorm statistics move in training mode), i.e. the entries of ``state_dict()`` that
    training can change. Non-persistent buffers (CLIP's ``attn_mask``, the RoPE tables of DINOv3 and PE) are not
    in ``state_dict()``: the model rebuilds them, and a strict load would reject them. Frozen weights are rebuilt,
    not saved."""
    sd = model.state_dict()
    params = dict(model.named_parameters())
    return {k: v.detach().cpu().clone() for k, v in sd.items() if k not in params or params[k].requires_grad}


def _rng_state(device: torch.device) -> dict:
    """CPU and (on a GPU) CUDA generator states: LoRA dropout on a GPU draws from the CUDA generator."""
    st = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(device)
    return st


def _set_rng_state(st, device: torch.device) -> None:
    if isinstance(st, torch.Tensor):             # checkpoints written before the CUDA state was kept
        st = {"cpu": st}
    torch.set_rng_state(st["cpu"])
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


class RunDropout(nn.Dropout):
    """``nn.Dropout`` (the same ``F.dropout``) unless a fused group hands it its masks (:mod:`.fused`): then
    ``x * mask``, the mask drawn per run from the run's own generator as ``F.dropout`` draws it on a CPU
    (``empty_like(x).bernoulli_(1 - p).div_(1 - p)``), so a run's masks do not depend on its group."""
    masks: list | None = None       # set by fused.py for one forward: (record shapes | pop masks), in call order
    record: list | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return super().forward(x)
        if RunDropout.record is not None:
            e = torch.empty_like(x)
            RunDropout.record.append((tuple(e.shape), tuple(e.stride()), e.dtype, self.p))
            return x
        if RunDropout.masks is not None:
            return x * RunDropout.masks.pop(0)
        return super().forward(x)


def _run_dropouts(module: nn.Module) -> None:
    """Every active ``nn.Dropout`` (LoRA's) becomes a :class:`RunDropout` (in place; no state, same numbers)."""
    for m in module.modules():
        if type(m) is nn.Dropout and m.p > 0:
            m.__class__ = RunDropout


@dataclass
class _Run:
    """One split's fine-tuning as the solo and the fused loops share it (:func:`prepare_split`)."""
    job: HeadJob
    cfg: FinetuneConfig
    tcfg: TrainConfig
    ckpt: Path | None
    progress: Callable[[str], None] | None
    cfg_id: dict
    eval_idx: np.ndarray
    parts: np.ndarray
    select: str
    model: ImageIQAModel | None = None
    opt: torch.optim.Optimizer | None = None
    order: list = field(default_factory=list)
    start: int = 0
    history: list = field(default_factory=list)
    best: tuple = (-np.inf, -1, None)
    last: tuple | None = None
    done: SplitResult | None = None
    step_t: list = field(default_factory=list)


def prepare_split(make_backbone: Callable[[], nn.Module], mos: np.ndarray, job: HeadJob, cfg: FinetuneConfig,
             tcfg: TrainConfig, ckpt: Path | None, device: torch.device, progress=None) -> _Run:
    """A run's model, optimiser, order and resumed state (its checkpoint, when made for the same run); the global
    RNG is left where the solo loop starts drawing (``torch.manual_seed(job.seed)``, then the builds, then a
    resumed run's saved state). A finished split's run carries its result only (``done``)."""
    cfg_id = {"ft": asdict(cfg), "train": tcfg.model_dump(exclude={"per_dataset", "seeds_per_split"}),
              "seed": job.seed, "train_idx": job.train_idx.tolist(), "test_idx": job.test_idx.tolist()}
    eval_idx = np.concatenate([job.val_idx, job.test_idx]).astype(np.int64)
    parts = np.array(["val"] * len(job.val_idx) + ["test"] * len(job.test_idx))
    select = "val" if (tcfg.select_on == "val" and len(job.val_idx)) else "test"
    run = _Run(job, cfg, tcfg, ckpt, progress, cfg_id, eval_idx, parts, select)
    st = _load_checkpoint(ckpt)
    if st.get("cfg_id") == cfg_id and "trainable" not in st:     # a finished split: its record, no weights
        run.done = split_result(parts, eval_idx, mos, st["best"], st["last"], st["history"], [])
        return run
    torch.manual_seed(job.seed)
    backbone = make_backbone()
    head = init_head(tcfg, backbone.dim, job.seed)
    features, groups = _groups(backbone, head, cfg)
    run.model = ImageIQAModel(features, head).to(device)
    run.opt = torch.optim.Adam(groups)
    run.order = train_order(len(job.train_idx), tcfg, job.seed)
    if st.get("cfg_id") == cfg_id:
        sd = run.model.state_dict()   # (a checkpoint from before non-persistent buffers were left out: skip them)
        run.model.load_state_dict({**sd, **{k: v for k, v in st["trainable"].items() if k in sd}})
        run.opt.load_state_dict(st["opt"])
        _set_rng_state(st["rng"], device)
        run.start, run.history, run.best, run.last = st["epoch"] + 1, st["history"], st["best"], st.get("last")
    return run


def epoch_batches(run: _Run, ep: int, W: int = 1, R: int = 0) -> tuple[list[list[int]], list[float]]:
    """Epoch ``ep``'s optimiser steps as index lists (this rank's micro-batches of each under DDP) and loss scales."""
    batches, scales = [], []
    for b in run.order[ep]:
        idx = run.job.train_idx[b].tolist()
        if W > 1:       # this rank's micro-batches of the global batch (r, r + W, ...); none: a zero-loss one
            mbs = [idx[i:i + run.cfg.micro_batch] for i in range(0, len(idx) - run.cfg.micro_batch + 1,
                                                                   run.cfg.micro_batch)]
            mine = mbs[R::W]
            scales.append(float(W) if mine else 0.0)
            idx = sum(mine or mbs[:1] or [idx[:run.cfg.micro_batch]], [])
        else:
            scales.append(1.0)
        batches.append(idx)
    return batches, scales


def evaluate_epoch(run: _Run, ds, lk: dict, device: torch.device, amp: str, W: int = 1, R: int = 0) -> np.ndarray:
    """Val + test predictions of the run's model now (P1's ``evaluate()`` scores an fp32 copy of bf16-trained
    weights under bf16 autocast)."""
    model = run.model.eval()
    evalm = copy.deepcopy(model).float() if run.cfg.mode in P1_MODES and run.cfg.precision == "bf16" else model
    preds = []
    mine = np.arange(len(run.eval_idx))[R::W]                  # this rank's share of the val + test images
    bs = run.tcfg.batch_size
    with torch.inference_mode(), autocast(device, amp):
        ev = [run.eval_idx[mine[i:i + bs]].tolist() for i in range(0, len(mine), bs)]
        for x in DataLoader(ds, batch_sampler=ev, **lk):
            preds.append(evalm(x.to(device, non_blocking=True)).float().reshape(-1).cpu().numpy())
    del evalm
    pred = np.zeros(len(run.eval_idx))
    for pos, pr in dist.gather_objects((mine, np.concatenate(preds) if preds else np.zeros(0))):
        pred[pos] = pr
    return pred


def end_epoch(run: _Run, ep: int, pred: np.ndarray, mos: np.ndarray, rng: dict) -> None:
    """Record epoch ``ep`` (history, best, last), say it, and checkpoint the run (``rng``: its generators' state)."""
    parts, mos_e = run.parts, mos[run.eval_idx]
    score = {p: selection_srcc(pred[parts == p], mos_e[parts == p]) if (parts == p).sum() > 1 else float("nan")
             for p in ("val", "test")}
    pl = {p: _plcc(pred[parts == p], mos_e[parts == p]) if (parts == p).sum() > 1 else float("nan")
          for p in ("val", "test")}
    run.history.append({"epoch": ep, **{f"{p}_srcc": v for p, v in score.items()},
                        **{f"{p}_plcc": v for p, v in pl.items()}})     # what P1's script writes every epoch
    s = score[run.select] if np.isfinite(score[run.select]) else -np.inf
    # the first epoch with the highest finite SRCC (P1: ``SRCC > best_SRCC``); NaN never wins. If every epoch's
    # is NaN, the last epoch (P1 then saves no best checkpoint and writes the last epoch's results)
    if run.best[2] is None or s > run.best[0] or (s == run.best[0] == -np.inf):
        run.best = (s, ep, pred)
    run.last = (ep, pred)
    if run.progress:
        run.progress(f"epoch {ep + 1}/{run.tcfg.epochs}: val {score['val']:.3f} test {score['test']:.3f}")
    if run.ckpt is not None and dist.is_main():
        # the last epoch's checkpoint keeps only the split's result: weights and Adam's moments of every
        # finished split would pile up (P1's regime on SigLIP2-so400m: ~5 GB per split, head and split)
        state = {"cfg_id": run.cfg_id, "epoch": ep, "history": run.history, "best": _tensors(run.best),
                 "last": _tensors(run.last)}
        if ep < run.tcfg.epochs - 1:
            state.update(trainable=_trainable_state(run.model), opt=run.opt.state_dict(), rng=rng)
        run.ckpt.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(run.ckpt) as tmp:
            torch.save(state, tmp)
        del state
    dist.barrier()


def split_dataset(preprocess, paths: Sequence[Path], test_time: str, pixels: np.ndarray | None, exif: bool):
    tf = build_transform(preprocess, test_time)
    if pixels is not None:
        side = preprocess.squash_size
        if test_time != "squash" or pixels.shape[1:3] != (side, side) or len(pixels) != len(paths):
            raise ValueError(f"pixels of shape {pixels.shape} are not {len(paths)} images squashed to "
                             f"{side} px (test_time {test_time})")
        from .pixels import SquashedDataset
        return SquashedDataset(pixels, tf)
    return ImageDataset(list(paths), tf, exif)


def run_amp(cfg: FinetuneConfig, device: torch.device, amp: str) -> str:
    """The run's autocast: P1's recipes run in ``cfg.precision`` whatever ``amp`` says (bf16 refused where the
    device has none); the others in ``amp``."""
    if cfg.mode in P1_MODES:
        if cfg.precision == "bf16":
            check_bf16(device)
            return "bf16"
        return "off"
    return amp


def finetune_split(make_backbone: Callable[[], nn.Module], preprocess, paths: Sequence[Path], mos: np.ndarray,
                   job: HeadJob, cfg: FinetuneConfig, tcfg: TrainConfig, ckpt: Path | None = None,
                   device: torch.device = torch.device("cpu"), amp: str = "off", workers: int = 0,
                   test_time: str = "squash", progress: Callable[[str], None] | None = None,
                   pixels: np.ndarray | None = None, exif: bool = True) -> SplitResult:
    """Fine-tune a fresh backbone + P1 head on one split's train images; after every epoch predict val and
    test and checkpoint; return the predictions of the epoch chosen on ``tcfg.select_on`` (val, or test
    as P1) and those of the last epoch. ``ckpt``: the checkpoint file (resumed when present and made for the
    same run). The optimiser steps follow ``tcfg.accumulation`` (P1's loop: :func:`nriqa_lib.training.trainer.p1_windows`);
    the p1 regime runs in ``cfg.precision`` whatever ``amp`` says (bf16: P1's dtypes and autocast, refused where
    the device has no bf16; fp32: no autocast). ``pixels``: the images already squashed to the input size
    (:func:`nriqa_lib.training.pixels.squashed_images`, decoded once for every epoch and split; the same tensors);
    ``exif``: decode with the EXIF orientation applied (:func:`nriqa_lib.features.load_image`). Several runs of
    one backbone train side by side in :func:`nriqa_lib.training.fused.finetune_group`."""
    p1_bf16 = cfg.mode in P1_MODES and cfg.precision == "bf16"
    amp = run_amp(cfg, device, amp)
    run = prepare_split(make_backbone, mos, job, cfg, tcfg, ckpt, device, progress)
    if run.done is not None:
        return run.done
    model, opt = run.model, run.opt
    W, R = dist.world(), dist.rank()
    if W > 1 and not cfg.micro_batch:
        raise ValueError("distributed fine-tuning needs train.micro_batch > 0 (P1: 2): ranks share a batch by its "
                         "micro-batches, and a whole-batch margin loss couples all of its images")
    ds = split_dataset(preprocess, paths, test_time, pixels, exif)
    lk = loader_kwargs(device, workers)
    mos_t = torch.tensor(np.asarray(mos, dtype=np.float32))      # a copy: the manifest column may be read-only
    net = model
    if W > 1:       # gradients averaged over ranks: each rank's loss x W gives the one-process sum
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    for ep in range(run.start, tcfg.epochs):
        model.train()
        batches, scales = epoch_batches(run, ep, W, R)
        # P1's loops hold ONE bf16 autocast context for the whole epoch (released l.379, first commit l.428).
        # autocast caches the bf16 copy of every fp32 leaf weight an op casts (the LoRA adapters' Linear weights) at
        # its first use and drops the cache only when the context exits: P1's forward sees the adapters as they were
        # at the epoch's start, their updates take effect at the next epoch (measured on a tiny SigLIP: lora_A's
        # gradients are exactly 0 for all of epoch 1, lora_B being cached at its zero init). Kept, to be P1's run.
        with autocast(device, amp) if p1_bf16 else contextlib.nullcontext():
            for idx, sc, x in zip(batches, scales, DataLoader(ds, batch_sampler=batches, **lk)):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                with autocast(device, amp), training_attention(device):
                    _loss(net, x.to(device, non_blocking=True), mos_t[idx].to(device), cfg, scale=sc)
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                run.step_t.append(time.perf_counter() - t0)
        pred = evaluate_epoch(run, ds, lk, device, amp, W, R)
        end_epoch(run, ep, pred, mos, _rng_state(device))
    return split_result(run.parts, run.eval_idx, mos, run.best, run.last, run.history, run.step_t)


def _tensors(record):
    """A (score, epoch, predictions) or (epoch, predictions) record with its numpy predictions as a tensor: a
    checkpoint holds tensors and plain Python values only, so it loads with ``weights_only=True``."""
    if record is None:
        return None
    return tuple(torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v for v in record)


def _load_checkpoint(ckpt: Path | None) -> dict:
    """A split's checkpoint, loaded without unpickling code (``weights_only=True``: tensors, containers, numbers,
    strings). One it cannot read that way (a file from before this format, or anything else) is not resumed: said
    in one line, the split starts over and overwrites it."""
    if ckpt is None or not ckpt.is_file():
        return {}
    try:
        st = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:          # UnpicklingError, a truncated zip, ...: never executed, never trusted
        print(f"nriqa: {ckpt}: not a checkpoint this version reads ({type(e).__name__}); starting this split over",
              file=sys.stderr)
        return {}
    for k in ("best", "last"):
        if st.get(k) is not None:
            st[k] = tuple(v.numpy() if isinstance(v, torch.Tensor) else v for v in st[k])
    return st


def split_result(parts: np.ndarray, eval_idx: np.ndarray, mos: np.ndarray, best, last, history: list[dict],
            step_t: list[float]) -> SplitResult:
    _, best_ep, pred = best
    mos = np.asarray(mos)
    df = pd.DataFrame({"part": parts, "index": eval_idx, "pred": pred, "mos": mos[eval_idx]})
    last_df = (pd.DataFrame({"part": parts, "index": eval_idx, "pred": last[1], "mos": mos[eval_idx]})
               if last is not None else None)
    return SplitResult(df, int(best_ep), history, float(np.median(step_t)) if step_t else float("nan"), last_df)
