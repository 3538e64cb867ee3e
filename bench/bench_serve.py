"""`heirloom serve` with and without batching of concurrent requests, on the embedded model.

Usage:  python bench/bench_serve.py [--clients 16] [--max-tokens 64] [--repeats 1]

One server (in this process, real HTTP on 127.0.0.1) over SmolLM2-135M-Instruct;
`--clients` threads each send one chat request at the same moment (distinct
quickstart prompts, temperature 1.0, top-p 0.9, own seed). Timed: from the first
request sent to the last answer received; median of `--repeats`. Both servers run
on the same loaded model, the unbatched one first.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from heirloom.generation import make_backend
from heirloom.generation.server import serve_in_thread
from heirloom.prompts import load_prompts


def burst(url: str, prompts: list[str], max_tokens: int) -> tuple[float, int]:
    def ask(i: int):
        body = {"model": "m", "messages": [{"role": "user", "content": prompts[i]}], "max_tokens": max_tokens,
                "temperature": 1.0, "top_p": 0.9, "seed": i}
        r = httpx.post(f"{url}/chat/completions", json=body, timeout=600)
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(len(prompts)) as pool:
        tokens = sum(pool.map(ask, range(len(prompts))))
    return time.perf_counter() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    import torch

    backend = make_backend("smollm2-135m")
    prompts = list(load_prompts("quickstart")["prompt"][: args.clients])
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.clients} concurrent chat requests x up to {args.max_tokens} tokens, median of {args.repeats}")
    print("| server | seconds | tokens | tokens/s | model calls | x unbatched |")
    print("|---|---|---|---|---|---|")
    base = None
    for label, batching in (("one call per request (`--no-batching`)", False), ("batched (default)", True)):
        with serve_in_thread(backend, model_name="m", batching=batching) as srv:
            runs = [burst(srv.url, prompts, args.max_tokens) for _ in range(args.repeats)]
            calls = srv._batcher.calls // args.repeats if srv._batcher else args.clients
        seconds = statistics.median(s for s, _ in runs)
        tokens = runs[0][1]
        base = base or seconds
        print(f"| {label} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} | {calls} | {base / seconds:.1f}x |")


if __name__ == "__main__":
    main()
