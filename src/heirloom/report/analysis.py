"""The report's numbers: comparisons, the targeted-changes table, the k sweep, NaN notes.

- `comparisons`: every arm's profile against the base profile and every non-random arm
  against its own random arm (`random_arm_of`: the random pick from the same teachers'
  candidates) (`heirloom.profiling.compare.compare`: percent change 100 x (arm - base)
  / |base| with a bootstrap 95% CI), one long table each with `arm` and `reference` columns.
  Random arms (the whole pool's, and passive arms restricted to teachers) are read
  against base only: against a random arm they would be compared with themselves.
- `targeted_table`: for every arm and every metric of its objective, the selection-level
  means (chosen vs random pick, from `summary.json`) and, when profiles exist, the
  student-level values of the profile attributes that measure that metric
  (`targeted_attributes`): base, random arm, arm, % vs base, % vs random.
- `passive_arms`: random arms restricted to teachers (plain distillation, Fig. 2).
- `single_multi`: single- vs multi-source arms with the same objective (Fig. 4).
- `k_sweep`: arms with the same objective and pool, and different candidate counts (Fig. 5).
- `nan_notes`: where a number is undefined, and why.

Percent changes are NaN (never 0) when the reference is 0 or undefined. Left out:
rendering (`figures`, `html`) and reading the run (`collect`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..errors import HeirloomError
from .collect import BASE, RunData

# what the profile calls a selection metric: textual/<metric>, and the RTP statistics for toxicity
TOXICITY_ATTRIBUTES = ("toxicity/expected_max_toxicity", "toxicity/toxicity_probability")
COMPARE_COLUMNS = ["arm", "reference", "attribute", "suite", "base", "value", "abs_change", "pct_change", "ci_low",
                   "ci_high", "paired", "n_base", "n_other", "higher_is_better", "unit", "note"]


def pct(reference: float, value: float) -> float:
    """100 x (value - reference) / |reference|; NaN when the reference is 0 or either is undefined."""
    if reference is None or value is None or not (np.isfinite(reference) and np.isfinite(value)) or reference == 0:
        return math.nan
    return 100.0 * (value - reference) / abs(reference)


def num(x: Any) -> float:
    """JSON null (how summary.json stores NaN) back to NaN."""
    return math.nan if x is None else float(x)


def targeted_attributes(metric: str, names) -> list[str]:
    """Profile attributes that measure what the selection metric `metric` measures."""
    names = set(names)
    out = [f"textual/{metric}"] if f"textual/{metric}" in names else []
    if metric.startswith("toxicity"):
        out += [n for n in TOXICITY_ATTRIBUTES if n in names]
    return out


_SHORT = {"maximize": "max", "minimize": "min", "target": "target"}


def direction(summary: dict[str, Any], metric: str) -> str:
    """max / min / target for `metric` under the arm's objective (its `directions`, as summary.json
    records them; summaries written before that field are read back through the objective's spec)."""
    directions = summary.get("objective_directions")
    if directions is None:
        from ..selection import parse_objective

        spec = str(summary.get("objective", "")).split(" [")[0]  # the constraints are no direction
        try:
            directions = parse_objective(spec).directions
        except HeirloomError:
            directions = {}
    return _SHORT.get(directions.get(metric, ""), "")


