"""Image-level regimes for users with GPUs: LoRA on the backbone (peft) or full fine-tuning, with P1's head
and loss (STUDY_SPEC.md section 2: LoRA r=4, alpha=8, dropout 0.05 on the q/k projections)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import torch
from torch import nn

from .train import iqa_loss

__all__ = ["FinetuneConfig", "ImageIQAModel", "add_lora", "finetune"]

# q/k projection names across libraries: HF (q_proj/k_proj), timm ViTs (fused 'qkv': LoRA then adapts q, k and v)
DEFAULT_TARGETS = ("q_proj", "k_proj", "qkv")


@dataclass
class FinetuneConfig:
    mode: Literal["lora", "full"] = "lora"
    epochs: int = 1
    lr_head: float = 1e-4
    lr_backbone: float = 1e-5          # full fine-tuning only; LoRA adapters use lr_head (as P1)
    lora_r: int = 4
    lora_alpha: int = 8
    lora_dropout: float = 0.05
    target_modules: Sequence[str] = DEFAULT_TARGETS
    margin_weight: float = 1.0
    margin_scale: float = 0.25
    margin_loss_swapped: bool = False


class ImageIQAModel(nn.Module):
    """features(x) -> head -> score; ``features`` is any module giving (B, D) pooled features."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def add_lora(module: nn.Module, cfg: FinetuneConfig) -> nn.Module:
    """Wrap the Linear layers named in ``cfg.target_modules`` with LoRA adapters (peft); base weights frozen."""
    from peft import LoraConfig, inject_adapter_in_model
    names = {n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, nn.Linear)}
    targets = [t for t in cfg.target_modules if t in names]
    if not targets:
        raise ValueError(f"no Linear layer named {list(cfg.target_modules)} in the backbone; "
                         f"its Linear layers are named {sorted(names)[:10]}")
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets)
    module = inject_adapter_in_model(lcfg, module)
    for n, p in module.named_parameters():
        p.requires_grad_("lora_" in n)
    return module


def finetune(features: nn.Module, head: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
             cfg: FinetuneConfig) -> tuple[ImageIQAModel, list[float]]:
    """Train head + backbone (LoRA adapters or all weights) on (images, mos) batches; returns model, losses."""
    if cfg.mode == "lora":
        features = add_lora(features, cfg)
        groups = [{"params": [p for p in features.parameters() if p.requires_grad], "lr": cfg.lr_head}]
    elif cfg.mode == "full":
        features.requires_grad_(True)
        groups = [{"params": list(features.parameters()), "lr": cfg.lr_backbone}]
    else:
        raise ValueError(f"mode must be lora or full, got {cfg.mode!r}")
    groups.append({"params": list(head.parameters()), "lr": cfg.lr_head})
    model = ImageIQAModel(features, head).train()
    opt = torch.optim.Adam(groups)
    losses = []
    batches = list(batches)
    for _ in range(cfg.epochs):
        for x, y in batches:
            pred = model(x)[None]
            loss = iqa_loss(pred, y[None].float(), torch.ones_like(pred), cfg.margin_weight, cfg.margin_scale,
                            cfg.margin_loss_swapped).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    return model.eval(), losses
