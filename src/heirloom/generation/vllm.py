"""A Backend on vLLM (needs a CUDA GPU and `pip install 'heirloom[vllm]'`).

By default every sample is its own request (`n=1, seed=sample_seed(seed, prompt, j)`),
so sample j of a prompt is the same whatever else shares the batch, as with the
hf backend; prefix caching makes the k copies of a prompt cost one prefill.
`sampling="n"` asks for `n=k` in one request instead (one seed per prompt: that
of sample 0). Prompts are formatted as the hf backend formats them
(`formatting.format_prompt`: chat template, QA template for base models, or raw)
and passed as token ids, so a templated BOS is not added twice. Token counts are
the lengths of the output token ids. Log-likelihoods come from `prompt_logprobs`,
with context and continuation tokenized separately.

Left out: LoRA adapters, pipeline parallelism, streaming.
"""

from __future__ import annotations

import json
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..errors import HeirloomError, MissingDependency
from .base import Backend, Completion, LoglikResult, SamplingParams, parse_backend_options, prompt_seeds, sample_seed
from .formatting import format_prompt, has_chat_template


class VLLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sampling: Literal["per_sample_seed", "n"] = Field(
        "per_sample_seed", description="one request per sample with its own seed (batch-independent), "
        "or n=k samples per request from one seed")
    dtype: str = Field("auto", description="weights dtype (auto, bfloat16, float16, float32)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share of GPU memory vLLM may take")
    max_model_len: int | None = Field(None, ge=1, description="context length (default: the model's)")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs to shard the model over")
    enforce_eager: bool = Field(False, description="skip CUDA graph capture: faster start, slower decoding")


