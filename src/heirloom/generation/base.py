"""The batch-first generation interface every backend implements.

One call asks for k samples of each of many prompts; backends are free to batch,
share prefills, or fan out requests, but always return `len(prompts)` lists of
exactly k `Completion`s, in order. A backend that cannot produce a sample raises;
it never returns an empty completion in its place.

A backend also declares what it takes and can do: an `Options` model (checked
before anything loads, `parse_backend_options`), capabilities as class attributes
(log-likelihoods, prompt log-probabilities, message lists, per-prompt seeds), and
how the registry builds and checks it from a model reference (`from_ref`,
`check_options`, `check_model`). Left out: streaming and token-level logprobs of
generated text.
"""

from __future__ import annotations

import difflib
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


class NoOptions(BaseModel):
    """The options of a backend that takes none."""

    model_config = ConfigDict(extra="forbid")


class Backend(ABC):
    """A model that generates; capabilities are declared, not probed with isinstance or getattr.

    A backend is found by `name` (the model reference's prefix, see `registry.py`) and
    configured by its `Options` model: `make_backend(ref, **options)` validates the options
    against it before anything loads.
    """

    name: str = "base"
    Options: type[BaseModel] = NoOptions
    # --- capabilities (class attributes; a backend may set them per instance in __init__) ---
    supports_loglikelihood: bool = False  # loglikelihood() works
    # prompt_logprobs(texts) works: per-token prompt log-probabilities (`heirloom serve` scoring).
    supports_prompt_logprobs: bool = False
    # generate() takes chat message lists as prompts (system messages, history) besides strings.
    supports_messages: bool = False
    # Prompts per generate() call that keep this backend busy; the candidates stage appends
    # each call's output at once, so a crash loses at most this many prompts.
    preferred_batch: int = 16
    # generate() honours `seeds=[...]`, one base seed per prompt in place of params.seed, so
    # requests with different seeds can share one call (`heirloom serve` batches them).
    supports_prompt_seeds: bool = False
    # The model has a chat template: what `chat=None` uses, and what suites ask to pick
    # their prompt format (instruction through the template, or raw continuation).
    chat: bool = False
    # Stop strings used when the sampling params set none (an embedded base model's own).
    default_stop: tuple[str, ...] = ()

    def __init__(self, model_id: str):
        self.model_id = model_id

    # --- how the registry builds and checks a backend (override when the reference carries more) ---
    @classmethod
    def from_ref(cls, ref, options: dict) -> "Backend":
        """The backend for a parsed `ModelRef` with checked options."""
        return cls(ref.name, **options)

    @classmethod
    def check_options(cls, ref, options: dict) -> None:
        """Raise a one-line HeirloomError if `options` do not fit this backend; load nothing."""
        parse_backend_options(cls.Options, options, cls.name)

    @classmethod
    def check_model(cls, ref) -> None:
        """Raise a one-line HeirloomError if the model this backend would load cannot be; load nothing.
        Default: `ref.name` is loaded here (alias, .gguf, directory or hub id)."""
        from ..models.check import check_local_model

        check_local_model(ref.name)

    # --- the interface ---------------------------------------------------------------------
    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        k: int = 1,
        params: SamplingParams | None = None,
        chat: bool | None = None,
        progress: bool = True,
        seeds: Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        """k completions for each prompt.

        `chat=None` treats prompts as instructions: the model's chat template when it
        has one, else the paper's base-model template (`formatting.QA_TEMPLATE`);
        `chat=True` requires a chat template; `chat=False` continues the raw text.
        `seeds`: one base seed per prompt, in place of `params.seed` (`prompt_seeds` reads
        both); a backend that cannot honour it declares `supports_prompt_seeds = False` and
        raises when it is given. Sampling params without stop strings get `default_stop`
        (`self.sampling(params)`).
        """

    def sampling(self, params: SamplingParams | None) -> SamplingParams:
        """`params` (default: SamplingParams()) with this model's `default_stop` when it sets no stop."""
        params = params or SamplingParams()
        if not params.stop and self.default_stop:
            params = params.model_copy(update={"stop": tuple(self.default_stop)})
        return params

    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], progress: bool = True
    ) -> list[LoglikResult]:
        """log p(continuation | context) for each (context, continuation) pair."""
        raise NotImplementedError(f"backend {self.name!r} does not score log-likelihoods")

    def prompt_logprobs(self, texts: Sequence[str]) -> list:
        """Per-token log-probabilities of each text, as `protocol.PromptToken` lists."""
        raise NotImplementedError(f"backend {self.name!r} does not return prompt log-probabilities")

    def describe(self) -> dict:
        """How this backend runs its model (device, dtype, ...), for provenance records; not part
        of any stage key."""
        return {"backend": self.name, "model": self.model_id}

    def close(self) -> None:
        """Release the model or connections (no-op by default)."""


def parse_backend_options(schema: type[BaseModel], options: dict, backend: str) -> BaseModel:
    """A backend's keyword options checked against its schema; one line naming the option
    (an unknown one with the closest known name)."""
    try:
        return schema(**options)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        if err["type"] == "extra_forbidden":
            known = list(schema.model_fields)
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
            raise HeirloomError(f"{backend} backend option {where}: unknown option; {hint}") from None
        raise HeirloomError(f"{backend} backend option {where}: {err['msg']}") from None


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
