"""A Backend for any OpenAI-compatible server (vLLM, llama.cpp, TGI, Ollama, hosted APIs).

Instruction prompts (`chat=True` or None) go to `/chat/completions` as one user
message, so the server applies the model's own chat template; raw continuation
(`chat=False`), prompt scoring, and instructions for a base model
(`chat_template=False`: the paper's QA template) go to the legacy `/completions`.
Several base URLs (replicas of one model) form one pool: requests go to the
least-busy endpoint, at most `max_concurrency` in flight on each; failed ones are
retried, on another endpoint when one is free, as `transport.py` describes
(429/5xx/timeouts/drops, honouring Retry-After). Samples do not depend on which
replica served them: each carries its own seed. Sampling is sent in full, server
extensions included (`extra_params`): a field left out takes the server's default,
and llama.cpp's defaults (top_k 40, min_p 0.05) are not the distribution asked for.

Token counts: `usage.completion_tokens` when a response holds one choice, or a
per-choice logprob list when the server sends one; when one response carries
several choices (`n > 1`) and only a total, `num_tokens` is NaN (and a warning
says so) rather than a guess. `n_per_request="never"` gives exact counts.

Left out: streaming, tools, multi-turn conversations.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..errors import HeirloomError
from .base import Backend, Completion, LoglikResult, SamplingParams, parse_backend_options, prompt_seeds, sample_seed
from .formatting import QA_TEMPLATE
from .transport import Rejected, RetryingClient

_FINISH = {"stop": "stop", "eos": "stop", "eos_token": "stop", "stop_sequence": "stop",
           "end_turn": "stop", "length": "length", "max_tokens": "length"}


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(8, ge=1, description="requests in flight at once, per endpoint")
    max_retries: int = Field(5, ge=0, description="retries of a request that got 429, 408, 5xx, a timeout or a dropped connection")
    timeout: float = Field(60.0, gt=0, description="seconds to wait for one response")
    n_per_request: Literal["auto", "always", "never"] = Field(
        "auto", description="ask for the k samples of a prompt in one request (`n=k`); auto tries it once and "
        "falls back to one request per sample (own seed each) if the server rejects n or returns fewer choices")
    supports_loglikelihood: bool = Field(
        False, description="the server returns prompt logprobs from /completions with echo=True, logprobs=1, "
        "max_tokens=0 (vLLM, OpenAI legacy, `heirloom serve` on backends with prompt_logprobs)")
    chat_template: bool = Field(True, description="the served model has a chat template: instructions go to "
                                "/chat/completions; false (base models): to /completions in the paper's QA template")
    extra_params: bool = Field(True, description="the server takes sampling params beyond OpenAI's: top_k is "
                               "always sent (0 = off), with min_p=0 and repeat_penalty=1, so a server whose own "
                               "defaults filter or penalise (llama.cpp) samples as asked; turn off for OpenAI's own API")
    backoff_base: float = Field(1.0, gt=0, description="seconds before the first retry; doubles per retry, with jitter")
    backoff_max: float = Field(60.0, gt=0, description="longest wait before a retry, Retry-After included")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the API key; "
                                    "without a key no Authorization header is sent (local servers need none)")


class OpenAIBackend(Backend):
    name = "openai"
    Options = OpenAIOptions
    supports_prompt_seeds = True

    def __init__(self, model_id: str, base_url: str | Sequence[str] | None = None, **options):
        super().__init__(model_id)
        self.options = parse_backend_options(OpenAIOptions, options, "openai")
        api_key_env = self.options.api_key_env
        urls = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        # Several URLs: replicas of one model, used as one pool (see transport.py).
        self.base_urls = [u.strip().rstrip("/") for u in ([urls] if isinstance(urls, str) else urls)]
        self.base_url = ",".join(self.base_urls)
        self.supports_loglikelihood = self.options.supports_loglikelihood
        self.chat = self.options.chat_template
        key = os.environ.get(api_key_env) if api_key_env else None
        o = self.options
        self._transport = RetryingClient(
            self.base_urls, f"(model {model_id})", {"Authorization": f"Bearer {key}"} if key else {},  # local servers need none
            o.max_concurrency, o.max_retries, o.timeout, o.backoff_base, o.backoff_max)
        self.stats = self._transport.stats  # requests sent (per endpoint) and retries, for logs and tests
        # Prompts per generate() call from the candidates stage: enough to keep every endpoint busy.
        self.preferred_batch = max(16, 2 * self._transport.capacity)
        # Whether `n` works: fixed by the option, or learnt from the first k>1 request (auto).
        self.n_supported: bool | None = {"always": True, "never": False}.get(self.options.n_per_request)
        self._warned_counts = False

    @classmethod
    def from_ref(cls, ref, options: dict) -> "OpenAIBackend":
        if ref.api_key_env:
            options = {"api_key_env": ref.api_key_env, **options}
        return cls(ref.name, base_url=ref.base_url.split(","), **options)

    @classmethod
    def check_model(cls, ref) -> None:
        """The model lives on the server: nothing to check here (an unknown one fails at the first request)."""

    # --- generation -----------------------------------------------------------------
    def generate(self, prompts: Sequence[str], k: int = 1, params: SamplingParams | None = None,
                 chat: bool | None = None, progress: bool = True,
                 seeds: Sequence[int] | None = None) -> list[list[Completion]]:
        params = self.sampling(params)
        if k < 1:
            raise HeirloomError(f"k must be >= 1, got {k}")
        seeds = prompt_seeds(seeds, params, len(prompts))
        if params.top_k > 0 and not self.options.extra_params:
            raise HeirloomError(f"top_k={params.top_k} but {self.base_url} takes no extra params "
                                "(extra_params=False); set top_k=0")
        if chat and not self.chat:
            raise HeirloomError(f"model {self.model_id!r} at {self.base_url}: chat=True but chat_template=False")
        path = "/chat/completions" if chat or (chat is None and self.chat) else "/completions"
        # An instruction for a base model goes in the paper's template; seeds stay keyed by the prompt.
        texts = [QA_TEMPLATE.format(prompt=p) for p in prompts] if chat is None and not self.chat else list(prompts)
        results: list[list[Completion | None]] = [[None] * k for _ in prompts]
        if k > 1 and self.n_supported is None and prompts:
            probe = self._request_n(path, prompts[0], texts[0], k, params, seeds[0], threading.Event(), probing=True)
            if probe is not None:
                results[0] = probe
        if k > 1 and self.n_supported:
            units = [(i, None) for i in range(len(prompts)) if results[i][0] is None]
        else:
            units = [(i, j) for i in range(len(prompts)) if results[i][0] is None for j in range(k)]

        def run(unit, cancel):
            i, j = unit
            if j is None:
                return self._request_n(path, prompts[i], texts[i], k, params, seeds[i], cancel)
            seed = sample_seed(seeds[i], prompts[i], j)
            return self._parse(self._transport.post(path, self._body(path, texts[i], 1, seed, params), cancel),
                               path, 1, seed, j)

        done = sum(r[0] is not None for r in results)
        size = [k if j is None else 1 for _, j in units]
        counts = [0] * len(prompts)

        def on_done(index, comps):
            i, j = units[index]
            for c in comps:
                results[i][c.sample_index] = c
            counts[i] += size[index]
            return counts[i] == k  # the prompt is complete: advance the bar

        self._transport.map(run, units, on_done, total=len(prompts), initial=done, progress=progress,
                            desc=self.model_id, unit="prompt")
        return results  # type: ignore[return-value]

    def _request_n(self, path, prompt, text, k, params, base_seed, cancel, probing=False) -> list[Completion] | None:
        seed = sample_seed(base_seed, prompt, 0)  # one request, one seed: that of sample 0
        try:
            data = self._transport.post(path, self._body(path, text, k, seed, params), cancel)
        except Rejected as e:
            if not probing or e.status not in (400, 422):
                raise
            self.n_supported = False  # the server refused n (or the request): one request per sample
            return None
        got = len(data.get("choices") or [])
        if got < k:
            if probing:
                self.n_supported = False
                return None
            raise HeirloomError(f"{self.base_url}{path} (model {self.model_id}): asked for n={k} choices, "
                                f"got {got}; set n_per_request='never'")
        self.n_supported = True
        return self._parse(data, path, k, seed, 0)

    def _body(self, path: str, prompt: str, n: int, seed: int, params: SamplingParams) -> dict:
        body = {"model": self.model_id, "temperature": params.temperature, "top_p": params.top_p,
                "max_tokens": params.max_new_tokens, "seed": seed}
        if path == "/chat/completions":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if n > 1:
            body["n"] = n
        if params.stop:
            body["stop"] = list(params.stop)
        if self.options.extra_params:
            # Unsent, these take the server's defaults: llama.cpp's servers sample with top_k 40 and
            # min_p 0.05 (llama-cpp-python adds repeat_penalty 1.1), not the distribution asked for.
            # top_k 0 is "off" for current vLLM, llama.cpp and heirloom serve (llama-cpp-python refuses
            # -1); servers without these fields ignore them.
            body.update(top_k=params.top_k, min_p=0.0, repeat_penalty=1.0)
        return body

    def _parse(self, data: dict, path: str, n: int, seed: int, first_index: int) -> list[Completion]:
        where = f"{self.base_url}{path} (model {self.model_id})"
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))[:n]
        if len(choices) < n:
            raise HeirloomError(f"{where}: expected {n} choice(s), got {len(choices)}")
        total = (data.get("usage") or {}).get("completion_tokens")
        out = []
        for j, choice in enumerate(choices):
            text = (choice.get("message") or {}).get("content") if path == "/chat/completions" else choice.get("text")
            if not isinstance(text, str):
                raise HeirloomError(f"{where}: choice {j} carries no text ({str(choice)[:120]})")
            count = _choice_tokens(choice)
            if count is None and n == 1 and isinstance(total, int):
                count = total
            if count is None:
                count = float("nan")
                self._warn_counts(where)
            reason = choice.get("finish_reason")
            out.append(Completion(text=text, num_tokens=count, finish_reason=_FINISH.get(reason, reason or "unknown"),
                                  model=self.model_id, seed=seed, sample_index=first_index + j))
        return out

    def _warn_counts(self, where: str) -> None:
        if not self._warned_counts:
            self._warned_counts = True
            warnings.warn(f"{where} gives no per-choice token counts for n>1 responses: num_tokens is NaN; "
                          "use n_per_request='never' for exact counts", stacklevel=4)

    # --- scoring --------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]:
        if not self.supports_loglikelihood:
            raise HeirloomError(f"openai backend {self.base_url}: log-likelihoods need a server that returns prompt "
                                "logprobs (vLLM does); turn on the option supports_loglikelihood")
        results: list[LoglikResult | None] = [None] * len(requests)

        def on_done(index, result):
            results[index] = result
            return True

        self._transport.map(lambda pair, cancel: self._score(pair[0], pair[1], cancel), list(requests), on_done,
                            total=len(requests), progress=progress, desc=self.model_id, unit="pair")
        return results  # type: ignore[return-value]

    def _score(self, context: str, continuation: str, cancel) -> LoglikResult:
        where = f"{self.base_url}/completions (model {self.model_id})"
        if not continuation:
            raise HeirloomError(f"{where}: cannot score an empty continuation")
        text = context + continuation
        body = {"model": self.model_id, "prompt": text, "echo": True, "logprobs": 1, "max_tokens": 0, "temperature": 0}
        choice = (self._transport.post("/completions", body, cancel).get("choices") or [{}])[0]
        lp = choice.get("logprobs") or {}
        tokens, values, offsets, tops = (lp.get(f) for f in ("tokens", "token_logprobs", "text_offset", "top_logprobs"))
        if not tokens or not values or not offsets or not tops or not len(tokens) == len(values) == len(offsets):
            raise HeirloomError(f"{where}: the response has no prompt logprobs (echo=True, logprobs=1); "
                                "this server cannot score, set supports_loglikelihood=False")
        generated = sum(start >= len(text) for start in offsets)
        if generated:
            # OpenAI's API and vLLM echo the prompt alone for max_tokens=0; llama-cpp-python reads 0 as
            # "no limit" (and its echoed logprobs are one token late: log p(t_i | t_<=i)).
            raise HeirloomError(f"{where}: the server generated {generated} token(s) after the prompt although "
                                "max_tokens=0: it does not score prompts as OpenAI's API does "
                                "(llama-cpp-python's server, for one); set supports_loglikelihood=False")
        total, count, greedy = 0.0, 0, True
        for t, start in enumerate(offsets):
            end = offsets[t + 1] if t + 1 < len(offsets) else len(text)
            if end <= len(context):
                continue  # context token; a token straddling the boundary counts as continuation
            if values[t] is None:
                raise HeirloomError(f"{where}: the first token has no log-probability; give a non-empty context")
            total += values[t]
            count += 1
            greedy = greedy and bool(tops[t]) and values[t] >= max(tops[t].values()) - 1e-6
        if count == 0:
            raise HeirloomError(f"{where}: no token of the continuation {continuation[:40]!r} came back")
        return LoglikResult(logprob=total, num_tokens=count, is_greedy=greedy)

    def close(self) -> None:
        self._transport.close()


def _choice_tokens(choice: dict) -> int | None:
    logprobs = choice.get("logprobs") or {}
    listed = logprobs.get("content") if isinstance(logprobs.get("content"), list) else logprobs.get("tokens")
    return len(listed) if isinstance(listed, list) else None


__all__ = ["OpenAIBackend", "OpenAIOptions"]
