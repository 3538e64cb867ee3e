"""Does bf16 change what the profile decides? BBQ answers and CrowS-Pairs preferences, fp32 vs bf16.

Usage:  HEIRLOOM_DATA=../shared/data python bench/bench_bf16_decisions.py [--bbq-size 128] [--crows-size 0]
                                                                          [--threads 1] [--out FILE]

Runs the real suites (`profiling.bbq.run`, `profiling.crows_pairs.run`, with their default
scoring rules) through `HFBackend` twice, once per dtype, on the same items (the data
directory named by $HEIRLOOM_DATA: `bbq/<Category>.jsonl`, `crows_pairs/`), and compares:
- BBQ: the chosen option of every item (`--bbq-size` items per category, whole question sets);
- CrowS-Pairs: whether the more-stereotypical sentence scores higher, per pair (`--crows-size`
  pairs, 0 = all 1,508);
- the suite attributes computed from them (accuracy, bias scores, % stereotype), side by side.
Disagreements are listed with their fp32 margin (how close the fp32 decision was to a tie).
Goal (issue 12): >= 99% of decisions agree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--bbq-size", type=int, default=128, help="BBQ items per category (whole question sets of 4)")
    ap.add_argument("--crows-size", type=int, default=0, help="CrowS-Pairs pairs (stratified); 0 = all")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    ap.add_argument("--out", type=Path, default=None, help="write the comparison as JSON (with provenance)")
    args = ap.parse_args()

    import torch

    from heirloom.generation.hf import HFBackend
    from heirloom.profiling import bbq, crows_pairs
    from heirloom.provenance import record

    data_dir = os.environ.get("HEIRLOOM_DATA")
    if not data_dir:
        sys.exit("error: set HEIRLOOM_DATA to a data directory laid out like ../shared/data")
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        backend = HFBackend(args.model, dtype=dtype)
        t = time.perf_counter()
        b_attrs = bbq.run(backend, bbq.BBQConfig(size=args.bbq_size), data_dir=data_dir, progress=False)
        t_bbq = time.perf_counter() - t
        t = time.perf_counter()
        c_attrs = crows_pairs.run(backend, crows_pairs.CrowsPairsConfig(size=args.crows_size or None),
                                  data_dir=data_dir, progress=False)
        t_crows = time.perf_counter() - t
        runs[dtype] = {"bbq": {a.name: a for a in b_attrs}, "crows": {a.name: a for a in c_attrs},
                       "seconds": {"bbq": t_bbq, "crows": t_crows}, "dtype": backend.dtype}
        print(f"{dtype}: BBQ {t_bbq:.0f} s, CrowS {t_crows:.0f} s", file=sys.stderr)
        backend.close()

    fp, bf = runs["float32"], runs["bfloat16"]
    b32, b16 = _bbq_items(fp["bbq"]), _bbq_items(bf["bbq"])
    c32, c16 = _crows_items(fp["crows"]), _crows_items(bf["crows"])
    assert [_bbq_key(i) for i in b32] == [_bbq_key(i) for i in b16], "the two runs scored different BBQ items"
    assert [i["pair"] for i in c32] == [i["pair"] for i in c16], "the two runs scored different CrowS pairs"
    bbq_flips = [{"item": _bbq_key(a), "fp32": a["answer"], "bf16": b["answer"], "fp32_margin": _margin(a["scores"])}
                 for a, b in zip(b32, b16) if a["answer"] != b["answer"]]
    crows_flips = [{"pair": a["pair"], "fp32_more_minus_less": a["more"] - a["less"],
                    "bf16_more_minus_less": b["more"] - b["less"]}
                   for a, b in zip(c32, c16) if (a["more"] > a["less"]) != (b["more"] > b["less"])]
    score_diff = max([abs(x - y) for a, b in zip(b32, b16) for x, y in zip(a["scores"], b["scores"])]
                     + [abs(a[k] - b[k]) for a, b in zip(c32, c16) for k in ("more", "less")])
    summary = {
        "bbq_items": len(b32), "bbq_agree": len(b32) - len(bbq_flips),
        "bbq_agreement": 1 - len(bbq_flips) / len(b32),
        "crows_pairs": len(c32), "crows_agree": len(c32) - len(crows_flips),
        "crows_agreement": 1 - len(crows_flips) / len(c32),
        "max_abs_mean_logprob_diff": score_diff,
        "seconds": {d: runs[d]["seconds"] for d in runs},
        "attributes": {name: {"float32": fp[s][name].value, "bfloat16": bf[s][name].value}
                       for s in ("bbq", "crows") for name in fp[s] if "/all/" in name},
        "bbq_flips": bbq_flips, "crows_flips": crows_flips,
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "torch": torch.__version__,
    }
    print(json.dumps({k: v for k, v in summary.items() if not k.endswith("flips")}, indent=1))
    print(f"BBQ: {summary['bbq_agree']}/{summary['bbq_items']} answers agree ({100 * summary['bbq_agreement']:.2f}%); "
          f"CrowS-Pairs: {summary['crows_agree']}/{summary['crows_pairs']} preferences agree "
          f"({100 * summary['crows_agreement']:.2f}%)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**summary, "provenance": record(command=" ".join(sys.argv), model=args.model,
                                                                        data_dir=data_dir)}, indent=1, default=str))


def _bbq_items(attrs: dict) -> list[dict]:
    """Every BBQ item once: the per-category accuracy attributes' items, in category order."""
    return [it for name in sorted(attrs) if name.endswith("/accuracy") and "/all/" not in name
            for it in attrs[name].items]


def _crows_items(attrs: dict) -> list[dict]:
    return next(a.items for name, a in attrs.items() if "/all/" in name)


def _bbq_key(item: dict) -> tuple:
    return item["category"], item.get("example_id"), item["condition"], item["polarity"]


def _margin(scores: list[float]) -> float:
    top = sorted(scores, reverse=True)
    return top[0] - top[1]


if __name__ == "__main__":
    main()
