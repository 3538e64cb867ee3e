"""Finding backends by name: built-ins, runtime registrations and plugins.

A backend's name is the prefix of a model reference (`vllm:NAME`); the hf
backend also takes every reference without one. Names are unique across the
three sources: a second definition is an error naming both, never a silent
override. An unknown name is an error with the closest known one. Plugins are
entry points of the group `heirloom.backends` (`name = "pkg.module:Class"`);
their names are read without importing them, so `ModelRef.parse` can learn
the prefixes cheaply, and a class is imported only when it is used.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from importlib import metadata
from typing import Callable

from ..errors import HeirloomError
from .base import Backend

GROUP = "heirloom.backends"
# Built-ins by import path: naming them costs no import (vllm and ray load only when used).
_BUILTINS = {
    "hf": "heirloom.generation.hf:HFBackend",
    "vllm": "heirloom.generation.vllm:VLLMBackend",
    "openai": "heirloom.generation.openai:OpenAIBackend",
    "ray": "heirloom.generation.ray_replicas:RayBackend",
}
# Two letters at least: a one-letter prefix would swallow Windows paths (C:\models\x).
_NAME = re.compile(r"^[a-z][a-z0-9_]+$")
_registered: dict[str, type[Backend]] = {}


def _import(path: str) -> type[Backend]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@functools.lru_cache(maxsize=1)
def _plugins() -> tuple[metadata.EntryPoint, ...]:
    # Installed plugins do not change while a process runs; reading them once keeps parse() cheap.
    return tuple(metadata.entry_points(group=GROUP))


def _load_plugin(ep: metadata.EntryPoint) -> type[Backend]:
    try:
        cls = ep.load()
    except Exception as e:  # a broken third-party plugin: say which one, not a traceback
        raise HeirloomError(f"backend plugin {ep.name!r} ({ep.value}): cannot load ({type(e).__name__}: {e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise HeirloomError(f"backend plugin {ep.name!r} ({ep.value}): not a Backend subclass")
    if cls.name != ep.name:
        raise HeirloomError(f"backend plugin {ep.name!r} ({ep.value}): its class is named {cls.name!r}")
    return cls


def catalog() -> dict[str, Callable[[], type[Backend]]]:
    """name -> loader of its class, for every known backend (duplicates are an error)."""
    loaders: dict[str, Callable[[], type[Backend]]] = {}
    sources: dict[str, str] = {}

    def add(name: str, loader: Callable[[], type[Backend]], source: str) -> None:
        if name in loaders:
            raise HeirloomError(f"backend name {name!r} is defined twice: by {sources[name]} and by {source}")
        if not _NAME.match(name):
            raise HeirloomError(f"backend name {name!r} ({source}): write two or more lowercase letters, digits, _")
        loaders[name], sources[name] = loader, source

    for name, path in _BUILTINS.items():
        add(name, lambda path=path: _import(path), f"heirloom ({path})")
    for name, cls in _registered.items():
        add(name, lambda cls=cls: cls, f"register_backend ({cls.__module__})")
    for ep in _plugins():
        dist = getattr(ep.dist, "name", "?")
        add(ep.name, lambda ep=ep: _load_plugin(ep), f"plugin {ep.value} (package {dist})")
    return loaders


def backend_names() -> list[str]:
    """Every backend name, i.e. every prefix a model reference may start with (imports nothing)."""
    return list(catalog())


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass called `name`; an unknown name suggests the closest."""
    loaders = catalog()
    if name not in loaders:
        close = difflib.get_close_matches(name, list(loaders), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise HeirloomError(f"unknown backend {name!r}{hint} (known: {', '.join(loaders)})")
    return loaders[name]()


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Add a Backend subclass under its `name`, for this process (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise HeirloomError(f"register_backend: {cls!r} is not a Backend subclass")
    if cls.name in catalog():
        raise HeirloomError(f"backend name {cls.name!r} is already defined")
    _registered[cls.name] = cls
    try:
        catalog()  # the name must also be well formed
    except HeirloomError:
        del _registered[cls.name]
        raise
    return cls


def unregister_backend(name: str) -> None:
    """Remove a backend added by `register_backend` (tests, notebooks)."""
    _registered.pop(name, None)


def list_backends() -> list[type[Backend]]:
    """The class of every known backend, built-ins first (imports them all)."""
    return [loader() for loader in catalog().values()]
