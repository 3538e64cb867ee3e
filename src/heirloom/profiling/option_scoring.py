"""How a BBQ option is scored: the authors' rule (`paper`) or the option's in-context tokens.

Both rules score the same text, `prompt + " " + option` (the prompt ends in "Answer: ",
so the option follows a double space, as in the authors' template), and take the mean
token log-likelihood; they differ in *which* tokens are averaged:

- `paper` (the authors' code, literally): n = the number of tokens of `tokenizer(option)`
  (the option alone, with the tokenizer's default special tokens, as `tokenizer(option)`
  and `tokenizer.encode(option)` count them), and the score is the mean log-probability of
  the last n tokens of `tokenizer(prompt + " " + option)`. Tokenized alone an option has no
  leading space, so n can differ from its in-context token count: the rule then averages a
  fragment of the option, or the option plus the lone space token before it.
- `in_context`: the option's own tokens in context, i.e. the request
  `(prompt, " " + option)` under the backend's split (`generation.loglik`).

The `paper` rule goes through the same batched `loglikelihood([(context, continuation)])`
as every other request, so the prefix tree still shares each prompt: the full text is cut
at the character where its last n tokens start (the fast tokenizer's offsets), and the
cut is checked to re-tokenize into exactly those tokens (`tokenizer(context)` gives the
first tokens, the continuation alone the last n), so a backend that splits at the
boundary (hf's lm-eval split, vLLM's separate tokenization, an OpenAI server's text
offsets) scores exactly the authors' tokens; each result must report n tokens.
Needs the model's tokenizer on the scorer (`.tokenizer`: the hf and vllm backends); a
scorer without one (openai, ray) is an error naming `in_context`.
Left out: slow (non-Rust) tokenizers, which give no character offsets.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import HeirloomError

RULES = ("paper", "in_context")


def _ids(tokenizer, text: str, special: bool = True) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def paper_request(tokenizer, prompt: str, option: str, where: str = "") -> tuple[str, str, int]:
    """(context, continuation, n): `prompt + " " + option` cut before its last n tokens."""
    text = prompt + " " + option
    n = len(_ids(tokenizer, option))
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
    except NotImplementedError:
        raise HeirloomError("bbq.option_scoring=paper needs a fast tokenizer (character offsets); "
                            f"{type(tokenizer).__name__} has none, use option_scoring: in_context") from None
    full, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    if not 1 <= n < len(full):
        raise HeirloomError(f"{where}: the option {option!r} has {n} tokens alone, the whole text {len(full)}: "
                            "the paper rule cannot score its last n tokens")
    cut = int(offsets[len(full) - n][0])
    context, continuation = text[:cut], text[cut:]
    if not context or _ids(tokenizer, context) != full[:-n] or _ids(tokenizer, continuation, False) != full[-n:]:
        raise HeirloomError(f"{where}: the last {n} tokens of {text[-60:]!r} do not start at a boundary that "
                            "re-tokenizes the same way; use bbq.option_scoring: in_context")
    return context, continuation, n


def option_scores(scorer, questions: Sequence[tuple[str, Sequence[str]]], rule: str,
                  where: Sequence[str] | None = None, progress: bool = True) -> list[np.ndarray]:
    """Per question (prompt, options), each option's score under `rule` (see the module docstring)."""
    from .multiple_choice import option_scores as in_context_scores

    if rule == "in_context":
        return in_context_scores(scorer, [(p, [" " + o for o in opts]) for p, opts in questions], progress)
    if rule != "paper":
        raise HeirloomError(f"bbq.option_scoring: {rule!r} is not one of {', '.join(RULES)}")
    tokenizer = getattr(scorer, "tokenizer", None)
    if tokenizer is None:
        raise HeirloomError(f"bbq.option_scoring=paper counts an option's tokens with the model's tokenizer, and "
                            f"{type(scorer).__name__} exposes none; use option_scoring: in_context")
    where = list(where) if where is not None else [f"question {i}" for i in range(len(questions))]
    requests, ns = [], []
    for label, (prompt, opts) in zip(where, questions):
        for k, opt in enumerate(opts):
            context, continuation, n = paper_request(tokenizer, prompt, opt, f"{label} option {k}")
            requests.append((context, continuation))
            ns.append(n)
    results = scorer.loglikelihood(requests, progress=progress)
    if len(results) != len(requests):
        raise HeirloomError(f"scorer returned {len(results)} results for {len(requests)} requests")
    flat = np.empty(len(results))
    for i, (r, n) in enumerate(zip(results, ns)):
        if r.num_tokens != n:  # the backend split the text elsewhere than the authors' rule
            raise HeirloomError(f"request {i}: the scorer scored {r.num_tokens} tokens of {requests[i][1]!r}, "
                                f"the paper rule {n}; use bbq.option_scoring: in_context")
        flat[i] = r.logprob / n
    out, start = [], 0
    for _, opts in questions:
        out.append(flat[start:start + len(opts)])
        start += len(opts)
    return out
