"""Supervised fine-tuning of the student on selected pairs (TRL, LoRA by default).

`config.py` the options; `data.py` tokenization and labels (completion-only loss,
end-of-turn trained); `packing.py` packed batches and per-example attention;
`trainer.py` the TRL trainer; `checkpoints.py` which checkpoint a rerun resumes
from (half-written ones moved aside); `sft.py` the stage (`train_student`) and its
artifacts; `log.py` the loss log. Importing this package does not import torch.
"""

from .config import TrainConfig, load_train_config
from .sft import TrainResult, load_student, train_student
from .trainer import build_trainer

__all__ = ["TrainConfig", "TrainResult", "build_trainer", "load_student", "load_train_config", "train_student"]
