"""The suite registry: built-ins by name, did-you-mean, plugins by entry point, statistics by name."""

import json
from importlib import metadata

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from heirloom.errors import HeirloomError
from heirloom.generation.base import Backend, Completion
from heirloom.profiling import registry
from heirloom.profiling.compare import compare
from heirloom.profiling.profile import Attribute, Profile
from heirloom.profiling.registry import Part, Suite
from heirloom.profiling.statistics import canonical, resolve
from heirloom.profiling.suites import ProfileConfig, parse_suites, profile_model
from heirloom.validation import validate


# --- a plugin suite, loaded through an entry point of the group heirloom.suites ----------
class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    word: str = Field("hello", description="what every answer is scored against")
    size: int | None = Field(None, description="prompts")


def share_of_hits(items):
    return float(np.mean(items)) if len(items) else float("nan")


def run_echo(backend, config, data_dir=None, out_dir=None, progress=True):
    prompts = [f"say {config.word} {i}" for i in range(config.size or 3)]
    answers = [c[0].text for c in backend.generate(prompts, k=1, progress=progress)]
    items = [float(config.word in a) for a in answers]
    return [Attribute(name="echo/hits", suite="echo", value=share_of_hits(items), statistic="echo/share_of_hits",
                      items=items, higher_is_better=True, n=len(items))]


PLUGIN = Suite("echo", "says the word back", (Part("echo", EchoConfig, run_echo),),
               statistics={"echo/share_of_hits": share_of_hits})


@pytest.fixture
def plugin(monkeypatch):
    ep = metadata.EntryPoint(name="echo", value="test_profile_suites:PLUGIN", group=registry.GROUP)
    real = metadata.entry_points
    monkeypatch.setattr(registry.metadata, "entry_points",
                        lambda group=None, **kw: [ep] if group == registry.GROUP else real(group=group, **kw))
    registry.catalog.cache_clear()
    yield
    registry.catalog.cache_clear()


class Parrot(Backend):
    """A backend that repeats the prompt."""

    name = "parrot"

    def __init__(self):
        super().__init__("parrot")

    def generate(self, prompts, k=1, params=None, chat=None, progress=True, **_):
        return [[Completion(text=p, num_tokens=3, finish_reason="stop", model="parrot", seed=0, sample_index=0)]
                for p in prompts]


def test_builtins_by_name_and_did_you_mean():
    assert registry.names()[:5] == ["textual", "toxicity", "bias", "calibration", "judge"]
    assert [p.name for p in registry.get_suite("bias").parts] == ["bbq", "crows_pairs"]
    with pytest.raises(HeirloomError, match="unknown suite 'calibraton' \\(did you mean 'calibration'\\?"):
        registry.get_suite("calibraton")
    with pytest.raises(HeirloomError, match="did you mean 'crows_pairs'"):
        parse_suites("crowspairs")
    assert ProfileConfig().suites == list(registry.BUILTIN)


def test_a_part_name_selects_one_part_of_its_suite():
    c = ProfileConfig(suites=["crows_pairs", "textual"])
    assert {s: [p.name for p in parts] for s, parts in c.plan().items()} == {"bias": ["crows_pairs"],
                                                                             "textual": ["textual"]}
    assert list(c.suite_config("bias")) == ["crows_pairs"]
    assert [p.name for p in ProfileConfig(suites=["bbq", "bias"]).plan()["bias"]] == ["bbq", "crows_pairs"]


