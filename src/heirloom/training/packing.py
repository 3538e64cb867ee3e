"""Packed batches: a batch's examples laid end to end in one row, no padding, no attention across them.

`PackedCollator` turns `batch_size` encoded pairs into one row of input ids with
position ids restarting at 0 for every example, the cumulative sequence lengths
(`cu_seq_lens_q/k`, the names transformers' variable-length attention reads),
and the loss targets only: `logits_to_keep` lists the positions whose next token
is labelled, `shift_labels` those next tokens. The model then projects onto the
vocabulary only there: the completion tokens and the end-of-turn token, not the
prompt (the output head and its log-softmax are a fifth of a small model's step).

Attention must not cross examples. transformers builds a block-diagonal mask from
restarting position ids by itself, but a dense mask over the whole row costs
(sum of lengths)^2 per layer, several times the per-example attention on a CPU.
`use_varlen_attention` swaps the model's SDPA attention for `varlen_sdpa`: one
causal SDPA call per example, the same kernel padded batches use. Models whose
attention is not plain SDPA (flash-attention on GPUs already reads `cu_seq_lens`;
eager, sliding windows) keep their own implementation and transformers' mask.

The optimizer sees the same examples per step as with padded batches; only the
layout and the arithmetic order differ (tested: the loss of a packed batch equals
the per-example losses of the same model). Left out: packing several batches into
rows of `max_length` (that changes how many examples make a step).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from .data import IGNORE

VARLEN = "heirloom_varlen_sdpa"


@dataclass
class PackedCollator:
    """Encoded pairs (`input_ids`, `labels`) -> one packed row and its loss targets."""

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        ids, labels, positions, bounds = [], [], [], [0]
        for ex in examples:
            n = len(ex["input_ids"])
            ids += ex["input_ids"]
            # An example's first token is never a target: it would be predicted from the previous example.
            labels += [IGNORE] + list(ex["labels"][1:])
            positions += range(n)
            bounds.append(bounds[-1] + n)
        labels_t = torch.tensor([labels])
        keep = (labels_t[0, 1:] != IGNORE).nonzero().squeeze(1)
        cu = torch.tensor(bounds, dtype=torch.int32)
        longest = max(b - a for a, b in zip(bounds, bounds[1:]))
        return {
            "input_ids": torch.tensor([ids]), "labels": labels_t, "position_ids": torch.tensor([positions]),
            "logits_to_keep": keep, "shift_labels": labels_t[:, 1:][:, keep],
            "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest,
        }


def varlen_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """SDPA attention, causal within each packed example (`cu_seq_lens_q`); plain SDPA otherwise."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.pop("cu_seq_lens_q", None)
    if cu is None or attention_mask is not None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, cu_seq_lens_q=cu, **kwargs)
    bounds = cu.tolist()
    kwargs.pop("is_causal", None)
    parts = [sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], None,
                                    dropout=dropout, scaling=scaling, is_causal=True, **kwargs)[0]
             for a, b in zip(bounds, bounds[1:])]
    return torch.cat(parts, dim=1), None


def varlen_supported(model, max_length: int) -> bool:
    """Whether `varlen_sdpa` computes exactly what the model's own attention would."""
    config = model.config
    window = getattr(config, "sliding_window", None)
    return (getattr(config, "_attn_implementation", None) == "sdpa"
            and getattr(config, "attn_logit_softcapping", None) is None
            and (window is None or window >= max_length))


@contextmanager
def use_varlen_attention(model, max_length: int):
    """Within the block, the model's SDPA attention is `varlen_sdpa` (when supported); restored after,
    so a saved or merged model carries its own attention setting."""
    from transformers import AttentionInterface

    model = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper
    # Models written before transformers' attention interface cannot switch (they would only warn).
    can_switch = getattr(model, "_can_set_attn_implementation", lambda: False)()
    if not (can_switch and varlen_supported(model, max_length)):
        yield False
        return
    AttentionInterface.register(VARLEN, varlen_sdpa)
    before = model.config._attn_implementation
    model.set_attn_implementation(VARLEN)
    try:
        yield True
    finally:
        model.set_attn_implementation(before)
