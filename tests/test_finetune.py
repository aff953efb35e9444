import copy

import pytest
import timm
import torch

from nriqa_lib.finetune import FinetuneConfig, finetune
from nriqa_lib.heads import build_head


def _tiny():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, embed_dim=48, num_heads=2,
                            img_size=64, num_classes=0)
    head = build_head("B", vit.num_features, hidden=16)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 64, 64, generator=g)
    y = torch.linspace(0, 1, 8)
    return vit, head, [(x, y)]


def test_lora_changes_only_adapters_and_head_and_learns():
    vit, head, batches = _tiny()
    base = copy.deepcopy(vit.state_dict())
    head0 = copy.deepcopy(head.state_dict())
    model, losses = finetune(vit, head, batches, FinetuneConfig(mode="lora", epochs=25, lr_head=3e-3))
    assert losses[-1] < 0.5 * losses[0]
    sd = model.features.state_dict()
    lora = [k for k in sd if "lora_" in k]
    assert lora and all("qkv" in k for k in lora)                       # timm's fused q/k/v projection
    assert any(not torch.equal(sd[k], torch.zeros_like(sd[k])) for k in lora if "lora_B" in k)
    for k, v in base.items():                                           # frozen base weights
        k2 = k.replace("qkv.weight", "qkv.base_layer.weight").replace("qkv.bias", "qkv.base_layer.bias")
        assert torch.equal(sd[k2], v), k
    assert any(not torch.equal(head.state_dict()[k], v) for k, v in head0.items())
    lcfg = next(m for m in model.features.modules() if hasattr(m, "r") and isinstance(m.r, dict))
    assert lcfg.r["default"] == 4 and lcfg.lora_alpha["default"] == 8


def test_full_finetune_updates_backbone_with_its_own_lr():
    vit, head, batches = _tiny()
    base = copy.deepcopy(vit.state_dict())
    model, losses = finetune(vit, head, batches, FinetuneConfig(mode="full", epochs=5, lr_head=1e-3, lr_backbone=1e-4))
    assert losses[-1] < losses[0]
    changed = [k for k, v in model.features.state_dict().items() if not torch.equal(v, base[k])]
    assert "blocks.0.attn.qkv.weight" in changed
    delta = (model.features.state_dict()["blocks.0.attn.qkv.weight"] - base["blocks.0.attn.qkv.weight"]).abs().max()
    assert delta < 5 * 1e-4 * 5 + 1e-6                                 # Adam moves each weight <= ~lr per step
    with pytest.raises(ValueError, match="no Linear layer named"):
        finetune(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), head, batches, FinetuneConfig(target_modules=("q_proj",)))
