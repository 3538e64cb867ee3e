"""Every shipped example config validates: a typo in one would otherwise surface only when a user runs it."""

from pathlib import Path

import pytest

from heirloom.runs.config import load_run_config

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_config_validates(path):
    config = load_run_config(path)
    assert config.arms and config.random_arm() is not None
    for arm in config.arms:  # every arm restricted to teachers is read against a random arm of the same teachers
        assert config.random_arm(arm) is not None, arm.name


def test_paper_experiments_arms():
    config = load_run_config(Path(__file__).parent.parent / "examples" / "paper_experiments.yaml")
    names = {a.name: a for a in config.arms}
    # the single-source arms and their k=2 variants are read against the live teacher's passive arm
    for name in ("single.max_length", "single.max_mtld", "single.max_length.k2", "single.max_mtld.k2"):
        assert config.random_arm(names[name]).name == "passive.smollm2-135m"
    assert config.random_arm(names["multi.max_mtld"]).name == "multi.random"
    assert len(EXAMPLES) >= 6
