"""heirloom: decide what a student LLM inherits from synthetic data.

The Python API mirrors the pipeline (each stage also works on its own):

    prompts -> candidates (k per prompt, 1..n teachers) -> scores -> selection
            -> SFT of the student -> profiles before/after -> report
"""

from .errors import HeirloomError

__version__ = "0.1.0"
# One entry point per stage, in pipeline order; imported on first use, so
# `import heirloom` (and `heirloom --help`) stays free of torch, numpy and pandas.
_LAZY = {
    "load_hf": "models", "check_model": "models",
    "make_backend": "generation", "SamplingParams": "generation", "check_options": "generation",
    "load_prompts": "prompts",
    "generate_candidates": "candidates", "generate_pool": "runs.stages",
    "import_outputs": "pools", "merge_pools": "pools",
    "get_metric": "metrics", "list_metrics": "metrics", "score_table": "scoring", "score_pool": "runs.stages",
    "select": "selection", "summarize": "selection", "parse_objective": "selection", "select_pool": "runs.stages",
    "train_student": "training.sft", "TrainConfig": "training.config",
    "profile_model": "profiling.suites", "ProfileConfig": "profiling.suites", "Profile": "profiling.profile",
    "check_data": "profiling",
    "compare": "profiling.compare",
    "write_report": "report",
    "load_run_config": "runs.config", "preflight": "runs.preflight", "run_config": "runs.runner",
}
__all__ = ["HeirloomError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'heirloom' has no attribute {name!r}")
