"""Judge profile: the model as a pairwise judge, scored by log-likelihood.

The judge reads an instruction and two answers, shown as "Output (a)" and "Output (b)"
(`TEMPLATE`), and its verdict is the continuation it finds more likely: " Output (a)"
or " Output (b)" (sum of token log-probabilities; equal values are a tie). This needs
only `loglikelihood`, so any backend that scores log-likelihoods can judge; chat models
get the question through their chat template (`template="auto"`), and then the verdict
continuations lose their leading space.

Position bias is cancelled by asking twice, with the answers swapped. A verdict counts
only when both orders pick the same answer; otherwise the pair is a tie (verdict 0).

Reference labels: AlpacaEval annotations (`instruction`, `output_1`, `output_2`,
`preference`): a file, else `alpaca_eval_outputs/annotations_FuseChat-Gemma-2-9B-Instruct.json`
in the data directory (the paper-style GPT-4-turbo annotations), else the hub's AlpacaFarm
human cross-annotations (`tatsu-lab/alpaca_eval`, a different reference: see docs/profiling.md).
`preference` is 1 + P(output_2 is better) (1.0 and 2.0 for hard labels, fractional for
weighted annotators), so it maps to 1 below 1.5, 2 above, and a tie (0)
at exactly 1.5; a missing preference means no reference for that pair.

Every judge attribute has the same per-pair items (dicts: `pair_id`, `reference`, `ab`
and `ba` the answer picked in each order, `verdict`, `longer`) and its own statistic:
agreement with the reference (share of pairs with the same verdict, ties included as a
verdict), position consistency (both orders pick the same answer), first-position rate
(share of single-order verdicts for position (a); 0.5 is unbiased) and longer
preference (share of decided pairs won by the longer answer, by characters).
`judge_agreement_matrix(profiles)` compares saved verdicts between judges.
Left out: generated (free-text) verdicts and multi-way rankings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .data import DataRequest, DataSource, HubSource
from .profile import Attribute, Profile
from .statistics import mean_over_items

ANNOTATIONS = DataSource(
    "alpaca_eval_annotations", "AlpacaEval pairwise annotations",
    layout="alpaca_eval_outputs/annotations_FuseChat-Gemma-2-9B-Instruct.json",
    hub=HubSource("tatsu-lab/alpaca_eval", data_files="alpaca_farm_human_crossannotations.json"),
    license="CC BY-NC 4.0 (hub) / Apache-2.0 (AlpacaEval results)")
TEMPLATE = (
    "Which response is better? Read the instruction and the two outputs, then answer "
    "\"Output (a)\" or \"Output (b)\".\n\n"
    "### Instruction:\n{instruction}\n\n"
    "### Output (a):\n{output_a}\n\n"
    "### Output (b):\n{output_b}\n\n"
    "### Which response is better, Output (a) or Output (b)?\n"
)
ANSWER_PREFIX = "Answer:"  # plain template: the context ends here, verdicts start with a space
VERDICTS = ("Output (a)", "Output (b)")


class JudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pairs: str | None = Field(None, description="AlpacaEval annotation file (instruction, output_1, output_2, "
                                                "preference); None: alpaca_eval_outputs/annotations_FuseChat-Gemma-"
                                                "2-9B-Instruct.json in the data directory, else the hub")
    size: int | None = Field(None, ge=1, description="judge a seeded random subsample of N pairs (None: all)")
    seed: int = Field(0, description="subsample seed (same seed, same pairs for every judge)")
    template: Literal["auto", "chat", "plain"] = Field(
        "auto", description="chat: the question through the model's chat template; auto: chat when it has one")


# --- statistics over per-pair verdict records ----------------------------------
def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _agrees(i) -> float:
    return float(i["verdict"] == i["reference"]) if i.get("reference") is not None else float("nan")


def _consistent(i) -> float:
    return float(i["ab"] == i["ba"] != 0)


def _first(i) -> float:
    # Order ab shows output_1 first, order ba shows output_2 first; a single-order tie is half.
    def first(picked: int, shown_first: int) -> float:
        return 0.5 if picked == 0 else float(picked == shown_first)
    return (first(i["ab"], 1) + first(i["ba"], 2)) / 2


def _prefers_longer(i) -> float:
    return float(i["verdict"] == i["longer"]) if i["verdict"] and i["longer"] else float("nan")


@mean_over_items(_agrees)
def agreement_with_reference(items: Sequence[dict]) -> float:
    return _mean([_agrees(i) for i in items if i.get("reference") is not None])


@mean_over_items(_consistent)
def position_consistency(items: Sequence[dict]) -> float:
    return _mean([_consistent(i) for i in items])


@mean_over_items(_first)
def first_position_rate(items: Sequence[dict]) -> float:
    return _mean([_first(i) for i in items])


@mean_over_items(_prefers_longer)
def longer_preference(items: Sequence[dict]) -> float:
    return _mean([_prefers_longer(i) for i in items if i["verdict"] and i["longer"]])


STATISTICS = {
    "agreement_with_reference": (True, "share of pairs"),
    "position_consistency": (True, "share of pairs"),
    "first_position_rate": (None, "share of verdicts"),
    "longer_preference": (None, "share of decided pairs"),
}


# --- data -----------------------------------------------------------------------
def reference_verdict(preference: Any, where: str) -> int | None:
    from ..errors import HeirloomError

    if preference is None or (isinstance(preference, float) and np.isnan(preference)):
        return None
    p = float(preference)
    if not 1.0 <= p <= 2.0:
        raise HeirloomError(f"{where}: preference {preference!r} outside 1..2 (AlpacaEval: 1 + P(output_2 better))")
    return 1 if p < 1.5 else 2 if p > 1.5 else 0


def pair_id(instruction: str, output_1: str, output_2: str) -> str:
    blob = "\x1f".join((instruction, output_1, output_2)).encode("utf-8")
    return "j" + hashlib.sha256(blob).hexdigest()[:12]


def data_requests(config: JudgeConfig) -> list[DataRequest]:
    return [DataRequest("judge", "judge.pairs", config.pairs, ANNOTATIONS, hub_split="train")]


def load_pairs(config: JudgeConfig, data_dir: str | Path | None = None) -> list[dict]:
    from ..errors import HeirloomError
    from ..tables import require_columns
    from .data import read_rows

    where = config.pairs or ANNOTATIONS.title
    df = read_rows(data_requests(config)[0], data_dir)
    require_columns(df, ["instruction", "output_1", "output_2"], where)
    if config.size and config.size < len(df):
        idx = np.sort(np.random.default_rng(config.seed).choice(len(df), size=config.size, replace=False))
        df = df.iloc[idx]
    pairs = []
    for i, row in df.iterrows():
        texts = [row["instruction"], row["output_1"], row["output_2"]]
        if not all(isinstance(t, str) for t in texts):
            raise HeirloomError(f"{where}: row {i}: instruction/output_1/output_2 must be text")
        l1, l2 = len(texts[1].strip()), len(texts[2].strip())
        pairs.append({"pair_id": pair_id(*texts), "row": int(i), "instruction": texts[0], "output_1": texts[1],
                      "output_2": texts[2], "generator_1": row.get("generator_1"),
                      "generator_2": row.get("generator_2"),
                      "reference": reference_verdict(row.get("preference"), f"{where}: row {i}"),
                      "longer": 1 if l1 > l2 else 2 if l2 > l1 else 0})
    return pairs


# --- judging --------------------------------------------------------------------
def _context_and_verdicts(backend, config: JudgeConfig, instruction: str, a: str, b: str) -> tuple[str, tuple]:
    from ..errors import HeirloomError

    question = TEMPLATE.format(instruction=instruction, output_a=a, output_b=b)
    tokenizer = getattr(backend, "tokenizer", None)
    has_chat = backend.chat and tokenizer is not None
    if config.template == "chat" and not has_chat:
        raise HeirloomError(f"judge.template=chat: model {getattr(backend, 'model_id', '?')!r} has no chat template")
    if config.template == "chat" or (config.template == "auto" and has_chat):
        from ..generation.formatting import format_prompt

        return format_prompt(tokenizer, question, chat=True), VERDICTS
    return question + ANSWER_PREFIX, tuple(" " + v for v in VERDICTS)


def judge_pairs(backend, pairs: list[dict], config: JudgeConfig, progress: bool = True) -> list[dict]:
    """Verdict records for `pairs` (both orders, four log-likelihood requests per pair)."""
    from ..errors import HeirloomError

    if not getattr(backend, "supports_loglikelihood", False):
        raise HeirloomError(f"judge suite: backend {getattr(backend, 'name', '?')!r} cannot score log-likelihoods")
    requests = []
    for p in pairs:
        for a, b in ((p["output_1"], p["output_2"]), (p["output_2"], p["output_1"])):
            context, verdicts = _context_and_verdicts(backend, config, p["instruction"], a, b)
            requests += [(context, verdicts[0]), (context, verdicts[1])]
    scores = [r.logprob for r in backend.loglikelihood(requests, progress=progress)]
    records = []
    for n, p in enumerate(pairs):
        la, lb, ma, mb = scores[4 * n: 4 * n + 4]
        ab = 1 if la > lb else 2 if lb > la else 0  # order ab: (a) = output_1
        ba = 2 if ma > mb else 1 if mb > ma else 0  # order ba: (a) = output_2
        records.append({"pair_id": p["pair_id"], "reference": p["reference"], "ab": ab, "ba": ba,
                        "verdict": ab if ab == ba else 0, "longer": p["longer"],
                        "margin_ab": la - lb, "margin_ba": ma - mb})
    return records


def run(backend, config: JudgeConfig, out_dir: str | Path | None = None, progress: bool = True,
        data_dir: str | Path | None = None) -> list[Attribute]:
    import pandas as pd

    from ..provenance import record
    from ..tables import write_json, write_table

    pairs = load_pairs(config, data_dir)
    items = judge_pairs(backend, pairs, config, progress=progress)
    if out_dir is not None:
        path = Path(out_dir) / "generations" / "judge.jsonl"
        meta = [{k: p[k] for k in ("row", "generator_1", "generator_2")} for p in pairs]
        write_table(pd.DataFrame([{**m, **r} for m, r in zip(meta, items)]), path)
        write_json(record(kind="judge verdicts", model=getattr(backend, "model_id", "?"), config=config.model_dump(),
                          template=TEMPLATE, verdicts=VERDICTS), str(path) + ".meta.json")
    n_ref = sum(1 for i in items if i["reference"] is not None)
    attrs = []
    for stat, (better, unit) in STATISTICS.items():
        note = f"{len(items) - n_ref} pair(s) without a reference label" if stat.endswith("reference") and \
            n_ref < len(items) else ""
        attrs.append(Attribute(name=f"judge/{stat}", suite="judge", value=globals()[stat](items),
                               statistic=f"judge/{stat}", items=items, higher_is_better=better,
                               unit=unit, n=n_ref if stat.endswith("reference") else len(items), note=note))
    return attrs


def judge_agreement_matrix(profiles: Sequence[Profile], include_reference: bool = True):
    """Share of shared pairs with the same verdict, for every two judges (and the reference)."""
    import pandas as pd

    verdicts: dict[str, dict[str, int | None]] = {}
    reference: dict[str, int | None] = {}
    for n, prof in enumerate(profiles):
        attr = prof.attributes.get("judge/agreement_with_reference")
        if attr is None:
            continue
        name = prof.model if prof.model not in verdicts else f"{prof.model} ({n})"
        verdicts[name] = {i["pair_id"]: i["verdict"] for i in attr.items}
        for i in attr.items:
            if i.get("reference") is not None:
                reference.setdefault(i["pair_id"], i["reference"])
    if include_reference and reference:
        verdicts["reference"] = reference
    names = list(verdicts)
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for x in names:
        for y in names:
            shared = verdicts[x].keys() & verdicts[y].keys()
            if shared:
                matrix.loc[x, y] = float(np.mean([verdicts[x][k] == verdicts[y][k] for k in shared]))
    return matrix


def _suite():
    from .registry import Part, Suite

    stats = {f"judge/{name}": globals()[name] for name in STATISTICS}
    return Suite("judge", "the model as a pairwise judge of AlpacaEval answers (log-likelihood verdicts)",
                 (Part("judge", JudgeConfig, run, data_requests),), statistics=stats)


SUITE = _suite()
