"""Training P1's heads on cached features: many heads at once, over stacked weights (the Linear layers as
batched matmuls, :class:`_StackedLinear`; activations with per-channel parameters through torch.func.vmap).

Loss (P1, STUDY_SPEC.md section 1): MSE + P1's pairwise margin ranking term over the pairs of a
mini-batch (:func:`iqa_loss`). P1's code passes (prediction, target) swapped; ``margin_loss_swapped``
reproduces that term exactly, and ``micro_batch`` P1's 2 x 6 gradient accumulation (:func:`micro_batched_loss`).

All heads of one call share a head spec and a feature matrix; each has its own split, seed, init and
batch order. A head trained in a stack of 60 gets the same numbers as the same head trained alone
(``train_heads`` with one job, or a plain torch.optim.Adam loop: see tests/training/test_train.py), up to float
summation order.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from ..core.config import T3, Train
from ..core.metrics import selection_srcc
from ..heads.mlp import MLPHead, build_head

HEAD_DTYPE = torch.float64   # the heads' training dtype (see train_heads: float32 training depends on the CPU)

__all__ = ["HeadJob", "TrainConfig", "iqa_loss", "micro_batched_loss", "init_head", "batch_order", "p1_windows",
           "train_order", "train_heads", "TrainResult",
           "ridge_predictions"]


@dataclass(frozen=True)
class HeadJob:
    """One head to train: its split (index arrays into the feature matrix) and seed."""
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    seed: int
    tags: dict = field(default_factory=dict, hash=False, compare=False)


class TrainConfig(Train):
    """Everything ``train_heads`` needs: params.yaml's ``train`` section (:class:`nriqa_lib.core.config.Train`, the
    one source of the training defaults) plus the head being trained (T3's section for the selection heads)."""
    head: str = "B"
    depth: int = 3
    candidates: Sequence[str] = tuple(T3().candidates)
    temperature: float = T3().temperature
    hard: bool = T3().hard
    entropy_weight: float = 0.0

    @classmethod
    def from_params(cls, train: Train, head: str, t3: T3 | None = None, dataset: str | None = None) -> "TrainConfig":
        """The ``train`` section + one head; the K-way head's candidates, temperature, hardness and entropy
        penalty come from ``t3`` (B_Gated and the fixed heads ignore them); ``train.per_dataset[dataset]``
        overrides keys for that dataset (P1: 30 epochs on CLIVE)."""
        t3 = t3 or T3()
        base = {name: getattr(train, name) for name in Train.model_fields}
        base.update((base["per_dataset"] or {}).get(dataset, {}) if dataset else {})
        return cls(**base, head=head, candidates=tuple(t3.candidates), temperature=t3.temperature, hard=t3.hard,
                   entropy_weight=t3.entropy_weight if head == "kway" else 0.0)


def iqa_loss(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor, margin_weight: float = 1.0,
             margin_scale: float = 0.25, swapped: bool = False) -> torch.Tensor:
    """P1's loss, per head, on (M, B) predictions/targets with 0/1 sample weights ``w``; returns (M,).

    MSE (mean over the n valid samples) + ``margin_weight`` x P1's pairwise margin term, which is the body
    of P1's ``util.margin_loss(y, yp)`` (STUDY_SPEC.md section 1):
    ``2/(n(n-1)) * sum_{i<j, y_i != y_j} max(0, -sign(y_i - y_j) (yp_i - yp_j) + margin_scale * std_pop(y))``.

    - correct order (default): y = target, yp = prediction. The margin uses the *population* std of the
      targets and the sum is normalised by *all* n(n-1)/2 pairs (ties count in the denominator), exactly
      as P1's function body does, so the only difference from the paper-faithful term is the argument order.
    - ``swapped=True``: P1's call ``margin_loss(pred, gt)``: y = prediction, yp = target, so the sign comes
      from the predictions (no gradient) and the margin is 0.25 x std_pop of the predictions, through which
      the gradient reaches them.
    """
    n = w.sum(-1).clamp_min(1)
    mse = (w * (pred - y) ** 2).sum(-1) / n
    if margin_weight == 0:
        return mse
    a, b = (pred, y) if swapped else (y, pred)          # P1's (y, yp)
    mean_a = (w * a).sum(-1, keepdim=True) / n[:, None]
    std_a = torch.sqrt((w * (a - mean_a) ** 2).sum(-1) / n + 1e-30)   # population std; eps keeps sqrt'(0) finite
    std_a = torch.where((w * (a - mean_a) ** 2).sum(-1) > 0, std_a, torch.zeros_like(std_a))
    margin = margin_scale * std_a[:, None, None]
    da = a[:, :, None] - a[:, None, :]
    db = b[:, :, None] - b[:, None, :]
    valid = w[:, :, None] * w[:, None, :] * (da != 0)
    hinge = torch.relu(-torch.sign(da).detach() * db + margin)
    # ordered pairs count every unordered pair twice: sum_ordered / (n (n - 1)) = 2/(n(n-1)) sum_{i<j}
    rank = (valid * hinge).sum((-1, -2)) / (n * (n - 1)).clamp_min(1)
    return mse + margin_weight * rank


def micro_batched_loss(pred: torch.Tensor, y: torch.Tensor, w: torch.Tensor, micro_batch: int, batch_size: int,
                       margin_weight: float = 1.0, margin_scale: float = 0.25, swapped: bool = False) -> torch.Tensor:
    """P1's gradient accumulation: the batch is cut into micro-batches of ``micro_batch`` (P1: 2), each gets
    :func:`iqa_loss` and is divided by the accumulation count ``batch_size // micro_batch`` (P1: 6); the sum
    over micro-batches is the loss whose gradient P1 accumulates before one optimiser step. A micro-batch
    with fewer than ``micro_batch`` samples is dropped (P1's DataLoader uses ``drop_last=True``)."""
    M, B = pred.shape
    k = -(-B // micro_batch)
    pad = k * micro_batch - B
    if pad:
        pred, y, w = (F.pad(t, (0, pad)) for t in (pred, y, w))
    w = w.reshape(M * k, micro_batch)
    w = w * (w.sum(-1, keepdim=True) == micro_batch)          # drop incomplete micro-batches
    loss = iqa_loss(pred.reshape(M * k, micro_batch), y.reshape(M * k, micro_batch), w,
                    margin_weight, margin_scale, swapped).reshape(M, k)
    loss = loss * (w.reshape(M, k, micro_batch).sum(-1) > 0)
    return loss.sum(1) / (batch_size // micro_batch)


def init_head(cfg: TrainConfig, in_dim: int, seed: int, portable: bool = False) -> MLPHead:
    """Head initialised from ``seed`` alone (torch's default init under a forked, seeded RNG). ``portable``: every
    uniform draw through :func:`portable_uniform` (the same random numbers, rounded alike on every CPU kernel path:
    what :func:`train_heads` uses); fine-tuning keeps torch's own init, as P1's code has it."""
    with torch.random.fork_rng(devices=[]), (portable_uniform() if portable else contextlib.nullcontext()):
        torch.manual_seed(seed)
        return build_head(cfg.head, in_dim, cfg.hidden, cfg.depth, cfg.candidates, cfg.temperature, cfg.hard)


@contextlib.contextmanager
def portable_uniform():
    """Within the block, ``Tensor.uniform_(a, b)`` (what torch's Linear init calls) draws u = uniform_(0, 1) and returns
    ``u * (b - a) + a`` as two separately rounded operations. torch's own kernel computes the same expression with an
    FMA in its AVX2 build and without one in its scalar build (ATEN_CPU_CAPABILITY=default, a CPU without AVX2): the
    initial weights differed by 1 ulp between the two, which ReLU heads amplified to 3.8e-3 in a CLIVE prediction
    (measured: scripts/kernel_paths.py). u itself is exact on both (u * 1 + 0), from the same generator stream."""
    real = torch.Tensor.uniform_

    def uniform_(t, a=0.0, b=1.0, *, generator=None):
        real(t, 0.0, 1.0, generator=generator)
        return t.mul_(b - a).add_(a)
    torch.Tensor.uniform_ = uniform_
    try:
        yield
    finally:
        torch.Tensor.uniform_ = real


def batch_order(n_train: int, epochs: int, batch_size: int, seed: int) -> list[list[np.ndarray]]:
    """Per epoch, the mini-batches (positions into the train index) from a seeded permutation."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for _ in range(epochs):
        perm = rng.permutation(n_train)
        out.append([perm[i:i + batch_size] for i in range(0, n_train, batch_size)])
    return out


def p1_windows(n_train: int, epochs: int, micro_batch: int, accum: int, seed: int) -> list[list[np.ndarray]]:
    """P1's loop structure (train.py l.305-308, 382, 406, 416): per epoch one shuffled pass of micro-batches of
    ``micro_batch`` (the DataLoader's ``drop_last=True`` drops an incomplete one); a global micro-step counter
    that is never reset; an optimiser step whenever it reaches a multiple of ``accum``; gradients zeroed at each
    epoch start, so the micro-batches after an epoch's last step are dropped and the next epoch's first window
    can be shorter. Returns, per epoch, each optimiser step's positions (its micro-batches concatenated); the
    permutations are :func:`batch_order`'s."""
    out, step = [], 0
    for (perm,) in batch_order(n_train, epochs, n_train, seed) if n_train else [[np.zeros(0, np.int64)]] * epochs:
        windows, cur = [], []
        for i in range(0, len(perm) - micro_batch + 1, micro_batch):
            cur.append(perm[i:i + micro_batch])
            step += 1
            if step % accum == 0:
                windows.append(np.concatenate(cur))
                cur = []
        out.append(windows)
    return out


def train_order(n_train: int, cfg: "TrainConfig", seed: int) -> list[list[np.ndarray]]:
    """The optimiser steps of one head's training, per epoch: :func:`batch_order` (``accumulation: batch``) or
    P1's windows (``accumulation: p1``, :func:`p1_windows`)."""
    if cfg.accumulation == "p1":
        return p1_windows(n_train, cfg.epochs, cfg.micro_batch, cfg.batch_size // cfg.micro_batch, seed)
    return batch_order(n_train, cfg.epochs, cfg.batch_size, seed)


@dataclass
class TrainResult:
    """Per-head selected epoch, the trained heads, and long-format predictions."""
    heads: list[MLPHead]
    best_epoch: list[int]
    predictions: pd.DataFrame      # job, part, index, pred, mos
    history: pd.DataFrame          # job, epoch, val_srcc
    last_predictions: pd.DataFrame | None = None   # the same at the last epoch (``report_last``: what P1 writes)


def train_heads(X: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, jobs: Sequence[HeadJob],
                cfg: TrainConfig) -> TrainResult:
    """Train one head per job, all at once, with Adam; keep each head's best epoch on ``cfg.select_on``.

    Adam is torch's fused Adam when every head has the same train size, else :class:`_PortableAdam` (the same
    update written out, which skips the heads that have no samples in a padded step).

    Everything runs in :data:`HEAD_DTYPE` (float64): the heads, features, targets, optimiser state and returned
    heads, initialised with :func:`portable_uniform`. In float32 the last bits of a step depend on the CPU's kernel
    path, and a val-selected epoch flipped between two kernel paths of one machine (predictions moved by up to 0.26,
    table means by 0.0018); in float64 the same runs agree to ~1e-15 and select the same epochs under every BLAS,
    oneDNN and ATen path (``tests/test_determinism.py``, ``scripts/kernel_paths.py``).
    """
    X = torch.as_tensor(np.array(X)).to(HEAD_DTYPE)
    y = torch.as_tensor(np.array(y)).to(HEAD_DTYPE)
    M = len(jobs)
    if M == 0:
        raise ValueError("no jobs")
    if cfg.select_on not in ("val", "test"):
        raise ValueError(f"select_on must be val or test, got {cfg.select_on!r}")
    heads = [init_head(cfg, X.shape[1], j.seed, portable=True).to(HEAD_DTYPE) for j in jobs]
    params, buffers = stack_module_state(heads)
    base = copy.deepcopy(heads[0]).to("meta")
    names = list(params)
    orders = [train_order(len(j.train_idx), cfg, j.seed) for j in jobs]
    # Equal train sizes -> every head steps together: torch's fused Adam on the stacked weights is then exactly
    # per-head Adam. Otherwise some heads sit out padded steps, which torch.optim.Adam cannot express, so
    # _PortableAdam (the same update, written out) skips them. (The fused kernel's FMAs differ by an ulp between
    # ATen's AVX2 and scalar builds; with the portable init that moved no prediction by more than 6e-16: measured.)
    uniform = len({len(j.train_idx) for j in jobs}) == 1
    # Linear weights are kept as contiguous (M, in, out) leaves (the layout _StackedLinear multiplies with):
    # their gradients then come out contiguous (a transposing copy per step cost more than the matmuls).
    lin = {k for k in names if params[k].dim() == 3 and k.endswith("weight")}
    params = {k: (params[k].mT.contiguous() if k in lin else params[k]).detach().requires_grad_(True) for k in names}
    leaves = [params[k] for k in names]
    batched = _stacked_forward(base, buffers)
    opt = (torch.optim.Adam(leaves, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True) if uniform
           else _PortableAdam(leaves, cfg.lr, cfg.weight_decay, M))
    sel = [j.val_idx if cfg.select_on == "val" else j.test_idx for j in jobs]
    if any(len(s) < 3 for s in sel):
        raise ValueError(f"model selection on {cfg.select_on!r} needs >= 3 images per head")
    sel_y = [y[torch.as_tensor(ix)].numpy() for ix in sel]
    sel_pad = torch.zeros(M, max(len(ix) for ix in sel), dtype=torch.long)
    for m, ix in enumerate(sel):
        sel_pad[m, :len(ix)] = torch.as_tensor(ix)
    best = [-np.inf] * M
    best_epoch = [-1] * M
    best_state = {k: v.detach().clone() for k, v in params.items()}
    hist = []
    # the mini-batch's features are gathered into one buffer reused every step, not a fresh (M x B x d)
    # tensor per step (bench workload: 0.35-0.45 M instead of 0.6 M page faults per run)
    xbuf = torch.empty(M * cfg.batch_size, X.shape[1], dtype=X.dtype)
    for ep in range(cfg.epochs):
        n_steps = max(len(o[ep]) for o in orders)
        for s in range(n_steps):
            idx = torch.zeros(M, cfg.batch_size, dtype=torch.long)
            w = torch.zeros(M, cfg.batch_size, dtype=X.dtype)
            for m, (job, o) in enumerate(zip(jobs, orders)):
                if s < len(o[ep]):
                    pos = job.train_idx[o[ep][s]]
                    idx[m, :len(pos)] = torch.as_tensor(pos)
                    w[m, :len(pos)] = 1
            active = w.sum(1) > 0
            if uniform:   # trim padding of the last batch (same size for every head)
                nb = int(w[0].sum())
                idx, w = idx[:, :nb], w[:, :nb]
            xb = torch.index_select(X, 0, idx.reshape(-1), out=xbuf[:idx.numel()]).view(*idx.shape, -1)
            pred = batched(params, xb)                  # params are the leaves Adam updates in place
            if cfg.micro_batch:
                loss = micro_batched_loss(pred, y[idx], w, cfg.micro_batch, cfg.batch_size, cfg.margin_weight,
                                          cfg.margin_scale, cfg.margin_loss_swapped)
            else:
                loss = iqa_loss(pred, y[idx], w, cfg.margin_weight, cfg.margin_scale, cfg.margin_loss_swapped)
            total = (loss * active).sum()
            if cfg.entropy_weight:
                total = total + cfg.entropy_weight * _stacked_entropy(params, cfg, active)
            grads = torch.autograd.grad(total, leaves)
            for p, g in zip(leaves, grads):
                p.grad = g
            opt.step() if uniform else opt.step(active)
        # only the selection images (padded to a common length), in inference mode (eval), i.e. exactly the
        # predictions that are reported: hard K-way selection picks its epoch with its hard predictions
        base.eval()
        with torch.no_grad():
            pred_sel = batched(params, X[sel_pad]).numpy()
        base.train()
        improved = []
        for m in range(M):
            r = selection_srcc(pred_sel[m, :len(sel[m])], sel_y[m])
            hist.append((m, ep, r))
            if r > best[m]:
                best[m], best_epoch[m] = r, ep
                improved.append(m)
        with torch.no_grad():                   # per head, in place (an indexed copy of all improved heads
            for m in improved:                  # first gathers them into a temporary: 157 MB for 60 heads)
                for k in names:
                    best_state[k][m].copy_(params[k][m])
    for v in leaves:
        v.grad = None
        v.requires_grad_(False)
    # the selected weights back into plain modules
    trained = []
    for m in range(M):
        h = heads[m]
        h.load_state_dict({k: best_state[k][m].mT if k in lin else best_state[k][m] for k in names}
                          | {k: v[m] for k, v in buffers.items()})
        h.eval()
        trained.append(h)
    base.eval()
    # every head on every image, in blocks of images: one pass over all images holds (M x N x h) activations
    # (1.2 GB each for 60 heads on KonIQ's 10073 images); blocks: peak RSS 3.4 instead of 5.8 GB and 11.1
    # instead of 14.9 s for that case (one epoch), the same numbers bit for bit
    def predict(state):
        with torch.no_grad():
            return np.concatenate([batched(state, X[i:i + _FINAL_BLOCK].expand(M, -1, -1)).numpy()
                                   for i in range(0, len(X), _FINAL_BLOCK)], axis=1)
    final = predict(best_state)
    last = _long_predictions(list(predict(params)), y.numpy(), jobs) if cfg.report_last else None
    history = pd.DataFrame(hist, columns=["job", "epoch", f"{cfg.select_on}_srcc"])
    return TrainResult(trained, best_epoch, _long_predictions(list(final), y.numpy(), jobs), history, last)


_FINAL_BLOCK = 128      # images per block of the final prediction pass


class _StackedLinear(torch.autograd.Function):
    """y = x @ w + b for M heads at once: x (M, B, in), w (M, in, out), b (M, out).

    One bmm forward and one for the input gradient; the weight gradient x^T g, the largest tensor of a step
    (60 heads x 1280 x 512 floats = 157 MB), is written into ``gw_buf``, allocated once per training run:
    a fresh allocation of that size is mapped anew by the allocator every step, and first-touch page
    faults made the weight-gradient GEMM 2.4x slower than the same GEMM into reused memory (measured:
    74 ms vs 31 ms per step for 60 heads on 2 cores; ``python -m nriqa_lib.bench`` prints the roofline).
    """

    @staticmethod
    def forward(ctx, x, w, b, gw_buf):
        ctx.save_for_backward(x, w)
        ctx.gw_buf = gw_buf
        return torch.baddbmm(b.unsqueeze(1), x, w)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gw = ctx.gw_buf
            for m in range(w.shape[0]):         # per head: CPU mm into the reused buffer
                torch.mm(x[m].t(), g[m], out=gw[m])
        gb = g.sum(1) if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def _stacked_forward(base: MLPHead, buffers: dict[str, torch.Tensor]):
    """The forward of M stacked heads of ``base``'s architecture: each Linear through :class:`_StackedLinear`,
    each activation with per-channel parameters through vmap(functional_call) (parameter-free ones run on
    the stacked tensor directly). ``p`` holds the stacked parameters, Linear weights as (M, in, out)."""
    acts = []
    for i, act in enumerate(base.acts):
        pre = f"acts.{i}."
        if any(k.startswith(pre) for k in list(dict(base.named_parameters())) + list(buffers)):
            def run(p, z, act=act, pre=pre):
                sub = {k[len(pre):]: v for k, v in {**p, **buffers}.items() if k.startswith(pre)}
                return vmap(lambda s_, z_: functional_call(act, s_, (z_,)))(sub, z)
        else:
            def run(p, z, act=act):
                return act(z)
        acts.append(run)

    bufs: dict[str, torch.Tensor] = {}

    def lin(p, k, h):
        w = p[f"{k}.weight"]
        if k not in bufs:
            bufs[k] = torch.empty_like(w, requires_grad=False)
        return _StackedLinear.apply(h, w, p[f"{k}.bias"], bufs[k])

    def forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, run in enumerate(acts):
            h = run(p, lin(p, f"linears.{i}", h))
        return lin(p, "out", h).squeeze(-1)

    return forward


def _long_predictions(preds: Sequence[np.ndarray], y: np.ndarray, jobs: Sequence[HeadJob]) -> pd.DataFrame:
    """Per job, its predictions over all images -> long rows (job, part, index, pred, mos)."""
    rows = []
    for m, job in enumerate(jobs):
        for part, ix in (("train", job.train_idx), ("val", job.val_idx), ("test", job.test_idx)):
            rows.append(pd.DataFrame({"job": m, "part": part, "index": ix, "pred": preds[m][ix], "mos": y[ix]}))
    return pd.concat(rows, ignore_index=True)


class _PortableAdam:
    """torch.optim.Adam's update (L2 weight decay in the gradient, bias-corrected moments, eps 1e-8) over stacked
    (M, ...) weights, with a per-head step count (a head with no samples in a step is left as it is): the optimiser
    of :func:`train_heads` when the heads' train sizes differ. Written with separately rounded elementwise operations
    only: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    (torch's ``lerp_`` / ``addcmul_`` round once in their AVX2 kernels, twice in the scalar ones). Each update runs in
    blocks of :attr:`BLOCK` elements, which keeps its temporaries in the cache (10 heads of 1280-512-512-1 on 2
    cores: 35 ms per step, torch's fused Adam 9 ms; one pass over the whole tensors 103 ms)."""

    BLOCK = 1 << 16

    def __init__(self, params: list[torch.Tensor], lr: float, weight_decay: float, M: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.wd, self.eps = params, lr, weight_decay, eps
        self.b1, self.b2 = betas
        self.m1 = [torch.zeros_like(p) for p in params]
        self.m2 = [torch.zeros_like(p) for p in params]
        self.steps = [0] * M

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        on = [m for m, a in enumerate(active.tolist()) if a]
        for m in on:
            self.steps[m] += 1
        # heads at the same step share one pass (all of them when every head steps: equal train sizes)
        by_step: dict[int, list[int]] = {}
        for m in on:
            by_step.setdefault(self.steps[m], []).append(m)
        for t, ms in by_step.items():
            step_size = self.lr / (1 - self.b1 ** t)
            bc2_sqrt = (1 - self.b2 ** t) ** 0.5
            for p, m1, m2 in zip(self.params, self.m1, self.m2):
                g = p.grad
                if len(ms) == p.shape[0]:
                    self._update(p.view(-1), g.reshape(-1), m1.view(-1), m2.view(-1), step_size, bc2_sqrt)
                else:
                    for m in ms:
                        self._update(p[m].view(-1), g[m].reshape(-1), m1[m].view(-1), m2[m].view(-1), step_size,
                                     bc2_sqrt)

    def _update(self, weight, g, m1, m2, step_size: float, bc2_sqrt: float) -> None:
        b1, b2, n = self.b1, self.b2, weight.numel()
        for lo in range(0, n, self.BLOCK):
            hi = min(n, lo + self.BLOCK)
            gb, w, a, v = g[lo:hi], weight[lo:hi], m1[lo:hi], m2[lo:hi]
            if self.wd:
                gb = gb + w * self.wd
            a.mul_(b1).add_(gb * (1 - b1))
            v.mul_(b2).add_((gb * gb).mul_(1 - b2))
            d = v.sqrt().div_(bc2_sqrt).add_(self.eps)
            w.sub_(torch.div(a, d).mul_(step_size))


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


def ridge_predictions(X: np.ndarray, y: np.ndarray, jobs: Sequence[HeadJob], select_on: str = "val",
                      alphas: Sequence[float] = tuple(10.0 ** np.arange(-1, 6))) -> tuple[pd.DataFrame, list[float]]:
    """Linear baseline: ridge regression on train-standardised features, alpha chosen by SRCC on val.

    Closed form through one eigendecomposition of Z'Z per job (numpy; a few lines, so no scikit-learn
    estimator is needed). Returns predictions in train_heads' long format and the chosen alphas.
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    preds, chosen = [], []
    for job in jobs:
        tr = job.train_idx
        mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-8
        Z = (X - mu) / sd
        evals, evecs = np.linalg.eigh(Z[tr].T @ Z[tr])
        proj = evecs.T @ (Z[tr].T @ (y[tr] - y[tr].mean()))
        sel = job.val_idx if select_on == "val" else job.test_idx
        best = (-np.inf, None, None)
        for a in alphas:
            w = evecs @ (proj / (evals + a))
            pred = Z @ w + y[tr].mean()
            r = selection_srcc(pred[sel], y[sel])
            if r > best[0]:
                best = (r, a, pred)
        chosen.append(float(best[1]))
        preds.append(best[2])
    return _long_predictions(preds, y, jobs), chosen
