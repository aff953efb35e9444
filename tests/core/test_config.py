"""nriqa_lib.core.config: the pydantic models are the one source of defaults, ranges and choices (issue 24 item 3)."""
import dataclasses
import inspect

import pytest
from pydantic import ValidationError

from conftest import library_modules, module_members
from nriqa_lib.core.config import ConfigError, Params, Train, validation_message

# a library argument that shares a params key's name but is another knob (or a deliberate call-site default)
OTHER_MEANING = {
    "power_curves.max_splits": "how far a power curve is drawn, not finetune.max_splits",
    "splits_for_power.max_splits": "the search limit of the power calculation, not finetune.max_splits",
    "bench_heads.epochs": "the benchmark's own workload", "bench_heads_roofline.epochs": "the benchmark's workload",
    "Assumptions.workers": "the GPU machine the cost estimate assumes, not this run's run.workers",
    "FinetuneConfig.batch_size": "0 = each batch's own size; the stage passes train.batch_size",
    "ridge_predictions.alphas": "ridge penalties, not MA-CLIP's t4.alphas",
    "jobs_from_splits.seeds_per_split": "1 for the callers that train one head per split (cross, figures, "
                                        "fine-tuning); run_heads passes train.seeds_per_split",
    "fuse.alpha": "MA-CLIP's fusion slope, not stats.alpha", "MAClipConfig.alpha": "MA-CLIP's fusion slope",
    "clip_view_embeddings.chunk_size": "the zero-shot view cache's chunks (no params knob)",
    "clipiqa_scores.chunk_size": "the zero-shot score cache's chunks (no params knob)",
}
# library names of a params key: FinetuneConfig's lr_head is train.lr, its precision finetune.p1_precision
ALIAS = {"lr_head": "lr", "precision": "p1_precision"}
# a library call without a device computes on the CPU, the same numbers on every machine; stages resolve 'auto'
EXPLICIT = {"device": "cpu", "amp": "off"}


def _library_defaults():
    for mod in library_modules(skip={"nriqa_lib.core.config"}):
        for name, obj in module_members(mod):
            if inspect.isfunction(obj) or dataclasses.is_dataclass(obj):
                for arg, prm in inspect.signature(obj).parameters.items():
                    if prm.default is not inspect.Parameter.empty and prm.default is not None:
                        yield f"{name}.{arg}", ALIAS.get(arg, arg), prm.default


def _plain(v):
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else (float(v) if hasattr(v, "dtype") else v)


def test_library_defaults_never_contradict_params_yaml():
    """A library default with the name of a params key equals that key's default in some section (the stage passes
    the value anyway; a call from a notebook or test then gets params.yaml's behaviour, not another one)."""
    params = {}
    for sec, info in Params.model_fields.items():
        for key, f in info.annotation.model_fields.items():
            params.setdefault(key, []).append(_plain(f.get_default(call_default_factory=True)))
    seen, bad = 0, []
    for where, arg, default in _library_defaults():
        if arg not in params:
            continue
        seen += 1
        if where in OTHER_MEANING or EXPLICIT.get(arg) == str(default):
            continue
        if _plain(default) not in params[arg]:
            bad.append(f"{where}={default!r} (params.yaml: {params[arg]})")
    assert seen > 20 and not bad, bad


def test_every_numeric_knob_has_a_range_and_the_message_says_it():
    """Every int/float key has bounds in its Field; the error names the key and the range, from those bounds."""
    for sec, info in Params.model_fields.items():
        model = info.annotation
        for key, f in model.model_fields.items():
            if f.annotation not in (int, float) or (sec, key) == ("t1", "head"):
                continue
            lows = [m for m in f.metadata if getattr(m, "ge", None) is not None or getattr(m, "gt", None) is not None]
            assert lows, f"{sec}.{key} has no lower bound"
            with pytest.raises(ValidationError) as e:
                Params.model_validate({sec: {key: -1}})
            msg = validation_message(e.value)
            assert msg.startswith(f"params: {sec}.{key}=-1") and "out of range; allowed: " in msg, msg


def test_types_are_yaml_s_own():
    """strict: a quoted number is not a number, true is not an int; an int for a float knob is that float."""
    for raw, pattern in [({"train": {"epochs": "12"}}, "train.epochs should be int, got '12'"),
                         ({"train": {"epochs": True}}, "train.epochs should be int, got True"),
                         ({"t1": []}, "t1 must be a mapping, got list"),
                         ({"run": {"amp": "fp16"}}, "run.amp='fp16'; use auto, bf16 or off"),
                         ({"finetune": {"regimes": ["lora", "qlora"]}}, "finetune.regimes[1]='qlora'; use p1_frozen, p1, lora or full"),
                         ({"t4": {"biases": []}}, "t4.biases is empty; give at least one value"),
                         # issue 37 T1/T2: each raised a traceback in a stage after `check` had passed
                         ({"train": {"seed": 2**64}}, "train.seed=18446744073709551616 is out of range; allowed: in "
                                                      "[0, 2147483647]"),
                         ({"t3": {"candidates": []}}, "t3.candidates=[]; give at least two distinct activations "
                                                      "(the K-way head selects among them per channel)"),
                         ({"t3": {"candidates": ["relu", "relu"]}}, "t3.candidates=['relu', 'relu']; give at least "
                          "two distinct activations (the K-way head selects among them per channel)")]:
        with pytest.raises(ValidationError) as e:
            Params.model_validate(raw)
        assert validation_message(e.value) == "params: " + pattern
    p = Params.model_validate({"features": {"jpeg_draft": 2}, "t1": None})
    assert p.features.jpeg_draft == 2.0 and isinstance(p.features.jpeg_draft, float) and p.t1.head == "B"


def test_per_dataset_overrides_are_checked_like_the_section():
    with pytest.raises(ValidationError) as e:
        Params.model_validate({"train": {"per_dataset": {"clive": {"epochs": 0}}}})
    assert validation_message(e.value) == "params: train.per_dataset.clive.epochs=0 is out of range; allowed: in [1, 10000]"
    with pytest.raises(ValidationError) as e:
        Params.model_validate({"train": {"per_dataset": {"clive": {"epoch": 3}}}})
    assert validation_message(e.value).startswith("params: train.per_dataset.clive.epoch is not a train key")
    assert Train.model_validate({"per_dataset": {"clive": {"epochs": 30}}}).per_dataset == {"clive": {"epochs": 30}}
    assert issubclass(ConfigError, ValueError)
