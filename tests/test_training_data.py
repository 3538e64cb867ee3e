"""The labels the student is trained on, checked on the batches the trainer builds.

Oracle: the student's own chat template (or the paper's QA template) rendering
the (prompt, completion) conversation; labels must cover exactly the completion
tokens plus the end-of-turn token, even though SmolLM2's pad token *is* its
end-of-turn token.
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from heirloom.errors import HeirloomError
from heirloom.training import TrainConfig, build_trainer, load_train_config
from heirloom.training.data import IGNORE, encode_pairs, load_pairs

PAIRS = pd.DataFrame({
    "prompt_id": ["p0", "p1", "p2", "p3"],
    "prompt": ["What is 2+2?", "Name a colour of the sky on a clear day.", "Say hi", "Capital of France?"],
    "completion": ["4", "Blue.", "Hi there! How can I help you today?", " Paris, a city on the Seine."],
})






@pytest.fixture(scope="module")
def base_tok(tok):
    t = copy.deepcopy(tok)
    t.chat_template = None  # a base model: no chat template
    return t


def tiny_model(tok):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))


def trainer_batches(tok, method, tmp_path, batching="padded"):
    """Every batch of one epoch, from the trainer's own dataloader (collator included)."""
    enc = encode_pairs(PAIRS, tok, max_length=256)
    config = TrainConfig(method=method, batch_size=3, max_steps=1, device="cpu", batching=batching)
    trainer = build_trainer(tiny_model(tok), tok, enc, config, tmp_path / "ckpt", progress=False)
    return list(trainer.get_train_dataloader())


def rows(batch):
    """(input ids, labels) of each example in a batch: padded rows cut at their attention mask, or a
    packed row split at its sequence boundaries (positions restarting at 0)."""
    if "attention_mask" not in batch:
        bounds = batch["cu_seq_lens_q"].tolist()
        ids, labels, pos = batch["input_ids"][0].tolist(), batch["labels"][0].tolist(), batch["position_ids"][0].tolist()
        assert batch["input_ids"].shape[0] == 1 and [p for p in pos if p == 0] == [0] * (len(bounds) - 1)
        assert pos == [i for a, b in zip(bounds, bounds[1:]) for i in range(b - a)]
        # The loss targets are exactly the labelled next tokens, at the positions that predict them.
        keep = batch["logits_to_keep"].tolist()
        assert keep == [i for i in range(len(ids) - 1) if labels[i + 1] != IGNORE]
        assert batch["shift_labels"][0].tolist() == [labels[i + 1] for i in keep]
        return [(ids[a:b], labels[a:b]) for a, b in zip(bounds, bounds[1:])]
    out = []
    for ids, labels, mask in zip(batch["input_ids"].tolist(), batch["labels"].tolist(),
                                 batch["attention_mask"].tolist()):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n)  # right padding
        assert labels[n:] == [IGNORE] * (len(mask) - n)  # padding, though pad id == eot id here
        out.append((ids[:n], labels[:n]))
    return out


def check_batches(batches, tok, expected_text, prompt_ids, eot):
    """Each example's labels are its completion tokens then `eot`; prompt (and padding) are IGNORE."""
    seen = set()
    for batch in batches:
        assert batch["labels"].shape == batch["input_ids"].shape
        for ids, labels in rows(batch):
            text = tok.decode(ids)
            i = expected_text.index(text)  # which pair this row is (raises if none)
            seen.add(i)
            p = prompt_ids[i]
            completion = tok(PAIRS["completion"][i], add_special_tokens=False)["input_ids"]
            assert ids[:len(p)] == p  # the prompt exactly as generation tokenizes it
            assert labels[:len(p)] == [IGNORE] * len(p)
            assert labels[len(p):] == completion + [eot]
            assert ids[-1] == eot
    assert seen == set(range(len(PAIRS)))


@pytest.mark.parametrize("method,batching", [("full", "padded"), ("lora", "padded"), ("lora", "packed")])
def test_labels_chat_template(tok, tmp_path, method, batching):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token_id == tok.eos_token_id == im_end  # the trap this test guards against
    full = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": c}],
                                    tokenize=False) for p, c in zip(PAIRS["prompt"], PAIRS["completion"])]
    # SmolLM2's template writes "<|im_end|>\n"; the newline after the end of turn is not trained.
    assert all(f.endswith("<|im_end|>\n") for f in full)
    expected = [f[:-1] for f in full]
    prompts = [tok(tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True), add_special_tokens=False)["input_ids"]
               for p in PAIRS["prompt"]]
    batches = trainer_batches(tok, method, tmp_path, batching)
    check_batches(batches, tok, expected, prompts, im_end)
    if batching == "padded":
        assert any(0 in b["attention_mask"] for b in batches)  # padding actually happened


