"""dtype selection: bf16 only where the CPU multiplies it natively, names force a dtype."""

import pytest
import torch

from heirloom.errors import HeirloomError
from heirloom.models import precision


@pytest.fixture
def cpu_flags(monkeypatch):
    def set_flags(flags: set[str], onednn: bool = True):
        precision.cpu_supports_bf16.cache_clear()
        monkeypatch.setattr(precision, "_cpu_flags", lambda: flags)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn, raising=False)
    yield set_flags
    precision.cpu_supports_bf16.cache_clear()


@pytest.mark.parametrize("flags,onednn,expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, True, torch.bfloat16),  # e.g. AMD Zen 4, Intel Cooper Lake
    ({"avx2", "amx_tile", "amx_bf16"}, True, torch.bfloat16),  # Intel Sapphire Rapids
    ({"avx2", "avx512f"}, True, torch.float32),  # AVX-512 without bf16: emulated, slower than fp32
    ({"avx512_bf16"}, False, torch.float32),  # a torch build without oneDNN bf16 kernels
    (set(), True, torch.float32),  # no /proc/cpuinfo (macOS, Windows)
])
def test_auto_on_cpu_follows_the_bf16_instructions(cpu_flags, flags, onednn, expected):
    cpu_flags(flags, onednn)
    assert precision.resolve_dtype("auto", "cpu") == expected
    assert precision.resolve_dtype(None, "cpu") == expected


def test_names_force_a_dtype_whatever_the_cpu(cpu_flags):
    cpu_flags(set())
    assert precision.resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert precision.resolve_dtype("bf16") == torch.bfloat16
    cpu_flags({"avx512_bf16"})
    assert precision.resolve_dtype("float32", "cpu") == torch.float32
    assert precision.resolve_dtype("fp32") == torch.float32
    assert precision.resolve_dtype("torch.float16") == torch.float16
    assert precision.resolve_dtype("float64") == torch.float64


def test_auto_on_cuda_without_a_gpu_is_float32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.resolve_dtype("auto", "cuda:0") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_dtype("auto", "cuda") == torch.bfloat16


def test_unknown_dtype_is_a_one_line_error():
    with pytest.raises(HeirloomError, match="dtype 'int8': expected one of auto, float32, bfloat16"):
        precision.resolve_dtype("int8")


def test_reads_the_flags_line_of_proc_cpuinfo(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_bf16 sse\n\nprocessor\t: 1\n")
    monkeypatch.setattr(precision, "CPUINFO", info)
    assert precision._cpu_flags() == {"fpu", "avx2", "avx512_bf16", "sse"}
    assert precision.dtype_name(torch.bfloat16) == "bfloat16"
