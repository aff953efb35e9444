"""Where work runs: device choice, bf16 autocast, DataLoader settings and the determinism record.

Nothing here changes the protocol; it changes where and in which precision the same computation runs.
bf16 autocast (``run.amp: auto`` on CUDA) covers the matmuls and convolutions of every family we use
(CLIP/SigLIP2/DINOv2/DINOv3/PE ViTs, ResNet, EfficientNet-Lite): all were trained or are served in
mixed precision by their authors; norms and softmax stay fp32 under autocast. Features extracted in bf16
get their own cache key (``device``, ``amp`` in the key), so they never mix with fp32 ones.
"""
from __future__ import annotations

import contextlib
import os
import platform

import torch

from .config import ConfigError

__all__ = ["DeviceError", "resolve_device", "use_bf16", "autocast", "loader_kwargs", "set_deterministic", "training_attention",
           "run_info"]


class DeviceError(ConfigError, RuntimeError):
    """run.device names a device torch does not see (a params error: one line wherever a stage meets it)."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda``/``cuda:N`` fail in one line without a GPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"run.device={spec!r} but torch sees no CUDA device (torch {torch.__version__}); "
                           f"use run.device: auto or cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"run.device={spec!r} but torch sees {torch.cuda.device_count()} CUDA device(s) "
                           f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); use run.device: auto, cuda or one of those")
    return dev


def use_bf16(device: torch.device, amp: str = "auto") -> bool:
    """bf16 autocast on: ``amp: bf16`` anywhere, ``auto`` on CUDA only (CPU results stay bit-identical fp32)."""
    return amp == "bf16" or (amp == "auto" and device.type == "cuda")


def autocast(device: torch.device, amp: str = "auto"):
    """``torch.autocast`` in bf16 where :func:`use_bf16` says so, else a no-op context."""
    if use_bf16(device, amp):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loader_kwargs(device: torch.device, workers: int = 0) -> dict:
    """DataLoader settings: ``workers`` decode processes; pinned memory on CUDA; persistent workers."""
    kw: dict = {"num_workers": int(workers), "pin_memory": device.type == "cuda"}
    if workers > 0:
        kw.update(persistent_workers=True, prefetch_factor=4)
    return kw


def set_deterministic(device: torch.device) -> None:
    """cuDNN without autotuning, deterministic algorithms where torch has them (warn where it has not)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def training_attention(device: torch.device):
    """Where a backward pass runs (fine-tuning): on CUDA with deterministic algorithms on, attention takes the math
    path. torch's fused attention backwards are not deterministic under ``warn_only``: measured on an H200
    (scripts/gpu_check.py, SigLIP2 so400m's shape 2 x 16 x 1024 x 72 in bf16, three backwards of the same inputs),
    cuDNN's and flash attention's gradients differed between repeats, and two runs of P1's regime on SigLIP2
    gave different predictions at epoch 2 with either; math's repeated bit for bit (1.9 vs 0.8 ms for cuDNN's)."""
    if device.type != "cuda" or not torch.are_deterministic_algorithms_enabled():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.MATH)


def run_info(device: torch.device, amp: str = "auto", workers: int = 0) -> dict:
    """What a stage records about where it ran (written next to its outputs)."""
    info = {"device": str(device), "bf16_autocast": use_bf16(device, amp), "workers": int(workers),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["training_attention"] = "math" if torch.are_deterministic_algorithms_enabled() else "fused"
    return info
