"""The TRL `SFTTrainer` over pre-tokenized pairs, configured from a `TrainConfig`.

TRL's dataset preparation is skipped (`skip_prepare_dataset`): the input ids and
labels from `data.encode_pairs` are what the model trains on. Batches are packed
by default (`packing.PackedCollator`: one row per batch, attention within each
example, logits only at the labelled positions, the loss through the model's own
cross-entropy); `batching="padded"` keeps TRL's collator (right padding, labels
padded with -100 by length). Precision is the Trainer's `bf16` flag: accelerate
runs the forward under bf16 autocast while weights and optimizer state stay in
the dtype they were loaded in (float32 on a CPU). LoRA adapters come from
`lora_config`. Devices and several processes are the Trainer's and accelerate's
business.
"""

from __future__ import annotations

import os
import warnings

from ..errors import HeirloomError
from .config import TrainConfig
from .data import EncodedPairs


def lora_config(config: TrainConfig, model=None):
    from peft import LoraConfig

    targets, layers = config.lora_target_modules, None
    if config.lora_layers is not None:
        n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
        if n_layers is None or config.lora_layers > n_layers:
            raise HeirloomError(f"training.lora_layers: {config.lora_layers} layers asked, the model has {n_layers}")
        layers = list(range(n_layers - config.lora_layers, n_layers))
        if targets == "all-linear":  # peft takes layers_to_transform only with module names
            targets = _linear_module_names(model)
    return LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, layers_to_transform=layers, bias="none", task_type="CAUSAL_LM",
    )


def _linear_module_names(model) -> list[str]:
    """What peft's 'all-linear' targets: the names of every linear layer but the output head."""
    import torch

    head = model.get_output_embeddings()
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and m is not head})


def build_trainer(model, tokenizer, encoded: EncodedPairs, config: TrainConfig,
                  checkpoints_dir: str | os.PathLike, progress: bool = True):
    """An `SFTTrainer` over pre-tokenized pairs; TRL's preparation is skipped so the
    labels from `encode_pairs` are the labels trained on."""
    import torch
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from .log import FinalStepLog
    from .packing import PackedCollator

    if config.device == "cuda" and not torch.cuda.is_available():
        raise HeirloomError("training config: device is 'cuda' but no CUDA device is available")
    args = SFTConfig(
        output_dir=str(checkpoints_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.lr,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        warmup_steps=config.warmup_ratio,  # transformers reads a value < 1 as a ratio of all steps
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        lr_scheduler_type="linear",
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        bf16=config.use_bf16(),  # autocast; weights and optimizer state keep their dtype
        use_cpu=config.train_device() == "cpu",  # "auto" without CUDA too: else bf16 on a CPU is refused
        max_length=config.max_length,  # already enforced by encode_pairs
        dataset_kwargs={"skip_prepare_dataset": True},
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=config.train_device() == "cuda",
        **_checkpointing_arg(SFTConfig, config.gradient_checkpointing),
    )
    with warnings.catch_warnings():
        # peft reads `is_gradient_checkpointing`, which transformers 5 deprecates: not ours to fix, and
        # a plain run should print no deprecation warning.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        trainer = _trainer_class(SFTTrainer)(
            model=model, args=args, train_dataset=encoded.to_dataset(), processing_class=tokenizer,
            peft_config=lora_config(config, model) if config.method == "lora" else None,
            callbacks=[FinalStepLog()],
            **({"data_collator": PackedCollator()} if config.batching == "packed" else {}),
        )
    trainer.heirloom_config = config
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer


def _trainer_class(base):
    """`SFTTrainer` with the loss and attention heirloom's batches need.

    Packed batches (they carry `shift_labels`): the model's own cross-entropy over
    the kept logits, no cache (transformers ignores restarting position ids when a
    cache is built), and per-example attention while training (`use_varlen_attention`).
    Padded batches: TRL's loss, except on CPU, where TRL's chunked log-prob kernel
    (a memory saver with a Triton kernel on GPUs) made LoRA steps of the embedded
    model ~1.7x slower than plain cross-entropy."""
    from transformers import Trainer

    from .packing import use_varlen_attention

    class HeirloomSFTTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "shift_labels" not in inputs and self.args.device.type != "cpu":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

        def train(self, *args, **kwargs):
            config = self.heirloom_config
            if config.batching != "packed":
                return super().train(*args, **kwargs)
            with use_varlen_attention(self.model, config.max_length):
                return super().train(*args, **kwargs)

    return HeirloomSFTTrainer


def _checkpointing_arg(args_cls, on: bool) -> dict:
    """transformers 5.x renamed `gradient_checkpointing` to `activation_checkpointing`."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(args_cls)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}
