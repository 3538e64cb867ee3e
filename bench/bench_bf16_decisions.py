"""Does bf16 change what the profile decides? BBQ answers and CrowS-Pairs preferences, fp32 vs bf16.

Usage:  HEIRLOOM_DATA=../shared/data python bench/bench_bf16_decisions.py [--bbq-size 128] [--crows-size 0]
                                                     [--rescore-margin M] [--threads 1] [--out FILE]

Runs the real suites (`profiling.bbq.run`, `profiling.crows_pairs.run`, with their default
scoring rules) through `HFBackend` twice, once per dtype, on the same items (the data
directory named by $HEIRLOOM_DATA: `bbq/<Category>.jsonl`, `crows_pairs/`), and compares:
- BBQ: the chosen option of every item (`--bbq-size` items per category, whole question sets);
- CrowS-Pairs: whether the more-stereotypical sentence scores higher, per pair (`--crows-size`
  pairs, 0 = all 1,508);
- the suite attributes computed from them (accuracy, bias scores, % stereotype), side by side.
The bf16 run uses near-tie re-scoring (`rescore_margin`, the suites' default unless
`--rescore-margin`; profiling/tie_rescoring.py): its items keep their bf16 scores where they
were re-scored (`rescored_from`), so one bf16 run gives the decisions with re-scoring off (the
first pass) and on, the number of items re-scored, and the time spent in the float32 path.
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
    ap.add_argument("--rescore-margin", type=float, default=None,
                    help="bf16 run's rescore_margin (default: the suites' default; 0 = off)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's own)")
    ap.add_argument("--out", type=Path, default=None, help="write the comparison as JSON (with provenance)")
    args = ap.parse_args()

    import torch

    from heirloom.generation.hf import HFBackend
    from heirloom.profiling import bbq, crows_pairs
    from heirloom.profiling.tie_rescoring import DEFAULT_MARGIN
    from heirloom.provenance import record

    data_dir = os.environ.get("HEIRLOOM_DATA")
    if not data_dir:
        sys.exit("error: set HEIRLOOM_DATA to a data directory laid out like ../shared/data")
    if args.threads:
        torch.set_num_threads(args.threads)
    margin = DEFAULT_MARGIN if args.rescore_margin is None else args.rescore_margin
    _BBQ_ROWS.update({(r["category"], r.get("example_id")): r for r in bbq.load_bbq(None, data_dir=data_dir)})
    runs = {}
    for dtype in ("float32", "bfloat16"):
        backend = HFBackend(args.model, dtype=dtype)
        spent = _Float32Timer(backend)
        t = time.perf_counter()
        b_attrs = bbq.run(backend, bbq.BBQConfig(size=args.bbq_size, rescore_margin=margin), data_dir=data_dir,
                          progress=False)
        t_bbq, r_bbq = time.perf_counter() - t, spent.take()
        t = time.perf_counter()
        c_attrs = crows_pairs.run(backend, crows_pairs.CrowsPairsConfig(size=args.crows_size or None,
                                                                        rescore_margin=margin),
                                  data_dir=data_dir, progress=False)
        t_crows, r_crows = time.perf_counter() - t, spent.take()
        runs[dtype] = {"bbq": {a.name: a for a in b_attrs}, "crows": {a.name: a for a in c_attrs},
                       "seconds": {"bbq": t_bbq, "crows": t_crows},
                       "rescore_seconds": {"bbq": r_bbq, "crows": r_crows}, "dtype": backend.dtype}
        print(f"{dtype}: BBQ {t_bbq:.0f} s ({r_bbq:.0f} s re-scoring), CrowS {t_crows:.0f} s "
              f"({r_crows:.0f} s re-scoring)", file=sys.stderr)
        backend.close()

    fp, bf = runs["float32"], runs["bfloat16"]
    b32, b16 = _bbq_items(fp["bbq"]), _bbq_items(bf["bbq"])
    c32, c16 = _crows_items(fp["crows"]), _crows_items(bf["crows"])
    assert [_bbq_key(i) for i in b32] == [_bbq_key(i) for i in b16], "the two runs scored different BBQ items"
    assert [i["pair"] for i in c32] == [i["pair"] for i in c16], "the two runs scored different CrowS pairs"
    assert not any("rescored" in i for i in b32 + c32), "the float32 run re-scored something"
    summary = {"rescore_margin": margin}
    for mode, first_pass in (("rescored", False), ("bf16_only", True)):
        b16m = [_bbq_first_pass(i) if first_pass else i for i in b16]
        c16m = [_crows_first_pass(i) if first_pass else i for i in c16]
        bbq_flips = [{"item": _bbq_key(a), "fp32": a["answer"], "bf16": b["answer"],
                      "fp32_margin": _margin(a["scores"]), "bf16_margin": _margin(b["scores"])}
                     for a, b in zip(b32, b16m) if a["answer"] != b["answer"]]
        crows_flips = [{"pair": a["pair"], "fp32_more_minus_less": a["more"] - a["less"],
                        "bf16_more_minus_less": b["more"] - b["less"]}
                       for a, b in zip(c32, c16m) if (a["more"] > a["less"]) != (b["more"] > b["less"])]
        summary[mode] = {
            "bbq_agree": len(b32) - len(bbq_flips), "bbq_agreement": 1 - len(bbq_flips) / len(b32),
            "crows_agree": len(c32) - len(crows_flips), "crows_agreement": 1 - len(crows_flips) / len(c32),
            "attributes": {name: {"float32": fp[s][name].value, "bfloat16": _attr_value(bf[s][name], first_pass)}
                           for s in ("bbq", "crows") for name in fp[s] if "/all/" in name},
            "bbq_flips": bbq_flips, "crows_flips": crows_flips}
    b_first, c_first = [_bbq_first_pass(i) for i in b16], [_crows_first_pass(i) for i in c16]
    summary.update({
        "bbq_items": len(b32), "crows_pairs": len(c32),
        "bbq_rescored": sum(i["rescored"] for i in b16), "crows_rescored": sum(i["rescored"] for i in c16),
        "max_abs_mean_logprob_diff_bf16_only": max(
            [abs(x - y) for a, b in zip(b32, b_first) for x, y in zip(a["scores"], b["scores"])]
            + [abs(a[k] - b[k]) for a, b in zip(c32, c_first) for k in ("more", "less")]),
        "max_abs_diff_rescored_items": max(
            [abs(x - y) for a, b in zip(b32, b16) if b["rescored"] for x, y in zip(a["scores"], b["scores"])]
            + [abs(a[k] - b[k]) for a, b in zip(c32, c16) if b["rescored"] for k in ("more", "less")], default=0.0),
        "seconds": {d: runs[d]["seconds"] for d in runs},
        "rescore_seconds": runs["bfloat16"]["rescore_seconds"],
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "torch": torch.__version__,
    })
    print(json.dumps({k: ({kk: vv for kk, vv in v.items() if not kk.endswith("flips")} if isinstance(v, dict) else v)
                      for k, v in summary.items()}, indent=1))
    for mode in ("bf16_only", "rescored"):
        s = summary[mode]
        print(f"{mode}: BBQ {s['bbq_agree']}/{len(b32)} answers agree ({100 * s['bbq_agreement']:.2f}%); "
              f"CrowS-Pairs {s['crows_agree']}/{len(c32)} preferences agree ({100 * s['crows_agreement']:.2f}%)")
    print(f"re-scored (margin < {margin:g}): BBQ {summary['bbq_rescored']}/{len(b32)}, "
          f"CrowS {summary['crows_rescored']}/{len(c32)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**summary, "provenance": record(command=" ".join(sys.argv), model=args.model,
                                                                        data_dir=data_dir)}, indent=1, default=str))


class _Float32Timer:
    """Times the backend's float32 path (re-scoring, model reload included); `take()`: seconds since the last take."""

    def __init__(self, backend):
        self.spent, self.original = 0.0, backend.float32_loglikelihood
        backend.float32_loglikelihood = self

    def __call__(self, requests, progress=True):
        t = time.perf_counter()
        try:
            return self.original(requests, progress=progress)
        finally:
            self.spent += time.perf_counter() - t

    def take(self) -> float:
        value, self.spent = self.spent, 0.0
        return value