def comparisons(data: RunData, n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every arm vs base, every non-random arm vs its own random arm), empty where profiles are missing."""
    from ..profiling.compare import compare

    def against(ref_of, skip: set) -> pd.DataFrame:
        parts = []
        for a in data.arms:
            name = ref_of(a)
            ref = data.profiles.get(name) if name else None
            if ref is not None and a in data.profiles and a not in skip and a != name:
                parts.append(compare(ref, [data.profiles[a]], n_boot=n_boot, seed=seed).assign(arm=a, reference=name))
        parts = [p for p in parts if len(p)]
        return pd.concat(parts, ignore_index=True)[COMPARE_COLUMNS] if parts else pd.DataFrame(
            columns=COMPARE_COLUMNS)

    randoms = {a for a in data.arms if is_random(data, a)} | {data.random_arm}
    return against(lambda a: BASE, set()), against(lambda a: random_arm_of(data, a), randoms)


def _config_arm(data: RunData, arm: str) -> dict[str, Any]:
    return next((a for a in data.config.get("arms") or [] if isinstance(a, dict) and a.get("name") == arm), {})


def is_random(data: RunData, arm: str) -> bool:
    """Whether `arm` picks at random (its summary's objective kind, else its config entry)."""
    s = data.summaries.get(arm)
    if s is not None:
        return s.get("objective_kind") == "random"
    o = _config_arm(data, arm).get("objective")
    return arm == data.random_arm or o == "random" or (isinstance(o, dict) and o.get("kind") == "random")


def arm_teachers(data: RunData, arm: str) -> list[str]:
    """The teachers `arm` was restricted to (summary.json `arm_teachers`, else the config); [] = whole pool."""
    s = data.summaries.get(arm) or {}
    return list(s.get("arm_teachers") or _config_arm(data, arm).get("teachers") or [])


def random_arm_of(data: RunData, arm: str) -> str | None:
    """The random arm `arm` is read against: its own (an arm restricted to some teachers records the
    random arm drawn from the same teachers, `random_arm` in summary.json; the config's random arm
    with the same teachers when the summary predates that field), else the run's."""
    own = (data.summaries.get(arm) or {}).get("random_arm")
    teachers = set(arm_teachers(data, arm))
    if own is None and teachers:
        own = next((a for a in data.arms if is_random(data, a) and set(arm_teachers(data, a)) == teachers), None)
    return own or data.random_arm


def passive_arms(data: RunData) -> list[str]:
    """Random arms restricted to teachers: a student trained on those teachers' answers as they are."""
    return [a for a in data.arms if is_random(data, a) and arm_teachers(data, a)]


def pool_label(teachers: list[str]) -> str:
    return ", ".join(teachers) if teachers else "whole pool"


def _lookup(df: pd.DataFrame, arm: str, attribute: str) -> dict[str, Any]:
    hit = df[(df["arm"] == arm) & (df["attribute"] == attribute)]
    return hit.iloc[0].to_dict() if len(hit) else {}


def targeted_table(data: RunData, vs_base: pd.DataFrame, vs_random: pd.DataFrame) -> pd.DataFrame:
    """One row per (arm, objective metric, profile attribute measuring it)."""
    rows = []
    base = data.profiles.get(BASE)
    for arm in data.arms:
        s = data.summaries.get(arm)
        if s is None or s.get("objective_kind") == "random":
            continue
        rnd_name = random_arm_of(data, arm)
        rnd = data.profiles.get(rnd_name or "")
        metrics = {m["metric"]: m for m in s.get("metrics", [])}
        for metric in s.get("objective_metrics") or []:
            sel = metrics.get(metric, {})
            row = {"arm": arm, "random_arm": rnd_name or "", "objective": s.get("objective", ""), "metric": metric,
                   "direction": direction(s, metric),
                   "sel_chosen": num(sel.get("chosen")), "sel_random": num(sel.get("random")),
                   "sel_pct_vs_random": num(sel.get("pct_vs_random"))}
            prof, ref = data.profiles.get(arm), base or rnd
            attrs = targeted_attributes(metric, ref.attributes) if ref is not None and prof is not None else []
            if not attrs:
                why = ("no profile of the arm" if prof is None else "no profile of base or the random arm"
                       if ref is None else f"no profile attribute measures {metric}")
                rows.append({**row, "attribute": "", "note": why})
            for attr in attrs:
                b, r = _lookup(vs_base, arm, attr), _lookup(vs_random, arm, attr)
                a = prof.attributes.get(attr)
                ba = base.attributes.get(attr) if base is not None else None
                ra = rnd.attributes.get(attr) if rnd is not None else None
                rows.append({**row, "attribute": attr, "unit": ref.attributes[attr].unit,
                             "base": ba.value if ba else math.nan, "random": ra.value if ra else math.nan,
                             "value": a.value if a else math.nan,
                             "pct_vs_base": b.get("pct_change", math.nan),
                             "ci_base_low": b.get("ci_low", math.nan), "ci_base_high": b.get("ci_high", math.nan),
                             "pct_vs_random": r.get("pct_change", math.nan),
                             "ci_random_low": r.get("ci_low", math.nan), "ci_random_high": r.get("ci_high", math.nan),
                             "note": "; ".join(x for x in (b.get("note"), r.get("note")) if x)})
    cols = ["arm", "random_arm", "objective", "metric", "direction", "sel_chosen", "sel_random", "sel_pct_vs_random",
            "attribute", "unit", "base", "random", "value", "pct_vs_base", "ci_base_low", "ci_base_high",
            "pct_vs_random", "ci_random_low", "ci_random_high", "note"]
    return pd.DataFrame(rows, columns=cols)


def candidates_per_prompt(summary: dict[str, Any]) -> float:
    c = summary.get("counts") or {}
    return c["candidates"] / c["prompts"] if c.get("prompts") else math.nan


def _student_cols(t) -> dict[str, Any]:
    return {"metric": t["metric"], "direction": t["direction"], "sel_pct_vs_random": t["sel_pct_vs_random"],
            "attribute": t["attribute"], "pct_vs_random": t.get("pct_vs_random", math.nan),
            "ci_low": t.get("ci_random_low", math.nan), "ci_high": t.get("ci_random_high", math.nan)}


def single_multi(data: RunData, targeted: pd.DataFrame) -> pd.DataFrame:
    """Fig. 4: objectives run both on one teacher's candidates (single-source) and on the whole pool
    (multi-source, no `teachers`), with the same `max_candidates`: each arm's gain over its own random arm."""
    groups: dict[tuple[str, Any], dict[str, list[str]]] = {}
    for arm in data.arms:
        s = data.summaries.get(arm)
        teachers = arm_teachers(data, arm)
        if s is None or is_random(data, arm) or len(teachers) > 1:  # several teachers: neither kind
            continue
        g = groups.setdefault((s.get("objective", ""), s.get("max_candidates")), {"single": [], "multi": []})
        g["single" if teachers else "multi"].append(arm)
    rows = []
    for (objective, cap), g in groups.items():
        if not (g["single"] and g["multi"]):
            continue
        for source in ("single", "multi"):
            for arm in g[source]:
                for _, t in targeted[targeted["arm"] == arm].iterrows():
                    rows.append({"objective": objective, "max_candidates": cap, "source": source, "arm": arm,
                                 "teachers": pool_label(arm_teachers(data, arm)), "random_arm": t["random_arm"],
                                 **_student_cols(t)})
    cols = ["objective", "max_candidates", "source", "arm", "teachers", "random_arm", "metric", "direction",
            "sel_pct_vs_random", "attribute", "pct_vs_random", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=cols)


def k_sweep(data: RunData, targeted: pd.DataFrame) -> pd.DataFrame:
    """Gain vs random against candidates per prompt, for an objective run on one pool (the same teachers)
    with several candidate counts. The pool's random arm is the k=1 point: one candidate per prompt,
    taken at random, is what any objective picks from one candidate; its gain over itself is 0."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for arm in data.arms:
        s = data.summaries.get(arm)
        if s is not None and not is_random(data, arm):
            groups.setdefault((s.get("objective", ""), tuple(sorted(arm_teachers(data, arm)))), []).append(arm)
    rows = []
    for (objective, teachers), arms in groups.items():
        if len({candidates_per_prompt(data.summaries[a]) for a in arms}) < 2:
            continue
        group = {"objective": objective, "teachers": pool_label(list(teachers))}
        part = targeted[targeted["arm"].isin(arms)]
        for arm in arms:
            s = data.summaries[arm]
            for _, t in part[part["arm"] == arm].iterrows():
                rows.append({**group, "arm": arm, "random_arm": t["random_arm"], "is_random": False,
                             "max_candidates": s.get("max_candidates"), "candidates": candidates_per_prompt(s),
                             **_student_cols(t)})
        rnd = random_arm_of(data, arms[0])
        if rnd in data.summaries:
            profiled = rnd in data.profiles
            for _, t in part.drop_duplicates(["metric", "attribute"]).iterrows():
                zero = 0.0 if profiled and t["attribute"] else math.nan  # the random student against itself
                rows.append({**group, "arm": rnd, "random_arm": rnd, "is_random": True, "max_candidates": None,
                             "candidates": 1.0, "metric": t["metric"], "direction": t["direction"],
                             "sel_pct_vs_random": 0.0, "attribute": t["attribute"], "pct_vs_random": zero,
                             "ci_low": zero, "ci_high": zero})
    cols = ["objective", "teachers", "arm", "random_arm", "is_random", "max_candidates", "candidates", "metric",
            "direction", "sel_pct_vs_random", "attribute", "pct_vs_random", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=cols).sort_values(["objective", "teachers", "metric", "candidates"],
                                                        ignore_index=True)


def nan_notes(data: RunData) -> list[tuple[str, str]]:
    """(where, why) for every undefined number and every prompt left without a selection."""
    notes = []
    for arm, s in data.summaries.items():
        c = s.get("counts") or {}
        if c.get("unqualified"):
            ids = [str(u.get("prompt_id", "?")) for u in s.get("unqualified") or []]
            reasons = sorted({str(u.get("reason", "")) for u in s.get("unqualified") or []} - {""})
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            notes.append((f"selection {arm}", f"{c['unqualified']} of {c.get('prompts', '?')} prompts unqualified "
                          f"(no eligible candidate; {'; '.join(reasons) or 'no reason recorded'}): {shown}"))
        for m in s.get("metrics", []):
            if c.get("selected") and m.get("n_chosen") is not None and m["n_chosen"] < c["selected"]:
                notes.append((f"selection {arm}", f"{m['metric']}: {c['selected'] - m['n_chosen']} of "
                              f"{c['selected']} chosen candidates have no value (NaN, left out of the mean)"))
    for name, prof in data.profiles.items():
        for attr in prof.attributes.values():
            if attr.note or not np.isfinite(attr.value):
                value = "undefined (NaN)" if not np.isfinite(attr.value) else ""
                notes.append((f"profile {name}", f"{attr.name}: " + "; ".join(x for x in (value, attr.note) if x)))
    return notes
