"""Model references, the embedded offline models, loading into transformers, and load-free checks."""

from .refs import ModelRef
from .embedded import EMBEDDED, DEFAULT_MODEL
from .check import check_model
from .loader import load_hf

__all__ = ["ModelRef", "EMBEDDED", "DEFAULT_MODEL", "check_model", "load_hf"]
