"""Which floating-point dtype a model runs in: bf16 where the hardware multiplies it fast, fp32 elsewhere.

One place for the whole project (generation, log-likelihood scoring, training) so that every
artifact records the same decision. `auto` means bfloat16 on a CUDA device that supports it and
on CPUs with native bf16 matrix instructions (AVX512-BF16 or AMX); float32 everywhere else, where
bf16 would be emulated and slower than fp32. Explicit names force a dtype. Left out: float16 on
CPU by default (no fast kernels there) and any int8/quantized path.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..errors import HeirloomError

DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16", "float64")  # float64: exact-equality tests
# Accepted spellings -> canonical name (torch attribute names).
_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
            "fp64": "float64", "double": "float64"}
# /proc/cpuinfo flags that mean bf16 matmuls run natively (not emulated through fp32).
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def _cpu_flags() -> set[str]:
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU has AVX512-BF16 or AMX-BF16 and torch's oneDNN can use them."""
    if not any(flag in _cpu_flags() for flag in _BF16_FLAGS):
        return False
    import torch

    # The CPU flag alone is not enough: a torch build without oneDNN bf16 kernels would emulate.
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def canonical_dtype(dtype: str | None) -> str:
    """The canonical name ('auto', 'float32', ...) of a user-given dtype string; HeirloomError if unknown."""
    name = "auto" if dtype is None else str(dtype).strip().lower().removeprefix("torch.")
    name = _ALIASES.get(name, name)
    if name not in DTYPE_CHOICES:
        raise HeirloomError(f"dtype {dtype!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    return name


def resolve_dtype(dtype: str | None = "auto", device: str | None = "cpu"):
    """The torch dtype to run in on `device` ('cpu', 'cuda', 'cuda:1', ...) for a requested `dtype`."""
    import torch

    name = canonical_dtype(dtype)
    if name != "auto":
        return getattr(torch, name)
    device = str(device or "cpu")
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if device == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype) -> str:
    """'bfloat16' for torch.bfloat16 (for provenance and benchmark records)."""
    return str(dtype).removeprefix("torch.")
