"""Fine-tune the student on selected pairs with TRL's `SFTTrainer`, LoRA by default.

`train_student` is the whole stage: read and tokenize the pairs (`data.py`),
build the trainer (`trainer.py`), train (resuming from the latest checkpoint
when asked), then write into `out_dir`:

    adapter/          the LoRA adapter (LoRA only)
    merged/           a plain model + tokenizer, loadable with `load_hf(str(out_dir / "merged"))`
    checkpoints/      trainer checkpoints and `run.json` (what they were made from)
    checkpoints-incomplete/  only after a kill during a save: the half-written checkpoint, moved aside
    train_log.jsonl   one record per logging step (loss, learning rate, grad norm, ...)
    train.meta.json   provenance: config, student, data hash, sizes, final loss

Under `accelerate launch` every process runs this same function; the Trainer
shards batches and only the main process writes files. The model is loaded on
the CPU and placed by the Trainer, so nothing here special-cases devices.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..models.loader import quiet_loading
from ..provenance import record
from ..tables import write_json
from .checkpoints import prepare_checkpoints
from .config import TrainConfig
from .data import data_hash, encode_pairs, load_pairs, open_ended, open_key
from .trainer import build_trainer


@dataclass
class TrainResult:
    out_dir: Path
    merged_dir: Path
    adapter_dir: Path | None  # None for full fine-tuning
    checkpoints_dir: Path
    log_path: Path
    meta_path: Path
    final_loss: float  # loss of the last logging window (NaN when nothing was logged)
    mean_loss: float  # mean training loss of this session's steps (NaN when it ran none)
    steps: int  # optimizer steps, counting those before a resume
    seconds: float  # wall-clock seconds of this session's training loop
    n_examples: int  # pairs trained on
    n_skipped: int  # pairs left out: prompt too long for max_length (long_prompts="skip")
    n_truncated: int  # pairs whose completion lost its tail to max_length
    resumed_from: str | None


def load_student(student: str, config: TrainConfig):
    """(model, tokenizer) on the CPU for the Trainer to place, weights in `weights_dtype`."""
    from ..models import load_hf

    model, tokenizer = load_hf(student, device="cpu", dtype=weights_dtype(config))
    return model, tokenizer


def weights_dtype(config: TrainConfig) -> str:
    """float32, except a frozen LoRA base on a GPU training in bf16 (memory; adapters stay float32).
    On a CPU the base stays float32 under bf16 autocast: merging a small LoRA update into bf16
    weights would round much of it away, and the per-step cast costs a few percent."""
    if config.method == "lora" and config.use_bf16() and config.train_device() == "cuda":
        return "bfloat16"
    return "float32"


def train_student(data: pd.DataFrame | str | os.PathLike, student: str, out_dir: str | os.PathLike,
                  config: TrainConfig | None = None, progress: bool = True) -> TrainResult:
    """Fine-tune `student` (a name `load_hf` accepts) on the pairs in `data`; see the module doc."""
    from .log import write_train_log

    config = config or TrainConfig()
    out = Path(out_dir)
    pairs, source = load_pairs(data)
    model, tokenizer = load_student(student, config)
    encoded = encode_pairs(pairs, tokenizer, config.max_length, config.prompt_format, source, config.long_prompts,
                           config.cut_off_completions)
    if encoded.skipped:
        print(f"note: skipped {len(encoded.skipped)} of {len(pairs)} pairs whose prompt leaves no room within "
              f"max_length={config.max_length} (long_prompts: skip); listed in train.meta.json", file=sys.stderr)
    if encoded.truncated_rows:
        print(f"note: {len(encoded.truncated_rows)} of {len(pairs)} completions lost their tail to "
              f"max_length={config.max_length} ({encoded.truncated_tokens} tokens); see train.meta.json",
              file=sys.stderr)
    n_cut = len(encoded.cut_off_rows)
    if n_cut:  # either way the student learns something about that limit: say so
        how = "without" if config.cut_off_completions == "open" else "with"
        print(f"note: {n_cut} of {len(pairs)} completions were cut off at the generator's token limit; trained "
              f"{how} an end-of-turn there (cut_off_completions: {config.cut_off_completions})", file=sys.stderr)

    digest = data_hash(pairs)
    ckpt_dir = out / "checkpoints"
    resume_from = prepare_checkpoints(
        ckpt_dir, {"student": student, "data_sha": digest, "config": config.fingerprint(),
                   **open_key(open_ended(pairs, config.cut_off_completions))}, config.resume)
    trainer = build_trainer(model, tokenizer, encoded, config, ckpt_dir, progress)
    start = time.perf_counter()
    with (nullcontext() if progress else quiet_loading()):  # checkpoint saves show transformers' bars
        output = trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - start
    ran_steps = trainer.state.global_step - (_step_of(resume_from) if resume_from else 0)

    adapter_dir = out / "adapter" if config.method == "lora" else None
    if adapter_dir is not None:
        trainer.save_model(str(adapter_dir))  # main process only, adapter weights + config
    history = trainer.state.log_history
    final_loss = next((h["loss"] for h in reversed(history) if "loss" in h), math.nan)
    mean_loss = output.training_loss if ran_steps > 0 else math.nan
    result = TrainResult(
        out_dir=out, merged_dir=out / "merged", adapter_dir=adapter_dir, checkpoints_dir=ckpt_dir,
        log_path=out / "train_log.jsonl", meta_path=out / "train.meta.json",
        final_loss=float(final_loss), mean_loss=float(mean_loss), steps=trainer.state.global_step,
        seconds=seconds, n_examples=len(encoded.input_ids), n_skipped=len(encoded.skipped),
        n_truncated=len(encoded.truncated_rows), resumed_from=resume_from,
    )
    if not trainer.is_world_process_zero():
        return result

    merged = trainer.model.merge_and_unload() if adapter_dir is not None else trainer.model
    merged.config.use_cache = True
    _save_atomically(merged, tokenizer, result.merged_dir)
    write_train_log(history, result.log_path)
    write_json(record(
        stage="train", student=student, method=config.method, config=config.model_dump(),
        resolved={"learning_rate": config.lr, "dtype": config.resolved_dtype(), "weights_dtype": weights_dtype(config),
                  "batching": config.batching,
                  "world_size": trainer.args.world_size, "device": str(trainer.args.device)},
        data={"source": source, "sha256_16": digest, **encoded.summary()},
        seed=config.seed, steps=result.steps, steps_this_session=ran_steps,
        final_loss=result.final_loss, mean_loss=result.mean_loss, seconds=round(seconds, 3),
        resumed_from=resume_from,
        notes={"mean_loss": "NaN: no training step ran in this session"} if ran_steps == 0 else {},
    ), result.meta_path)
    return result


def _step_of(checkpoint: str) -> int:
    return int(Path(checkpoint).name.rsplit("-", 1)[1])


def _save_atomically(model, tokenizer, target: Path) -> None:
    """Write to a temporary sibling and rename, so `merged/` is either complete or absent."""
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_loading():  # "Writing model shards" ignored --quiet; the train stage's log says what runs
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
