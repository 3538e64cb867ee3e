"""What a user types to name a model, parsed once.

    smollm2-135m                       an embedded alias (see `heirloom models`)
    HuggingFaceTB/SmolLM2-135M-Instruct a hub id (needs the hub) or ./local/dir
    path/to/model.gguf                 a GGUF file, dequantized into transformers
    hf:NAME / vllm:NAME                pick the backend explicitly
    openai:MODEL@http://host:8000/v1   a model behind an OpenAI-compatible server
    openai:MODEL@http://a/v1,http://b/v1  the same model on several servers, one pool
    ray:REF                            REF (any of the above) on replicas across a Ray cluster
    NAME:REST                          any other registered backend (`heirloom.backends` plugins)

The prefixes are the backend registry's names (`generation.registry`); a prefix
that names no backend is part of the name (a Windows drive, `C:\\models\\x`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HeirloomError


def _backend_names() -> list[str]:
    from ..generation.registry import backend_names  # lazily: generation imports this module

    return backend_names()


@dataclass(frozen=True)
class ModelRef:
    name: str
    backend: str = "hf"
    base_url: str | None = None  # comma-separated when the model is served by several replicas
    api_key_env: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        text = text.strip()
        if not text:
            raise HeirloomError("model reference is empty")
        backend, sep, rest = text.partition(":")
        if not sep or rest.startswith("//") or backend not in _backend_names():
            return cls(name=text)  # plain alias, hub id, path (Windows drive letters included)
        if backend == "openai":
            model, at, url = rest.rpartition("@")
            urls = [u.strip().rstrip("/") for u in url.split(",")]
            if not at or not model or not all(u.startswith(("http://", "https://")) for u in urls):
                raise HeirloomError(f"model {text!r}: write openai:MODEL@http://host:port/v1 "
                                    "(several servers: comma-separated URLs)")
            if len(set(urls)) != len(urls):
                raise HeirloomError(f"model {text!r}: a URL is listed twice")
            return cls(name=model, backend="openai", base_url=",".join(urls))
        if not rest:
            raise HeirloomError(f"model {text!r}: missing model name after '{backend}:'")
        if backend == "ray":
            inner = cls.parse(rest)  # checked now, loaded by each replica
            if inner.backend == "ray":
                raise HeirloomError(f"model {text!r}: ray: inside ray: makes no sense")
        return cls(name=rest, backend=backend)

    @property
    def identity(self) -> str:
        """What the model is, not where it runs: the teacher's name in a pool, and what a run's
        generate stage is keyed on. Server URLs and Ray replicas are left out (samples carry
        per-sample seeds, so they do not depend on which server or replica made them): adding
        a server to a pool or moving a model onto a Ray cluster does not restart a run."""
        if self.backend == "openai":
            return f"openai:{self.name}"
        if self.backend == "ray":
            return ModelRef.parse(self.name).identity
        return str(self)

    def __str__(self) -> str:
        if self.backend == "openai":
            return f"openai:{self.name}@{self.base_url}"
        return self.name if self.backend == "hf" else f"{self.backend}:{self.name}"
