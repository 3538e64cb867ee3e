"""Shared fixtures: the shared data directory, and a tiny random-weight Llama with the embedded tokenizer.

The package never looks for ../shared/data by itself: the tests name it the way a user
names a data directory, through $HEIRLOOM_DATA (set here unless already set).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HEIRLOOM_DATA", str(ROOT.parent / "shared" / "data"))
SHARED_DATA = Path(os.environ["HEIRLOOM_DATA"])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA} "
                    "(set HEIRLOOM_DATA, or clone the project beside ../shared)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one torch thread; on a busy 2-core machine, two threads
    spin-wait against each other and run up to 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tok():
    """The embedded model's tokenizer (SmolLM2: chat template, pad == eos == <|im_end|>)."""
    from heirloom.models.loader import load_tokenizer

    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tok) -> Path:
    """A 2-layer random Llama saved with SmolLM2's tokenizer and chat template (fast, offline)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
