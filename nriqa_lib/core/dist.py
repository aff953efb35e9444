"""torch.distributed for the stages that scale out (features, finetune), started by ``torchrun``.

Nothing home-made: ranks, world size and the rendezvous come from torchrun's environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR/PORT); NCCL on GPUs, gloo on CPU. Without torchrun everything is one process.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["world", "rank", "is_main", "init", "barrier", "broadcast", "gather_objects", "local_device"]


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group when launched by it (WORLD_SIZE > 1); return this rank's device
    (``cuda:LOCAL_RANK`` on GPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return local_device(device)


def local_device(device: torch.device) -> torch.device:
    if device.type == "cuda" and world() > 1:
        d = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(d)
        return d
    return device


def barrier() -> None:
    if world() > 1:
        dist.barrier()


def broadcast(obj):
    """Rank 0's ``obj`` on every rank."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if world() == 1:
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out
