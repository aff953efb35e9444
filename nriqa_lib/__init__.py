"""nriqa: a reproducible study of no-reference IQA (P1: arXiv 2509.17374; P2: arXiv 2511.09948).

The flow, one package per layer:
  data/ backbones/ heads/       inputs: manifests and splits, feature extractors, quality heads (registries)
  features/ training/ zeroshot/ computation: decode, views, extraction and its cache; head training, the split
                                protocol, fine-tuning; P2's zero-shot scores
  stages/                       one module per DVC stage (declares the params it reads; the only readers of params)
  analysis/                     the tables: functions of saved predictions and scores
  reporting/                    export, figures, the report and its verdicts
  core/                         params, file layout, atomic writes, the cache, metrics, statistics, devices
  cli.py estimate.py bench.py   the entry points
See README.md and ../shared/docs/STUDY_SPEC.md.
"""
import os as _os

__version__ = "0.1.0"


def pin_cpu_kernels() -> dict[str, str]:
    """Make torch's CPU results the same on every x86 CPU with AVX2 (AVX-512 ones included): ATen's vectorised
    kernels, MKL's BLAS branch and oneDNN's convolutions all use their AVX2 code paths (ATEN_CPU_CAPABILITY,
    MKL_CBWR, ONEDNN_MAX_CPU_ISA; a value the user exported wins). Measured on this project's CPU: each knob
    changes head training or Lite0 features in their last bits when set to another path, and the AVX2 values
    reproduce the default results bit for bit. Nothing is set on CPUs without AVX2 (torch would crash on a
    capability the CPU lacks) or outside Linux; NRIQA_NATIVE_KERNELS=1 keeps each library's own choice.
    Must run before torch computes anything: this package sets it on import. Returns what it set."""
    if _os.environ.get("NRIQA_NATIVE_KERNELS") == "1":
        return {}
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return {}
    if "avx2" not in flags or "fma" not in flags:
        return {}
    want = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    return {k: _os.environ.setdefault(k, v) for k, v in want.items()}


pin_cpu_kernels()
