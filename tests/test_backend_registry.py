"""The backend registry: names, plugins, Options checked before anything loads, common options,
declared capabilities, and an embedded base model's default stop strings."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest
from pydantic import BaseModel, ConfigDict, Field

from heirloom.errors import HeirloomError
from heirloom.generation import (Backend, SamplingParams, backend_class, backend_names, check_options, common_options,
                                 list_backends, make_backend, register_backend)
from heirloom.generation import registry
from heirloom.generation.base import Completion
from heirloom.models.refs import ModelRef


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(None, description="where it runs")
    shout: bool = Field(False, description="upper-case the echo")


class EchoBackend(Backend):
    """Echoes each prompt; the smallest backend one file can add."""

    name = "echo"
    Options = EchoOptions
    supports_prompt_seeds = True

    def __init__(self, model_id: str, **options):
        super().__init__(model_id)
        self.options = EchoOptions(**options)

    def generate(self, prompts, k=1, params=None, chat=None, progress=True, seeds=None):
        params = self.sampling(params)
        text = (lambda p: p.upper()) if self.options.shout else (lambda p: p)
        return [[Completion(text(p), 1, "stop", self.model_id, None, j) for j in range(k)] for p in prompts]


@pytest.fixture
def echo():
    register_backend(EchoBackend)
    yield EchoBackend
    registry.unregister_backend("echo")


def test_builtins_are_found_by_name_and_unknown_names_suggest_the_closest():
    assert backend_names()[:4] == ["hf", "vllm", "openai", "ray"]
    assert [c.name for c in list_backends()] == backend_names()
    assert backend_class("openai").__name__ == "OpenAIBackend"
    with pytest.raises(HeirloomError, match=r"unknown backend 'vlm'; did you mean 'vllm'\?"):
        backend_class("vlm")


def test_a_registered_backend_is_a_reference_prefix_and_builds(echo):
    assert ModelRef.parse("echo:some/model") == ModelRef(name="some/model", backend="echo")
    backend = make_backend("echo:m", shout=True)
    assert isinstance(backend, EchoBackend) and backend.generate(["hi"], k=2)[0][1].text == "HI"
    registry.unregister_backend("echo")
    assert ModelRef.parse("echo:some/model") == ModelRef(name="echo:some/model")  # no longer a prefix


def test_prefixes_that_name_no_backend_stay_part_of_the_name():
    for text in ["C:/models/x", "C:\\models\\x", "foo:bar", "http://host/x"]:
        assert ModelRef.parse(text) == ModelRef(name=text)
    assert ModelRef.parse("hf:org/m") == ModelRef(name="org/m")
    assert str(ModelRef.parse("vllm:org/m")) == "vllm:org/m"


def test_names_are_unique_and_well_formed(echo):
    with pytest.raises(HeirloomError, match="'echo' is already defined"):
        register_backend(EchoBackend)
    bad = type("C", (EchoBackend,), {"name": "c"})  # one letter would swallow Windows drive letters
    with pytest.raises(HeirloomError, match="backend name 'c'"):
        register_backend(bad)
    assert "c" not in backend_names()


def _plugin(monkeypatch, name: str, value: str) -> None:
    ep = metadata.EntryPoint(name=name, value=value, group=registry.GROUP)
    monkeypatch.setattr(registry, "_plugins", lambda: (ep,))


def test_plugins_come_from_entry_points(monkeypatch, tmp_path):
    (tmp_path / "echo_plugin.py").write_text(
        "from heirloom.generation.base import Backend\n"
        "class Plugged(Backend):\n    name = 'plugged'\n"
        "    def generate(self, prompts, k=1, params=None, chat=None, progress=True, seeds=None):\n"
        "        return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _plugin(monkeypatch, "plugged", "echo_plugin:Plugged")
    assert "plugged" in backend_names() and "echo_plugin" not in sys.modules  # named without importing
    assert ModelRef.parse("plugged:x").backend == "plugged"
    assert make_backend("plugged:x").model_id == "x"
    with pytest.raises(HeirloomError, match="^plugged backend option nope: unknown option; known: none$"):
        check_options("plugged:x", {"nope": 1})  # a backend without Options takes none
    _plugin(monkeypatch, "hf", "echo_plugin:Plugged")
    with pytest.raises(HeirloomError, match=r"backend name 'hf' is defined twice: by heirloom .* and by plugin"):
        backend_names()
    _plugin(monkeypatch, "broken", "heirloom.generation.base:NoOptions")
    with pytest.raises(HeirloomError, match="backend plugin 'broken' .*: not a Backend subclass"):
        backend_class("broken")


@pytest.mark.parametrize("ref, options, message", [
    ("smollm2-135m", {"batch_sise": 2}, "hf backend option batch_sise: unknown option; did you mean 'batch_size'?"),
    ("smollm2-135m", {"batch_size": 0}, "hf backend option batch_size: Input should be greater than or equal to 1"),
    ("vllm:org/m", {"gpu_memory_utilisation": 0.5},
     "vllm backend option gpu_memory_utilisation: unknown option; did you mean 'gpu_memory_utilization'?"),
    ("openai:m@http://127.0.0.1:9/v1", {"max_concurency": 2},
     "openai backend option max_concurency: unknown option; did you mean 'max_concurrency'?"),
    ("ray:vllm:org/m", {"replica": 2}, "ray backend option replica: unknown option; did you mean 'replicas'?"),
    ("ray:vllm:org/m", {"backend_options": {"tensor_parallel": 2}},
     "ray backend option backend_options: vllm backend option tensor_parallel: unknown option; "
     "did you mean 'tensor_parallel_size'?"),
])
def test_a_mistyped_option_is_one_line_naming_it_and_the_closest(ref, options, message, monkeypatch):
    import heirloom.models.loader as loader

    monkeypatch.setattr(loader, "load_hf", lambda *a, **k: pytest.fail("a model loaded before the options were checked"))
    with pytest.raises(HeirloomError) as info:
        check_options(ref, options)
    assert str(info.value) == message
    with pytest.raises(HeirloomError) as info:
        make_backend(ref, **options)  # the same check, before anything loads or connects
    assert str(info.value) == message


def test_common_options_reach_only_backends_that_declare_them(echo):
    values = {"device": "cpu", "batch_size": 4, "dtype": None}
    assert common_options("smollm2-135m", values) == {"device": "cpu", "batch_size": 4}
    assert common_options("openai:m@http://a/v1", values) == {}
    assert common_options("vllm:m", {"device": "cpu", "dtype": "bfloat16"}) == {"dtype": "bfloat16"}
    assert make_backend("echo:m", common=values).options.device == "cpu"
    assert make_backend("echo:m", common=values, device="cuda").options.device == "cuda"  # explicit wins


def test_capabilities_are_declared_on_the_base_class():
    for flag in ("supports_loglikelihood", "supports_prompt_logprobs", "supports_messages", "supports_prompt_seeds"):
        assert getattr(Backend, flag) is False
    declared = {c.name: (c.supports_loglikelihood, c.supports_prompt_logprobs, c.supports_messages)
                for c in list_backends()}
    assert declared["hf"] == (True, True, True) and declared["vllm"] == (True, False, True)
    # ray takes its capabilities from the inner backend, per instance
    assert [c.name for c in list_backends() if c.supports_prompt_seeds] == ["hf", "vllm", "openai"]
    with pytest.raises(NotImplementedError, match="prompt log-probabilities"):
        EchoBackend("m").prompt_logprobs(["x"])


def test_default_stop_applies_only_when_the_params_set_none():
    from heirloom.models.embedded import EMBEDDED, default_stop

    backend = EchoBackend("m")
    backend.default_stop = ("\n###",)
    assert backend.sampling(None).stop == ("\n###",)
    assert backend.sampling(SamplingParams(stop=("END",))).stop == ("END",)
    assert default_stop("gemma3-270m") == EMBEDDED["gemma3-270m"].stop != ()
    assert default_stop("smollm2-135m") == () and default_stop("./some/dir") == ()


def test_hf_backend_takes_its_default_stop_from_the_embedded_model(tiny_model_dir, monkeypatch):
    import heirloom.models.embedded as embedded
    from heirloom.generation.hf import HFBackend

    params = SamplingParams(temperature=0, max_new_tokens=12)
    plain = HFBackend(str(tiny_model_dir)).generate(["Hi"], k=1, params=params, progress=False)[0][0]
    stop = plain.text[3:6]
    assert stop and plain.finish_reason == "length"
    monkeypatch.setattr(embedded, "default_stop", lambda name: (stop,))
    backend = HFBackend(str(tiny_model_dir))
    got = backend.generate(["Hi"], k=1, params=params, progress=False)[0][0]
    explicit = backend.generate(["Hi"], k=1, params=params.model_copy(update={"stop": (stop,)}), progress=False)[0][0]
    assert got == explicit and got.finish_reason == "stop" and stop not in got.text
    assert plain.text.startswith(got.text)
