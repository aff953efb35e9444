import copy
from pathlib import Path

import numpy as np
import pandas as pd
import open_clip
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from nriqa_lib.backbones.registry import Preprocess
from nriqa_lib.training.finetune import FinetuneConfig, FusedQKLoRA, MHAQKLoRA, add_lora, finetune, finetune_split
from nriqa_lib.heads.mlp import build_head
from nriqa_lib.training.trainer import HeadJob, TrainConfig


def _tiny():
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, embed_dim=48, num_heads=2,
                            img_size=64, num_classes=0)
    head = build_head("B", vit.num_features, hidden=16)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 64, 64, generator=g)
    y = torch.linspace(0, 1, 8)
    return vit, head, [(x, y)]


def _randomise_b(module):
    g = torch.Generator().manual_seed(1)
    for n, p in module.named_parameters():
        if "lora_B" in n:
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_fused_qk_lora_adapts_q_and_k_only_as_the_lora_equation():
    torch.manual_seed(0)
    base = nn.Linear(12, 36)
    m = FusedQKLoRA(copy.deepcopy(base), r=4, alpha=8, dropout=0.05).eval()
    _randomise_b(m)
    x = torch.randn(5, 12)
    A, B = m.lora_A.detach(), m.lora_B.detach()
    ref = base(x).detach().clone()
    ref[:, :12] += x @ (B[0] @ A[0]).T * (8 / 4)          # W_q + (alpha / r) B_q A_q
    ref[:, 12:24] += x @ (B[1] @ A[1]).T * (8 / 4)
    torch.testing.assert_close(m(x), ref)                  # v block untouched
    torch.testing.assert_close(m(x)[:, 24:], base(x)[:, 24:])


def test_mha_lora_equals_an_attention_with_merged_q_k_weights():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    ref = copy.deepcopy(mha)
    lora = MHAQKLoRA(16, r=4, alpha=8)
    torch.nn.utils.parametrize.register_parametrization(mha, "in_proj_weight", lora)
    _randomise_b(lora)
    with torch.no_grad():
        d = torch.cat([lora.lora_B[0] @ lora.lora_A[0], lora.lora_B[1] @ lora.lora_A[1], torch.zeros(16, 16)]) * 2
        ref.in_proj_weight += d
    x = torch.randn(3, 7, 16)
    torch.testing.assert_close(mha(x, x, x, need_weights=False)[0], ref(x, x, x, need_weights=False)[0])


def test_eva_attention_reading_qkv_weight_still_gets_the_adapter():
    """DINOv3/PE (timm EVA) read qkv.weight in F.linear when q/v biases exist; the adapter must not be bypassed."""
    torch.manual_seed(0)
    m = timm.create_model("vit_base_patch16_dinov3", pretrained=False, depth=1, img_size=32, num_classes=0).eval()
    ref = copy.deepcopy(m)
    x = torch.randn(2, 3, 32, 32)
    m = add_lora(m, FinetuneConfig()).eval()
    torch.testing.assert_close(m(x), ref(x))               # B = 0: the base model
    _randomise_b(m)
    lo = m.blocks[0].attn.qkv
    with torch.no_grad():
        d = torch.cat([lo.lora_B[0] @ lo.lora_A[0], lo.lora_B[1] @ lo.lora_A[1], torch.zeros(lo.dim, lo.dim)]) * 2
        ref.blocks[0].attn.qkv.weight += d
    torch.testing.assert_close(m(x), ref(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("build,kind,where", [
    (lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, img_size=32), FusedQKLoRA, "qkv"),
    (lambda: open_clip.create_model("ViT-B-32", pretrained=None).visual, MHAQKLoRA, "attn"),
    (lambda: open_clip.create_model("RN50", pretrained=None).visual, None, "attnpool.q_proj"),
    (lambda: timm.create_model("resnet18", pretrained=False), None, "conv2"),
    (lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False), None, "conv_pw"),
])
def test_lora_goes_to_attention_q_k_or_to_convolutions(build, kind, where):
    torch.manual_seed(0)
    m = add_lora(build(), FinetuneConfig())
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any(where in n for n in trainable)
    assert not any("v_proj" in n or "conv_dw" in n for n in trainable)    # P1 adapts q and k; depthwise skipped
    if kind is not None:
        assert any(isinstance(x, kind) for x in m.modules())
    lora_a = [p for n, p in m.named_parameters() if "lora_A" in n]
    r = {p.shape[-2] if p.dim() == 3 else p.shape[0] for p in lora_a}
    assert r == {4}


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
        k2 = k.replace("qkv.weight", "qkv.base.weight").replace("qkv.bias", "qkv.base.bias")
        assert torch.equal(sd[k2], v), k
    assert any(not torch.equal(head.state_dict()[k], v) for k, v in head0.items())


