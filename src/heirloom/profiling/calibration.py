"""Calibration profile: zero-shot multiple choice, confidence vs accuracy (ECE).

Each option is scored by its mean token log-likelihood given the question (the negative
mean token NLL), continuation `" " + option`; the softmax over the options' scores is the
model's distribution, its maximum the confidence, its argmax the answer (ties: the first);
a bf16/fp16 backend's questions within `rescore_margin` of a tie are scored again in float32
(`tie_rescoring.py`).
Expected calibration error uses *equal-mass* bins: sort the questions by confidence
(stable), split them into B bins of nearly equal count (`numpy.array_split`: sizes differ
by at most one, larger bins first), and ECE = sum_b |B_b| / N x |accuracy_b - confidence_b|.
Attributes per data set: `calibration/<name>/ece_10`, `.../ece_1` (one bin: |accuracy -
mean confidence|) and `.../accuracy`.

Data: `hellaswag` (Rowan/hellaswag validation, lm-eval's preprocessing), `openbookqa`
(allenai/openbookqa `main` test), each read from `calibration/<name>.jsonl` in the data
directory when there (the hub's rows, or the local format below), else from the hub; or
any local table with `question`, `choices` (a list) and `answer` (an index, a letter A-Z,
or the text of a choice).
`size` draws a seeded random subsample per data set. Left out: few-shot prompts,
acc_norm, classwise or adaptive-width ECE variants.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import HeirloomError
from .data import DataRequest, DataSource, HubSource
from .multiple_choice import as_scorer, option_scores, reject_removed, softmax, stratified_sample
from .profile import Attribute
from .tie_rescoring import rescore_field, rescore_near_ties, top2_margin

Question = tuple[str, list[str], int]  # (context, options, index of the right option)


class CalibrationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(["hellaswag", "openbookqa"], description="built-in hub data sets (hellaswag, "
                                "openbookqa) or local multiple-choice files (question, choices, answer columns)")
    size: int | None = Field(None, ge=1, description="questions per data set, a seeded random subsample (None: all)")
    seed: int = Field(0, description="seed of the subsample")
    rescore_margin: float | None = rescore_field()

    removed_fields = reject_removed("calibration")


# --- ECE ----------------------------------------------------------------------------
def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int) -> float:
    """ECE with `bins` equal-mass bins (see the module docstring); NaN without questions."""
    conf, hit = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if conf.size == 0:
        return float("nan")
    order = np.argsort(conf, kind="stable")
    return float(sum(len(b) / conf.size * abs(hit[b].mean() - conf[b].mean())
                     for b in np.array_split(order, bins) if len(b)))


def ece_10(items: Sequence[dict]) -> float:
    return expected_calibration_error([it["confidence"] for it in items], [it["correct"] for it in items], 10)


def ece_1(items: Sequence[dict]) -> float:
    return expected_calibration_error([it["confidence"] for it in items], [it["correct"] for it in items], 1)


def accuracy(items: Sequence[dict]) -> float:
    return float(np.mean([it["correct"] for it in items])) if len(items) else float("nan")


# --- data ---------------------------------------------------------------------------
def _hellaswag_clean(text: str) -> str:
    # lm-eval's preprocessing: WikiHow "[title]" markers become sentence breaks, other brackets go.
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def hellaswag_question(row: dict[str, Any]) -> Question:
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return (_hellaswag_clean(row["activity_label"] + ": " + ctx), [_hellaswag_clean(e) for e in row["endings"]],
            int(row["label"]))


def openbookqa_question(row: dict[str, Any]) -> Question:
    labels = list(row["choices"]["label"])
    return row["question_stem"], list(row["choices"]["text"]), labels.index(row["answerKey"].strip())


# name -> (hub id, configuration, split, row -> question)
BUILTIN: dict[str, tuple[str, str | None, str, Callable[[dict], Question]]] = {
    "hellaswag": ("Rowan/hellaswag", None, "validation", hellaswag_question),
    "openbookqa": ("allenai/openbookqa", "main", "test", openbookqa_question),
}


def _answer_index(answer: Any, choices: list[str], where: str) -> int:
    if isinstance(answer, (int, np.integer)) or (isinstance(answer, str) and answer.strip().isdigit()):
        idx = int(answer)
    elif isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().isalpha():
        idx = ord(answer.strip().upper()) - ord("A")
    elif isinstance(answer, str) and answer in choices:
        idx = choices.index(answer)
    else:
        raise HeirloomError(f"{where}: answer {answer!r} is not an index, a letter or one of the choices")
    if not 0 <= idx < len(choices):
        raise HeirloomError(f"{where}: answer {answer!r} is out of range for {len(choices)} choices")
    return idx


def source(spec: str) -> DataSource:
    hub_id, subset, split, _ = BUILTIN[spec]
    return DataSource(spec, f"{spec} questions", layout=f"calibration/{spec}.jsonl",
                      hub=HubSource(hub_id, subset, split), license="MIT" if spec == "hellaswag" else "Apache-2.0")


def data_requests(config: CalibrationConfig) -> list[DataRequest]:
    return [DataRequest("calibration", f"calibration.datasets[{i}]", None if spec in BUILTIN else spec,
                        source(spec) if spec in BUILTIN else None) for i, spec in enumerate(config.datasets)]


def read_local(path: Path, convert: Callable[[dict], Question] | None = None) -> list[Question]:
    """Questions of a local file with `question`, `choices` (list) and `answer` columns
    (or, with `convert`, rows as the hub has them)."""
    from ..tables import read_table, require_columns

    df = read_table(path)
    if convert is not None and not {"question", "choices", "answer"} <= set(df.columns):
        return [convert(row) for row in df.to_dict("records")]
    require_columns(df, ("question", "choices", "answer"), str(path))
    out = []
    for i, (q, choices, answer) in enumerate(zip(df["question"], df["choices"], df["answer"])):
        where = f"{path}: row {i}"
        if isinstance(choices, str):  # CSV keeps lists as JSON text
            try:
                choices = json.loads(choices)
            except json.JSONDecodeError:
                raise HeirloomError(f"{where}: choices is not a JSON list") from None
        choices = [str(c) for c in (choices.tolist() if hasattr(choices, "tolist") else choices)]
        if len(choices) < 2 or any(not c.strip() for c in choices):
            raise HeirloomError(f"{where}: needs at least 2 non-empty choices")
        out.append((str(q), choices, _answer_index(answer, choices, where)))
    return out


def load_questions(spec: str, data_dir=None) -> tuple[str, list[Question]]:
    """(attribute name, questions) of a built-in data set (data directory, else hub) or a local file."""
    from .data import load_hub, resolve

    builtin = spec in BUILTIN
    req = DataRequest("calibration", "calibration.datasets", None if builtin else spec,
                      source(spec) if builtin else None)
    res = resolve(req, data_dir)
    if res.kind == "hub" and not builtin:
        raise HeirloomError(f"calibration.datasets: {spec!r} is neither {' nor '.join(BUILTIN)} nor a file")
    if res.kind == "hub":
        return spec, [BUILTIN[spec][3](dict(r)) for r in load_hub(res.hub, f"calibration.datasets ({spec})")]
    if not res.path.is_file():
        raise HeirloomError(f"calibration.datasets: {res.path} is not a file")
    return (spec if builtin else res.path.stem), read_local(res.path, BUILTIN[spec][3] if builtin else None)


def run(backend, config: CalibrationConfig | None = None, data_dir=None, out_dir=None,
        progress: bool = True) -> list[Attribute]:
    """ECE (10 bins, 1 bin) and accuracy per data set (writes no generations)."""
    config = config or CalibrationConfig()
    scorer = as_scorer(backend)
    attrs = []
    for spec in config.datasets:
        name, questions = load_questions(spec, data_dir)
        idx = stratified_sample([0] * len(questions), config.size, config.seed)
        picked = [questions[i] for i in idx]
        asked = [(ctx, [" " + o for o in opts]) for ctx, opts, _ in picked]
        # Near ties decided in bf16/fp16 are scored again in float32 (whole questions; see tie_rescoring).
        fixed = rescore_near_ties(scorer, option_scores(scorer, asked, progress), config.rescore_margin, top2_margin,
                                  lambda ids, f32: option_scores(f32, [asked[i] for i in ids], progress))
        scores = fixed.scores
        items = []
        for i, (_, _, gold), s in zip(idx, picked, scores):
            p = softmax(s)
            answer = int(np.argmax(p))
            items.append({"id": i, "answer": answer, "label": gold, "correct": answer == gold,
                          "confidence": float(p[answer])})
        fixed.mark(items)
        note = f"{len(items)} of {len(questions)} questions, seed {config.seed}" if len(items) < len(questions) else ""
        note = "; ".join(filter(None, (note, fixed.note(items))))
        for stat, better in ((ece_10, False), (ece_1, False), (accuracy, True)):
            value = stat(items)
            text = "; ".join(x for x in ("undefined: no questions" if not items else "", note) if x)
            attrs.append(Attribute(name=f"calibration/{name}/{stat.__name__}", suite="calibration", value=value,
                                   statistic=f"calibration/{stat.__name__}", items=items,
                                   higher_is_better=better, n=len(items), note=text))
    return attrs


def _suite():
    from .registry import Part, Suite

    stats = {f"calibration/{f.__name__}": f for f in (ece_10, ece_1, accuracy)}
    return Suite("calibration", "zero-shot multiple choice: expected calibration error and accuracy",
                 (Part("calibration", CalibrationConfig, run, data_requests),), statistics=stats)


SUITE = _suite()
