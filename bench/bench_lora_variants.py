"""What LoRA dropout and `lora_layers` cost per training step, side by side in one process.

Usage:  python bench/bench_lora_variants.py SELECTED.jsonl [--steps 3] [--repeats 2]

SELECTED is an arm's training pairs (`<run>/arms/<arm>/selected.jsonl`, e.g. from the quickstart).
Each variant trains the embedded student for `--steps` optimizer steps of batch 8 (lr 1e-3, no
warm-up, the quickstart's `max_length`) with `train_student`, the variants interleaved repeat by
repeat; prints each run's training seconds (loading and merging excluded) and final loss.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

VARIANTS = {
    "dropout 0.05 (default)": {},
    "dropout 0": {"lora_dropout": 0.0},
    "dropout 0, last 20 layers": {"lora_dropout": 0.0, "lora_layers": 20},
    "dropout 0, last 15 layers": {"lora_dropout": 0.0, "lora_layers": 15},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("selected")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from heirloom.training.config import TrainConfig
    from heirloom.training.sft import train_student

    results = {name: [] for name in VARIANTS}
    print(f"# {args.steps} steps of batch 8, load {os.getloadavg()[0]:.1f}")
    for rep in range(args.repeats):
        for name, options in VARIANTS.items():
            config = TrainConfig(max_steps=args.steps, batch_size=8, learning_rate=1e-3, max_length=256,
                                 warmup_ratio=0.0, **options)
            with tempfile.TemporaryDirectory() as out:
                run = train_student(args.selected, args.model, out, config, progress=False)
            results[name].append({"seconds": run.seconds, "final_loss": run.final_loss})
            print(f"repeat {rep}: {name}: {run.seconds:.1f} s, loss {run.final_loss:.4f}", flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