def test_full_finetune_updates_backbone_with_its_own_lr():
    vit, head, batches = _tiny()
    base = copy.deepcopy(vit.state_dict())
    model, losses = finetune(vit, head, batches, FinetuneConfig(mode="full", epochs=5, lr_head=1e-3, lr_backbone=1e-4))
    assert losses[-1] < losses[0]
    changed = [k for k, v in model.features.state_dict().items() if not torch.equal(v, base[k])]
    assert "blocks.0.attn.qkv.weight" in changed
    delta = (model.features.state_dict()["blocks.0.attn.qkv.weight"] - base["blocks.0.attn.qkv.weight"]).abs().max()
    assert delta < 5 * 1e-4 * 5 + 1e-6                                 # Adam moves each weight <= ~lr per step
    with pytest.raises(ValueError, match="no Linear/Conv2d layer named"):
        finetune(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), head, batches, FinetuneConfig(target_modules=("q_proj",)))


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=1, embed_dim=32, num_heads=2,
                                       img_size=32, num_classes=0)
        self.dim = 32

    def forward(self, x):
        return self.model(x)


def _images(tmp_path, n=14):
    rng = np.random.default_rng(0)
    paths, mos = [], []
    for i in range(n):
        a = (rng.random((40, 40, 3)) * 255 * (i + 1) / n).astype(np.uint8)
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
        mos.append(i / n)
    return paths, np.asarray(mos)


@pytest.mark.parametrize("mode", ["lora", "full", "p1", "p1_frozen"])
def test_finetune_split_resumes_to_the_same_numbers_and_selects_its_best_epoch(tmp_path, mode):
    paths, mos = _images(tmp_path)
    pp = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    job = HeadJob(np.arange(0, 8), np.arange(8, 11), np.arange(11, 14), seed=3)
    # p1: P1's loop (windows across epochs) and the last epoch reported too, in fp32 (bf16: test_p1_oracle.py)
    extra = {"accumulation": "p1", "report_last": True} if mode.startswith("p1") else {}
    tcfg = TrainConfig(epochs=3, batch_size=4, lr=1e-3, hidden=8, micro_batch=2, **extra)
    cfg = FinetuneConfig(mode=mode, epochs=3, lr_head=1e-3, lr_backbone=1e-4, micro_batch=2, batch_size=4,
                         precision="fp32")
    whole = finetune_split(_Tiny, pp, paths, mos, job, cfg, tcfg, ckpt=tmp_path / "a.pt")

    class Stop(Exception):
        pass

    def stop_after_first(msg):
        if msg.startswith("epoch 1/"):
            raise Stop

    with pytest.raises(Stop):
        finetune_split(_Tiny, pp, paths, mos, job, cfg, tcfg, ckpt=tmp_path / "b.pt", progress=stop_after_first)
    resumed = finetune_split(_Tiny, pp, paths, mos, job, cfg, tcfg, ckpt=tmp_path / "b.pt")
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    np.testing.assert_array_equal(resumed.predictions["pred"], whole.predictions["pred"])
    np.testing.assert_array_equal(resumed.last_predictions["pred"], whole.last_predictions["pred"])
    assert resumed.best_epoch == whole.best_epoch
    val = [h["val_srcc"] for h in whole.history]
    assert whole.best_epoch == int(np.argmax(val))                       # selection on val (clean protocol)
    # every epoch's test PLCC too (what P1's scripts write), scipy's Pearson r of that epoch's test predictions
    from scipy.stats import pearsonr
    last = whole.last_predictions[whole.last_predictions["part"] == "test"]
    assert whole.history[-1]["test_plcc"] == pytest.approx(pearsonr(last["pred"], last["mos"])[0], abs=1e-12)
    assert set(whole.predictions["part"]) == {"val", "test"} and len(whole.predictions) == 6
    # a checkpoint made for another run is not resumed
    other = finetune_split(_Tiny, pp, paths, mos, HeadJob(job.train_idx, job.val_idx, job.test_idx, seed=4), cfg,
                           tcfg, ckpt=tmp_path / "b.pt")
    assert [h["epoch"] for h in other.history] == [0, 1, 2]
    # a finished split keeps only its result (no weights, no Adam moments: they piled up to GBs per split), and
    # a rerun returns it without building a backbone
    done = torch.load(tmp_path / "a.pt", weights_only=False)
    assert done["epoch"] == 2 and not {"trainable", "opt", "rng"} & set(done)
    assert (tmp_path / "a.pt").stat().st_size < 20_000

    def no_backbone():
        raise AssertionError("a finished split built its backbone again")

    again = finetune_split(no_backbone, pp, paths, mos, job, cfg, tcfg, ckpt=tmp_path / "a.pt")
    pd.testing.assert_frame_equal(again.predictions, whole.predictions)
    pd.testing.assert_frame_equal(again.last_predictions, whole.last_predictions)
    assert again.best_epoch == whole.best_epoch and again.history == whole.history


