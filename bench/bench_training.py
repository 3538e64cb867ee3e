"""Training throughput: heirloom's LoRA step against a plain fp32 TRL SFT step, side by side in one run.

Usage:
    python bench/bench_training.py [--batch-size 8] [--max-length 256] [--steps 3] [--rounds 2] [--threads 1]
                                   [--arms trl_fp32 heirloom_padded_fp32 heirloom_fp32 heirloom]
    python bench/bench_training.py --loss-curve [--steps 10]

Data: the first instructions and answers of an AlpacaEval output file (Conifer-7B-DPO by
default) from `$HEIRLOOM_DATA/alpaca_eval_outputs` (or `--data-dir`), the same pairs for
every arm, on the embedded SmolLM2-135M-Instruct, LoRA r=16 on all linear layers.

Arms (each a fresh model, the same data order, the same LoRA shape and learning rate):
    trl_fp32              what a user writes with TRL: SFTTrainer on prompt-completion chat data,
                          fp32, padded batches, TRL's own tokenization and loss
    heirloom_padded_fp32  heirloom before this change: pre-tokenized pairs, padded, plain cross-entropy
    heirloom_fp32         heirloom's packed batches (no padding, logits only at labelled tokens), fp32
    heirloom              heirloom's defaults: packed, dtype auto (bf16 autocast on a CPU with AVX512-BF16/AMX)

Rounds alternate the arms (a shared machine's load hits them alike); the first step of every
run warms up and is not timed. Tokens are the real (non-padding) tokens of each step's batch,
counted by wrapping the arm's collator; tokens/s is the median over timed steps. `--loss-curve`
trains heirloom in float32 and in bfloat16 for `--steps` steps (batch 8, lr 1e-3, the quickstart's
settings) and reports the two loss curves and their largest difference. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

ARMS = ["trl_fp32", "heirloom_padded_fp32", "heirloom_fp32", "heirloom"]
LR = 2e-4


def load_pairs(data_dir: Path, source: str, n: int) -> pd.DataFrame:
    rows = json.loads((data_dir / "alpaca_eval_outputs" / f"{source}.json").read_text())[:n]
    return pd.DataFrame({"prompt": [r["instruction"] for r in rows], "completion": [r["output"] for r in rows]})


class Counting:
    """A collator wrapper recording each batch's real and padded token counts."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, examples):
        batch = self.inner(examples)
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else batch["input_ids"].numel()
        self.batches.append((real, batch["input_ids"].numel()))
        return batch


def timed_train(trainer) -> list[float]:
    from transformers import TrainerCallback

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    trainer.add_callback(Clock())
    trainer.train()
    return times


def trl_trainer(model, tok, pairs, args, out: Path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from heirloom.training import TrainConfig
    from heirloom.training.trainer import lora_config

    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}],
                               "completion": [{"role": "assistant", "content": c}]}
                              for p, c in zip(pairs["prompt"], pairs["completion"])])
    config = SFTConfig(output_dir=str(out), per_device_train_batch_size=args.batch_size, max_length=args.max_length,
                       max_steps=args.steps + 1, learning_rate=LR, bf16=False, use_cpu=True, seed=0, data_seed=0,
                       report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                       dataloader_num_workers=0)
    from transformers import PrinterCallback

    trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok,
                         peft_config=lora_config(TrainConfig()))
    trainer.remove_callback(PrinterCallback)
    return trainer


def heirloom_trainer(model, tok, pairs, args, out: Path, **options):
    from heirloom.training import TrainConfig, build_trainer
    from heirloom.training.data import encode_pairs

    config = TrainConfig(batch_size=args.batch_size, max_length=args.max_length, max_steps=args.steps + 1,
                         learning_rate=LR, logging_steps=1, save_steps=10_000, device="cpu", **options)
    return build_trainer(model, tok, encode_pairs(pairs, tok, args.max_length), config, out, progress=False), config


