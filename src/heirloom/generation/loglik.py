"""Batched log-likelihood scoring for transformers causal LMs: each distinct context run once.

`loglikelihood(model, tokenizer, [(context, continuation), ...])` returns, per request, the
sum of the continuation tokens' log-probabilities given the context. The token sequences
(context + continuation) are merged into a prefix tree; each node (a run of tokens shared
by its requests) goes through the model once, batched with the other nodes of its level,
on a copy of its parent's KV-cache rows. So a context shared by several options is computed
once, and so is a BBQ passage shared by its negative and non-negative questions. A shared
stem that saves fewer than MIN_SAVED tokens and scores nothing (e.g. "### Context:") is
instead repeated in each branch: an extra tree level would cost more in padding and
passes. Rows are right-padded (no row is ever fully masked), position ids continue from
each row's true length, chunks are cut to minimize padded tokens + a per-pass cost, and
logits are projected only at positions whose next token is scored.

Tokenization rule (what is scored):
- `ctx = enc(context)` and `whole = enc(context + continuation)` (no special tokens, plus the
  prefix the tokenizer adds by default, e.g. Llama's BOS, in front of the context). The
  continuation tokens are `whole[len(ctx):]`: the joint text's tokens after the context
  (lm-eval's split). If a token straddles the boundary (`ctx` is not a prefix of `whole`),
  the continuation is encoded on its own instead, so it is never scored as empty.
- Whitespace stays where the caller put it. Unlike lm-eval we do not move a context's
  trailing whitespace into the continuation: the paper's BBQ prompt ends in "Answer: " and
  the option is appended after one more space, so requests are ("...Answer: ", " " + option)
  and the scored tokens are the option's in-context tokens (" The", " grandfather").
  Start the continuation with the separating space to get lm-eval's tokens.
- Empty context: the first continuation token is conditioned on the tokenizer's default
  prefix, else its BOS token, else its EOS token (how CrowS-Pairs scores whole sentences).

Left out: rolling-window perplexity, sequences longer than the model's window (an error, no
silent truncation), encoder-decoder models. Sliding-window models whose padded cache would
outgrow the window fall back to the plain per-request loop (`reference_loglikelihood`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import HeirloomError
from .base import LoglikResult

MIN_SAVED = 16  # tokens a shared stem must save to get its own level (see _build)
PASS_COST = 32  # a forward pass's fixed cost, in padded tokens, when choosing chunks (see _chunks)
DEFAULT_BATCH_SIZE = 32  # rows per forward pass; the CPU gains little beyond, a GPU wants more


def _default_prefix(tokenizer) -> list[int]:
    """Ids the tokenizer puts in front of text by default (e.g. [BOS]); [] for GPT-2-style ones."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    return []


def start_ids(tokenizer) -> list[int]:
    """What an empty context is: the default prefix, else [BOS], else [EOS]."""
    prefix = _default_prefix(tokenizer)
    if prefix:
        return prefix
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return [tid]
    raise HeirloomError("tokenizer has neither a BOS nor an EOS token to condition an empty context on")


