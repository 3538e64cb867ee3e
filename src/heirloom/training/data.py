"""Selected (prompt, completion) pairs -> the token ids and labels the student learns.

We tokenize here instead of letting TRL do it, for three reasons (each one a way
completion-only SFT has failed silently before):
- the prompt is tokenized exactly as generation tokenizes it (`generation.formatting`
  plus the same special-token rule), and the completion on its own, so training
  sees the same prompt tokens as inference even where BPE would merge across the
  boundary (the QA template ends in a space);
- the sequence ends with the student's end-of-turn token (`<|im_end|>` for SmolLM2,
  found from the chat template, the EOS for base models) and that token is
  labelled, even where it is also the pad token; nothing the template writes
  after it (SmolLM2 adds a newline) is trained;
- length limits are explicit: a completion too long for `max_length` loses its
  tail (and then gets no end-of-turn, so the student is not taught to stop
  mid-sentence); such rows are counted and reported. A completion the
  *generator* cut off at its token limit (`finish_reason` 'length') gets its
  end-of-turn by default, as plain SFT on the text gives it; with
  `cut_off_completions="open"` it is trained without one, since the teacher
  never ended it there (docs/training.md weighs the two). A prompt that leaves no
  room for a single completion token is an error, or, when asked for
  (`long_prompts="skip"`), a pair left out, counted and listed: never a silent drop.

Labels are -100 on prompt and template tokens. Padding is the collator's job
(TRL's `DataCollatorForLanguageModeling` pads labels with -100 by length).
Packing and multi-turn data are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from ..errors import HeirloomError
from ..generation.formatting import QA_TEMPLATE, format_prompt, has_chat_template
from ..provenance import config_hash
from ..tables import read_table, require_columns

IGNORE = -100  # the label value PyTorch's cross-entropy skips
_PROBE = "\u2063heirloom-probe\u2063"  # content that no template rewrites


def load_pairs(data: pd.DataFrame | str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """(pairs, source name) from a DataFrame or any table file with `prompt` and `completion` columns."""
    if isinstance(data, pd.DataFrame):
        df, source = data, "training data"
    else:
        df, source = read_table(data), str(data)
    require_columns(df, ["prompt", "completion"], source)
    if df.empty:
        raise HeirloomError(f"{source}: no rows to train on")
    for col in ("prompt", "completion"):
        bad = [i for i, v in enumerate(df[col]) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise HeirloomError(f"{source}: {_where(df, bad)}: {col} is empty or not text")
    return df.reset_index(drop=True), source


def cut_off(pairs: pd.DataFrame) -> list[bool]:
    """Per pair, whether the generator cut its completion off at the token limit (`finish_reason`
    'length', heirloom's and OpenAI's name). Pairs without a `finish_reason` column: none."""
    if "finish_reason" not in pairs.columns:
        return [False] * len(pairs)
    return [reason == "length" for reason in pairs["finish_reason"]]


def open_ended(pairs: pd.DataFrame, cut_off_completions: str = "end") -> list[bool]:
    """Per pair, whether its completion is trained without an end-of-turn: the cut-off ones when
    `cut_off_completions` is 'open', none when it is 'end' (the default)."""
    return cut_off(pairs) if cut_off_completions == "open" else [False] * len(pairs)


def data_hash(df: pd.DataFrame) -> str:
    return config_hash([[p, c] for p, c in zip(df["prompt"], df["completion"])])


def open_key(open_rows: list[bool]) -> dict:
    """The open completions as a key entry: empty when every completion ends (the default), so that
    runs from before `cut_off_completions` existed keep their keys."""
    return {"open_completions": config_hash([i for i, o in enumerate(open_rows) if o])} if any(open_rows) else {}


def uses_chat(tokenizer, prompt_format: str) -> bool:
    """Whether prompts go through the chat template ('auto' follows the generation rule)."""
    if prompt_format == "chat":
        if not has_chat_template(tokenizer):
            raise HeirloomError(f"student {tokenizer.name_or_path!r} has no chat template (use prompt_format 'qa')")
        return True
    return prompt_format == "auto" and has_chat_template(tokenizer)


def end_of_turn_id(tokenizer, chat: bool) -> int:
    """The token that ends the assistant's answer: what the chat template writes right
    after the content when it is a special token, else the tokenizer's EOS."""
    if chat:
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}], tokenize=False)
        except Exception:  # a template that cannot render this probe: fall back to EOS
            text = ""
        if _PROBE in text:
            tail = tokenizer(text.split(_PROBE, 1)[1], add_special_tokens=False)["input_ids"]
            special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
            if tail and tail[0] in special:
                return tail[0]
    if tokenizer.eos_token_id is None:
        raise HeirloomError(f"student {tokenizer.name_or_path!r} declares no end-of-sequence token")
    return tokenizer.eos_token_id