@pytest.mark.parametrize("batching", ["padded", "packed"])
def test_labels_base_model_template(base_tok, tmp_path, batching):
    qa = [f"### Question: {p}\n ### Answer: " for p in PAIRS["prompt"]]
    expected = [q + c + base_tok.eos_token for q, c in zip(qa, PAIRS["completion"])]
    prompts = [base_tok(q)["input_ids"] for q in qa]
    assert base_tok.decode(prompts[0]).endswith("Answer: ")  # the trailing space stays a prompt token
    check_batches(trainer_batches(base_tok, "full", tmp_path, batching), base_tok, expected, prompts,
                  base_tok.eos_token_id)


def test_qa_format_forced_on_chat_tokenizer(tok):
    enc = encode_pairs(PAIRS, tok, 256, prompt_format="qa")
    assert not enc.chat and enc.end_of_turn == tok.eos_token
    assert tok.decode(enc.input_ids[2]).startswith("### Question: Say hi\n ### Answer: Hi there!")


def test_chat_format_requires_template(base_tok):
    with pytest.raises(HeirloomError, match="no chat template"):
        encode_pairs(PAIRS, base_tok, 256, prompt_format="chat")


def test_long_completion_loses_tail_and_is_counted(tok):
    prompt_len = len(encode_pairs(PAIRS.iloc[[2]], tok, 256).labels[0]) - 11  # 10 completion tokens + eot
    enc = encode_pairs(PAIRS.iloc[[2]].reset_index(drop=True), tok, max_length=prompt_len + 4)
    assert len(enc.input_ids[0]) == prompt_len + 4
    trained = [t for t in enc.labels[0] if t != IGNORE]
    assert trained == tok("Hi there! How can I help you today?", add_special_tokens=False)["input_ids"][:4]
    assert tok.eos_token_id not in trained  # a cut completion is not taught to stop
    assert enc.truncated_rows == [0] and enc.truncated_tokens == 11 - 4
    assert enc.summary()["n_truncated"] == 1


@pytest.mark.parametrize("batching", ["padded", "packed"])
def test_completion_cut_off_by_the_generator_ends_or_stays_open(tok, tmp_path, batching):
    """finish_reason 'length' (the teacher hit its token limit mid-answer): by default it ends like any
    completion (plain SFT); with cut_off_completions='open' its tokens are trained and an end-of-turn is
    not, in the trainer's own batches."""
    from heirloom.training.data import open_ended, open_key

    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    cut = PAIRS.assign(finish_reason=["stop", "length", "stop", None])  # None: a row that does not say
    closed = encode_pairs(PAIRS, tok, 256)
    default = encode_pairs(cut, tok, 256)
    assert default.labels == closed.labels and default.cut_off_rows == [1] and default.open_rows == []
    enc = encode_pairs(cut, tok, 256, cut_off_completions="open")
    assert enc.open_rows == enc.cut_off_rows == [1] and enc.summary()["n_open"] == enc.summary()["n_cut_off"] == 1
    assert enc.input_ids[1] == closed.input_ids[1][:-1] and enc.labels[1] == closed.labels[1][:-1]
    assert [enc.labels[i] for i in (0, 2, 3)] == [closed.labels[i] for i in (0, 2, 3)]
    completion = tok(PAIRS["completion"][1], add_special_tokens=False)["input_ids"]
    config = TrainConfig(method="lora", batch_size=4, max_steps=1, device="cpu", batching=batching)
    trainer = build_trainer(tiny_model(tok), tok, enc, config, tmp_path, progress=False)
    examples = [r for b in trainer.get_train_dataloader() for r in rows(b)]
    trained = [[t for t in labels if t != IGNORE] for _, labels in examples]
    assert sorted(trained) == sorted([t for t in row if t != IGNORE] for row in enc.labels)
    assert [c for c in trained if c[-1] != im_end] == [completion]
    # Which rows stay open is part of the training key, and only when some do (old runs keep theirs).
    assert open_ended(cut) == open_ended(PAIRS, "open") == [False] * 4
    assert open_key(open_ended(cut)) == open_key(open_ended(PAIRS, "open")) == {}
    assert open_key(open_ended(cut, "open")) != open_key(open_ended(cut.assign(finish_reason="length"), "open"))


def test_prompt_too_long_is_an_error_naming_the_row(tok):
    enc = encode_pairs(PAIRS, tok, 256)
    lens = [sum(1 for t in row if t == IGNORE) for row in enc.labels]
    limit = sorted(lens)[1]  # rows with a prompt at least this long have no room for a completion
    bad = [i for i, n in enumerate(lens) if n >= limit]
    first = f"row {bad[0]} \\(prompt_id p{bad[0]}\\) and {len(bad) - 1} more"
    with pytest.raises(HeirloomError, match=rf"{first}: prompt is {lens[bad[0]]} tokens.*max_length={limit}"):
        encode_pairs(PAIRS, tok, max_length=limit)