class VLLMBackend(Backend):
    name = "vllm"
    Options = VLLMOptions
    supports_loglikelihood = True
    supports_messages = True  # generate() also takes chat message lists (used by `heirloom serve`)
    supports_prompt_seeds = True
    preferred_batch = 256  # a GPU wants hundreds of sequences per step; k copies share a cached prefill

    def __init__(self, model_id: str, **options):
        super().__init__(model_id)
        self.options = parse_backend_options(VLLMOptions, options, "vllm")
        try:
            import vllm
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] != "vllm":
                raise HeirloomError(f"vllm is installed but cannot import {e.name!r}: {e}") from None
            raise MissingDependency("the vLLM backend", "heirloom[vllm]") from None
        import torch

        if not torch.cuda.is_available():
            raise HeirloomError(f"vllm:{model_id}: vLLM needs a CUDA GPU and torch sees none; "
                                "use the hf backend or an openai: server instead")
        from ..models.embedded import default_stop
        from ..models.loader import model_path

        self._vllm = vllm
        o = self.options
        self.default_stop = default_stop(model_id)
        self.llm = vllm.LLM(model=model_path(model_id), dtype=o.dtype, seed=0, enable_prefix_caching=True,
                            gpu_memory_utilization=o.gpu_memory_utilization, max_model_len=o.max_model_len,
                            tensor_parallel_size=o.tensor_parallel_size, enforce_eager=o.enforce_eager)
        self.tokenizer = self.llm.get_tokenizer()

    # --- generation -----------------------------------------------------------------
    def generate(self, prompts: Sequence[str | list[dict]], k: int = 1, params: SamplingParams | None = None,
                 chat: bool | None = None, progress: bool = True,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        params = self.sampling(params)
        if k < 1:
            raise HeirloomError(f"k must be >= 1, got {k}")
        seeds = prompt_seeds(seeds, params, len(prompts))
        inputs = [self._encode(p, chat, i) for i, p in enumerate(prompts)]
        keys = [p if isinstance(p, str) else json.dumps(p, sort_keys=True) for p in prompts]
        per_sample = self.options.sampling == "per_sample_seed" and k > 1
        requests, sampling = [], []
        for inp, key, base in zip(inputs, keys, seeds):
            for j in range(k if per_sample else 1):
                requests.append(inp)
                sampling.append(self._sampling(params, 1 if per_sample else k, sample_seed(base, key, j)))
        outputs = self.llm.generate(requests, sampling, use_tqdm=progress)
        results = []
        for i in range(len(prompts)):
            if per_sample:
                outs = [(outputs[i * k + j].outputs[0], sampling[i * k + j].seed) for j in range(k)]
            else:
                seed = sampling[i].seed
                outs = [(o, seed) for o in sorted(outputs[i].outputs, key=lambda o: o.index)]
            if len(outs) != k:
                raise HeirloomError(f"vllm:{self.model_id}: prompt {i} got {len(outs)} samples, expected {k}")
            results.append([self._completion(o, seed, j, i) for j, (o, seed) in enumerate(outs)])
        return results

    @property
    def chat(self) -> bool:
        return has_chat_template(self.tokenizer)

    def _encode(self, prompt, chat: bool | None, index: int) -> dict:
        if isinstance(prompt, str):
            text = format_prompt(self.tokenizer, prompt, chat)
            templated = chat is not False and has_chat_template(self.tokenizer)
        else:  # a message list: always through the chat template
            if not has_chat_template(self.tokenizer):
                raise HeirloomError(f"model {self.model_id!r} has no chat template for a message list")
            text = self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            templated = True
        # A chat template writes its own special tokens; raw and QA text get the tokenizer's.
        ids = self.tokenizer(text, add_special_tokens=not templated)["input_ids"]
        if not ids:
            raise HeirloomError(f"prompt {index} is empty after formatting")
        return {"prompt_token_ids": list(ids)}

    def _sampling(self, params: SamplingParams, n: int, seed: int):
        return self._vllm.SamplingParams(
            n=n, seed=seed, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # vLLM's "off"
            max_tokens=params.max_new_tokens, stop=list(params.stop) or None)

    def _completion(self, out, seed: int, j: int, i: int) -> Completion:
        reason = out.finish_reason
        if reason not in ("stop", "length"):
            raise HeirloomError(f"vllm:{self.model_id}: prompt {i} sample {j} ended with {reason!r}")
        return Completion(text=out.text, num_tokens=len(out.token_ids), finish_reason=reason,
                          model=self.model_id, seed=seed, sample_index=j)

    # --- scoring --------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]:
        tok = self.tokenizer
        prompts, spans = [], []
        for n, (context, continuation) in enumerate(requests):
            ctx = list(tok(context)["input_ids"]) if context else []
            cont = list(tok(continuation, add_special_tokens=False)["input_ids"])
            if not cont:
                raise HeirloomError(f"loglikelihood request {n}: the continuation is empty")
            if not ctx:  # the first token is conditioned on the start (or end) of text
                start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
                if start is None:
                    raise HeirloomError(f"loglikelihood request {n}: empty context and no BOS/EOS token")
                ctx = [start]
            prompts.append({"prompt_token_ids": ctx + cont})
            spans.append((len(ctx), len(ctx) + len(cont)))
        # max_tokens=1: vLLM must generate something; only the prompt's logprobs are read.
        sp = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        outputs = self.llm.generate(prompts, sp, use_tqdm=progress)
        results = []
        for out, prompt, (a, b) in zip(outputs, prompts, spans):
            ids, total, greedy = prompt["prompt_token_ids"], 0.0, True
            for t in range(a, b):
                position = out.prompt_logprobs[t]
                entry = position[ids[t]]
                total += entry.logprob
                best = max(p.logprob for p in position.values())
                greedy = greedy and (entry.rank == 1 if entry.rank is not None else entry.logprob >= best)
            results.append(LoglikResult(logprob=total, num_tokens=b - a, is_greedy=greedy))
        return results

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # closing must not fail over a cache flush
            pass


__all__ = ["VLLMBackend", "VLLMOptions"]