def run_arm(arm: str, pairs, args, out: Path) -> dict:
    from heirloom.models import load_hf

    model, tok = load_hf(args.model, device="cpu", dtype="float32")
    if arm == "trl_fp32":
        trainer, dtype = trl_trainer(model, tok, pairs, args, out), "float32"
    else:
        options = {"heirloom_padded_fp32": {"batching": "padded", "dtype": "float32"},
                   "heirloom_fp32": {"dtype": "float32"}, "heirloom": {}}[arm]
        trainer, config = heirloom_trainer(model, tok, pairs, args, out, **options)
        dtype = config.resolved_dtype()
    counting = trainer.data_collator = Counting(trainer.data_collator)
    times = timed_train(trainer)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    steps = list(zip(times, counting.batches))[1:]  # the first step warms up
    return {"dtype": dtype, "seconds": [round(t, 2) for t, _ in steps],
            "tokens_per_s": [round(real / t, 1) for t, (real, _) in steps],
            "padding_share": [round(1 - real / padded, 3) for _, (real, padded) in steps],
            "losses": [round(x, 4) for x in losses]}


def throughput(args, pairs) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    runs: dict[str, list[dict]] = {arm: [] for arm in args.arms}
    try:
        for r in range(args.rounds):
            for arm in args.arms:
                row = run_arm(arm, pairs, args, tmp / f"{arm}-{r}")
                runs[arm].append(row)
                print(json.dumps({"round": r, "arm": arm, **row}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for arm, rows in runs.items():
        tps = [x for row in rows for x in row["tokens_per_s"]]
        summary[arm] = {"dtype": rows[0]["dtype"], "median_tokens_per_s": round(statistics.median(tps), 1),
                        "median_seconds_per_step": round(statistics.median(s for row in rows for s in row["seconds"]), 2),
                        "median_padding_share": round(statistics.median(p for row in rows for p in row["padding_share"]), 3),
                        "timed_steps": len(tps)}
    if "trl_fp32" in summary:
        base = summary["trl_fp32"]["median_tokens_per_s"]
        for row in summary.values():
            row["x_trl_fp32"] = round(row["median_tokens_per_s"] / base, 2)
    return {"arms": summary, "runs": runs}


def loss_curve(args, pairs) -> dict:
    from heirloom.models import load_hf
    from heirloom.training import TrainConfig, build_trainer
    from heirloom.training.data import encode_pairs

    tmp = Path(tempfile.mkdtemp(prefix="bench-loss-"))
    curves = {}
    try:
        for dtype in ("float32", "bfloat16"):
            model, tok = load_hf(args.model, device="cpu", dtype="float32")
            config = TrainConfig(batch_size=8, max_length=args.max_length, max_steps=args.steps, learning_rate=1e-3,
                                 logging_steps=1, save_steps=10_000, device="cpu", dtype=dtype, warmup_ratio=0.0)
            trainer = build_trainer(model, tok, encode_pairs(pairs, tok, args.max_length), config, tmp / dtype,
                                    progress=False)
            trainer.train()
            curves[dtype] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
            print(json.dumps({dtype: curves[dtype]}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, b = curves["float32"], curves["bfloat16"]
    diffs = [abs(x - y) for x, y in zip(a, b)]
    return {"curves": curves, "max_abs_diff": round(max(diffs), 4),
            "max_rel_diff": round(max(d / x for d, x in zip(diffs, a)), 4),
            "loss_drop": {k: round(v[0] - v[-1], 4) for k, v in curves.items()}}


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default=os.environ.get("HEIRLOOM_DATA"), help="default: $HEIRLOOM_DATA")
    ap.add_argument("--source", default="Conifer-7B-DPO", help="alpaca_eval_outputs/<source>.json")
    ap.add_argument("--arms", nargs="+", default=ARMS, choices=ARMS)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run (throughput) or steps (loss curve)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--loss-curve", action="store_true")
    args = ap.parse_args()
    if not args.data_dir:
        raise SystemExit("error: set HEIRLOOM_DATA (or --data-dir) to a data directory with alpaca_eval_outputs/")

    import torch

    from heirloom.models.precision import cpu_supports_bf16

    if args.threads:
        torch.set_num_threads(args.threads)
    n = 8 * args.steps if args.loss_curve else args.batch_size * (args.steps + 1)
    pairs = load_pairs(Path(args.data_dir), args.source, n)
    out = {"model": args.model, "data": f"alpaca_eval_outputs/{args.source}.json[:{n}]",
           "batch_size": args.batch_size, "max_length": args.max_length, "torch_threads": torch.get_num_threads(),
           "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "cpu_supports_bf16": cpu_supports_bf16(), "torch": torch.__version__, "load_avg_start": os.getloadavg()}
    start = time.perf_counter()
    out.update(loss_curve(args, pairs) if args.loss_curve else throughput(args, pairs))
    out["wall_s"] = round(time.perf_counter() - start, 1)
    out["load_avg_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
