"""`check_model`: every kind of model reference checked without loading it; and the loader's
one-line error for a directory that is not a model."""

from __future__ import annotations

import pytest

from heirloom.errors import HeirloomError
from heirloom.models import EMBEDDED, check_model
from heirloom.models.embedded import EmbeddedModel


@pytest.fixture(autouse=True)
def no_loading(monkeypatch):
    """check_model must not load a model (nor dequantize a GGUF)."""
    import heirloom.models.loader as loader

    for name in ("load_hf", "load_tokenizer", "local_path"):
        monkeypatch.setattr(loader, name, lambda *a, **k: pytest.fail("check_model loaded a model"))


def message(ref) -> str:
    with pytest.raises(HeirloomError) as info:
        check_model(ref)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_an_installed_alias_a_model_directory_and_a_gguf_file_pass(tiny_model_dir, tmp_path):
    check_model("smollm2-135m")
    check_model(str(tiny_model_dir))
    check_model(f"hf:{tiny_model_dir}")
    check_model(f"ray:vllm:{tiny_model_dir}")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    check_model(str(tmp_path / "m.gguf"))


def test_an_alias_that_is_not_installed_gives_the_pip_line(monkeypatch):
    monkeypatch.setitem(EMBEDDED, "absent-1m", EmbeddedModel("absent-1m", "a model", "pip install absent-pkg",
                                                             chat=True, _find=lambda: None))
    assert message("absent-1m") == "model 'absent-1m' is not installed: pip install absent-pkg"


def test_paths_that_are_not_models(tmp_path):
    assert message(str(tmp_path / "missing.gguf")).endswith("no such GGUF file")
    assert "no such file or directory" in message("./no-such-dir")
    assert "no such file or directory" in message(str(tmp_path / "nothing-here"))
    (tmp_path / "notes.txt").write_text("hi")
    assert "a file, not a model" in message(str(tmp_path / "notes.txt"))
    assert message(str(tmp_path)).endswith("this directory is not a model (no config.json and weights; "
                                           "a model directory is what save_pretrained writes)")
    (tmp_path / "config.json").write_text("{}")
    assert "(no weights;" in message(str(tmp_path))
    (tmp_path / "weights.gguf").write_bytes(b"GGUF")
    assert "give the file itself" in message(str(tmp_path)) and "weights.gguf" in message(str(tmp_path))
    (tmp_path / "weights.gguf").unlink()
    assert "this directory is not a model" in message(f"ray:{tmp_path}")  # the replicas' model


def _cache_entry(cache, repo_id: str) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/config.json}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")


def test_hub_ids_need_the_local_cache_only_when_the_hub_is_off(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    check_model("org/not-cached")  # online: whether it exists is learnt when it loads
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert message("org/not-cached") == ("model 'org/not-cached': not an embedded alias, a local path, nor in the "
                                         "local Hugging Face cache, and the hub is switched off (HF_HUB_OFFLINE=1)")
    assert message("smollm2-135").endswith("(HF_HUB_OFFLINE=1); did you mean 'smollm2-135m'?")
    _cache_entry(tmp_path, "org/cached")
    check_model("org/cached")
    check_model("vllm:org/cached")


def test_a_server_model_is_not_checked_here():
    check_model("openai:anything@http://127.0.0.1:9/v1")


def test_loading_a_directory_that_is_not_a_model_is_one_line(tmp_path, monkeypatch):
    monkeypatch.undo()  # this one loads for real
    from heirloom.generation import make_backend
    from heirloom.models.loader import load_hf

    (tmp_path / "readme.md").write_text("not a model")
    with pytest.raises(HeirloomError, match=r"^model '.*': this directory is not a model \(no config.json"):
        load_hf(str(tmp_path))
    with pytest.raises(HeirloomError, match="this directory is not a model"):
        make_backend(str(tmp_path))