def test_finetune_stage_trains_every_head_of_finetune_heads(tmp_path, monkeypatch):
    """Issue 20 item 2: the stage fine-tunes each head of ``finetune.heads`` with each regime (its own checkpoint
    key per head), writes them all with their ``head`` column, and the last epoch's predictions beside them
    (``train.report_last``); run.json labels the regime. finetune_split itself is replaced by a recorder (its
    numbers are tested above and against P1's code in test_p1_oracle.py)."""
    import json
    from pathlib import Path

    import pandas as pd

    import nriqa_lib.training.finetune as ft
    from nriqa_lib.core.params import ParamsView, load_params
    from nriqa_lib.data.splits import make_splits, save_splits
    from nriqa_lib.stages import finetune as stage
    from nriqa_lib.stages.datasets import open_dataset
    repo = Path(__file__).resolve().parents[2]
    clive = repo.parent / "shared" / "datasets" / "clive"
    if not (clive / "clive.csv").is_file():
        pytest.skip("needs ../shared")
    p = load_params(repo / "params-smoke.yaml")
    p.data.roots["clive"], p.data.limit = str(clive), 12
    p.finetune.backbones, p.finetune.regimes, p.finetune.heads = ["random_tf_efficientnet_lite0"], ["p1"], ["B", "B_Gated"]
    p.finetune.max_splits, p.finetune.fuse = 1, 1            # (fused runs: tests/training/test_fused.py)
    monkeypatch.chdir(tmp_path)
    view = ParamsView(p, stage.STAGE.params)
    man = open_dataset(view, "clive")
    assert len(man.table) == 12 and man.table["image"].str.startswith("images/").all()
    save_splits(make_splits(man.table, "p1"), Path("splits") / "clive.csv")
    calls = []

    def recorder(make_backbone, preprocess, paths, mos, job, cfg, tcfg, ckpt=None, **kw):
        calls.append((tcfg.head, cfg.mode, cfg.precision, tcfg.accumulation, ckpt))
        ev = np.concatenate([job.val_idx, job.test_idx])
        df = pd.DataFrame({"part": "test", "index": ev, "pred": float(len(calls)), "mos": mos[ev]})
        return ft.SplitResult(df, 0, [{"epoch": 0, "val_srcc": float("nan"), "test_srcc": 0.5}], 0.1,
                              df.assign(pred=-float(len(calls))))

    monkeypatch.setattr(ft, "finetune_split", recorder)
    stage.run(view, "clive")
    assert [c[:4] for c in calls] == [("B", "p1", "fp32", "p1"), ("B_Gated", "p1", "fp32", "p1")]
    assert calls[0][4] != calls[1][4]                                   # a checkpoint of its own per head
    out = Path("results/finetune/clive/random_tf_efficientnet_lite0/p1")
    pred, last = pd.read_csv(out / "predictions.csv"), pd.read_csv(out / "predictions_last.csv")
    assert pred.groupby("head")["pred"].first().to_dict() == {"B": 1.0, "B_Gated": 2.0}
    assert last.groupby("head")["pred"].first().to_dict() == {"B": -1.0, "B_Gated": -2.0}
    info = json.loads((out / "run.json").read_text())
    assert info["label"] == "P1's released train.py: LoRA adapters + every backbone weight"
    assert info["heads"] == ["B", "B_Gated"] and info["precision"] == "fp32"


def test_an_undefined_srcc_never_wins_and_all_undefined_reports_the_last_epoch(tmp_path, monkeypatch):
    """Issue 35 item 5: P1 keeps a best only when ``SRCC > best_SRCC`` (NaN never is; all NaN: no best checkpoint,
    and its results are the last epoch's). Ours: an epoch whose selection SRCC is undefined never wins, and if
    every epoch's is, the last epoch is reported. Constant predictions (SRCC undefined) come from a backbone whose
    features are all zero (the head then gives every image the same score, whatever training does to it)."""
    paths, mos = _images(tmp_path)
    pp = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    job = HeadJob(np.arange(0, 8), np.arange(8, 11), np.arange(11, 14), seed=3)
    tcfg = TrainConfig(epochs=3, batch_size=4, lr=1e-3, hidden=8)
    cfg = FinetuneConfig(mode="full", epochs=3, lr_head=1e-3, precision="fp32")

    class Zero(_Tiny):
        def forward(self, x):
            return super().forward(x) * 0

    res = finetune_split(Zero, pp, paths, mos, job, cfg, tcfg)
    assert all(not np.isfinite(h["val_srcc"]) for h in res.history) and res.best_epoch == 2
    assert all(np.isnan(h["test_plcc"]) for h in res.history)


