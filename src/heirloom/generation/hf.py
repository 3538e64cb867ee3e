"""The transformers backend: batched sampling with a lean decode loop.

Why not `model.generate(num_return_sequences=k)`: it repeats each prompt k times
*before* the prefill, draws every sample from one global RNG (so a sample
depends on which other prompts shared its batch), and keeps finished rows in the
batch until the longest one ends. Here:

- prompts are length-sorted (longest first) and decoded in about `batch_size` rows with
  continuous batching (`decode.py`): a finished row takes the next waiting prompt;
- each prompt is prefilled once and its KV cache repeated for its k samples;
- sample j of a prompt draws from its own `torch.Generator`, seeded from
  (seed, prompt, j), so its random draws do not depend on batching or resumption
  (its logits can, by float rounding when the batch's shape differs: a token on a
  near-tie may then flip; in float64 the samples are the same whatever the batching);
- keys and values are written into preallocated buffers (no per-step copy of the cache);
- the weights run in bfloat16 where the hardware has fast bf16 (`dtype: auto`, see
  `models/precision.py`); sampling always sees float32 logits.

Left out: speculative decoding.
"""

from __future__ import annotations

import json
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..errors import HeirloomError
from .base import Backend, Completion, LoglikResult, SamplingParams, parse_backend_options, prompt_seeds, sample_seed
from .decode import decode
from .formatting import format_prompt, has_chat_template

# Rows (prompt x sample) decoded together on CPU; on GPU it is sized from free memory. A CPU step's
# fixed costs (weights streamed from memory, Python between kernels) are shared by more rows:
# 256 rows make 1.6-1.8x the tokens/s of 64 (bench/bench_decode_step.py, docs/benchmarks.md).
CPU_BATCH_ROWS = 256
CPU_KV_BUDGET = 2 * 1024**3  # bytes of KV cache a CPU batch may hold


class HFOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(None, description="cpu, cuda, cuda:1, ... (default and `auto`: cuda if available)")
    dtype: str | None = Field(None, description="weights dtype: float32, bfloat16, ... "
                              "(default and `auto`: bfloat16 on a GPU and on CPUs with AVX512-BF16/AMX, "
                              "else float32; see models/precision.py)")
    batch_size: int | None = Field(None, ge=1, description="rows (prompt x sample) decoded together "
                                   "(default: sized to the device's free memory)")


