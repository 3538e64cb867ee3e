"""A model's family (base model line) apart from its architecture: names, local dirs, GGUF headers, embedded models."""

import json
from types import SimpleNamespace

import pytest

from heirloom.models.family import family, family_from_name, gguf_general, model_type, same_family
from heirloom.runs.runner import teacher_families, teacher_provenance

# The generators of the real AlpacaEval outputs (checked against the files below) and their families
# as their names state them; Conifer and Ein state no base, so they stay unknown rather than guessed.
ALPACA_EVAL = {
    "Conifer-7B-DPO": None,
    "Ein-70B-v0.1": None,
    "FuseChat-Gemma-2-9B-Instruct": "gemma",
    "FuseChat-Llama-3.1-8B-Instruct": "llama",
    "FuseChat-Llama-3.2-1B-Instruct": "llama",
}


def _model_dir(path, name_key=None, name=None, model_type="llama"):
    path.mkdir()
    config = {"model_type": model_type, "architectures": ["LlamaForCausalLM"]}
    if name_key:
        config[name_key] = name
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_imported_alpaca_eval_generators_are_read_by_name(shared_data):
    generators = set()
    for path in (shared_data / "alpaca_eval_outputs").glob("[CEF]*.json"):
        generators |= {row["generator"] for row in json.loads(path.read_text())}
    assert generators == set(ALPACA_EVAL)
    for name, expected in ALPACA_EVAL.items():
        assert family_from_name(name) == expected, name
        assert family(name) == expected, name


@pytest.mark.parametrize("name, expected", [
    ("meta-llama/Llama-3.1-8B-Instruct", "llama"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "qwen"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistral"),
    ("microsoft/Phi-3-mini-4k-instruct", "phi"),
    ("allenai/OLMo-2-1124-7B", "olmo"),
    ("google/gemma-2-9b-it", "gemma"),
    ("EleutherAI/gpt-neox-20b", "eleutherai"),  # not "gpt": the longer token wins
    ("gpt-4o-2024-05-13", "gpt"),
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "tinyllama"),  # its own pretraining, not a Llama
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "qwen"),  # the base is named after "Distill"
    ("Qwen2.5-7B-distilled-from-GPT4", None),  # two families, no rule to pick: unknown
    ("dolphin-2.9", None),  # "phi" inside a word is not Phi
    ("ollama-server", None),
    ("my-model", None),
])
def test_family_tokens_in_names(name, expected):
    assert family_from_name(name) == expected


def test_embedded_models_declare_their_family_apart_from_their_architecture():
    assert family("smollm2-135m") == "smollm" and family("ray:smollm2-135m") == "smollm"
    assert family("gemma3-270m") == "gemma"  # declared: nothing assembled or read
    assert model_type("smollm2-135m") == "llama"  # from the GGUF header: a llama architecture
    assert gguf_general(_smollm_gguf())["general.basename"] == "smollm2"


def _smollm_gguf():
    from heirloom.models.embedded import EMBEDDED

    return EMBEDDED["smollm2-135m"].locate()


def test_gguf_header_is_read_like_the_gguf_library_reads_it(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "Some-Model-Q4.gguf"
    w = gguf.GGUFWriter(str(path), arch="qwen2")
    w.add_name("Qwen2.5 0.5B Instruct")
    w.add_basename("Qwen2.5")
    w.add_array("general.languages", ["en", "fr"])  # an array among the general keys is skipped
    w.add_token_list(["<s>", "hello", "world"])
    w.add_tensor("w", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    fields = gguf.GGUFReader(str(path)).fields
    mine = gguf_general(path)
    for key in ("general.architecture", "general.name", "general.basename"):
        assert mine[key] == fields[key].contents()
    assert family(str(path)) == "qwen" and model_type(str(path)) == "qwen2"
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf")
    assert gguf_general(tmp_path / "junk.gguf") == {} and model_type(str(tmp_path / "junk.gguf")) is None


def test_a_local_dir_is_named_by_what_its_config_records(tmp_path):
    hub = _model_dir(tmp_path / "ckpt-a", "_name_or_path", "meta-llama/Llama-3.2-1B-Instruct")
    assert family(str(hub)) == "llama" and model_type(str(hub)) == "llama"
    path = _model_dir(tmp_path / "ckpt-b", "_name_or_path", "/scratch/someone/llama/Qwen2.5-0.5B")
    assert family(str(path)) == "qwen"  # of a path, its last part: the folders above are where it was kept
    gguf_made = _model_dir(tmp_path / "ckpt-c", "_model_name_or_path", "Smollm2 135M 8k Lc100K Mix1 Ep2")
    assert family(str(gguf_made)) == "smollm"  # what heirloom's GGUF cache writes
    nameless = _model_dir(tmp_path / "ckpt-d")
    assert family(str(nameless)) is None and model_type(str(nameless)) == "llama"
    named_dir = _model_dir(tmp_path / "gemma-2b-finetuned")
    assert family(str(named_dir)) == "gemma"  # nothing recorded: the directory's own name
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"}))
    assert family(str(adapter)) == "smollm" and model_type(str(adapter)) is None
    assert family(str(tmp_path / "nowhere")) is None  # not a dir: its name states nothing
    assert family("openai:meta-llama/Llama-3.1-8B-Instruct@http://127.0.0.1:9/v1") == "llama"  # served: by name


def test_same_family_needs_both_known():
    assert same_family("llama", "llama") == "same"
    assert same_family("llama", "smollm") == "different"
    assert same_family(None, "smollm") == "unknown" and same_family("llama", None) == "unknown"


def test_a_llama_teacher_is_a_different_family_from_smollm2_though_both_are_llama_architectures(tmp_path):
    llama = _model_dir(tmp_path / "teacher", "_name_or_path", "meta-llama/Llama-3.2-1B-Instruct")
    config = SimpleNamespace(teachers=[SimpleNamespace(model=str(llama)), SimpleNamespace(model="smollm2-135m"),
                                       SimpleNamespace(model=None, outputs=["x.json"])])
    teachers = [str(llama), "smollm2-135m", "FuseChat-Llama-3.1-8B-Instruct", "FuseChat-Gemma-2-9B-Instruct",
                "Ein-70B-v0.1"]
    assert model_type(str(llama)) == model_type("smollm2-135m") == "llama"  # the old rule said "same"
    prov = teacher_provenance(config, teachers, "smollm2-135m")
    assert prov["teacher_family"] == {str(llama): "different", "smollm2-135m": "same",
                                      "FuseChat-Llama-3.1-8B-Instruct": "different",
                                      "FuseChat-Gemma-2-9B-Instruct": "different", "Ein-70B-v0.1": "unknown"}
    assert prov["teacher_model_family"] == {str(llama): "llama", "smollm2-135m": "smollm",
                                            "FuseChat-Llama-3.1-8B-Instruct": "llama",
                                            "FuseChat-Gemma-2-9B-Instruct": "gemma", "Ein-70B-v0.1": None}
    assert prov["teacher_architecture"] == {str(llama): "llama", "smollm2-135m": "llama",
                                            "FuseChat-Llama-3.1-8B-Instruct": None,
                                            "FuseChat-Gemma-2-9B-Instruct": None, "Ein-70B-v0.1": None}
    assert prov["student_model_family"] == "smollm" and prov["student_architecture"] == "llama"
    assert teacher_families(config, teachers, "smollm2-135m") == prov["teacher_family"]
    # a Llama student: the imported Llama fine-tune is now the same family
    same = teacher_families(config, ["FuseChat-Llama-3.1-8B-Instruct"], str(llama))
    assert same == {"FuseChat-Llama-3.1-8B-Instruct": "same"}