# one entry per family and library (SigLIP2's ViT-B: the same open_clip timm trunk and fused qkv as so400m, 20 s less
# to build; tests/backbones/test_backbones.py builds every entry of the registry at full size)
FAMILIES = ["clip_vit_b16", "clip_rn50", "siglip2_vit_b16", "dinov2_vitb14", "dinov3_vitb16", "pe_core_b16",
            "resnet50", "tf_efficientnet_lite0", "clip_vit_b16_hf", "dinov2_vitb14_hf", "dinov3_vitb16_hf",
            "resnet152_hf"]


@pytest.mark.parametrize("name,mode", [(n, "lora") for n in FAMILIES] + [("clip_vit_b16", "p1")])
def test_a_checkpoint_of_every_family_loads_strictly(name, mode):
    """Issue 22 item 1: a checkpoint holds what state_dict holds (trained tensors + persistent buffers); the
    non-persistent buffers (CLIP attn_mask, DINOv3/PE RoPE tables) are rebuilt, so a resume loads strictly on the
    real architecture of every registry family (random weights, 64 px). Before: CLIP, DINOv3 and PE raised
    'Unexpected key(s) in state_dict' (measured: these 3 of the 8 failed with the old checkpoint contents).
    Resuming to the same numbers is tested above (test_finetune_split_resumes_...)."""
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.training.finetune import ImageIQAModel, _groups, _trainable_state

    def build():
        bb = create_backbone(name, pretrained=False, image_size=64)
        head = build_head("B", bb.dim, hidden=8)
        feats, _ = _groups(bb, head, FinetuneConfig(mode=mode, precision="fp32"))
        return ImageIQAModel(feats, head)

    a = build()
    b = copy.deepcopy(a)                                     # the same keys and buffers as a fresh build
    state = _trainable_state(a)
    persistent = set(a.state_dict())
    assert set(state) <= persistent and any("lora_" in k for k in state)     # adapters went somewhere
    assert not ({n for n, _ in a.named_buffers()} - persistent) & set(state)
    b.load_state_dict({**b.state_dict(), **state})          # strict: raised for CLIP/DINOv3/PE before


def test_pixels_decoded_once_are_p1s_squash_and_give_the_same_finetuning(tmp_path, monkeypatch):
    """Issue 22 item 11: the pixel cache holds P1's squash (dataset.py: Image.open(p).convert('RGB').resize((S, S)),
    PIL's default filter, bicubic) of every image, PNG and JPEG, any aspect; fine-tuning from it gives the decoded
    path's predictions to the last digit; a second call reads the cache (no decode), and another size is another
    entry."""
    import pandas as pd
    from conftest import write_manifest

    from nriqa_lib.training import pixels as px
    from nriqa_lib.data.manifest import load_dataset
    paths, mos = _images(tmp_path)
    jpg = tmp_path / "wide.jpg"
    Image.fromarray((np.random.default_rng(1).random((30, 70, 3)) * 255).astype(np.uint8)).save(jpg, quality=80)
    write_manifest(tmp_path / "m", "toy", pd.DataFrame({"image": [p.name for p in paths] + [jpg.name],
                                                       "mos": [*mos, 0.5], "group": [str(i) for i in range(15)]}))
    man = load_dataset("toy", {"toy": str(tmp_path)}, manifest_dir=tmp_path / "m", decode=True)
    arr = px.squashed_images(man, 32, "bicubic", tmp_path / "cache", progress=False)
    for i, p in enumerate(man.paths()):
        with Image.open(p) as im:
            p1 = np.asarray(im.convert("RGB").resize((32, 32)))        # P1's line, PIL's default filter
        assert np.array_equal(arr[i], p1), p.name
    calls = []
    monkeypatch.setattr(px, "squash", lambda *a: calls.append(a))
    again = px.squashed_images(man, 32, "bicubic", tmp_path / "cache", progress=False)
    assert calls == [] and np.array_equal(again, arr)
    monkeypatch.undo()
    assert px.squashed_images(man, 24, "bicubic", tmp_path / "cache", progress=False).shape == (15, 24, 24, 3)
    assert len(list((tmp_path / "cache").glob("pixels_*.npy"))) == 2
    assert not list((tmp_path / "cache").glob(".tmp-*"))
    pp = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    job = HeadJob(np.arange(0, 8), np.arange(8, 11), np.arange(11, 14), seed=3)
    tcfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, hidden=8, micro_batch=2, accumulation="p1")
    cfg = FinetuneConfig(mode="p1", epochs=2, lr_head=1e-3, micro_batch=2, batch_size=4, precision="fp32")
    mos_all = man.table["mos"].to_numpy(dtype=np.float64)
    decoded = finetune_split(_Tiny, pp, man.paths(), mos_all, job, cfg, tcfg)
    cached = finetune_split(_Tiny, pp, man.paths(), mos_all, job, cfg, tcfg, pixels=arr)
    np.testing.assert_array_equal(cached.predictions["pred"], decoded.predictions["pred"])
    with pytest.raises(ValueError, match="not 15 images squashed to 32 px"):
        finetune_split(_Tiny, pp, man.paths(), mos_all, job, cfg, tcfg, pixels=arr[:, :24, :24])


