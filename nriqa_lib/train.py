"""Training P1's heads on cached features: many heads at once (torch.func.vmap over stacked weights).

Loss (P1, STUDY_SPEC.md section 1): MSE + pairwise margin ranking loss over the pairs of a mini-batch,
margin m = margin_scale * std(y_batch), target sign(y_i - y_j), ties excluded. P1's code passes
(target, prediction) swapped; ``swapped=True`` reproduces that (its ranking term then has no gradient).

All heads of one call share a head spec and a feature matrix; each has its own split, seed, init and
batch order. A head trained in a stack of 60 gets the same numbers as the same head trained alone
(``train_heads`` with one job, or a plain torch.optim.Adam loop: see tests/test_train.py), up to float
summation order.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sstats
from torch.func import functional_call, stack_module_state, vmap

from .heads import MLPHead, build_head

__all__ = ["HeadJob", "TrainConfig", "iqa_loss", "init_head", "batch_order", "train_heads", "TrainResult"]


@dataclass(frozen=True)
class HeadJob:
    """One head to train: its split (index arrays into the feature matrix) and seed."""
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    seed: int
    tags: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class TrainConfig:
    head: str = "B"
    hidden: int = 512
    depth: int = 3
    candidates: Sequence[str] = ("relu", "sigmoid")
    temperature: float = 1.0
    hard: bool = False
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    margin_weight: float = 1.0
    margin_scale: float = 0.25
    margin_loss_swapped: bool = False
    entropy_weight: float = 0.0
    select_on: str = "val"


def iqa_loss(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor, margin_weight: float = 1.0,
             margin_scale: float = 0.25, swapped: bool = False) -> torch.Tensor:
    """Per-head P1 loss on (M, B) predictions/targets with 0/1 sample weights ``w``; returns (M,)."""
    n = w.sum(-1).clamp_min(1)
    mse = (w * (pred - y) ** 2).sum(-1) / n
    if margin_weight == 0:
        return mse
    mean_y = (w * y).sum(-1, keepdim=True) / n[:, None]
    std_y = torch.sqrt((w * (y - mean_y) ** 2).sum(-1) / (n - 1).clamp_min(1))
    margin = margin_scale * std_y[:, None, None]
    dy = y[:, :, None] - y[:, None, :]
    dp = pred[:, :, None] - pred[:, None, :]
    if swapped:  # P1's code: inputs are the targets, the sign comes from the predictions
        hinge = torch.relu(-torch.sign(dp).detach() * dy + margin)
        valid = w[:, :, None] * w[:, None, :] * (dp != 0)
    else:
        hinge = torch.relu(-torch.sign(dy) * dp + margin)
        valid = w[:, :, None] * w[:, None, :] * (dy != 0)
    rank = (valid * hinge).sum((-1, -2)) / valid.sum((-1, -2)).clamp_min(1)
    return mse + margin_weight * rank


def init_head(cfg: TrainConfig, in_dim: int, seed: int) -> MLPHead:
    """Head initialised from ``seed`` alone (torch's default init under a forked, seeded RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_head(cfg.head, in_dim, cfg.hidden, cfg.depth, cfg.candidates, cfg.temperature, cfg.hard)


def batch_order(n_train: int, epochs: int, batch_size: int, seed: int) -> list[list[np.ndarray]]:
    """Per epoch, the mini-batches (positions into the train index) from a seeded permutation."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(epochs):
        perm = rng.permutation(n_train)
        out.append([perm[i:i + batch_size] for i in range(0, n_train, batch_size)])
    return out


@dataclass
class TrainResult:
    """Per-head selected epoch, the trained heads, and long-format predictions."""
    heads: list[MLPHead]
    best_epoch: list[int]
    predictions: pd.DataFrame      # job, part, index, pred, mos
    history: pd.DataFrame          # job, epoch, val_srcc


def _srcc(p: np.ndarray, y: np.ndarray) -> float:
    if len(y) < 3 or np.ptp(p) == 0:
        return -np.inf
    return float(sstats.spearmanr(p, y)[0])


def train_heads(X: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, jobs: Sequence[HeadJob],
                cfg: TrainConfig) -> TrainResult:
    """Train one head per job, all at once, with Adam; keep each head's best epoch on ``cfg.select_on``.

    Adam is written out over the stacked (M, ...) weights because torch.optim.Adam cannot skip the
    heads that have no samples in a padded step; it follows torch.optim.Adam's update exactly
    (L2 weight decay added to the gradient, bias-corrected moments, eps 1e-8).
    """
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float32)
    M = len(jobs)
    if M == 0:
        raise ValueError("no jobs")
    if cfg.select_on not in ("val", "test"):
        raise ValueError(f"select_on must be val or test, got {cfg.select_on!r}")
    heads = [init_head(cfg, X.shape[1], j.seed) for j in jobs]
    params, buffers = stack_module_state(heads)
    base = copy.deepcopy(heads[0]).to("meta")
    names = list(params)

    def fmodel(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched = vmap(fmodel, in_dims=(0, 0, 0))
    orders = [batch_order(len(j.train_idx), cfg.epochs, cfg.batch_size, j.seed) for j in jobs]
    m1 = {k: torch.zeros_like(v) for k, v in params.items()}
    m2 = {k: torch.zeros_like(v) for k, v in params.items()}
    steps = torch.zeros(M)
    b1, b2, eps = 0.9, 0.999, 1e-8
    sel = [j.val_idx if cfg.select_on == "val" else j.test_idx for j in jobs]
    if any(len(s) < 3 for s in sel):
        raise ValueError(f"model selection on {cfg.select_on!r} needs >= 3 images per head")
    best = [-np.inf] * M
    best_epoch = [-1] * M
    best_state = {k: v.detach().clone() for k, v in params.items()}
    hist = []
    for ep in range(cfg.epochs):
        n_steps = max(len(o[ep]) for o in orders)
        for s in range(n_steps):
            idx = torch.zeros(M, cfg.batch_size, dtype=torch.long)
            w = torch.zeros(M, cfg.batch_size)
            for m, (job, o) in enumerate(zip(jobs, orders)):
                if s < len(o[ep]):
                    pos = job.train_idx[o[ep][s]]
                    idx[m, :len(pos)] = torch.as_tensor(pos)
                    w[m, :len(pos)] = 1
            active = w.sum(1) > 0
            for v in params.values():
                v.requires_grad_(True)
            pred = batched(params, buffers, X[idx])
            loss = iqa_loss(pred, y[idx], w, cfg.margin_weight, cfg.margin_scale, cfg.margin_loss_swapped)
            total = (loss * active).sum()
            if cfg.entropy_weight:
                total = total + cfg.entropy_weight * _stacked_entropy(params, cfg, active)
            grads = torch.autograd.grad(total, [params[k] for k in names])
            steps += active.float()
            with torch.no_grad():
                for k, g in zip(names, grads):
                    p = params[k]
                    shape = (M,) + (1,) * (p.dim() - 1)
                    a = active.view(shape)
                    if cfg.weight_decay:
                        g = g + cfg.weight_decay * p
                    m1[k] = torch.where(a, b1 * m1[k] + (1 - b1) * g, m1[k])
                    m2[k] = torch.where(a, b2 * m2[k] + (1 - b2) * g * g, m2[k])
                    t = steps.clamp_min(1).view(shape)
                    step = cfg.lr / (1 - b1 ** t)
                    denom = (m2[k] / (1 - b2 ** t)).sqrt() + eps
                    params[k] = torch.where(a, p - step * m1[k] / denom, p).detach()
        with torch.no_grad():
            pred_all = batched(params, buffers, X.expand(M, *X.shape)).numpy()
        for m in range(M):
            r = _srcc(pred_all[m, sel[m]], y[sel[m]].numpy())
            hist.append((m, ep, r))
            if r > best[m]:
                best[m], best_epoch[m] = r, ep
                for k in names:
                    best_state[k][m] = params[k][m].detach()
    # the selected weights back into plain modules
    trained = []
    for m in range(M):
        h = heads[m]
        h.load_state_dict({k: best_state[k][m] for k in names} | {k: v[m] for k, v in buffers.items()})
        h.eval()
        trained.append(h)
    with torch.no_grad():
        final = torch.stack([h(X) for h in trained]).numpy()
    rows = []
    yn = y.numpy()
    for m, job in enumerate(jobs):
        for part, ix in (("train", job.train_idx), ("val", job.val_idx), ("test", job.test_idx)):
            rows.append(pd.DataFrame({"job": m, "part": part, "index": ix, "pred": final[m, ix], "mos": yn[ix]}))
    history = pd.DataFrame(hist, columns=["job", "epoch", f"{cfg.select_on}_srcc"])
    return TrainResult(trained, best_epoch, pd.concat(rows, ignore_index=True), history)


def _stacked_entropy(params: dict[str, torch.Tensor], cfg: TrainConfig, active: torch.Tensor) -> torch.Tensor:
    """Sum over active heads of the mean selection entropy of their K-way layers (the optional penalty)."""
    ents = []
    for k, v in params.items():
        if k.endswith(".logits"):
            p = torch.softmax(v / cfg.temperature, dim=1)            # (M, K, C)
            ents.append(-(p * torch.log(p.clamp_min(1e-12))).sum(1).mean(-1))
    if not ents:
        return torch.zeros(())
    return (torch.stack(ents).mean(0) * active).sum()
