"""Generation backends behind one batch-first interface (see `base.py`)."""

from __future__ import annotations

from ..errors import HeirloomError
from ..models.refs import ModelRef
from .base import Backend, Completion, LoglikResult, SamplingParams


def make_backend(ref: ModelRef | str, **options) -> Backend:
    """The backend a model reference asks for; `options` go to its constructor."""
    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    if ref.backend == "hf":
        from .hf import HFBackend

        return HFBackend(ref.name, **options)
    if ref.backend == "openai":
        from .openai import OpenAIBackend

        if ref.api_key_env:
            options.setdefault("api_key_env", ref.api_key_env)
        return OpenAIBackend(ref.name, base_url=ref.base_url.split(","), **options)
    if ref.backend == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(ref.name, **options)
    if ref.backend == "ray":
        from .ray_replicas import RayBackend

        return RayBackend(ref.name, **options)
    raise HeirloomError(f"model {ref}: unknown backend {ref.backend!r}")


__all__ = ["Backend", "Completion", "LoglikResult", "SamplingParams", "make_backend"]