@pytest.mark.parametrize("name", ["clip_vit_b16", "dinov2_vitb14", "tf_efficientnet_lite0"])
def test_p1_frozen_trains_adapters_and_head_only_on_every_lora_placement(name):
    """Issue 35: P1 as published (p1_frozen) on each adapter placement (open_clip's MHA parametrization, timm's
    fused qkv, peft's conv LoRA): in P1's bf16 the backbone is bf16 and frozen, the adapters fp32 and the only
    trainable backbone tensors, one Adam group with the head; two optimiser steps (fp32: bf16 matmuls are slow on
    CPUs without AMX) move adapters and head and leave every backbone weight as it was."""
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.training.finetune import ImageIQAModel, _groups, _loss
    for precision in ("bf16", "fp32"):
        cfg = FinetuneConfig(mode="p1_frozen", precision=precision, lr_head=1e-2)
        bb = create_backbone(name, pretrained=False, image_size=64)
        head = build_head("B_Gated", bb.dim, hidden=8)
        feats, groups = _groups(bb, head, cfg)
        train = {n for n, p in feats.named_parameters() if p.requires_grad}
        assert train and all("lora_" in n for n in train)
        assert {p.dtype for n, p in feats.named_parameters() if n in train} == {torch.float32}
        assert ({p.dtype for n, p in feats.named_parameters() if n not in train}
                == {torch.bfloat16 if precision == "bf16" else torch.float32})
        assert len(groups) == 1 and len(groups[0]["params"]) == len(train) + len(list(head.parameters()))
    before = {n: p.detach().clone() for n, p in feats.named_parameters()}
    model, opt = ImageIQAModel(feats, head).train(), torch.optim.Adam(groups)
    x, y = torch.randn(4, 3, 64, 64), torch.linspace(0.1, 0.9, 4)
    for _ in range(2):
        opt.zero_grad()
        _loss(model, x, y, cfg)
        opt.step()
    moved = {n for n, p in feats.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= train


class _Payload:
    """Unpickling this runs code (writes a marker file): what a checkpoint must never be able to do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "executed"))


def test_a_checkpoint_is_never_unpickled_and_an_unreadable_one_starts_over(tmp_path, capsys):
    """Issue 37 S3: fine-tuning checkpoints (a shared cache) load with ``weights_only=True``: a file whose pickle
    would run code is refused (the code does not run), said in one line, and the split starts over to the same
    numbers as a fresh run; a checkpoint of this format (predictions stored as tensors) still resumes."""
    paths, mos = _images(tmp_path)
    pp = Preprocess(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    job = HeadJob(np.arange(0, 8), np.arange(8, 11), np.arange(11, 14), seed=3)
    tcfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, hidden=8)
    cfg = FinetuneConfig(mode="lora", epochs=2, lr_head=1e-3, precision="fp32")
    fresh = finetune_split(_Tiny, pp, paths, mos, job, cfg, tcfg)
    bad, marker = tmp_path / "bad.pt", tmp_path / "marker.txt"
    torch.save({"cfg_id": _Payload(marker)}, bad)
    got = finetune_split(_Tiny, pp, paths, mos, job, cfg, tcfg, ckpt=bad)
    assert not marker.exists()
    assert "not a checkpoint this version reads" in capsys.readouterr().err
    np.testing.assert_array_equal(got.predictions["pred"], fresh.predictions["pred"])
    done = torch.load(bad, weights_only=True)            # rewritten in the safe format
    assert isinstance(done["best"][2], torch.Tensor) and done["epoch"] == 1