class HFBackend(Backend):
    name = "hf"
    Options = HFOptions
    supports_loglikelihood = True
    supports_prompt_logprobs = True
    supports_messages = True  # a prompt may be a chat message list (used by `heirloom serve`)
    supports_prompt_seeds = True

    def __init__(self, model: str, **options):
        from ..models.embedded import default_stop
        from ..models.loader import load_hf

        super().__init__(model)
        self.options = o = parse_backend_options(HFOptions, options, "hf")
        self.model, self.tokenizer = load_hf(model, device=o.device, dtype=o.dtype or "auto")
        self.device = self.model.device
        self.dtype = str(self.model.dtype).removeprefix("torch.")  # what ran, for provenance and benchmarks
        self.batch_size = o.batch_size
        self.default_stop = default_stop(model)
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)

    @property
    def chat(self) -> bool:
        return has_chat_template(self.tokenizer)

    # --- generation -------------------------------------------------------
    def generate(self, prompts: Sequence[str], k: int = 1, params: SamplingParams | None = None,
                 chat: bool | None = None, progress: bool = True,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        import torch
        from tqdm.auto import tqdm

        params = self.sampling(params)
        if k < 1:
            raise HeirloomError(f"k must be >= 1, got {k}")
        seeds = prompt_seeds(seeds, params, len(prompts))
        encoded = [self._encode(p, chat, i, params) for i, p in enumerate(prompts)]
        rows = self._batch_rows(max((len(e) for e in encoded), default=1) + params.max_new_tokens)
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # longest first: less padding
        keys = [p if isinstance(p, str) else json.dumps(p, sort_keys=True) for p in prompts]
        sample_seeds = [[sample_seed(seeds[i], keys[i], j) for j in range(k)] for i in order]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        bar = tqdm(total=len(prompts) * k, desc=f"generate {self.model_id}", unit="sample",
                   disable=not progress, leave=False)
        with torch.inference_mode():
            done = decode(self.model, [encoded[i] for i in order], sample_seeds, params, rows=rows, pad_id=pad,
                          eos_ids=self.eos_ids, hit_stop=lambda t: self._hit_stop(t, params.stop),
                          on_finish=lambda _: bar.update(1))
        bar.close()
        results: list[list[Completion]] = [[] for _ in prompts]
        for i, samples in zip(order, done):
            results[i] = [self._completion(s, params) for s in samples]
        return results

    def _completion(self, s, params: SamplingParams) -> Completion:
        text = self.tokenizer.decode(s.tokens, skip_special_tokens=True)
        if params.stop:
            text = _cut_at_stop(text, params.stop)
        return Completion(text=text, num_tokens=len(s.tokens), finish_reason=s.finish, model=self.model_id,
                          seed=s.seed, sample_index=s.index)

    def _encode(self, prompt, chat: bool | None, index: int, params: SamplingParams) -> list[int]:
        if isinstance(prompt, list):  # chat messages
            if not self.chat:
                raise HeirloomError(f"prompt {index}: message lists need a model with a chat template")
            text, templated = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True), True
        else:
            text = format_prompt(self.tokenizer, prompt, chat)
            # A chat template writes its own special tokens; raw and QA text get the tokenizer's.
            templated = chat is not False and self.chat
        ids = self.tokenizer(text, add_special_tokens=not templated)["input_ids"]
        if not ids:
            raise HeirloomError(f"prompt {index} is empty after formatting")
        if self.max_positions and len(ids) + params.max_new_tokens > self.max_positions:
            raise HeirloomError(
                f"prompt {index} has {len(ids)} tokens; with max_new_tokens={params.max_new_tokens} it exceeds "
                f"the model's {self.max_positions} positions (shorten it or lower max_new_tokens)")
        return ids

    def _batch_rows(self, seq_len: int) -> int:
        import torch

        if self.batch_size:
            return self.batch_size
        # KV bytes per row: 2 (k, v) x layers x kv_heads x head_dim x dtype size x sequence length.
        cfg = self.model.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        per_row = 2 * cfg.num_hidden_layers * heads * head_dim * self.model.dtype.itemsize * seq_len
        per_row += cfg.vocab_size * 4 * 4  # logits and sampling buffers
        if self.device.type != "cuda":  # long prompts get fewer rows, so a laptop's memory holds them
            return int(max(1, min(CPU_BATCH_ROWS, CPU_KV_BUDGET // per_row)))
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(max(1, min(1024, 0.6 * free // per_row)))

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        # Decode only the tail: a stop string spans at most a few dozen tokens.
        tail = self.tokenizer.decode(tokens[-32:], skip_special_tokens=False)
        return any(s in tail for s in stop)

    # --- scoring -------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]:
        from .loglik import loglikelihood

        return loglikelihood(self.model, self.tokenizer, requests, progress=progress)

    def float32_loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]:
        """`loglikelihood` with float32 weights and computation (re-scoring near ties, see
        `profiling/tie_rescoring.py`). A backend running in bf16/fp16 reloads its model in float32
        from the same source for this call and frees it afterwards: one more copy of the weights
        (4 bytes per parameter) and one load per call, which re-scoring makes once per suite part,
        instead of holding a float32 copy for the backend's lifetime."""
        import torch

        from ..models.loader import load_hf
        from .loglik import loglikelihood

        if self.model.dtype in (torch.float32, torch.float64):
            return self.loglikelihood(requests, progress=progress)
        model, _ = load_hf(self.model_id, device=str(self.device), dtype="float32")
        try:
            return loglikelihood(model, self.tokenizer, requests, progress=progress)
        finally:
            del model

    def prompt_logprobs(self, texts: Sequence[str]):
        """Per-token log-probabilities of each text (for `echo` + `logprobs` on `heirloom serve`)."""
        import torch

        from .protocol import PromptToken

        results = []
        with torch.inference_mode():
            for text in texts:
                enc = self.tokenizer(text, return_offsets_mapping=True, return_tensors="pt")
                ids = enc["input_ids"].to(self.device)
                logp = self.model(input_ids=ids).logits[0].float().log_softmax(-1)
                tokens = []
                for t in range(ids.shape[1]):
                    tok_id = int(ids[0, t])
                    start = int(enc["offset_mapping"][0, t, 0])
                    piece = self.tokenizer.decode([tok_id])
                    if t == 0:  # the first token has no context to be scored against
                        tokens.append(PromptToken(piece, start, None, None, None))
                        continue
                    top = int(logp[t - 1].argmax())
                    tokens.append(PromptToken(piece, start, float(logp[t - 1, tok_id]),
                                              self.tokenizer.decode([top]), float(logp[t - 1, top])))
                results.append(tokens)
        return results

    def describe(self) -> dict:
        return {**super().describe(), "device": str(self.device), "dtype": self.dtype,
                "batch_rows": self.batch_size or "auto", "continuous_batching": True}

    def close(self) -> None:
        self.model = None


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    return text[:cut] if cut >= 0 else text


def _eos_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise HeirloomError(f"model {tokenizer.name_or_path!r} declares no end-of-sequence token")
    return ids