@dataclass
class EncodedPairs:
    """Token ids and labels per pair, plus what the length limit did to them."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    chat: bool
    end_of_turn: str
    truncated_rows: list[int] = field(default_factory=list)
    truncated_tokens: int = 0  # completion (+ end-of-turn) tokens cut off, over all rows
    cut_off_rows: list[int] = field(default_factory=list)  # cut off by the generator at its token limit
    open_rows: list[int] = field(default_factory=list)  # of those, the ones trained without an end-of-turn
    skipped: list[str] = field(default_factory=list)  # pairs left out (long_prompts="skip"), named by _where

    @property
    def trained_tokens(self) -> int:
        return sum(sum(1 for t in row if t != IGNORE) for row in self.labels)

    def summary(self) -> dict:
        return {
            "n_examples": len(self.input_ids),
            "n_skipped": len(self.skipped),
            "skipped": self.skipped,
            "n_truncated": len(self.truncated_rows),
            "truncated_rows": self.truncated_rows[:20],
            "truncated_tokens": self.truncated_tokens,
            "n_cut_off": len(self.cut_off_rows),
            "cut_off_rows": self.cut_off_rows[:20],
            "n_open": len(self.open_rows),
            "trained_tokens": self.trained_tokens,
            "max_tokens": max(len(r) for r in self.input_ids),
            "prompt_format": "chat" if self.chat else "qa",
            "end_of_turn": self.end_of_turn,
        }

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_dict({"input_ids": self.input_ids, "labels": self.labels})


def encode_pairs(pairs: pd.DataFrame, tokenizer, max_length: int, prompt_format: str = "auto",
                 source: str = "training data", long_prompts: str = "error",
                 cut_off_completions: str = "end") -> EncodedPairs:
    """Tokenize each pair as prompt ids + completion ids + end-of-turn, labels on the last two; with
    `cut_off_completions="open"` a completion the generator cut off gets no end-of-turn."""
    chat = uses_chat(tokenizer, prompt_format)
    eot = end_of_turn_id(tokenizer, chat)
    texts = [format_prompt(tokenizer, p, True) if chat else QA_TEMPLATE.format(prompt=p) for p in pairs["prompt"]]
    # Same rule as generation: a chat template writes its own special tokens.
    prompts = tokenizer(texts, add_special_tokens=not chat)["input_ids"]
    completions = tokenizer(list(pairs["completion"]), add_special_tokens=False)["input_ids"]
    too_long = [i for i, p in enumerate(prompts) if len(p) >= max_length]
    if too_long and long_prompts != "skip":
        i = too_long[0]
        raise HeirloomError(
            f"{source}: {_where(pairs, too_long)}: prompt is {len(prompts[i])} tokens, which leaves no room for "
            f"its completion within max_length={max_length} (raise max_length, shorten the prompt, "
            "or set long_prompts: skip)")
    if len(too_long) == len(prompts):
        raise HeirloomError(f"{source}: every prompt leaves no room for its completion within max_length={max_length}")
    out = EncodedPairs([], [], chat=chat, end_of_turn=tokenizer.convert_ids_to_tokens(eot),
                       skipped=[_where(pairs, [i]) + f": prompt is {len(prompts[i])} tokens" for i in too_long])
    skip = set(too_long)
    cut, open_rows = cut_off(pairs), open_ended(pairs, cut_off_completions)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        if i in skip:
            continue
        if cut[i]:
            out.cut_off_rows.append(i)
        if open_rows[i]:
            out.open_rows.append(i)
        target = list(c) + ([] if open_rows[i] else [eot])
        room = max_length - len(p)
        if len(target) > room:
            out.truncated_rows.append(i)
            out.truncated_tokens += len(target) - room
            target = target[:room]  # the tail goes, end-of-turn with it
        out.input_ids.append(list(p) + target)
        out.labels.append([IGNORE] * len(p) + target)
    return out


def _where(df: pd.DataFrame, rows: list[int]) -> str:
    """'row 3 (prompt_id p7) and 2 more': 0-based data rows, named by prompt_id when there is one."""
    i = rows[0]
    name = f"row {i}" + (f" (prompt_id {df['prompt_id'].iloc[i]})" if "prompt_id" in df.columns else "")
    return name + (f" and {len(rows) - 1} more" if len(rows) > 1 else "")
