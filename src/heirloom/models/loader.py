"""Load any model reference into transformers, with a cache for dequantized GGUFs.

Dequantizing a GGUF takes ~20 s on a laptop CPU. transformers refuses to
`save_pretrained` a GGUF-loaded model as it is, so the first load rebuilds a
plain model from its config and state dict and saves that under the cache
directory (`$HEIRLOOM_CACHE`, default `~/.cache/heirloom`); later loads read the
safetensors directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from ..errors import HeirloomError
from .embedded import EMBEDDED


@contextlib.contextmanager
def quiet_loading():
    """No transformers progress bars ("Loading weights", GGUF dequantization) inside: they ignored
    `--quiet`, and heirloom's own bars already say which stage runs."""
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    gguf_tqdm = gguf_utils.tqdm  # the GGUF dequantization bar is a plain tqdm the switch above misses
    gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = gguf_tqdm
        if was:
            hf_logging.enable_progress_bar()


def cache_root() -> Path:
    return Path(os.environ.get("HEIRLOOM_CACHE", Path.home() / ".cache" / "heirloom"))


def _gguf_cache_dir(gguf: Path) -> Path:
    import transformers

    st = gguf.stat()
    # Size + name + transformers version: a new file or a new dequantizer makes a new entry.
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{transformers.__version__}|v2".encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{gguf.stem}-{key}"


def resolve_local(name: str) -> tuple[Path | None, Path | None]:
    """(gguf file, directory) that `name` points at, either may be None."""
    if name in EMBEDDED:
        return EMBEDDED[name].locate(), None
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HeirloomError(f"model {name!r}: no such GGUF file")
        return path, None
    if path.is_dir():
        return None, path
    return None, None


def cached_path(name: str) -> Path | None:
    """Where a GGUF-based model's dequantized copy lives, if it has been made."""
    gguf, _ = resolve_local(name)
    if gguf is None:
        return None
    d = _gguf_cache_dir(gguf)
    return d if (d / "config.json").exists() else None


def _dequantize_to_cache(gguf: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _gguf_cache_dir(gguf)
    if (target / "config.json").exists():
        return target
    with quiet_loading():
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    # The GGUF origin is recorded as a quantization config; the dequantized weights are plain
    # float tensors, and leaving it in makes the Trainer refuse to fine-tune them.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_loading():
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a half-written cache entry is never visible
    except OSError:
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same entry first
    return target


def local_path(name: str) -> str:
    """A path or hub id that `from_pretrained` can read (dequantizing GGUFs once)."""
    gguf, directory = resolve_local(name)
    if gguf is not None:
        return str(_dequantize_to_cache(gguf))
    return str(directory) if directory is not None else name


def pick_device(device: str | None = None) -> str:
    import torch

    if device and device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    path = local_path(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise _not_found(name, e) from None


def model_path(name: str) -> str:
    """`local_path` for loading a model's weights: a directory must hold a model, or a one-line error
    says so (transformers would answer a random folder with a traceback or a hub lookup)."""
    from .check import check_model_dir

    _, directory = resolve_local(name)
    if directory is not None:
        check_model_dir(directory, name)
    return local_path(name)


def load_hf(name: str, device: str | None = None, dtype: str | None = None):
    """(model, tokenizer) for an alias, GGUF file, local directory or hub id.

    `dtype`: None keeps full precision on a CPU (bfloat16 on a GPU): what training and weight
    comparisons want; "auto" is `precision.resolve_dtype` (bfloat16 also on CPUs with native bf16,
    for generation and scoring); a name forces that dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .precision import resolve_dtype

    path = model_path(name)
    device = pick_device(device)
    if dtype is None:
        torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    else:
        torch_dtype = resolve_dtype(dtype, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as e:
        raise _not_found(name, e) from None
    model.to(device).eval()
    return model, tokenizer


def _not_found(name: str, error: Exception) -> HeirloomError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return HeirloomError(
        f"model {name!r}: not an embedded alias ({', '.join(EMBEDDED)}), a .gguf file, "
        f"a local directory, nor loadable from the Hugging Face hub ({first})"
    )
