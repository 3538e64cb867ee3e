"""Prefill in length groups against one padded prefill, on prompts of very different lengths.

Usage:  python bench/bench_prefill_groups.py [--prompts 40] [--max-new-tokens 16] [--repeats 2] [--threads N]

The textual profile's prompts (the first N of Dolly-200's test half, packaged with heirloom;
34 to 1333 tokens with SmolLM2's chat template at N=40) through `HFBackend.generate`, greedy,
one answer each, as the profile runs them. Two settings, interleaved repeat by repeat:
- grouped: heirloom's default, prompts prefilled in groups whose shortest is at least
  `decode.PREFILL_GROUP_RATIO` of their longest, each padded to its own longest;
- one group: `PREFILL_GROUP_RATIO = 0`, every prompt of a batch padded to the longest (as before).
A short `--max-new-tokens` isolates the prefill; decoding is the same in both (every row attends
over the longest prompt's columns either way). Reports median seconds, padded prefill tokens,
and how many answers agree (bf16 logits depend on the batch's shape, so greedy near-ties may flip).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from heirloom.generation import SamplingParams, make_backend
    from heirloom.generation import decode as decode_mod
    from heirloom.profiling.textual import TextualConfig, load_prompts

    prompts = load_prompts(TextualConfig(size=args.prompts))
    backend = make_backend(args.model)
    params = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    lengths = sorted((len(backend._encode(p, None, i, params)) for i, p in enumerate(prompts)), reverse=True)
    ratio = decode_mod.PREFILL_GROUP_RATIO
    padded = {"grouped": sum(len(g) * (lengths[g[0]] + 1) for g in decode_mod.length_groups(lengths)),
              "one group": len(lengths) * (lengths[0] + 1)}
    print(f"# {args.model} ({backend.dtype}), torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}; {len(prompts)} Dolly test prompts "
          f"of {lengths[-1]}-{lengths[0]} tokens ({sum(lengths)} in all), {args.max_new_tokens} new tokens, greedy")
    times: dict[str, list[float]] = {name: [] for name in padded}
    answers: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, r in (("one group", 0.0), ("grouped", ratio)):
            decode_mod.PREFILL_GROUP_RATIO = r
            start = time.perf_counter()
            out = backend.generate(prompts, 1, params, progress=False)
            times[name].append(time.perf_counter() - start)
            answers[name] = [c[0].text for c in out]
    decode_mod.PREFILL_GROUP_RATIO = ratio
    base = statistics.median(times["one group"])
    print("| prefill | padded prefill tokens | seconds (median) | runs | speed-up |")
    print("|---|---|---|---|---|")
    for name in ("one group", "grouped"):
        med = statistics.median(times[name])
        print(f"| {name} | {padded[name]} | {med:.1f} | {', '.join(f'{t:.1f}' for t in times[name])} | "
              f"{base / med:.2f}x |")
    same = sum(a == b for a, b in zip(answers["one group"], answers["grouped"]))
    print(f"answers identical in both: {same} of {len(prompts)}")


if __name__ == "__main__":
    main()
