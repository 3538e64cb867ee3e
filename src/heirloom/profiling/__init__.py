"""Profiling: what a model is like (textual, toxicity, bias, calibration, judge suites).

`profile_model`, `ProfileConfig` and `check_data` live in `suites.py`; they are imported
on first use so `import heirloom.profiling.<module>` stays light.
"""

_LAZY = {"profile_model": "suites", "ProfileConfig": "suites", "check_data": "suites", "parse_suites": "suites",
         "Profile": "profile", "Attribute": "profile", "get_suite": "registry", "Suite": "registry", "Part": "registry"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'heirloom.profiling' has no attribute {name!r}")
