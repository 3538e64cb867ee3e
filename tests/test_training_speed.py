"""The speed-ups of training change nothing the student learns.

- Packed batches: the loss of a packed batch equals the per-example losses of the
  same model run on each example alone (oracle: the model's forward on one example,
  the NLL of its labelled tokens summed by hand), so no attention crosses examples
  and position ids restart; logits are computed only at labelled positions.
- bf16: autocast is on (a layer's output is bf16) while the weights, the LoRA
  adapters and the optimizer state stay float32, and the losses stay close to a
  float32 run's.
- The options are part of the training fingerprint (the run stage key).
"""

from __future__ import annotations

import pandas as pd
import pytest

from heirloom.training import TrainConfig, build_trainer
from heirloom.training.data import IGNORE, encode_pairs
from heirloom.training.packing import VARLEN, PackedCollator, use_varlen_attention

PAIRS = pd.DataFrame({
    "prompt": ["What is 2+2?", "Name a colour of the sky on a clear day.", "Say hi", "Capital of France?"],
    "completion": ["4", "Blue.", "Hi there! How can I help you today?", " Paris, a city on the Seine."],
})
FAST = dict(device="cpu", batch_size=4, warmup_ratio=0.0, logging_steps=1, max_length=128)


def tiny_model(tok, attn="sdpa", seed=0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True, attn_implementation=attn))


def per_example_nll_sum(model, enc) -> float:
    """Sum over examples of the NLL of each labelled token, each example run alone."""
    import torch

    total = 0.0
    with torch.no_grad():
        for ids, labels in zip(enc.input_ids, enc.labels):
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :-1].double(), -1)
            for i, t in enumerate(labels[1:]):
                if t != IGNORE:
                    total -= logp[i, t].item()
    return total


@pytest.mark.parametrize("attn", ["sdpa", "eager"])  # heirloom's per-example SDPA; transformers' packed mask
def test_packed_loss_equals_sum_of_per_example_losses(tok, tmp_path, attn):
    import torch

    enc = encode_pairs(PAIRS, tok, 128)
    model = tiny_model(tok, attn).double()
    trainer = build_trainer(model, tok, enc, TrainConfig(method="full", dtype="float32", **FAST), tmp_path,
                            progress=False)
    batch = next(iter(trainer.get_train_dataloader()))
    n = enc.trained_tokens
    assert batch["input_ids"].shape == (1, sum(map(len, enc.input_ids)))  # one row, no padding
    assert batch["shift_labels"].shape == (1, n) and batch["logits_to_keep"].shape == (n,)
    oracle = per_example_nll_sum(model, enc)
    with torch.no_grad(), use_varlen_attention(trainer.model, 128) as varlen:
        assert varlen == (attn == "sdpa")
        loss, out = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
    assert out.logits.shape == (1, n, len(tok))  # logits only where the loss is computed
    assert loss.item() * n == pytest.approx(oracle, rel=1e-6)  # the loss upcasts float64 logits to float32
    # The same row with attention across examples (no restarting positions) is measurably different,
    # so the equality above is evidence of the masking.
    with torch.no_grad():
        crossing = model(input_ids=batch["input_ids"], use_cache=False, logits_to_keep=batch["logits_to_keep"])
        nll = torch.nn.functional.cross_entropy(crossing.logits[0].double(), batch["shift_labels"][0], reduction="sum")
    assert abs(nll.item() - oracle) > 1e-3
    assert model.config._attn_implementation == attn  # restored after training


@pytest.mark.parametrize("batch_size,grad_accum", [(2, 1), (1, 2)])
def test_packed_and_padded_training_agree(tok, tmp_path, batch_size, grad_accum):
    """Same examples per step, same seed: the loss curves of the two layouts match (with gradient
    accumulation too: the loss is normalized by the labelled tokens of the whole step in both)."""
    curves, attention = {}, {}
    for batching in ("packed", "padded"):
        config = TrainConfig(method="full", max_steps=4 // grad_accum, learning_rate=1e-2, batching=batching,
                             dtype="float32", grad_accum=grad_accum, **{**FAST, "batch_size": batch_size})
        model = tiny_model(tok)
        seen = attention[batching] = set()
        model.register_forward_pre_hook(lambda m, a, s=seen: s.add(m.config._attn_implementation))
        trainer = build_trainer(model, tok, encode_pairs(PAIRS, tok, 128), config, tmp_path / batching,
                                progress=False)
        trainer.train()
        curves[batching] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        assert model.config._attn_implementation == "sdpa"  # restored after training
    assert curves["packed"] == pytest.approx(curves["padded"], rel=1e-4)
    assert attention == {"packed": {VARLEN}, "padded": {"sdpa"}}  # per-example attention while packed


def test_bf16_autocast_keeps_weights_adapters_and_optimizer_float32(tok, tmp_path):
    import torch

    losses, seen = {}, {}
    for dtype in ("float32", "bfloat16"):
        model = tiny_model(tok)
        seen[dtype] = set()
        model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, o, s=seen[dtype]: s.add(o.dtype))
        config = TrainConfig(max_steps=3, learning_rate=1e-2, dtype=dtype, **FAST)
        trainer = build_trainer(model, tok, encode_pairs(PAIRS, tok, 128), config, tmp_path / dtype, progress=False)
        trainer.train()
        losses[dtype] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        params = dict(trainer.model.named_parameters())
        assert any("lora_" in k for k in params)
        assert {p.dtype for p in params.values()} == {torch.float32}  # base weights and adapters
        state = [v for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.ndim]
        assert state and {v.dtype for v in state} == {torch.float32}  # AdamW moments
    assert seen == {"float32": {torch.float32}, "bfloat16": {torch.bfloat16}}  # autocast on, and only when asked
    assert all(map(lambda x: x == x and abs(x) < 1e3, losses["bfloat16"]))  # finite
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=1e-2)


def test_dtype_resolution_and_fingerprint(monkeypatch):
    from heirloom.models import precision

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    assert TrainConfig(device="cpu").resolved_dtype() == "bfloat16"
    assert TrainConfig(device="cpu", dtype="float32").resolved_dtype() == "float32"
    auto_bf16 = TrainConfig(device="cpu").fingerprint()
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    assert TrainConfig(device="cpu").resolved_dtype() == "float32"
    assert TrainConfig(device="cpu", dtype="bfloat16").use_bf16() is True  # forced
    auto_fp32 = TrainConfig(device="cpu").fingerprint()
    # 'auto' is keyed by what it resolves to: a CPU without bf16 does not reuse a bf16 student.
    assert auto_fp32 != auto_bf16 and auto_fp32 == TrainConfig(device="cpu", dtype="float32").fingerprint()
    assert auto_bf16 == TrainConfig(device="cpu", dtype="bfloat16").fingerprint()
    assert TrainConfig(device="cpu", batching="padded").fingerprint() != auto_fp32
    assert TrainConfig(device="cpu", logging_steps=1).fingerprint() == auto_fp32  # cadence is not content


def test_packed_collator_never_targets_across_examples():
    batch = PackedCollator()([{"input_ids": [1, 2, 3], "labels": [IGNORE, 2, 3]},
                              {"input_ids": [4, 5], "labels": [4, 5]}])  # a first token labelled anyway
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5] and batch["max_length_q"] == 3
    # positions 0, 1 predict 2, 3; position 2 (end of the first example) must not predict 4.
    assert batch["logits_to_keep"].tolist() == [0, 1, 3] and batch["shift_labels"].tolist() == [[2, 3, 5]]
