"""Generation backends behind one batch-first interface (see `base.py`), found by name (`registry.py`)."""

from __future__ import annotations

from typing import Any

from ..models.refs import ModelRef
from .base import Backend, Completion, LoglikResult, SamplingParams
from .registry import backend_class, backend_names, list_backends, register_backend


def _parse(ref: ModelRef | str) -> ModelRef:
    return ModelRef.parse(ref) if isinstance(ref, str) else ref


def common_options(ref: ModelRef | str, values: dict[str, Any] | None) -> dict[str, Any]:
    """The settings among `values` (device, batch_size, dtype, ...: what a command line offers for
    every model) that the reference's backend declares in its Options; None means unset.
    Callers pass these without asking which backend a reference names."""
    fields = backend_class(_parse(ref).backend).Options.model_fields
    return {k: v for k, v in (values or {}).items() if v is not None and k in fields}


def check_options(ref: ModelRef | str, options: dict[str, Any] | None = None) -> None:
    """Raise a one-line HeirloomError if `options` do not fit the reference's backend (an unknown
    one names the closest); loads nothing, imports no model library (for preflight checks)."""
    ref = _parse(ref)
    backend_class(ref.backend).check_options(ref, dict(options or {}))


def make_backend(ref: ModelRef | str, common: dict[str, Any] | None = None, **options) -> Backend:
    """The backend a model reference asks for, with `options` checked against its Options model.

    `common`: settings offered for every model (device, batch_size, ...); each goes only to a
    backend whose Options declare it (`common_options`); an explicit option wins.
    """
    ref = _parse(ref)
    cls = backend_class(ref.backend)
    options = {**common_options(ref, common), **options}
    cls.check_options(ref, options)  # a typo fails here, before a model loads
    return cls.from_ref(ref, options)


__all__ = ["Backend", "Completion", "LoglikResult", "SamplingParams", "backend_class", "backend_names",
           "check_options", "common_options", "list_backends", "make_backend", "register_backend"]
