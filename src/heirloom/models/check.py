"""Checks that a model reference can load, without loading it (the run preflight).

`check_model(ref)` asks the reference's backend which model names it loads in
this process (an `openai:` model lives on its server and is not checked here; a
`ray:` reference checks its inner one) and checks each with `check_local_model`:
an embedded alias must be installed, a `.gguf` must exist, a directory must hold
a model (`config.json` and weights), a path must exist, and a hub id must be in
the local Hugging Face cache when the hub is switched off (`HF_HUB_OFFLINE=1`).
Anything else is accepted: whether a hub id exists online is learnt when it loads.

Left out: reading configs or weights (a corrupt file fails when it loads), and
checking that a hub id exists online (the hub may be unreachable from here).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from ..errors import HeirloomError
from .embedded import EMBEDDED
from .refs import ModelRef

# What `save_pretrained` writes as weights (sharded or not), safetensors or pickled.
WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json")
# org/name or name, as the hub spells repo ids; anything else that does not exist is a missing path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "ON", "YES", "TRUE"}


def check_model(ref: ModelRef | str) -> None:
    """Raise a one-line HeirloomError if the model `ref` names cannot be loaded; load nothing."""
    from ..generation.registry import backend_class

    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    backend_class(ref.backend).check_model(ref)


def check_local_model(name: str) -> None:
    """Check one model name as the hf and vllm backends read it (alias, .gguf, directory, hub id)."""
    if name in EMBEDDED:
        model = EMBEDDED[name]
        if not model.installed():
            raise HeirloomError(f"model {name!r} is not installed: {model.install}")
        return
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HeirloomError(f"model {name!r}: no such GGUF file")
        return
    if path.is_dir():
        check_model_dir(path, name)
        return
    if path.exists():
        raise HeirloomError(f"model {name!r}: a file, not a model (give a model directory or a .gguf file)")
    if not _HUB_ID.match(name) or name.startswith((".", "~")):
        raise HeirloomError(f"model {name!r}: no such file or directory, and not an embedded alias "
                            f"({', '.join(EMBEDDED)})")
    if hub_offline() and not _in_hub_cache(name):
        close = difflib.get_close_matches(name, list(EMBEDDED), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise HeirloomError(f"model {name!r}: not an embedded alias, a local path, nor in the local Hugging Face "
                            f"cache, and the hub is switched off (HF_HUB_OFFLINE=1){hint}")


def check_model_dir(path: Path, name: str | None = None) -> None:
    """A directory holds a transformers model: config.json and weights (what `save_pretrained` writes)."""
    name = name or str(path)
    has_config = (path / "config.json").is_file()
    has_weights = any(any(path.glob(pattern)) for pattern in WEIGHT_FILES)
    if has_config and has_weights:
        return
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if ggufs:
        raise HeirloomError(f"model {name!r}: a directory with a GGUF file; give the file itself "
                            f"({path / ggufs[0]})")
    missing = " and ".join(what for what, ok in (("config.json", has_config), ("weights", has_weights)) if not ok)
    raise HeirloomError(f"model {name!r}: this directory is not a model (no {missing}; a model directory is "
                        "what save_pretrained writes)")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as it is set now, not when huggingface_hub was imported."""
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=_hub_cache())
    except Exception:  # an id the hub library refuses (bad characters): certainly not cached
        return False
    return isinstance(found, str)
