"""A model's family (its base model line) and its architecture, read without loading it.

Provenance only: does a teacher share a family with the student? (Some traits transfer only
between models of one base.) Two separate facts:

- `family(ref)`: the model line, e.g. "smollm", "llama", "gemma", "mistral", "qwen". Taken, in
  order, from an embedded model's declared `family`; a local directory's `config.json`
  `_name_or_path` / `name_or_path` / `_model_name_or_path` (or a PEFT adapter's
  `base_model_name_or_path`); a GGUF file's `general.basename` / `general.name` (header only);
  and last the name itself (a hub id, a served model's name, an imported `generator`) matched
  against `FAMILY_TOKENS`. A fine-tune counts as its base when its name says so:
  "FuseChat-Llama-3.1-8B-Instruct" is "llama", "DeepSeek-R1-Distill-Qwen-7B" is "qwen".
- `model_type(ref)`: the architecture, `config.json` `model_type` (or a GGUF's
  `general.architecture`, llama.cpp's name for it). Not a family: SmolLM2 is a "llama"
  architecture and shares no weights with Llama 3.

Left out, by design: anything that would load weights or reach the hub. A name that carries
no known token ("Conifer-7B-DPO", "Ein-70B-v0.1"), or names two families ("Qwen-distilled-
from-GPT4"), has family None: unknown, never a guess. A family is a model line, not a
checkpoint: Llama 2 and Llama 3 are both "llama", so "same" is necessary, not sufficient, for
a shared base. Merges and fusions (FuseChat fuses several source models into one) are labelled
by the base their name states, although other families contributed to them.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from .embedded import EMBEDDED
from .refs import ModelRef

# family -> the name tokens that mark it (case-insensitive; a token must not touch other
# letters, digits and punctuation may: "Qwen2.5", "SmolLM2", "meta-llama/Llama-3"). Base model
# lines only, plus the maker's own variants; community fine-tune names (Zephyr, Vicuna, ...)
# are not listed: a fine-tune is recognized when its name states its base.
FAMILY_TOKENS: dict[str, tuple[str, ...]] = {
    "smollm": ("smollm",),
    "llama": ("llama", "codellama"),
    "tinyllama": ("tinyllama",),  # pretrained from scratch on the Llama architecture
    "gemma": ("gemma", "codegemma"),
    "gemini": ("gemini",),
    "mistral": ("mistral", "mistralai", "mixtral", "ministral", "codestral", "mathstral"),
    "qwen": ("qwen", "qwq", "codeqwen"),
    "phi": ("phi",),
    "olmo": ("olmo", "olmoe"),
    "falcon": ("falcon",),
    "deepseek": ("deepseek",),
    "yi": ("yi",),
    "internlm": ("internlm",),
    "baichuan": ("baichuan",),
    "glm": ("glm", "chatglm"),
    "granite": ("granite",),
    "cohere": ("command-r", "c4ai", "aya"),
    "stablelm": ("stablelm",),
    "starcoder": ("starcoder",),
    "bloom": ("bloom", "bloomz"),
    "mpt": ("mpt",),
    "jamba": ("jamba",),
    "eleutherai": ("gpt-neox", "gpt-neo", "gpt-j", "pythia"),
    "gpt": ("gpt", "chatgpt"),
    "claude": ("claude",),
}

_TOKEN_FAMILY = {tok: fam for fam, toks in FAMILY_TOKENS.items() for tok in toks}
# Longest first, so "gpt-neox" is read before "gpt" and "tinyllama" before "llama".
_TOKENS = "|".join(re.escape(t) for t in sorted(_TOKEN_FAMILY, key=len, reverse=True))
_TOKEN_RE = re.compile(rf"(?<![a-z])({_TOKENS})(?![a-z])")
# "<teacher>-Distill-<base>" (DeepSeek's naming): the base is the family named right after it.
_DISTILL_RE = re.compile(rf"distill(?:ed)?[-_ .]*(?<![a-z])({_TOKENS})(?![a-z])")
_NAME_KEYS = ("_name_or_path", "name_or_path", "_model_name_or_path")


def family_from_name(name: str) -> str | None:
    """The family a model's name states (`FAMILY_TOKENS`); None when it states none or several."""
    text = name.lower()
    distilled = _DISTILL_RE.search(text)
    if distilled:
        return _TOKEN_FAMILY[distilled.group(1)]
    found = {_TOKEN_FAMILY[m.group(1)] for m in _TOKEN_RE.finditer(text)}
    return found.pop() if len(found) == 1 else None