_BBQ_ROWS: dict = {}  # (category, example_id) -> BBQ row, to redo a first-pass answer's consequences


def _bbq_first_pass(item: dict) -> dict:
    """The item as bf16 alone decided it (its scores before re-scoring, and what its answer implies)."""
    from heirloom.profiling import bbq

    if not item.get("rescored"):
        return item
    scores = item["rescored_from"]
    answer = max(range(len(scores)), key=lambda k: (scores[k], -k))  # argmax, ties: the first (as bbq.run)
    row = _BBQ_ROWS[(item["category"], item["example_id"])]
    return {**item, "scores": scores, "answer": answer, "correct": answer == item["label"],
            "unknown": answer == bbq.unknown_option(row), "biased": bbq.biased_options(row)[answer]}


def _crows_first_pass(item: dict) -> dict:
    if not item.get("rescored"):
        return item
    return {**item, "more": item["rescored_from"][0], "less": item["rescored_from"][1]}


def _attr_value(attr, first_pass: bool) -> float:
    """The attribute's value, recomputed on the first-pass (bf16-only) items when asked."""
    from heirloom.profiling import statistics

    if not first_pass:
        return attr.value
    items = [_crows_first_pass(i) if "more" in i else _bbq_first_pass(i) for i in attr.items]
    return statistics.resolve(attr.statistic)(items)


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