def encode_requests(tokenizer, requests: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(context ids, continuation ids) per request, by the rule in the module docstring."""
    def enc(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    prefix, empty = _default_prefix(tokenizer), start_ids(tokenizer)
    out = []
    for i, (context, continuation) in enumerate(requests):
        if not continuation:
            raise HeirloomError(f"request {i}: empty continuation, nothing to score")
        if not context:
            out.append((list(empty), enc(continuation)))
            continue
        ctx, whole = enc(context), enc(context + continuation)
        cont = whole[len(ctx):] if whole[:len(ctx)] == ctx else []
        out.append((prefix + ctx, cont or enc(continuation)))
    return out


@dataclass
class _Node:
    tokens: list[int]  # this edge's tokens, at absolute positions start, start + 1, ...
    start: int
    children: list["_Node"] = field(default_factory=list)
    queries: list[tuple[int, int, int]] = field(default_factory=list)  # (offset, target token, request)

    @property
    def feed(self) -> int:
        # A leaf's last token predicts nothing that is scored, so it is never fed.
        return len(self.tokens) if self.children else len(self.tokens) - 1


def _build(seqs: list[list[int]], firsts: list[int], members: list[int], depth: int) -> list[_Node]:
    """Radix-tree nodes for the sequences `members`, which agree on their first `depth` tokens."""
    groups: dict[int, list[int]] = {}
    for m in members:
        if len(seqs[m]) > depth:
            groups.setdefault(seqs[m][depth], []).append(m)
    nodes = []
    for group in groups.values():
        end, head = depth + 1, seqs[group[0]]
        while all(len(seqs[m]) > end and seqs[m][end] == head[end] for m in group):
            end += 1
        node = _Node(tokens=head[depth:end], start=depth)
        for m in group:  # logits at position p score token p + 1 when that token is a continuation token
            for p in range(max(depth, firsts[m] - 1), min(end, len(seqs[m]) - 1)):
                node.queries.append((p - depth, seqs[m][p + 1], m))
        node.children = _build(seqs, firsts, group, end)
        if node.children and not node.queries and (len(node.children) - 1) * len(node.tokens) < MIN_SAVED:
            # A short shared stem saves fewer tokens than its extra level costs in padding
            # and passes: push its tokens down into its children (never a scored context's end).
            for c in node.children:
                c.tokens, c.start = node.tokens + c.tokens, node.start
                c.queries = [(o + len(node.tokens), t, r) for o, t, r in c.queries]
            nodes.extend(node.children)
        else:
            nodes.append(node)
    return nodes


class _WindowExceeded(Exception):
    """The padded cache would outgrow a sliding window; results would no longer be exact."""


def _select(cache, rows):
    """The cache rows `rows` as a new cache; the parent cache stays intact for other chunks."""
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    new.batch_select_indices(rows)  # re-binds tensors on the copies only
    return new


def _chunks(entries: list, batch_size: int) -> list[list]:
    """Split rows sorted by length (longest first) into chunks of at most `batch_size` rows,
    minimizing padded tokens + PASS_COST per chunk (a small dynamic program over cut points)."""
    n = len(entries)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - batch_size), j):
            cost = best[i] + (j - i) * entries[i][0].feed + PASS_COST
            if cost < best[j]:
                best[j], cut[j] = cost, i
    out, j = [], n
    while j > 0:
        out.append(entries[cut[j]:j])
        j = cut[j]
    return out[::-1]


def _run(model, entries, parent, batch_size, pad, window, acc, bar) -> None:
    """Run nodes (`entries` = (node, parent row)) level by level, chunk by chunk, depth first."""
    import torch
    from transformers.cache_utils import DynamicCache

    from .kv_buffer import cache_kwarg

    device = model.device
    entries = sorted((e for e in entries if e[0].feed > 0), key=lambda e: -e[0].feed)
    for chunk in _chunks(entries, batch_size):
        width = chunk[0][0].feed
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        new_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        starts = torch.tensor([n.start for n, _ in chunk])
        for k, (n, _) in enumerate(chunk):
            ids[k, :n.feed] = torch.tensor(n.tokens[:n.feed])
            new_mask[k, :n.feed] = 1
        ids, new_mask, starts = ids.to(device), new_mask.to(device), starts.to(device)
        cache, mask = None, new_mask
        if parent is not None:
            rows = torch.tensor([r for _, r in chunk], device=device)
            cache, mask = _select(parent[0], rows), torch.cat([parent[1][rows], new_mask], dim=1)
        if window and mask.shape[1] >= window:
            raise _WindowExceeded
        # Positions continue from each row's true prefix length, not from the padded width.
        pos = starts[:, None] + torch.arange(width, device=device)[None, :]
        qs = [(k, off, tgt, req) for k, (n, _) in enumerate(chunk) for off, tgt, req in n.queries]
        offsets = sorted({off for _, off, _, _ in qs}) or [width - 1]
        if cache is None:
            cache = DynamicCache(config=model.config)  # what the model would make itself
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                    logits_to_keep=torch.tensor(offsets, device=device), **{cache_kwarg(model): cache})
        if qs:
            col = {off: j for j, off in enumerate(offsets)}
            logits = out.logits[[k for k, *_ in qs], [col[o] for _, o, _, _ in qs]].float()
            tgt = torch.tensor([t for _, _, t, _ in qs], device=device)
            lp = torch.log_softmax(logits, dim=-1).gather(1, tgt[:, None])[:, 0].tolist()
            hit = (logits.argmax(-1) == tgt).tolist()
            for (_, _, _, req), v, h in zip(qs, lp, hit):
                acc[req][0] += v
                acc[req][1] &= h
            bar.update(len(qs))
        kids = [(c, k) for k, (n, _) in enumerate(chunk) for c in n.children]
        if kids:
            _run(model, kids, (cache, mask), batch_size, pad, window, acc, bar)  # the forward filled `cache`


def _sliding_window(config) -> int | None:
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    return None if types is not None and "sliding_attention" not in types else window


def loglikelihood(
    model, tokenizer, requests: Sequence[tuple[str, str]], batch_size: int | None = None, progress: bool = True
) -> list[LoglikResult]:
    """log p(continuation | context) per request; each distinct prefix is computed once."""
    import sys

    import torch
    from tqdm.auto import tqdm

    batch_size = batch_size or DEFAULT_BATCH_SIZE
    if batch_size < 1:
        raise HeirloomError(f"batch_size must be >= 1, got {batch_size}")
    encoded = encode_requests(tokenizer, requests)
    limit = getattr(model.config, "max_position_embeddings", None)
    for i, (ctx, cont) in enumerate(encoded):
        if limit and len(ctx) + len(cont) > limit:
            raise HeirloomError(f"request {i}: {len(ctx) + len(cont)} tokens exceed the model's window of {limit}")
    seqs = [ctx + cont for ctx, cont in encoded]
    roots = _build(seqs, [len(c) for c, _ in encoded], list(range(len(seqs))), 0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    acc = [[0.0, True] for _ in encoded]
    bar = tqdm(total=sum(len(c) for _, c in encoded), disable=not progress, desc="loglikelihood", unit="tok")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2 * max(map(len, seqs), default=0) + 100))
    try:
        with torch.inference_mode():
            _run(model, [(r, None) for r in roots], None, batch_size, pad, _sliding_window(model.config), acc, bar)
    except _WindowExceeded:
        return reference_loglikelihood(model, tokenizer, requests, progress=progress)
    finally:
        bar.close()
    return [LoglikResult(logprob=lp, num_tokens=len(cont), is_greedy=g) for (lp, g), (_, cont) in zip(acc, encoded)]


def reference_loglikelihood(
    model, tokenizer, requests: Sequence[tuple[str, str]], progress: bool = False
) -> list[LoglikResult]:
    """The plain loop: one unbatched forward pass over context + continuation per request.

    Same tokenization, no padding, no cache; the oracle for tests and the benchmark's baseline.
    """
    import torch
    from tqdm.auto import tqdm

    out = []
    with torch.inference_mode():
        for ctx, cont in tqdm(encode_requests(tokenizer, requests), disable=not progress, desc="reference"):
            ids = torch.tensor([ctx + cont], device=model.device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)[len(ctx) - 1:-1]
            tgt = torch.tensor(cont, device=model.device)
            out.append(LoglikResult(float(logp.gather(1, tgt[:, None]).sum()), len(cont),
                                    bool((logp.argmax(-1) == tgt).all())))
    return out
