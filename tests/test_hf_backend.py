"""The hf backend on a tiny random Llama: shape, reproducibility, padding, stop strings, errors."""

import pytest
import torch

from heirloom.errors import HeirloomError
from heirloom.generation.base import SamplingParams
from heirloom.generation.hf import HFBackend

PROMPTS = ["Hi", "Tell me a long story about a dragon and a very small village by the sea.", "2+2?", "Name a colour."]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return HFBackend(str(tiny_model_dir))


def test_k_completions_per_prompt_in_order(backend):
    out = backend.generate(PROMPTS, k=3, params=SamplingParams(max_new_tokens=8, seed=1), progress=False)
    assert len(out) == len(PROMPTS)
    for comps in out:
        assert [c.sample_index for c in comps] == [0, 1, 2]
        for c in comps:
            assert 0 <= c.num_tokens <= 8 and c.finish_reason in ("stop", "length")
            assert c.model == backend.model_id and isinstance(c.seed, int)
    assert len({c.seed for comps in out for c in comps}) == 3 * len(PROMPTS)


@pytest.fixture(scope="module")
def exact(tiny_model_dir):
    """float64: batch shapes change logits only by rounding, which float64 keeps off near-ties."""
    return HFBackend(str(tiny_model_dir), dtype="float64")


def test_same_seed_same_samples_whatever_the_batching(exact, tiny_model_dir):
    params = SamplingParams(max_new_tokens=10, seed=5, top_p=0.95)
    big = exact.generate(PROMPTS, k=2, params=params, progress=False)
    small = HFBackend(str(tiny_model_dir), batch_size=2, dtype="float64").generate(
        PROMPTS[::-1], k=2, params=params, progress=False)[::-1]
    assert [[c.text for c in cs] for cs in big] == [[c.text for c in cs] for cs in small]
    other = exact.generate(PROMPTS, k=2, params=params.model_copy(update={"seed": 6}), progress=False)
    assert [[c.text for c in cs] for cs in big] != [[c.text for c in cs] for cs in other]


def test_greedy_matches_transformers_generate_with_left_padding(backend):
    """Prompts of very different lengths share a batch; each must decode as if alone."""
    params = SamplingParams(temperature=0, max_new_tokens=12)
    ours = backend.generate(PROMPTS, k=1, params=params, progress=False)
    tok, model = backend.tokenizer, backend.model
    for prompt, comps in zip(PROMPTS, ours):
        enc = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        ref = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id)
        ref_ids = ref[0, enc["input_ids"].shape[1]:].tolist()
        ref_ids = ref_ids[: ref_ids.index(tok.eos_token_id)] if tok.eos_token_id in ref_ids else ref_ids
        assert comps[0].num_tokens == len(ref_ids)
        assert comps[0].text == tok.decode(ref_ids, skip_special_tokens=True)


def test_raw_continuation_and_stop_strings(backend):
    params = SamplingParams(temperature=0, max_new_tokens=20)
    raw = backend.generate(["The sky is"], k=1, params=params, chat=False, progress=False)[0][0]
    assert raw.text  # random weights produce some text
    stop = raw.text.strip()[:2]
    cut = backend.generate(["The sky is"], k=1, params=params.model_copy(update={"stop": (stop,)}),
                           chat=False, progress=False)[0][0]
    assert stop not in cut.text and raw.text.startswith(cut.text) and cut.finish_reason == "stop"


def test_too_long_prompt_is_an_error_not_a_truncation(backend):
    with pytest.raises(HeirloomError, match="prompt 1 has .* tokens"):
        backend.generate(["ok", "word " * 600], k=1, params=SamplingParams(max_new_tokens=4), progress=False)


def test_missing_model_is_a_clear_error():
    with pytest.raises(HeirloomError, match="no-such-model"):
        HFBackend("./no-such-model")


def test_message_lists_use_the_chat_template(backend):
    params = SamplingParams(temperature=0, max_new_tokens=6)
    as_text = backend.generate(["Name a colour."], k=1, params=params, progress=False)[0][0]
    as_messages = backend.generate([[{"role": "user", "content": "Name a colour."}]], k=1, params=params,
                                   progress=False)[0][0]
    assert as_text.text == as_messages.text


def test_prompt_logprobs_are_the_model_log_softmax(backend):
    text = "The cat sat on the mat."
    tokens = backend.prompt_logprobs([text])[0]
    ids = backend.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = backend.model(input_ids=ids).logits[0].float().log_softmax(-1)  # scores are taken in float32
    assert tokens[0].logprob is None and len(tokens) == ids.shape[1]
    for t in range(1, ids.shape[1]):
        assert tokens[t].logprob == pytest.approx(float(logp[t - 1, ids[0, t]]), abs=1e-5)
        assert tokens[t].top_logprob >= tokens[t].logprob
    assert "".join(t.text for t in tokens) == text


def test_per_prompt_seeds_replace_the_params_seed_and_must_match_the_prompts(backend):
    params = SamplingParams(temperature=1.0, max_new_tokens=5, seed=7)
    one = backend.generate(["a", "b"], k=2, params=params, progress=False)
    same = backend.generate(["a", "b"], k=2, params=params.model_copy(update={"seed": 0}), progress=False, seeds=[7, 7])
    assert [[c.seed for c in cs] for cs in same] == [[c.seed for c in cs] for cs in one]
    assert [[c.text for c in cs] for cs in same] == [[c.text for c in cs] for cs in one]
    with pytest.raises(HeirloomError, match="seeds: 1 for 2 prompts"):
        backend.generate(["a", "b"], params=params, progress=False, seeds=[1])
