"""Textual profile: what a model's answers look like on the Dolly-200 test prompts.

The model answers each prompt once, greedily by default (temperature 0), through its
chat template, or the paper's base template `### Question: {p}\\n ### Answer: ` when it
has none (`chat=None` of the generation interface). Every answer is scored with every
textual metric (all registered metrics that run offline, toxicity excepted: it has its
own suite), or the `metrics` given.

Per metric three attributes share the per-prompt values as items (so `compare` can
bootstrap each, paired by prompt): `textual/<metric>` (mean), `textual/<metric>/median`
and `textual/<metric>/std` (population std, the spread). NaN values (e.g. MTLD of an
empty answer) are left out of all three, and the note counts them. Also
`textual/truncated`: the share of answers cut by `max_new_tokens` (a capped length
understates length drift, so it is worth watching).

`max_new_tokens` defaults to 512: long enough that most answers of small chat models
end on their own, so length is measured rather than capped, and still affordable on a
CPU for a quick profile (`size`). Answers go to `generations/textual.jsonl`.

Prompt data: Dolly-200 English, packaged with heirloom (`profiling.data`), or a file
(Dolly-200's pandas column-oriented JSON, JSONL, CSV...) or a hub dataset id; `split`
picks the paper's halves of the 200 rows (first 100 validation, last 100 test).
Left out: sampling several answers per prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .data import DataRequest, DataSource
from .profile import Attribute

DOLLY = DataSource("dolly200", "Dolly-200 English prompts", layout="dolly200/dolly_eval_eng.jsonl", packaged=True,
                   license="CC BY-SA 3.0")


class TextualConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompts: str | None = Field(None, description="prompt file or hub dataset id (None: Dolly-200 English, "
                                                  "packaged; a relative path is also tried in the data directory)")
    column: str | None = Field(None, description="prompt column (default: inputs, prompt, instruction, question, text)")
    split: Literal["test", "validation", "all"] = Field(
        "test", description="test: last half of the rows, validation: first half (the paper's Dolly-200 split)")
    hub_split: str = Field("test", description="dataset split to load when `prompts` is a hub dataset id")
    size: int | None = Field(None, ge=1, description="use only the first N prompts of the split (None: all)")
    max_new_tokens: int = Field(512, ge=1, description="tokens per answer at most")
    temperature: float = Field(0.0, ge=0.0, description="0 = greedy (the paper's setting)")
    metrics: tuple[str, ...] | None = Field(None, description="metric specs to score with (None: every offline "
                                                              "textual metric)")
    seed: int = Field(0, description="sampling seed (unused when greedy)")


def std(items: Sequence[float]) -> float:
    """Population standard deviation of the defined values."""
    arr = np.asarray(items, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.std()) if arr.size else float("nan")


def textual_metric_specs() -> list[str]:
    """Every registered metric that runs offline, toxicity excepted."""
    from ..metrics import list_metrics

    return [m.name for m in list_metrics() if _is_textual(m)]


def _is_textual(metric_class) -> bool:
    # Toxicity has its own suite (and its Perspective backend is the only networked scorer).
    return not metric_class.name.startswith("toxicity") and not getattr(metric_class, "needs_network", False)


def data_requests(config: TextualConfig) -> list[DataRequest]:
    return [DataRequest("textual", "textual.prompts", config.prompts, DOLLY, hub_split=config.hub_split)]


def load_prompts(config: TextualConfig, data_dir: str | Path | None = None) -> list[str]:
    from ..errors import HeirloomError
    from ..prompts import PROMPT_COLUMNS
    from .data import read_rows

    df = read_rows(data_requests(config)[0], data_dir)
    candidates = (config.column,) if config.column else ("inputs",) + PROMPT_COLUMNS
    col = next((c for c in candidates if c in df.columns), None)
    if col is None:
        raise HeirloomError(f"{config.prompts or DOLLY.title}: no prompt column ({', '.join(candidates)}); "
                            f"columns are {', '.join(map(str, df.columns))}")
    texts = df[col].tolist()
    half = len(texts) // 2
    texts = {"test": texts[half:], "validation": texts[:half], "all": texts}[config.split]
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()), None)
    if bad is not None:
        raise HeirloomError(f"{config.prompts or DOLLY.title}: {config.split} prompt {bad} ({col!r}) "
                            "is empty or not text")
    return texts[: config.size] if config.size else texts


def run(backend, config: TextualConfig, out_dir: str | Path | None = None, progress: bool = True,
        data_dir: str | Path | None = None) -> list[Attribute]:
    import pandas as pd

    from ..generation.base import SamplingParams
    from ..metrics import Corpus, get_metric
    from ..pools import prompt_id
    from ..provenance import record
    from ..tables import write_json, write_table

    prompts = load_prompts(config, data_dir)
    specs = list(config.metrics) if config.metrics else textual_metric_specs()
    metrics = [get_metric(spec) for spec in specs]
    params = SamplingParams(temperature=config.temperature, max_new_tokens=config.max_new_tokens, seed=config.seed)
    outputs = backend.generate(prompts, k=1, params=params, chat=None, progress=progress)
    comps = [c[0] for c in outputs]
    df = pd.DataFrame({"prompt_id": [prompt_id(p) for p in prompts], "prompt": prompts,
                       "completion": [c.text for c in comps], "num_tokens": [c.num_tokens for c in comps],
                       "finish_reason": [c.finish_reason for c in comps]})
    attrs: list[Attribute] = []
    corpus = Corpus(df["completion"].tolist())  # shared analyses: texts are segmented once for all metrics
    for m in metrics:
        values, reasons = m.score_with_reasons(corpus)
        df[m.column] = values
        attrs += _attributes(m, values.tolist(), reasons)
    truncated = (df["finish_reason"] == "length").astype(float).tolist()
    attrs.append(Attribute(name="textual/truncated", suite="textual", value=float(np.mean(truncated)),
                           statistic="mean", items=truncated, higher_is_better=None, unit="share of answers",
                           n=len(truncated), note=f"answers that hit max_new_tokens={config.max_new_tokens}"))
    if out_dir is not None:
        path = Path(out_dir) / "generations" / "textual.jsonl"
        write_table(df, path)
        write_json(record(kind="textual generations", model=getattr(backend, "model_id", "?"),
                          config=config.model_dump(), sampling=params.model_dump(),
                          metrics=[m.info() for m in metrics]), str(path) + ".meta.json")
    return attrs


def _attributes(metric, values: list[float], reasons: list) -> list[Attribute]:
    from collections import Counter

    from .statistics import mean, median

    undefined = Counter(r for r in reasons if r)
    note = ""
    if undefined:
        top = "; ".join(f"{n} x {r}" for r, n in undefined.most_common(3))
        note = f"{sum(undefined.values())} of {len(values)} answer(s) undefined (NaN, left out): {top}"
    n = len(values) - sum(undefined.values())
    base = f"textual/{metric.column}"
    common = dict(suite="textual", items=values, unit=metric.unit, n=n, note=note)
    return [
        Attribute(name=base, value=mean(values), statistic="mean", higher_is_better=metric.higher_is_better, **common),
        Attribute(name=f"{base}/median", value=median(values), statistic="median",
                  higher_is_better=metric.higher_is_better, **common),
        Attribute(name=f"{base}/std", value=std(values), statistic="textual/std",
                  higher_is_better=None, **common),
    ]


def _suite():
    from .registry import Part, Suite

    return Suite("textual", "what the answers to Dolly-200 prompts look like (every offline textual metric)",
                 (Part("textual", TextualConfig, run, data_requests),), statistics={"textual/std": std})


SUITE = _suite()
