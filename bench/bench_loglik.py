"""Batched shared-prefix log-likelihood scoring vs the plain loop, on 2,064 BBQ items.

Usage:  HEIRLOOM_DATA=../shared/data python bench/bench_loglik.py [--size 516] [--naive-sets 3] [--threads 1]
            [--batch-size 32] [--dtype auto] [--out FILE]

Items: the BBQ items `BBQConfig(size=516)` profiles, from the 4 categories in
$HEIRLOOM_DATA/bbq: 129 whole question sets per category (seed 0), 4 items each, so
4 x 516 = 2,064 items and 6,192 (prompt, option) requests, scored with the embedded
smollm2-135m on the CPU.

- batched: `generation.loglik.loglikelihood` in `--dtype` (auto: bf16 on CPUs with AVX512-BF16
  or AMX), one call per category (prefixes are shared within a call): the median is over 4 calls.
- plain loop: `reference_loglikelihood` in float32, one unbatched forward pass per option (full
  logits, as a plain `model(ids).logits` loop does), on `--naive-sets` evenly spaced
  question sets of each category only (it is ~1 s an item). Its total for all items is
  extrapolated two ways: mean seconds per item x items, and seconds per token x the
  tokens of all items (corrects for the subset's prompts being shorter or longer).
The two are interleaved (per category: loop subset, then batched block) so that load
from other jobs on a shared machine hits both alike. Scores of the subset are compared
(max |difference| of the summed log-probabilities, and the chosen answers: the decision the
profile takes, here by mean token log-probability).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The data directory is named the way a user names it (no path into the checkout): $HEIRLOOM_DATA.
BBQ = Path(os.environ.get("HEIRLOOM_DATA")
           or sys.exit("set HEIRLOOM_DATA to the data directory (in this project: ../shared/data)")) / "bbq"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=516, help="BBQ items per category (whole question sets of 4)")
    ap.add_argument("--naive-sets", type=int, default=3, help="question sets per category run through the plain loop")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    ap.add_argument("--batch-size", type=int, default=32, help="rows per forward pass of the batched scorer")
    ap.add_argument("--dtype", default="auto", help="the batched scorer's dtype (the plain loop runs in float32)")
    ap.add_argument("--out", type=Path, default=None, help="write the measurements as JSON (with provenance)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from heirloom.generation.loglik import encode_requests, loglikelihood, reference_loglikelihood
    from heirloom.models import load_hf
    from heirloom.profiling import bbq
    from heirloom.provenance import record

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model, tok = load_hf("smollm2-135m", device="cpu", dtype=args.dtype)
    load_s = time.perf_counter() - t0
    loop_model, _ = load_hf("smollm2-135m", device="cpu", dtype="float32")
    rows = bbq.load_bbq(str(BBQ))
    load_before = os.getloadavg()[0]
    blocks, naive_items, naive_times, batched = [], [], [], []
    tokens_all = tokens_naive = 0
    for cat in sorted({r["category"] for r in rows}):
        cat_rows = [r for r in rows if r["category"] == cat]
        idx, _ = bbq.sample(cat_rows, args.size, seed=0)
        items = [cat_rows[i] for i in idx]
        reqs = [(bbq.PROMPT.format(context=r["context"], question=r["question"]), " " + r[f"ans{k}"])
                for r in items for k in range(3)]
        tokens = [len(c) + len(t) for c, t in encode_requests(tok, reqs)]
        tokens_all += sum(tokens)
        n_sets = len(items) // 4  # sample() keeps each question set's 4 items together, in order
        spread = sorted({s * n_sets // args.naive_sets for s in range(min(args.naive_sets, n_sets))})
        sub = [4 * s + i for s in spread for i in range(4)]
        for j in sub:  # the plain loop, one item (3 passes) at a time
            start = time.perf_counter()
            res = reference_loglikelihood(loop_model, tok, reqs[3 * j:3 * j + 3])
            naive_times.append(time.perf_counter() - start)
            naive_items.append((cat, j, res))
            tokens_naive += sum(tokens[3 * j:3 * j + 3])
        start, start_cpu = time.perf_counter(), time.process_time()
        res = loglikelihood(model, tok, reqs, batch_size=args.batch_size, progress=False)
        blocks.append({"category": cat, "items": len(items), "seconds": time.perf_counter() - start,
                       "cpu_seconds": time.process_time() - start_cpu})
        batched.append((cat, res))
        print(f"{cat}: {len(items)} items in {blocks[-1]['seconds']:.1f} s batched; loop "
              f"{statistics.mean(naive_times[-len(sub):]):.2f} s/item", file=sys.stderr)
    load_after = os.getloadavg()[0]

    by_cat = dict(batched)
    diffs, same_answer = [], 0
    for cat, j, res in naive_items:
        fast = by_cat[cat][3 * j:3 * j + 3]
        diffs += [abs(a.logprob - b.logprob) for a, b in zip(fast, res)]
        pick = lambda rs: int(np.argmax([r.logprob / r.num_tokens for r in rs]))  # noqa: E731
        same_answer += pick(fast) == pick(res)
    n_items = sum(b["items"] for b in blocks)
    total = sum(b["seconds"] for b in blocks)
    per_block = [b["seconds"] / b["items"] for b in blocks]
    naive_mean, naive_median = statistics.mean(naive_times), statistics.median(naive_times)
    result = {
        "items": n_items, "requests": 3 * n_items, "threads": torch.get_num_threads(), "batch_size": args.batch_size,
        "batched_seconds": total, "batched_cpu_seconds": sum(b["cpu_seconds"] for b in blocks),
        "batched_items_per_s": n_items / total, "batched_s_per_item_median": statistics.median(per_block),
        "blocks": blocks, "naive_items": len(naive_times), "naive_s_per_item_mean": naive_mean,
        "naive_s_per_item_median": naive_median, "naive_items_per_s": 1 / naive_mean,
        "naive_extrapolated_seconds": naive_mean * n_items, "ratio_mean": naive_mean / (total / n_items),
        "tokens_per_item_all": tokens_all / n_items, "tokens_per_item_naive_subset": tokens_naive / len(naive_times),
        "naive_extrapolated_seconds_by_tokens": sum(naive_times) / tokens_naive * tokens_all,
        "ratio_by_tokens": sum(naive_times) / tokens_naive * tokens_all / total,
        "ratio_median": naive_median / statistics.median(per_block), "max_abs_logprob_diff": max(diffs),
        "same_answer": same_answer, "model_load_seconds": load_s, "loadavg_before": load_before,
        "loadavg_after": load_after, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "dtype": str(model.dtype).removeprefix("torch."), "loop_dtype": "float32",
    }
    print(json.dumps(result, indent=1, default=str))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**result, "provenance": record(command=" ".join(sys.argv),
                                                                        model="smollm2-135m")}, indent=1))


if __name__ == "__main__":
    main()
