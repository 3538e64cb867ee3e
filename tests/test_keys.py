"""Stage keys: a local model is known by its content, a metric by its fingerprint."""

import shutil

from heirloom.runs.keys import content_hash, metric_fingerprints, model_identity


def test_a_local_model_is_its_content_not_its_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "student"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"a": 1}')
    (model / "sub" / "weights.bin").write_bytes(b"\0\1\2" * 1000)
    (model / ".cache").mkdir()
    (model / ".cache" / "download.lock").write_text("left out")
    first = model_identity(str(model))
    assert first.startswith("sha256:") and "student" not in first
    assert model_identity(str(shutil.copytree(model, tmp_path / "renamed"))) == first
    assert model_identity(f"vllm:{model}") == "vllm:" + first  # another engine, another identity
    assert model_identity("smollm2-135m") == "smollm2-135m"  # aliases and hub ids stay names

    (model / "sub" / "weights.bin").write_bytes(b"\0\1\3" * 1000)  # retrained in place
    assert model_identity(str(model)) != first
    (model / ".cache" / "download.lock").write_text("changed")
    assert content_hash(model) == model_identity(str(model)).removeprefix("sha256:")


def test_metric_fingerprints_change_with_options_not_with_spelled_out_defaults():
    plain, same, other = (metric_fingerprints([s])[0] for s in ("mtld", "mtld:column=x:threshold=0.72", "mtld:threshold=0.5"))
    assert plain == same and plain != other
    assert metric_fingerprints([]) == []