def family(text: str) -> str | None:
    """The model family/base of a model reference (see the module docstring); None if unknown."""
    try:
        ref = _unwrap(text)
        if ref is None:
            return family_from_name(text)
        if ref.backend == "openai":  # a served model: only its name is at hand
            return family_from_name(ref.name)
        if ref.name in EMBEDDED and EMBEDDED[ref.name].family:
            return EMBEDDED[ref.name].family
        path = _local_file(ref.name)
        if path is not None and path.is_dir():
            for name in _dir_names(path):
                if fam := family_from_name(_tail(name)):
                    return fam
            return family_from_name(path.name)
        if path is not None and path.suffix == ".gguf":
            meta = gguf_general(path)
            for key in ("general.basename", "general.name"):
                if fam := family_from_name(str(meta.get(key, ""))):
                    return fam
            return family_from_name(path.stem)
        return family_from_name(ref.name)
    except Exception:  # provenance only: never fail a run over it
        return None


def model_type(text: str) -> str | None:
    """The architecture: a local or embedded model's `config.json` `model_type` (a GGUF's
    `general.architecture`), without loading it; None if not at hand."""
    try:
        ref = _unwrap(text)
        if ref is None or ref.backend == "openai":
            return None
        path = _local_file(ref.name)
        if path is not None and path.is_dir():
            config = path / "config.json"
            return (_read_json(config).get("model_type") or None) if config.is_file() else None
        if path is not None and path.suffix == ".gguf":
            return gguf_general(path).get("general.architecture") or None
        return None
    except Exception:  # provenance only: never fail a run over it
        return None


def same_family(teacher: str | None, student: str | None) -> str:
    """"same" | "different" | "unknown" for two families (None: unknown)."""
    if teacher is None or student is None:
        return "unknown"
    return "same" if teacher == student else "different"


def _unwrap(text: str) -> ModelRef | None:
    try:
        ref = ModelRef.parse(text)
    except Exception:  # not a model reference (an imported generator's free-form name)
        return None
    while ref.backend == "ray":
        ref = ModelRef.parse(ref.name)
    return ref


def _local_file(name: str) -> Path | None:
    """The embedded model's GGUF, or the local directory / GGUF file `name` names; else None."""
    if name in EMBEDDED:
        model = EMBEDDED[name]
        return model.locate() if model.installed() else None
    path = Path(name).expanduser()
    return path if path.is_dir() or (path.suffix == ".gguf" and path.is_file()) else None


def _read_json(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _dir_names(path: Path) -> list[str]:
    """Names a saved model's directory records for what it was made from."""
    names = []
    for file, keys in (("config.json", _NAME_KEYS), ("adapter_config.json", ("base_model_name_or_path",))):
        if (path / file).is_file():
            data = _read_json(path / file)
            names += [data[k] for k in keys if isinstance(data.get(k), str) and data[k]]
    return names


def _tail(name: str) -> str:
    """A hub id as is ("meta-llama/Llama-3.1-8B": the org names the family too); of a path, its last
    part (the folders above it say where it was stored, not what it is)."""
    if name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1:
        return Path(name.replace("\\", "/")).name
    return name


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_MAX_STRING = 1 << 20  # a corrupt length must not make us allocate the file size


def gguf_general(path: Path) -> dict[str, str]:
    """The string `general.*` metadata of a GGUF file (v2+), read from its header only: the
    writer puts `general.*` first, so reading stops at the first other key after them, before
    the vocabulary. {} when the file is not a readable GGUF."""
    out: dict[str, str] = {}
    try:
        with open(path, "rb") as f:
            def read(fmt: str):
                return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

            def string() -> str:
                n = read("<Q")
                if n > _MAX_STRING:
                    raise ValueError("string too long")
                return f.read(n).decode("utf-8", "replace")

            def skip(kind: int) -> None:
                if kind == 8:
                    f.seek(read("<Q"), 1)
                elif kind == 9:
                    inner, n = read("<I"), read("<Q")
                    if inner in _SCALAR:
                        f.seek(n * struct.calcsize(_SCALAR[inner]), 1)
                    else:
                        for _ in range(n):
                            skip(inner)
                else:
                    f.seek(struct.calcsize(_SCALAR[kind]), 1)

            if f.read(4) != b"GGUF" or read("<I") < 2:  # v1 used 32-bit lengths: not read
                return {}
            read("<Q")  # tensor count
            seen_general = False
            for _ in range(read("<Q")):
                key, kind = string(), read("<I")
                if not key.startswith("general."):
                    if seen_general:
                        break
                    skip(kind)
                    continue
                seen_general = True
                if kind == 8:
                    out[key] = string()
                else:
                    skip(kind)
    except (OSError, ValueError, KeyError, struct.error):
        pass  # what was read so far stands
    return out
