"""The transformers backend: batched sampling with a lean decode loop.

Why not `model.generate(num_return_sequences=k)`: it repeats each prompt k times
*before* the prefill, draws every sample from one global RNG (so a sample
depends on which other prompts shared its batch), and keeps finished rows in the
batch until the longest one ends. Here:

- prompts are length-sorted and left-padded into batches of about `batch_size` rows;
- each prompt is prefilled once and its KV cache repeated for its k samples;
- sample j of a prompt draws from its own `torch.Generator`, seeded from
  (seed, prompt, j), so its random draws do not depend on batching or resumption
  (its logits can, by float rounding when the batch's shape differs: a token on a
  near-tie may then flip; a resumed batch has the shape it had, so resumption is exact);
- keys and values are written into preallocated buffers (no per-step copy of the cache);
- finished rows are dropped from the batch in bulk (cache compaction).

Left out: continuous batching (refilling freed rows with new prompts) and
speculative decoding.
"""

from __future__ import annotations

import json
from typing import Sequence

from ..errors import HeirloomError
from .base import Backend, Completion, LoglikResult, SamplingParams, prompt_seeds, sample_seed
from .formatting import format_prompt, has_chat_template

# Rows (prompt x sample) decoded together on CPU; on GPU it is sized from free memory.
CPU_BATCH_ROWS = 64
CPU_KV_BUDGET = 2 * 1024**3  # bytes of KV cache a CPU batch may hold


class HFBackend(Backend):
    name = "hf"
    supports_loglikelihood = True
    supports_messages = True  # a prompt may be a chat message list (used by `heirloom serve`)
    supports_prompt_seeds = True

    def __init__(self, model: str, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None):
        from ..models.loader import load_hf

        super().__init__(model)
        self.model, self.tokenizer = load_hf(model, device=device, dtype=dtype)
        self.device = self.model.device
        self.batch_size = batch_size
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

        params = params or SamplingParams()
        if k < 1:
            raise HeirloomError(f"k must be >= 1, got {k}")
        seeds = prompt_seeds(seeds, params, len(prompts))
        encoded = [self._encode(p, chat, i, params) for i, p in enumerate(prompts)]
        rows = self._batch_rows(max((len(e) for e in encoded), default=1) + params.max_new_tokens)
        per_batch = max(1, rows // k)
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: list[list[Completion] | None] = [None] * len(prompts)
        bar = tqdm(total=len(prompts) * k, desc=f"generate {self.model_id}", unit="sample",
                   disable=not progress, leave=False)
        with torch.inference_mode():
            for start in range(0, len(order), per_batch):
                idx = order[start:start + per_batch]
                batch = self._generate_batch([encoded[i] for i in idx], [prompts[i] for i in idx], k, params,
                                             [seeds[i] for i in idx])
                for i, comps in zip(idx, batch):
                    results[i] = comps
                bar.update(len(idx) * k)
        bar.close()
        return results  # type: ignore[return-value]

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

    def _generate_batch(self, encoded: list[list[int]], prompts: list[str], k: int,
                        params: SamplingParams, base_seeds: list[int]) -> list[list[Completion]]:
        import torch

        from .kv_buffer import buffered_cache
        from .sampling import sample_next

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        width = max(len(e) for e in encoded)
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for r, ids in enumerate(encoded):  # left padding: every prompt ends at the last column
            input_ids[r, width - len(ids):] = torch.tensor(ids)
            mask[r, width - len(ids):] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = buffered_cache(self.model.config, width + params.max_new_tokens)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        # Share each prompt's prefill with its k samples.
        cache.batch_repeat_interleave(k)
        logits = out.logits[:, -1, :].float().repeat_interleave(k, dim=0)
        mask = mask.repeat_interleave(k, dim=0)
        last_pos = positions[:, -1].repeat_interleave(k)

        n_rows = len(encoded) * k
        keys = [p if isinstance(p, str) else json.dumps(p, sort_keys=True) for p in prompts]
        seeds = [sample_seed(base_seeds[r // k], keys[r // k], r % k) for r in range(n_rows)]
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        tokens: list[list[int]] = [[] for _ in range(n_rows)]
        finish = ["length"] * n_rows
        active = list(range(n_rows))  # original row of each batch row
        live = [True] * n_rows  # per batch row: still generating
        eos = torch.tensor(self.eos_ids, device=self.device)
        for step in range(params.max_new_tokens):
            nxt = sample_next(logits, params, [generators[r] for r in active])
            done_eos = torch.isin(nxt, eos).tolist()
            nxt_list = nxt.tolist()
            for b, r in enumerate(active):
                if not live[b]:
                    continue
                if done_eos[b]:
                    finish[r], live[b] = "stop", False
                    continue
                tokens[r].append(nxt_list[b])
                if params.stop and self._hit_stop(tokens[r], params.stop):
                    finish[r], live[b] = "stop", False
            n_live = sum(live)
            if n_live == 0 or step == params.max_new_tokens - 1:
                break
            # Compaction copies the cache, so finished rows are dropped in bulk, not one by one.
            if n_live <= 0.75 * len(active):
                keep = [b for b in range(len(active)) if live[b]]
                sel = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(sel)
                nxt, mask, last_pos = nxt[sel], mask[sel], last_pos[sel]
                active, live = [active[b] for b in keep], [True] * len(keep)
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            last_pos = last_pos + 1
            out = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()

        results = []
        for p in range(len(encoded)):
            comps = []
            for j in range(k):
                r = p * k + j
                text = self.tokenizer.decode(tokens[r], skip_special_tokens=True)
                if params.stop:
                    text = _cut_at_stop(text, params.stop)
                comps.append(Completion(text=text, num_tokens=len(tokens[r]), finish_reason=finish[r],
                                        model=self.model_id, seed=seeds[r], sample_index=j))
            results.append(comps)
        return results

    def _hit_stop(self, tokens: list[int], stop: tuple[str, ...]) -> bool:
        # Decode only the tail: a stop string spans at most a few dozen tokens.
        tail = self.tokenizer.decode(tokens[-32:], skip_special_tokens=False)
        return any(s in tail for s in stop)

    # --- scoring -------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]], progress: bool = True) -> list[LoglikResult]:
        from .loglik import loglikelihood

        return loglikelihood(self.model, self.tokenizer, requests, progress=progress)

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
