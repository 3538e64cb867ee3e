"""The batch-first generation interface every backend implements.

One call asks for k samples of each of many prompts; backends are free to batch,
share prefills, or fan out requests, but always return `len(prompts)` lists of
exactly k `Completion`s, in order. A backend that cannot produce a sample raises;
it never returns an empty completion in its place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import HeirloomError


class SamplingParams(BaseModel):
    """How to sample. `temperature=0` means greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(1.0, ge=0.0, description="softmax temperature; 0 = greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens; 0 = off")
    max_new_tokens: int = Field(256, ge=1, description="tokens generated per sample at most")
    stop: tuple[str, ...] = Field((), description="strings that end a sample (not included in it)")
    seed: int = Field(0, description="base seed; sample j of prompt i is reproducible from it")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Completion:
    text: str
    num_tokens: int
    finish_reason: str  # "stop" (EOS or stop string) or "length"
    model: str
    seed: int | None
    sample_index: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoglikResult:
    """Log-likelihood of a continuation given a context."""

    logprob: float  # sum of token log-probabilities of the continuation
    num_tokens: int  # tokens the continuation was scored over
    is_greedy: bool  # every continuation token was the argmax

    @property
    def mean_logprob(self) -> float:
        return self.logprob / self.num_tokens


class Backend(ABC):
    """A model that generates; capabilities are declared, not probed with isinstance."""

    name: str = "base"
    supports_loglikelihood: bool = False
    # Prompts per generate() call that keep this backend busy; the candidates stage appends
    # each call's output at once, so a crash loses at most this many prompts.
    preferred_batch: int = 16
    # generate() takes `seeds=[...]`, one base seed per prompt in place of params.seed, so
    # requests with different seeds can share one call (`heirloom serve` batches them).
    supports_prompt_seeds: bool = False
    # The model has a chat template: what `chat=None` uses, and what suites ask to pick
    # their prompt format (instruction through the template, or raw continuation).
    chat: bool = False

    def __init__(self, model_id: str):
        self.model_id = model_id

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        params: SamplingParams | None = None,
        chat: bool | None = None,
        progress: bool = True,
    ) -> list[list[Completion]]:
        """k completions for each prompt.

        `chat=None` treats prompts as instructions: the model's chat template when it
        has one, else the paper's base-model template (`formatting.QA_TEMPLATE`);
        `chat=True` requires a chat template; `chat=False` continues the raw text.
        """

    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], progress: bool = True
    ) -> list[LoglikResult]:
        """log p(continuation | context) for each (context, continuation) pair."""
        raise NotImplementedError(f"backend {self.name!r} does not score log-likelihoods")

    def close(self) -> None:
        """Release the model or connections (no-op by default)."""


def parse_backend_options(schema: type[BaseModel], options: dict, backend: str) -> BaseModel:
    """A backend's keyword options checked against its schema, errors naming the option."""
    try:
        return schema(**options)
    except ValidationError as e:
        err = e.errors()[0]
        raise HeirloomError(f"{backend} backend option {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def prompt_seeds(seeds: Sequence[int] | None, params: SamplingParams, n_prompts: int) -> list[int]:
    """The base seed of each prompt: `seeds` (backends with supports_prompt_seeds), else params.seed."""
    if seeds is None:
        return [params.seed] * n_prompts
    if len(seeds) != n_prompts:
        raise HeirloomError(f"seeds: {len(seeds)} for {n_prompts} prompts")
    return list(seeds)


def sample_seed(base_seed: int, prompt_key: str, sample_index: int) -> int:
    """A per-sample seed that depends on the prompt, not on batch composition or order.

    Resumed runs and re-batched runs then draw the same samples for the same prompt.
    """
    import hashlib

    digest = hashlib.sha256(f"{base_seed}|{prompt_key}|{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
