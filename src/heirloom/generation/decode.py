"""Continuous batching for the hf backend: a finished row takes the next waiting prompt.

`decode(...)` samples k continuations of many prompts with a fixed number of batch rows:

- prompts enter in the given order (the backend sorts them longest first); each is
  prefilled once, in a group of prompts of similar length, and its KV cache repeated for
  its k samples;
- when enough rows have finished (at least one prompt's k rows and REFILL_SHARE of the
  batch), the next waiting prompts are prefilled together and written into the finished
  rows' cache slots in place (`BufferedLayer.write_rows`); leading cache columns that no
  live row attends to any more are trimmed, so attention does not run over a growing history;
- once no prompt waits, finished rows are dropped in bulk (cache compaction);
- sample j of a prompt draws one uniform number per token from its own `torch.Generator`
  (seeded by the caller from seed, prompt and j), so its draws never depend on which rows
  share its batch, nor on when it entered. Its logits can, by float rounding, when the
  batch's shape differs (a near-tie may then flip; exact in float64).

Models whose cache cannot be buffered (sliding-window layers) decode in static batches:
new prompts enter only when every row has finished. Left out: speculative decoding, prefix
sharing across prompts, chunked prefill of very long prompts next to running decodes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .base import SamplingParams

REFILL_SHARE = 1 / 16  # refill once this share of the rows (and >= k rows) has finished: a prefill
# costs about what a decode step does, and an idle row wastes its share of every step
COMPACT_SHARE = 0.75  # with nothing waiting, drop finished rows once live rows fall to this share
PREFILL_GROUP_RATIO = 0.5  # prompts prefilled together are at least this share of their group's longest


@dataclass
class Sample:
    prompt: int  # index into the prompts given to `decode`
    index: int  # j: which of the prompt's k samples
    seed: int
    generator: object = None
    tokens: list[int] = field(default_factory=list)
    draws: int = 0
    live: bool = True
    finish: str = "length"  # "stop" after EOS or a stop string


def decode(model, encoded: Sequence[list[int]], seeds: Sequence[Sequence[int]], params: SamplingParams, *,
           rows: int, pad_id: int, eos_ids: Sequence[int], hit_stop: Callable[[list[int]], bool],
           on_finish: Callable[[Sample], None] | None = None) -> list[list[Sample]]:
    """k = len(seeds[i]) samples of each prompt `encoded[i]` (token ids); see the module doc."""
    return _Decoder(model, encoded, seeds, params, rows, pad_id, eos_ids, hit_stop, on_finish).run()


class _Decoder:
    def __init__(self, model, encoded, seeds, params, rows, pad_id, eos_ids, hit_stop, on_finish):
        import torch

        from .kv_buffer import cache_kwarg

        self.model, self.encoded, self.params = model, encoded, params
        self.k = len(seeds[0]) if seeds else 1
        self.capacity = max(rows, self.k)
        self.pad_id, self.hit_stop, self.on_finish = pad_id, hit_stop, on_finish
        self.device = model.device
        self.eos = torch.tensor(list(eos_ids), device=self.device)
        self.kw = cache_kwarg(model)
        self.samples = [[Sample(p, j, s, torch.Generator(device=self.device).manual_seed(s))
                         for j, s in enumerate(ss)] for p, ss in enumerate(seeds)]
        self.rows: list[Sample] = []  # the batch rows, in cache order
        self.cache = self.mask = self.pos = self.pending = None

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> list[list[Sample]]:
        import torch

        from .kv_buffer import is_buffered

        queue = deque(range(len(self.encoded)))
        while True:
            n_live = sum(s.live for s in self.rows)
            dead = len(self.rows) - n_live
            if queue and n_live == 0:
                self._start(self._take(queue, self.capacity // self.k))
            elif queue and is_buffered(self.cache) and dead >= max(self.k, math.ceil(REFILL_SHARE * len(self.rows))):
                self._refill(self._take(queue, dead // self.k))
            elif n_live and dead and n_live <= COMPACT_SHARE * len(self.rows) and not (queue and is_buffered(self.cache)):
                self._compact()
            if not any(s.live for s in self.rows):
                if not queue:
                    break
                continue
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
            self.pos = self.pos + 1
            out = self.model(input_ids=self.pending[:, None], attention_mask=self.mask,
                             position_ids=self.pos[:, None], use_cache=True, **{self.kw: self.cache})
            self.pending = self._sample(out.logits[:, -1, :].float(), self.rows)
        return self.samples

    def _take(self, queue: deque, n: int) -> list[int]:
        """The next `n` (at least 1) waiting prompts, longest first (what `_prefill` expects)."""
        taken = [queue.popleft() for _ in range(min(max(1, n), len(queue)))]
        return sorted(taken, key=lambda p: -len(self.encoded[p]))

    def _sample(self, logits, rows: list[Sample]):
        """Draw one token per row from its own generator and record it; returns the tokens."""
        import torch

        from .sampling import sample_next

        nxt = sample_next(logits, self.params, [s.generator for s in rows])
        is_eos, values = torch.isin(nxt, self.eos).tolist(), nxt.tolist()
        for s, tok, stop in zip(rows, values, is_eos):
            if not s.live:
                continue
            s.draws += 1
            if stop:
                s.finish, s.live = "stop", False
            else:
                s.tokens.append(tok)
                if self.params.stop and self.hit_stop(s.tokens):
                    s.finish, s.live = "stop", False
                elif s.draws >= self.params.max_new_tokens:
                    s.live = False
            if not s.live and self.on_finish:
                self.on_finish(s)
        return nxt

    # --- entering prompts -------------------------------------------------------------------
    def _prefill(self, prompts: list[int], capacity: int):
        """(cache, mask, last positions, first tokens) of `prompts` (longest first) x k rows, left-padded.

        Prompts are prefilled in groups of similar length (`length_groups`), each padded only to
        its own longest, and their caches are then stacked right-aligned: one long prompt among
        short ones would otherwise pad every prompt to its length (40 Dolly prompts of 34-1333
        tokens: 53k prefill tokens instead of 9.7k, most of the run's time).
        """
        import torch
        from transformers.cache_utils import DynamicCache

        from .kv_buffer import buffered_cache

        # One masked column more than the longest prompt: the attention mask is then never all ones,
        # which transformers would drop, and SDPA without a mask decodes bf16 ~2x slower on a CPU.
        lengths = [len(self.encoded[p]) for p in prompts]
        width = lengths[0] + 1
        cache = buffered_cache(self.model.config, capacity + width)
        # The stock cache (sliding-window models) cannot stack rows: one group, padded to the longest.
        groups = length_groups(lengths) if cache is not None else [list(range(len(prompts)))]
        cache = cache or DynamicCache(config=self.model.config)
        masks, logits = [], []
        for g, rows in enumerate(groups):
            w = lengths[rows[0]] + 1
            ids = torch.full((len(rows), w), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):  # left padding: every prompt ends at the last column
                ids[r, w - lengths[i]:] = torch.tensor(self.encoded[prompts[i]])
                mask[r, width - lengths[i]:] = 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            target = cache if g == 0 else buffered_cache(self.model.config, w)
            out = self.model(input_ids=ids, attention_mask=mask[:, -w:], position_ids=_positions(mask)[:, -w:],
                             use_cache=True, logits_to_keep=1, **{self.kw: target})
            if g > 0:
                for layer, new in zip(cache.layers, target.layers):
                    layer.append_rows(new.keys, new.values)
            masks.append(mask)
            logits.append(out.logits[:, -1, :].float())
        mask = torch.cat(masks)
        cache.batch_repeat_interleave(self.k)  # one prefill shared by the prompt's k samples
        new_rows = [s for p in prompts for s in self.samples[p]]
        first = self._sample(torch.cat(logits).repeat_interleave(self.k, dim=0), new_rows)
        positions = _positions(mask)
        return cache, mask.repeat_interleave(self.k, dim=0), positions[:, -1].repeat_interleave(self.k), first

    def _start(self, prompts: list[int]) -> None:
        """A fresh batch of `prompts` (every row of the previous batch has finished)."""
        self.cache, self.mask, self.pos, self.pending = self._prefill(prompts, self.params.max_new_tokens)
        self.rows = [s for p in prompts for s in self.samples[p]]

    def _refill(self, prompts: list[int]) -> None:
        """Write `prompts`' prefills into finished rows' slots of the running (buffered) cache."""
        import torch

        new_cache, new_mask, new_pos, first = self._prefill(prompts, 0)
        width, have = new_mask.shape[1], self.mask.shape[1]
        if width > have:  # a longer prompt than the window: show older (masked) columns again
            for layer in self.cache.layers:
                layer.widen(width - have)
            self.mask = torch.cat([self.mask.new_zeros((len(self.rows), width - have)), self.mask], dim=1)
        slots = [b for b, s in enumerate(self.rows) if not s.live][:new_mask.shape[0]]
        index = torch.tensor(slots, dtype=torch.long, device=self.device)
        for layer, new in zip(self.cache.layers, new_cache.layers):
            layer.write_rows(index, new.keys, new.values)
        self.mask[index] = 0
        self.mask[index, -width:] = new_mask
        self.pos[index], self.pending[index] = new_pos, first
        for b, s in zip(slots, (s for p in prompts for s in self.samples[p])):
            self.rows[b] = s
        self._trim()

    # --- leaving ------------------------------------------------------------------------------
    def _compact(self) -> None:
        import torch

        from .kv_buffer import is_buffered

        keep = [b for b, s in enumerate(self.rows) if s.live]
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)  # copies the cache: done in bulk, not per row
        self.mask, self.pos, self.pending = self.mask[index], self.pos[index], self.pending[index]
        self.rows = [self.rows[b] for b in keep]
        if is_buffered(self.cache):
            self._trim()

    def _trim(self) -> None:
        """Hide leading columns that no live row attends to, but one (see `_prefill`)."""
        live = [b for b, s in enumerate(self.rows) if s.live]
        if not live:
            return
        used = self.mask[live].any(dim=0)
        n = int(used.long().argmax()) - 1 if bool(used.any()) else 0
        if n > 0:
            for layer in self.cache.layers:
                layer.trim(n)
            self.mask = self.mask[:, n:]


def length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of `lengths` (sorted longest first) in consecutive groups whose shortest is at least
    PREFILL_GROUP_RATIO of their longest, so that padding stays under half of a group's tokens."""
    groups: list[list[int]] = []
    for i, n in enumerate(lengths):
        if groups and n >= PREFILL_GROUP_RATIO * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)
