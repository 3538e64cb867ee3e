"""How the student is fine-tuned: one validated config, described once.

`TrainConfig` holds the knobs a user may turn (method, LoRA shape, optimisation,
length limit, batch layout, precision, checkpointing, device). Everything else
the trainer needs is derived from it in `sft.py`; values that depend on the
method or the hardware (learning rate, dtype) are resolved by the methods below,
so the resolved value is what provenance and the stage key record. It leaves out
what TRL/transformers expose but this project does not use (packing across
batches, DeepSpeed configs, schedulers other than linear): those belong in an
`accelerate` config, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


DEFAULT_LR = {"lora": 2e-4, "full": 2e-5}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfig(BaseModel):
    """Supervised fine-tuning of the student on selected (prompt, completion) pairs."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "full"] = Field("lora", description="LoRA adapters (merged after training) or full fine-tuning")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA branch")
    lora_target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="modules that get adapters: 'all-linear' (every linear layer but the output head) or names, "
        f"e.g. {LORA_TARGETS}",
    )
    lora_layers: int | None = Field(
        None, ge=1, description="adapters only in the last N transformer layers (None: every layer); "
        "backpropagation then stops below them, which makes a step cheaper")
    epochs: float = Field(2.0, gt=0, description="passes over the selected data")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    learning_rate: float | None = Field(
        None, gt=0, description="peak learning rate; unset = 2e-4 for LoRA, 2e-5 for full fine-tuning")
    batch_size: int = Field(8, ge=1, description="examples per device per forward pass")
    grad_accum: int = Field(1, ge=1, description="forward passes accumulated per optimizer step")
    max_length: int = Field(
        1024, ge=8,
        description="tokens per example (prompt + completion + end-of-turn); longer completions lose their tail "
        "(counted and reported), a prompt that leaves no room for its completion is an error")
    long_prompts: Literal["error", "skip"] = Field(
        "error", description="a prompt that leaves no room for its completion within max_length: stop with an "
        "error naming it, or skip the pair (counted and listed in train.meta.json; the prompt alone decides, so "
        "every arm of a run skips the same prompts)")
    cut_off_completions: Literal["end", "open"] = Field(
        "end", description="a completion the generator cut off at its token limit (finish_reason 'length'): "
        "'end' appends the end-of-turn as to any completion (plain SFT on the text, as TRL does; the "
        "student learns to stop near that limit), 'open' trains its tokens without one (the teacher "
        "never ended there; lets a max-length student write past the limit)")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="share of steps with linear learning-rate warmup")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(0, description="seed for adapter init, data order and dropout")
    prompt_format: Literal["auto", "chat", "qa"] = Field(
        "auto",
        description="how prompts are written: 'chat' = the student's chat template, 'qa' = the paper's "
        "'### Question: {p}\\n ### Answer: ' template, 'auto' = chat when the tokenizer has a template "
        "(the same rule generation uses)")
    logging_steps: int = Field(10, ge=1, description="optimizer steps between loss records in train_log.jsonl")
    save_steps: int = Field(100, ge=1, description="optimizer steps between checkpoints")
    save_total_limit: int = Field(1, ge=1, description="checkpoints kept in out_dir/checkpoints (oldest deleted)")
    resume: bool = Field(
        True, description="continue from the latest checkpoint in out_dir/checkpoints when there is one")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = CUDA when available (accelerate decides)")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="compute precision: 'bfloat16' = mixed precision (bf16 autocast; weights, LoRA adapters "
        "and optimizer state stay float32), 'auto' = bfloat16 on a CUDA device that supports it and on CPUs with "
        "native bf16 (AVX512-BF16 or AMX), float32 elsewhere")
    batching: Literal["packed", "padded"] = Field(
        "packed", description="'packed': a batch's examples end to end in one row, attention within each example, "
        "logits only where the loss is computed; 'padded': right-padded rows through TRL's collator and loss")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory (slower)")

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.method]

    def train_device(self) -> str:
        """'cuda' or 'cpu': where the Trainer will run ('auto' = CUDA when available)."""
        import torch

        return "cuda" if self.device != "cpu" and torch.cuda.is_available() else "cpu"

    def resolved_dtype(self) -> str:
        """'bfloat16' or 'float32': the compute precision `dtype` means on this machine."""
        from ..models.precision import dtype_name, resolve_dtype

        return dtype_name(resolve_dtype(self.dtype, self.train_device()))

    def use_bf16(self) -> bool:
        return self.resolved_dtype() == "bfloat16"

    def fingerprint(self) -> dict:
        """The fields that change what is trained (resume, logging and saving cadence do not), with the
        precision resolved: 'auto' trains differently on a CPU with and without bf16."""
        doc = self.model_dump(exclude={"resume", "logging_steps", "save_steps", "save_total_limit"})
        if doc["lora_layers"] is None:  # added later: left out when unset, so earlier runs keep their keys
            del doc["lora_layers"]
        # Which completions stay open depends on the data too: `data.open_key` keys the rows themselves.
        del doc["cut_off_completions"]
        return {**doc, "dtype": self.resolved_dtype()}


def load_train_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """A `TrainConfig` from an optional YAML/JSON file, then keyword overrides (None = not given)."""
    from ..validation import read_mapping, validate

    data: dict = {}
    if path is not None:
        loaded = read_mapping(path, "training config")
        # A run config's `student.training` section works as a file of its own.
        student = loaded.get("student")
        if isinstance(student, dict) and isinstance(student.get("training"), dict):
            loaded = student["training"]
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate(TrainConfig, data, str(path) if path else "training config")