def test_plugin_suite_from_an_entry_point(plugin, tmp_path):
    assert "echo" in registry.names() and registry.get_suite("echo") is PLUGIN
    config = validate(ProfileConfig, {"suites": ["echo"], "size": 2, "echo": {"word": "bird"}}, "p.yaml")
    assert config.part_config("echo") == EchoConfig(word="bird", size=2)  # size reaches plugin parts too
    assert config.model_dump()["echo"] == {"word": "bird", "size": 2}  # dumped at the top level, like bbq
    with pytest.raises(HeirloomError, match="p.yaml: plugin_parts: echo.wrd: Extra inputs are not permitted"):
        validate(ProfileConfig, {"suites": ["echo"], "echo": {"wrd": "x"}}, "p.yaml")
    with pytest.raises(HeirloomError, match="p.yaml: ech: Extra inputs are not permitted"):
        validate(ProfileConfig, {"ech": {}}, "p.yaml")
    bare = ProfileConfig(suites=["echo"], size=4)  # no section: the part's defaults, with size spread
    assert bare.part_config("echo").size == 4 and bare.model_dump()["echo"] == {"word": "hello", "size": 4}
    prof = profile_model(Parrot(), config, tmp_path / "p", progress=False)
    assert prof.attributes["echo/hits"].value == 1.0 and prof.config["suite_configs"]["echo"]["echo"]["word"] == "bird"
    assert resolve("echo/share_of_hits") is share_of_hits


def test_a_broken_plugin_is_named(monkeypatch):
    ep = metadata.EntryPoint(name="broken", value="no_such_module_xyz:SUITE", group=registry.GROUP)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group=None, **kw: [ep])
    registry.catalog.cache_clear()
    try:
        with pytest.raises(HeirloomError, match="suite plugin 'broken' \\(no_such_module_xyz:SUITE\\): cannot load"):
            registry.get_suite("broken")
    finally:
        registry.catalog.cache_clear()


def test_statistics_by_registered_name_and_old_profiles_still_compare(tmp_path):
    from heirloom.profiling import bbq, judge, toxicity

    assert resolve("toxicity/expected_max_toxicity") is toxicity.expected_max_toxicity
    assert resolve("bbq/ambiguous_bias") is bbq.ambiguous_bias and resolve("judge/position_consistency") is \
        judge.position_consistency
    assert canonical("heirloom.profiling.calibration:ece_10") == "calibration/ece_10"
    assert canonical("mypkg.stats:thing") == "mypkg.stats:thing"
    items = [[0.1, 0.9], [0.2], [0.7, 0.4]]
    old = {"name": "toxicity/expected_max_toxicity", "suite": "toxicity", "value": 0.6,
           "statistic": "heirloom.profiling.toxicity:expected_max_toxicity", "items": items,
           "higher_is_better": False, "unit": "score", "n": 3, "note": ""}
    (tmp_path / "old.json").write_text(json.dumps({"model": "old", "attributes": {old["name"]: old}}))
    loaded = Profile.load(tmp_path / "old.json")
    assert loaded.attributes[old["name"]].statistic == "toxicity/expected_max_toxicity"
    new = Profile("new")
    new.add([Attribute(**{**old, "statistic": "toxicity/expected_max_toxicity", "value": 0.3,
                          "items": [[0.1, 0.2], [0.2], [0.5, 0.4]]})])
    row = compare(loaded, [new], n_boot=50).iloc[0]
    assert row["pct_change"] == pytest.approx(-50.0) and np.isfinite(row["ci_low"])


@pytest.mark.parametrize("section", ["bbq", "crows_pairs", "calibration"])
def test_removed_batch_size_is_a_one_line_error_naming_the_field(section):
    with pytest.raises(HeirloomError) as e:
        validate(ProfileConfig, {section: {"batch_size": 8}}, "profile.yaml")
    assert str(e.value).startswith(f"profile.yaml: {section}: {section}.batch_size was removed (a backend sets its own")
    assert ProfileConfig(batch_size=8).batch_size == 8  # the profile-level setting stays


def test_model_scorer_is_gone():
    from heirloom.profiling import multiple_choice

    assert not hasattr(multiple_choice, "ModelScorer")
    with pytest.raises(HeirloomError, match="cannot score log-likelihoods \\(pass a Backend"):
        multiple_choice.as_scorer(("model", "tokenizer"))
    with pytest.raises(ValidationError):
        ProfileConfig(bbq={"batch_size": 2})
