"""Throughput of the openai backend over a pool of endpoints, against one endpoint.

Usage:  python bench/bench_endpoints.py [--requests 240] [--latency 0.02] [--repeats 3]

Each endpoint is a real `heirloom serve` HTTP server (in a thread of this process)
over a stand-in model that takes `--latency` seconds per call and serves one call
at a time (the server's lock), so one endpoint answers at most 1/latency requests
per second: the ceiling of n endpoints is n times that. What is measured is the
client: how close the pool gets to that ceiling, and what a dead replica costs.
Scenarios, each the median of `--repeats` runs of `--requests` single-sample
requests (`n_per_request=never`):
- 1 endpoint (the baseline), 2 and 4 endpoints;
- 4 URLs of which one refuses connections (a replica that is down).
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import time
import warnings
from contextlib import ExitStack

from heirloom.generation.base import Backend, Completion, SamplingParams
from heirloom.generation.openai import OpenAIBackend
from heirloom.generation.server import serve_in_thread


class FixedLatency(Backend):
    """A model that answers after `latency` seconds, whatever the prompt."""

    name = "fixed-latency"

    def __init__(self, latency: float):
        super().__init__("bench-model")
        self.latency = latency

    def generate(self, prompts, k=1, params=None, chat=None, progress=True):
        time.sleep(self.latency)
        return [[Completion(text="ok", num_tokens=1, finish_reason="stop", model=self.model_id,
                            seed=(params or SamplingParams()).seed, sample_index=j) for j in range(k)]
                for _ in prompts]


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def run(urls: list[str], requests: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        backend = OpenAIBackend("bench-model", base_url=urls, n_per_request="never", max_concurrency=4)
        prompts = [f"prompt {i}" for i in range(requests)]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the dead replica's warning
            backend.generate(prompts, k=1, params=SamplingParams(max_new_tokens=1), progress=False)
        times.append(time.perf_counter() - start)
        backend.close()
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=240)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, python {platform.python_version()}; "
          f"{args.requests} requests, {args.latency * 1000:g} ms per call, median of {args.repeats}")
    ceiling = 1 / args.latency
    with ExitStack() as stack:
        servers = [stack.enter_context(serve_in_thread(FixedLatency(args.latency))) for _ in range(4)]
        urls = [s.url for s in servers]
        scenarios = [("1 endpoint (baseline)", urls[:1], 1), ("2 endpoints", urls[:2], 2),
                     ("4 endpoints", urls, 4), ("4 URLs, 1 refusing", [dead_url(), *urls[:3]], 3)]
        base = None
        print("| pool | seconds | requests/s | x baseline | share of ceiling |")
        print("|---|---|---|---|---|")
        for label, pool, live in scenarios:
            seconds = run(pool, args.requests, args.repeats)
            rate = args.requests / seconds
            base = base or rate
            print(f"| {label} | {seconds:.2f} | {rate:.0f} | {rate / base:.2f}x | "
                  f"{rate / (live * ceiling):.0%} of {live * ceiling:.0f}/s |")


if __name__ == "__main__":
    main()