def test_long_prompts_skip_leaves_out_exactly_those_pairs_and_lists_them(tok):
    full = encode_pairs(PAIRS, tok, 256)
    lens = [sum(1 for t in row if t == IGNORE) for row in full.labels]
    limit = sorted(lens)[1]
    bad = [i for i, n in enumerate(lens) if n >= limit]
    enc = encode_pairs(PAIRS, tok, max_length=limit, long_prompts="skip")
    kept = [i for i in range(len(PAIRS)) if i not in bad]
    assert len(enc.input_ids) == len(kept) and len(enc.skipped) == len(bad)
    assert enc.skipped[0] == f"row {bad[0]} (prompt_id p{bad[0]}): prompt is {lens[bad[0]]} tokens"
    for row, i in zip(enc.labels, kept):  # the kept pairs are encoded as they are alone
        alone = encode_pairs(PAIRS.iloc[[i]].reset_index(drop=True), tok, max_length=limit).labels[0]
        assert row == alone
    assert enc.summary()["n_skipped"] == len(bad)
    with pytest.raises(HeirloomError, match="every prompt leaves no room"):
        encode_pairs(PAIRS, tok, max_length=min(lens), long_prompts="skip")


def test_load_pairs_errors(tmp_path):
    with pytest.raises(HeirloomError, match="no such file"):
        load_pairs(tmp_path / "missing.jsonl")
    (tmp_path / "sel.jsonl").write_text('{"prompt": "a", "answer": "b"}\n')
    with pytest.raises(HeirloomError, match=r"sel.jsonl: missing column\(s\) completion"):
        load_pairs(tmp_path / "sel.jsonl")
    with pytest.raises(HeirloomError, match="row 1: completion is empty"):
        load_pairs(pd.DataFrame({"prompt": ["a", "b"], "completion": ["x", " "]}))
    with pytest.raises(HeirloomError, match="no rows"):
        load_pairs(pd.DataFrame({"prompt": [], "completion": []}))


def test_config_defaults_and_file(tmp_path):
    assert TrainConfig().lr == 2e-4 and TrainConfig(method="full").lr == 2e-5
    assert TrainConfig(method="full", learning_rate=1e-3).lr == 1e-3
    assert TrainConfig(dtype="float32").use_bf16() is False and TrainConfig(dtype="bfloat16").use_bf16() is True
    f = tmp_path / "train.yaml"
    f.write_text("student:\n  training:\n    method: full\n    epochs: 3\n")  # a run config
    c = load_train_config(f, epochs=None, seed=7)
    assert (c.method, c.epochs, c.seed) == ("full", 3, 7)
    f.write_text("lora_rank: 8\n")
    with pytest.raises(HeirloomError, match="train.yaml: lora_rank: Extra inputs are not permitted"):
        load_train_config(f)
    f.write_text("epochs: [\n")
    with pytest.raises(HeirloomError, match=r"train.yaml:\d+: invalid YAML"):
        load_train_config(f)


def test_loss_is_mean_nll_of_labelled_tokens(tok, tmp_path):
    """Both loss paths (the model's cross-entropy used on CPU, TRL's fused kernel used on
    GPUs) equal the mean next-token NLL over the labelled tokens, computed by hand."""
    import torch
    from trl import SFTTrainer

    enc = encode_pairs(PAIRS, tok, max_length=256)
    config = TrainConfig(method="full", batch_size=4, device="cpu", batching="padded")
    trainer = build_trainer(tiny_model(tok), tok, enc, config, tmp_path, progress=False)
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        target = batch["labels"][:, 1:]
        keep = target != IGNORE
        oracle = -logp[keep].gather(-1, target[keep].unsqueeze(-1)).mean()
        plain = trainer.compute_loss(model, dict(batch))
        fused = SFTTrainer.compute_loss(trainer, model, dict(batch))
    assert int(keep.sum()) == enc.trained_tokens
    assert plain.item() == pytest.approx(oracle.item(), rel=1e-5)
    assert fused.item() == pytest.approx(oracle.item(), rel=1e-4)


def test_end_of_turn_is_read_from_the_chat_template(tok):
    """A Gemma-like template ending turns with another special token than EOS: that token is trained."""
    from heirloom.training.data import end_of_turn_id

    t = copy.deepcopy(tok)
    t.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n"
                       "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    endoftext = t.convert_tokens_to_ids("<|endoftext|>")
    assert endoftext != t.eos_token_id
    assert end_of_turn_id(t, chat=True) == endoftext
    enc = encode_pairs(PAIRS.iloc[:1], t, 256)
    assert enc.labels[0][-1] == enc.input_ids[0][-1] == endoftext and enc.end_of_turn == "<|endoftext|>"
    t.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"  # no end-of-turn token: EOS
    assert end_of_turn_id(t, chat=True) == t.eos_token_id
