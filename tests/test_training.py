"""Training runs: learning, what LoRA touches, artifacts, resume after a kill, CLI.

A tiny random-weight Llama with the embedded SmolLM2 tokenizer keeps each run to
seconds; one integration test fine-tunes the real embedded model.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from heirloom.cli import cli, main
from heirloom.errors import HeirloomError
from heirloom.training import TrainConfig, build_trainer, train_student
from heirloom.training import sft
from heirloom.training.data import encode_pairs

PAIRS = pd.DataFrame({
    "prompt": ["What is 2+2?", "Name a colour.", "Say hi", "Capital of France?"],
    "completion": ["4", "Blue, like the sky.", "Hi!", "Paris is the capital of France."],
})
# Short QA-template sequences keep the tiny runs cheap (the chat path is tested in test_training_data.py).
FAST = dict(device="cpu", batch_size=4, warmup_ratio=0.0, logging_steps=1, max_length=64, prompt_format="qa")






def tiny_model(tok, seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True))


@pytest.fixture(scope="module")
def tiny_dir(tok, tmp_path_factory):
    """The tiny model saved as a directory, so `train_student` loads it by name like any student."""
    d = tmp_path_factory.mktemp("tiny-student")
    tiny_model(tok).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def losses(history):
    return [h["loss"] for h in history if "loss" in h]


def test_full_finetuning_overfits_four_pairs(tok, tmp_path):
    config = TrainConfig(method="full", max_steps=30, learning_rate=1e-2, **FAST)
    trainer = build_trainer(tiny_model(tok), tok, encode_pairs(PAIRS, tok, 64, "qa"), config, tmp_path, progress=False)
    trainer.train()
    curve = losses(trainer.state.log_history)
    assert len(curve) == 30
    assert curve[-1] < 0.5 * curve[0], curve


def test_lora_changes_only_adapter_weights(tok, tmp_path):
    model = tiny_model(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(max_steps=5, learning_rate=1e-2, **FAST)
    trainer = build_trainer(model, tok, encode_pairs(PAIRS, tok, 64, "qa"), config, tmp_path, progress=False)
    trainer.train()
    after = trainer.model.state_dict()
    adapters = [k for k in after if "lora_" in k]
    # all-linear: every projection of both layers gets A and B (7 projections x 2 layers x 2)
    assert len(adapters) == 28 and not any("lm_head" in k or "embed" in k for k in adapters)
    assert all(after[k].abs().sum() > 0 for k in adapters if "lora_B" in k)  # B starts at zero
    base = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
            for k, v in after.items() if "lora_" not in k}
    assert base.keys() == before.keys()
    assert all(bool((base[k] == before[k]).all()) for k in before)


def test_lora_layers_adapts_only_the_last_layers_and_stops_backprop_there(tok, tmp_path):
    import torch

    model = tiny_model(tok)
    config = TrainConfig(max_steps=1, learning_rate=1e-2, lora_layers=1, **FAST)
    trainer = build_trainer(model, tok, encode_pairs(PAIRS, tok, 64, "qa"), config, tmp_path, progress=False)
    adapters = [k for k, _ in trainer.model.named_parameters() if "lora_" in k]
    # the same 7 linear projections as 'all-linear', in layer 1 (the last of 2) only
    assert len(adapters) == 14 and all(".layers.1." in k for k in adapters), adapters
    # Backprop reaches no activation below the adapted layer: layer 0's output needs no gradient.
    seen = {}
    layer0 = trainer.model.base_model.model.model.layers[0]

    def record(module, args, output):  # returns None: the output is left as it is
        seen["grad"] = (output[0] if isinstance(output, tuple) else output).requires_grad

    layer0.register_forward_hook(record)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    with torch.autocast("cpu", enabled=False):
        trainer.model(**{k: v for k, v in batch.items() if k in ("input_ids", "labels", "position_ids")})
    assert seen["grad"] is False
    trainer.train()
    assert all(p.abs().sum() > 0 for k, p in trainer.model.named_parameters() if "lora_B" in k)


def test_lora_layers_beyond_the_model_is_an_error(tok, tmp_path):
    config = TrainConfig(max_steps=1, lora_layers=3, **FAST)
    with pytest.raises(HeirloomError, match="training.lora_layers: 3 layers asked, the model has 2"):
        build_trainer(tiny_model(tok), tok, encode_pairs(PAIRS, tok, 64, "qa"), config, tmp_path, progress=False)


def test_lora_layers_unset_keeps_earlier_training_keys():
    assert "lora_layers" not in TrainConfig().fingerprint()  # runs made before the option keep their keys
    assert TrainConfig(lora_layers=4).fingerprint()["lora_layers"] == 4


def test_train_student_artifacts_and_merged_model(tiny_dir, tmp_path):
    import torch

    from heirloom.models import load_hf

    out = tmp_path / "run"
    config = TrainConfig(max_steps=4, learning_rate=5e-2, **{**FAST, "logging_steps": 3})
    result = train_student(PAIRS, tiny_dir, out, config, progress=False)
    assert result.steps == 4 and result.n_examples == 4 and result.n_truncated == 0
    assert result.adapter_dir == out / "adapter" and (out / "adapter" / "adapter_config.json").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 4]  # every logging step and the last one
    assert result.final_loss == log[-1]["loss"] and math.isfinite(result.mean_loss)
    meta = json.loads((out / "train.meta.json").read_text())
    assert meta["config"] == config.model_dump() and meta["resolved"]["learning_rate"] == 5e-2
    assert (meta["resolved"]["dtype"], meta["resolved"]["batching"]) == (config.resolved_dtype(), "packed")
    assert meta["resolved"]["weights_dtype"] == "float32"  # on a CPU, also under bf16 autocast
    assert meta["student"] == tiny_dir and meta["data"]["n_examples"] == 4
    assert meta["data"]["end_of_turn"] == "<|im_end|>" and len(meta["data"]["sha256_16"]) == 16
    assert {"torch", "transformers", "trl", "peft"} <= meta["versions"].keys()

    merged, mtok = load_hf(str(out / "merged"), device="cpu")
    base, _ = load_hf(tiny_dir, device="cpu")
    assert not any(".lora_" in k for k in merged.state_dict())
    ids = mtok("Say hi", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(merged(ids).logits, base(ids).logits)  # the adapter was merged in
    gen = merged.generate(ids, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] > ids.shape[1]


class _KillAt:
    """A callback that dies after `step`, like a killed job (the checkpoint before it survives)."""

    def __new__(cls, step):
        from transformers import TrainerCallback

        class Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == step:
                    raise KeyboardInterrupt("killed")

        return Kill()


def test_resume_after_kill_continues_and_matches_uninterrupted(tiny_dir, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    config = TrainConfig(method="full", max_steps=4, save_steps=2, learning_rate=1e-2, **FAST)
    straight = train_student(PAIRS, tiny_dir, tmp_path / "a", config, progress=False)

    original = sft.build_trainer
    monkeypatch.setattr(sft, "build_trainer", lambda *a, **k: _with(original(*a, **k), _KillAt(3)))
    with pytest.raises(KeyboardInterrupt):
        train_student(PAIRS, tiny_dir, tmp_path / "b", config, progress=False)
    ckpts = tmp_path / "b" / "checkpoints"
    assert (ckpts / "checkpoint-2").is_dir() and not (tmp_path / "b" / "merged").exists()
    monkeypatch.setattr(sft, "build_trainer", original)

    resumed = train_student(PAIRS, tiny_dir, tmp_path / "b", config, progress=False)
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.steps == 4
    meta = json.loads((tmp_path / "b" / "train.meta.json").read_text())
    assert meta["steps_this_session"] == 2
    log = [json.loads(line)["step"] for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4]  # before and after the resume, once each
    a = load_file(tmp_path / "a" / "merged" / "model.safetensors")
    b = load_file(tmp_path / "b" / "merged" / "model.safetensors")
    assert all(bool((a[k] - b[k]).abs().max() < 1e-5) for k in a)  # same seed, same weights
    assert resumed.final_loss == pytest.approx(straight.final_loss, rel=1e-4)

    # Checkpoints made from other inputs are never resumed; resume=False starts over.
    with pytest.raises(HeirloomError, match="checkpoints were made from a different student, data or config"):
        train_student(PAIRS, tiny_dir, tmp_path / "b", config.model_copy(update={"seed": 1}), progress=False)
    fresh = train_student(PAIRS, tiny_dir, tmp_path / "b",
                          config.model_copy(update={"max_steps": 1, "resume": False}), progress=False)
    assert fresh.resumed_from is None and fresh.steps == 1
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-1"]


def _with(trainer, callback):
    trainer.add_callback(callback)
    return trainer


def test_cli_train(tiny_dir, tmp_path):
    data = tmp_path / "selected.jsonl"
    PAIRS.to_json(data, orient="records", lines=True)
    (tmp_path / "train.yaml").write_text("max_steps: 2\nlogging_steps: 1\nbatch_size: 4\ndevice: cpu\n")
    r = CliRunner().invoke(cli, ["train", "--data", str(data), "--student", tiny_dir, "--out", str(tmp_path / "o"),
                                 "--config", str(tmp_path / "train.yaml"), "--method", "full", "--lr", "1e-3",
                                 "--max-length", "64", "--dtype", "float32", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "on 4 pairs: 2 steps" in r.output
    meta = json.loads((tmp_path / "o" / "train.meta.json").read_text())
    assert (meta["config"]["method"], meta["config"]["learning_rate"], meta["config"]["max_steps"]) == ("full", 1e-3, 2)
    assert meta["config"]["dtype"] == meta["resolved"]["dtype"] == "float32"
    assert not (tmp_path / "o" / "adapter").exists()


def test_cli_help_and_errors(tmp_path, capsys):
    r = CliRunner().invoke(cli, ["train", "--help"])
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "[default: (lora)]" in text and "[default: (2e-4 (lora) / 2e-5 (full))]" in text
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope.jsonl: no such file" in err and "\n" not in err
    (tmp_path / "bad.csv").write_text("prompt,text\na,b\n")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")])
    assert "missing column(s) completion" in capsys.readouterr().err
    (tmp_path / "ok.csv").write_text("prompt,completion\na,b\n")
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path / "ok.csv"), "--student", str(tmp_path / "no-such-model"),
              "--out", str(tmp_path / "o")])
    assert "no-such-model': no such file or directory, and not an embedded alias" in capsys.readouterr().err


@pytest.mark.integration
def test_lora_on_embedded_model_changes_its_logits(tmp_path):
    import torch

    from heirloom.models import load_hf

    config = TrainConfig(max_steps=2, batch_size=4, max_length=64, learning_rate=1e-3, device="cpu")
    result = train_student(PAIRS, "smollm2-135m", tmp_path, config, progress=False)
    assert result.steps == 2 and math.isfinite(result.final_loss)
    base, tok = load_hf("smollm2-135m", device="cpu")
    merged, _ = load_hf(str(result.merged_dir), device="cpu")
    text = tok.apply_chat_template([{"role": "user", "content": "Capital of France?"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        diff = (merged(ids).logits - base(ids).logits).abs().max().item()
    assert diff > 1e-3
