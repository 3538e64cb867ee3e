"""The bf16 decode ceiling by batch rows and threads: one forward step of the embedded model.

Usage:  python bench/bench_decode_step.py [--threads 1,2] [--rows 16,32,64,128,256] [--cache 110]

For each thread count and row count: the median seconds of one decode step (one new token per
row over a `--cache`-token KV cache, the model's forward alone: no sampling, no bookkeeping), as
`bench_generation.py` times its ceiling, and the tokens/s it allows. This is the most a decoder
of that many rows can make on this machine: what bounds `bench_generation.py`'s x-naive goal.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_generation import _step_seconds  # noqa: E402  (the same ceiling measure)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rows", default="16,32,64,128,256")
    ap.add_argument("--cache", type=int, default=110, help="KV cache length (the generation bench's typical one)")
    args = ap.parse_args()

    from heirloom.models import load_hf

    model, tok = load_hf(args.model, device="cpu", dtype=args.dtype)
    print(f"# {args.model} {args.dtype}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, cache {args.cache} tokens")
    print("| threads | rows | ms/step (median of 5) | tokens/s |")
    print("|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for rows in (int(r) for r in args.rows.split(",")):
            s = _step_seconds(model, rows, args.cache, tok.vocab_size)
            print(f"| {threads} | {rows} | {1000 * s:.0f} | {rows / s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
