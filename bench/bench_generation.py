"""Speed of the hf backend against a naive loop, batched `model.generate` and the bf16 ceiling.

Usage:  python bench/bench_generation.py [--prompts 32] [--k 4] [--max-new-tokens 128] [--repeats 2]
                                         [--dtype auto] [--threads N] [--rows R] [--static] [--out FILE]

In one process, on the same model and prompts, the methods interleaved repeat by repeat
(so load from other jobs on a shared machine hits them alike):
- naive: one fp32 `model.generate` call per candidate (timed on `--naive-candidates`, rate extrapolated);
- hf_generate: batched fp32 `model.generate(num_return_sequences=k)`, 64 rows a call (what most code does);
- heirloom: `HFBackend.generate` in `--dtype` (auto: bf16 on CPUs with AVX512-BF16/AMX): shared
  prefill, per-row RNG, continuous batching;
- heirloom, static batches (`--static`): the same with refilling off (finished rows idle until
  their batch ends), to show what continuous batching adds;
- ceiling: tokens/s of one batched forward pass (one new token per row, heirloom's rows and dtype)
  over a KV cache of typical length. Decoding cannot beat it.
Prompts are the first N of the quickstart prompt set; temperature 1, top-p 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import resources
from pathlib import Path

import torch


def load_prompts(n: int) -> list[str]:
    path = resources.files("heirloom") / "data" / "quickstart_prompts.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["instruction"] for r in rows[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--naive-candidates", type=int, default=8)
    ap.add_argument("--dtype", default="auto", help="heirloom's dtype (the baselines run in float32)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    ap.add_argument("--rows", type=int, default=None,
                    help="heirloom's decode rows (its `batch_size`; default: the backend's, 64 on a CPU)")
    ap.add_argument("--methods", default="naive,hf_generate,heirloom",
                    help="which to time (naive is always timed: the ratios are against it)")
    ap.add_argument("--static", action="store_true", help="also time heirloom with continuous batching off")
    ap.add_argument("--out", type=Path, default=None, help="write the measurements as JSON (with provenance)")
    args = ap.parse_args()

    from heirloom.generation import SamplingParams
    from heirloom.generation import decode as decode_mod
    from heirloom.generation.formatting import format_prompt
    from heirloom.generation.hf import HFBackend
    from heirloom.models import load_hf
    from heirloom.provenance import record

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = HFBackend(args.model, dtype=args.dtype, batch_size=args.rows)
    model32, tok = load_hf(args.model, device="cpu", dtype="float32")
    prompts = load_prompts(args.prompts)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=args.max_new_tokens, seed=0)
    n_cand = len(prompts) * args.k
    texts = [format_prompt(tok, p, None) for p in prompts]
    tok.padding_side = "left"
    per_batch = max(1, 64 // args.k)

    def heirloom(r: int) -> int:
        out = backend.generate(prompts, args.k, params.model_copy(update={"seed": r}), progress=False)
        return sum(c.num_tokens for cs in out for c in cs)

    def static(r: int) -> int:
        share = decode_mod.REFILL_SHARE
        decode_mod.REFILL_SHARE = 2.0  # never refill: a batch's rows idle until its longest ends
        try:
            return heirloom(r)
        finally:
            decode_mod.REFILL_SHARE = share

    def hf_generate(r: int) -> int:
        torch.manual_seed(r)
        n = 0
        for s in range(0, len(texts), per_batch):
            enc = tok(texts[s:s + per_batch], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = model32.generate(**enc, do_sample=True, top_p=0.9, temperature=1.0,
                                       max_new_tokens=args.max_new_tokens, num_return_sequences=args.k,
                                       pad_token_id=tok.pad_token_id)
            n += sum(_count(row, backend.eos_ids, tok.pad_token_id) for row in out[:, enc["input_ids"].shape[1]:])
        return n

    def naive(r: int) -> int:
        torch.manual_seed(r)
        n = 0
        for i in range(args.naive_candidates):
            enc = tok(texts[i % len(texts)], return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out = model32.generate(**enc, do_sample=True, top_p=0.9, temperature=1.0,
                                       max_new_tokens=args.max_new_tokens, pad_token_id=tok.pad_token_id)
            n += _count(out[0, enc["input_ids"].shape[1]:], backend.eos_ids, tok.pad_token_id)
        return n

    chosen = set(args.methods.split(",")) | {"naive"}
    methods = {k: v for k, v in {"heirloom": heirloom, "hf_generate": hf_generate, "naive": naive}.items()
               if k in chosen}
    if args.static:
        methods["static"] = static
    load_before = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, int]]] = {m: [] for m in methods}
    for r in range(args.repeats):
        for name, fn in methods.items():
            t = time.perf_counter()
            tokens = fn(r)
            runs[name].append((time.perf_counter() - t, tokens))
            print(f"repeat {r}: {name} {runs[name][-1][0]:.1f} s, {tokens} tokens", file=sys.stderr)
    load_after = os.getloadavg()[0]

    rows = backend._batch_rows(max(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
                               + args.max_new_tokens)
    ctx = int(statistics.mean(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)) \
        + args.max_new_tokens // 2
    ceiling_tps = rows / _step_seconds(backend.model, rows, ctx, tok.vocab_size)

    def summary(name, label, candidates):
        sec = statistics.median(s for s, _ in runs[name])
        tps = statistics.median(n / s for s, n in runs[name])
        return {"method": label, "seconds": sec, "candidates": candidates, "candidates_per_s": candidates / sec,
                "tokens_per_s": tps, "runs": runs[name]}

    table = [summary("naive", "naive (1 fp32 generate/candidate)", args.naive_candidates)]
    if "hf_generate" in methods:
        table.append(summary("hf_generate", "hf generate (batched, fp32)", n_cand))
    if args.static:
        table.append(summary("static", f"heirloom, static batches ({backend.dtype})", n_cand))
    if "heirloom" in methods:
        table.append(summary("heirloom", f"heirloom hf backend ({backend.dtype}, {rows} rows)", n_cand))
    base = table[0]
    for row in table:
        row["x_naive"] = row["candidates_per_s"] / base["candidates_per_s"]
        row["share_of_ceiling"] = row["tokens_per_s"] / ceiling_tps
    head = (f"# {args.prompts} prompts x k={args.k} x {args.max_new_tokens} new tokens, {args.model}, "
            f"heirloom dtype {backend.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"load {load_before:.1f} -> {load_after:.1f}, medians of {args.repeats}")
    print(head)
    print("| method | s (median) | candidates/s | tokens/s | x naive (cand/s) | % of ceiling (tok/s) |")
    print("|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row['method']} | {row['seconds']:.1f} | {row['candidates_per_s']:.2f} | {row['tokens_per_s']:.0f} | "
              f"{row['x_naive']:.1f}x | {100 * row['share_of_ceiling']:.0f}% |")
    print(f"| ceiling: 1 batched forward ({backend.dtype}), {rows} rows, cache {ctx} | | | {ceiling_tps:.0f} | | 100% |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"table": table, "ceiling_tokens_per_s": ceiling_tps, "ceiling_rows": rows, "ceiling_cache": ctx,
               "dtype": backend.dtype, "baseline_dtype": "float32", "threads": torch.get_num_threads(),
               "loadavg_before": load_before, "loadavg_after": load_after, "cores": os.cpu_count(),
               "provenance": record(command=" ".join(sys.argv), model=args.model)}
        args.out.write_text(json.dumps(doc, indent=1, default=str))


def _step_seconds(model, rows: int, ctx: int, vocab: int) -> float:
    """Median seconds of one decode step of `rows` rows over a `ctx`-token cache: the model's forward
    alone (preallocated cache, no sampling, no bookkeeping), timed over 5 successive steps."""
    from heirloom.generation.kv_buffer import buffered_cache, cache_kwarg

    kw = cache_kwarg(model)
    with torch.inference_mode():
        ids = torch.randint(0, vocab, (rows, ctx))
        cache = buffered_cache(model.config, ctx + 8)
        model(input_ids=ids, use_cache=True, logits_to_keep=1, **{kw: cache})
        mask = torch.ones((rows, ctx), dtype=torch.long)
        mask[:, 0] = 0  # as in heirloom's batches: a mask of all ones is dropped, and SDPA is slower without one
        secs = []
        for i in range(5):
            step = torch.randint(0, vocab, (rows, 1))
            mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=1)
            pos = torch.full((rows, 1), ctx + i)
            t = time.perf_counter()
            model(input_ids=step, attention_mask=mask, position_ids=pos, use_cache=True, **{kw: cache})
            secs.append(time.perf_counter() - t)
    return statistics.median(secs)


def _count(row, eos_ids, pad_id) -> int:
    n = 0
    for t in row.tolist():
        if t in eos_ids or t == pad_id:
            break
        n += 1
    return n


if __name__ == "__main__":
    main()
