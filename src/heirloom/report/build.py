"""`write_report(run_dir)`: the report of a run, from whatever stages it has finished.

Writes into `run_dir/report/` (or `out_dir`):
    index.html           self-contained: inline CSS, figures as base64 PNG
    summary.md           the targeted-changes table in markdown (for papers, READMEs)
    figures/*.png        every figure, also on its own
    targeted.csv, comparison_vs_base.csv, comparison_vs_random.csv   the numbers
    index.html.meta.json provenance: inputs, bootstrap settings, versions, what was missing
A run stopped after selection gets the selection-level part and a list of what is
missing. Generations are never read, so none can reach the report.
Left out: the pieces themselves (`collect`, `analysis`, `figures`, `html`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from ..provenance import record
from ..tables import write_json, write_table
from . import analysis, figures, inheritance_figures, selection_figures
from . import html as h
from .collect import RunData, collect, inputs_of

FIGURES = {  # file name -> caption (the page numbers the figures it shows)
    "selection_means.png": (
        "Selected data (selection level). Mean of every scored metric over the kept candidates (arm colour; "
        "hatched where the metric is the arm's objective), the whole candidate pool (light grey) and a seeded"
        " random pick per prompt (dark grey), from arms/<arm>/summary.json."),
    "teacher_shares.png": (
        "Multi-source selection: the share of kept answers that came from each teacher, per arm drawing from "
        "two or more teachers, against the whole pool's random pick and its own share of candidates."),
    "fig1_percent_change.png": (
        "Targeted and untargeted changes (the paper's Fig. 1). Percent change 100 x (arm - reference) /"
        " |reference| of each profile attribute (means; medians and spreads are in the tables), against the "
        "base student (left) and against the arm's own random arm (right: the random pick from the same "
        "teachers' candidates, named in the legend and in the tables; random arms themselves are read against "
        "base only). Error bars: bootstrap 95% CI over items (paired when both profiles ran the same items). "
        "Shaded, bold rows are attributes some arm targets; a hatched bar is the arm's own target. n/a: "
        "undefined (reference 0 or NaN)."),
    "fig2_passive_inheritance.png": (
        "Passive inheritance (the paper's Fig. 2): for every teacher, the percent change of every profiled "
        "attribute (medians and spreads are in the tables) of the student trained on that teacher's answers as "
        "they are (an arm with objective random restricted to that teacher) against the base student; one panel"
        " per suite, each with its own x scale. Lines: bootstrap 95% CIs. n/a: undefined (reference 0 or NaN)."),
    "fig3_judge_agreement.png": (
        "Judge agreement (the paper's Fig. 3): the share of pairs (judged by both) on which two models (the "
        "base student and every arm's student), or a model and the reference annotations (bold), give the "
        "same verdict (ties count as a verdict)."),
    "fig4_single_vs_multi.png": (
        "Single-source vs multi-source (the paper's Fig. 4): for every objective run both on one teacher's "
        "candidates (dotted bars, blue) and on the whole pool (orange), with the same candidates per teacher, "
        "the percent change against each arm's own random arm (the legend names it): of the kept data "
        "(selection level) and of the student's profile attribute that measures the metric (with bootstrap "
        "95% CI)."),
    "fig5_k_sweep.png": (
        "Number of candidates (the paper's Fig. 5): gain over random selection against the number of "
        "candidates per prompt, one panel per objective and pool (the arms' teachers): selection level (mean "
        "of the kept data, circles) and student level (profile attribute, squares with bootstrap 95% CI), "
        "against the pool's random arm, which is also the k=1 point (grey diamond: one candidate taken at "
        "random, 0 by definition), for objectives run with several candidate counts."),
}


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, n_boot: int = 1000,
                 seed: int = 0) -> Path:
    """Write the report of `run_dir` and return the path of its index.html."""
    data = collect(run_dir)
    out = Path(out_dir) if out_dir is not None else data.run_dir / "report"
    fig_dir = out / "figures"
    for name in FIGURES:  # a figure this run no longer makes must not linger from an older report
        (fig_dir / name).unlink(missing_ok=True)
    vs_base, vs_random = analysis.comparisons(data, n_boot, seed)  # empty where a reference profile is missing
    targeted = analysis.targeted_table(data, vs_base, vs_random)
    sweep = analysis.k_sweep(data, targeted)
    made, captions = _figures(data, vs_base, vs_random, targeted, sweep, fig_dir)

    parts = _head(data) + _body(data, vs_base, vs_random, targeted, made, captions)
    index = out / "index.html"
    out.mkdir(parents=True, exist_ok=True)
    index.write_text(h.page(f"heirloom report: {data.name}", parts), encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(data, targeted), encoding="utf-8")
    for name, df in (("targeted.csv", targeted), ("comparison_vs_base.csv", vs_base),
                     ("comparison_vs_random.csv", vs_random)):
        write_table(df, out / name)
    write_json(record(kind="heirloom report", run_dir=str(data.run_dir), inputs=inputs_of(data), n_boot=n_boot,
                      seed=seed, figures=sorted(made), missing=data.missing), str(index) + ".meta.json")
    return index


FIG2_WHOLE_POOL = (
    "Passive inheritance (the paper's Fig. 2): percent change of every attribute after plain distillation on "
    "unselected synthetic data (the random arm, a random pick from the whole pool) against the base student; "
    "error bars are bootstrap 95% CIs. A run with arms of objective random restricted to one teacher each "
    "shows this per teacher.")


def _figures(data: RunData, vs_base, vs_random, targeted, sweep, fig_dir: Path) -> tuple[dict[str, Path], dict]:
    """The figures that have something to draw ({file name: path}), and {file name: caption text} where a
    figure's caption differs from `FIGURES` (attributes left out, the whole-pool Fig. 2)."""
    colors = figures.arm_colors(data.arms)
    targets = {a: set(targeted[(targeted["arm"] == a) & (targeted["attribute"] != "")]["attribute"])
               for a in data.arms}
    made: dict[str, Any] = {}
    captions: dict[str, str] = {}
    if data.summaries:
        made["selection_means.png"] = selection_figures.selection_means_figure(
            data.summaries, colors, fig_dir / "selection_means.png")
        made["teacher_shares.png"] = selection_figures.teacher_share_figure(data.summaries,
                                                                          fig_dir / "teacher_shares.png")
    passive = _teacher_labels(data, analysis.passive_arms(data))
    per_teacher = inheritance_figures.passive_teachers_figure(vs_base, passive,
                                                              fig_dir / "fig2_passive_inheritance.png")
    if per_teacher is not None:
        made["fig2_passive_inheritance.png"], n = per_teacher
        if n:
            captions["fig2_passive_inheritance.png"] = FIGURES["fig2_passive_inheritance.png"] + (
                f" Only {n} attributes are drawn (overall ones before per-group breakdowns, each by largest "
                "change); the tables have all.")
    else:  # no per-teacher passive arm profiled: the whole pool's random arm, as before
        made["fig2_passive_inheritance.png"] = figures.passive_figure(
            vs_base[vs_base["arm"] == data.random_arm], fig_dir / "fig2_passive_inheritance.png")
        captions["fig2_passive_inheritance.png"] = FIG2_WHOLE_POOL
    # Fig. 1: the passive arms are in Fig. 2 when it is drawn per teacher (14 arms in one panel are unreadable)
    fig1_arms = [a for a in data.arms if a not in passive or per_teacher is None]
    own = {a: analysis.random_arm_of(data, a) for a in fig1_arms if not analysis.is_random(data, a)}
    labels = ({a: f"{a} (vs {own[a]})" if a in own else f"{a} (random arm)" for a in fig1_arms}
              if any(r != data.random_arm for r in own.values()) else None)
    res = figures.percent_change_figure(vs_base, vs_random, fig1_arms, colors, targets,
                                        fig_dir / "fig1_percent_change.png", labels)
    if res is not None:
        made["fig1_percent_change.png"], n = res
        note = (" The passive arms (random, restricted to one teacher) are in the passive-inheritance figure "
                "(the paper's Fig. 2), per teacher." if len(fig1_arms) < len(data.arms) else "")
        if n:
            note += (f" Only {n} attributes are drawn (the targeted ones, then overall ones before per-group "
                     "breakdowns, each by largest change); the tables have all.")
        if note:
            captions["fig1_percent_change.png"] = FIGURES["fig1_percent_change.png"] + note
    judges = [dataclasses.replace(p, model=n) for n, p in data.profiles.items()
              if "judge/agreement_with_reference" in p.attributes]
    if len(judges) >= 1:
        from ..profiling.judge import judge_agreement_matrix

        made["fig3_judge_agreement.png"] = figures.judge_heatmap(judge_agreement_matrix(judges),
                                                                 fig_dir / "fig3_judge_agreement.png")
    made["fig4_single_vs_multi.png"] = inheritance_figures.single_multi_figure(
        analysis.single_multi(data, targeted), fig_dir / "fig4_single_vs_multi.png")
    made["fig5_k_sweep.png"] = figures.k_sweep_figure(sweep, fig_dir / "fig5_k_sweep.png")
    return {k: v for k, v in made.items() if v is not None}, captions


def _teacher_labels(data: RunData, arms: list[str]) -> dict[str, str]:
    """Legend text of each passive arm: its teacher(s), whether they share the student's model family,
    and the arm's name where two arms have the same teachers."""
    out = {}
    for arm in arms:
        teachers = analysis.arm_teachers(data, arm)
        family = (data.summaries.get(arm) or {}).get("teacher_family") or {}
        same = [t for t in teachers if family.get(t) == "same"]
        out[arm] = ", ".join(teachers) + (" (the student's family)" if same else "")
    labels = list(out.values())
    return {a: t if labels.count(t) == 1 else f"{t} [{a}]" for a, t in out.items()}


def _random_label(data: RunData, ref: str) -> str:
    teachers = analysis.arm_teachers(data, ref)
    return (f"a random pick from the candidates of {', '.join(teachers)}" if teachers
            else "a random pick from the whole pool")


def _head(data: RunData) -> list[Any]:
    from importlib import metadata
    import time

    version = metadata.version("heirloom")
    parts: list[Any] = [h.Raw(f'<p class="small">run directory {h.esc(data.run_dir)}; report made '
                              f'{h.esc(time.strftime("%Y-%m-%d %H:%M:%S"))} by heirloom {h.esc(version)}</p>')]
    if data.missing:
        parts.append(h.Raw('<div class="missing"><b>This run is incomplete; the report shows what exists.</b>'
                           + h.bullet_list(data.missing) + "</div>"))
    toc = [("targeted", "Targeted changes"), ("figures", "Figures"), ("selection", "Selection"),
           ("comparisons", "Student profiles"), ("training", "Training"), ("notes", "Notes"),
           ("provenance", "Configuration and provenance")]
    parts.append(h.Raw("<p>" + " | ".join(f'<a href="#{a}">{h.esc(t)}</a>' for a, t in toc) + "</p>"))
    return parts


def _body(data: RunData, vs_base, vs_random, targeted, made: dict[str, Path], captions: dict) -> list[Any]:
    header, rows = h.targeted_rows(targeted)
    parts: list[Any] = [h.section(
        "Targeted changes", "For every arm and every metric of its objective: the selection-level means (kept "
        "answers vs a random pick from the same pool) and the student-level change of the profile attribute that "
        "measures the metric, against the base student and the arm's own random arm (column 'vs random arm': "
        "the random pick from the same teachers' candidates, or from the whole pool for an arm without "
        "teachers). % change = 100 x (value - reference) / |reference|, with a bootstrap 95% CI. Green: the "
        "change went the way the objective asked.",
        h.table(header, rows, left=4, text_cols=[7]) if rows else "No arm with an objective has a selection "
        "summary yet.", anchor="targeted")]
    figs = [h.figure(made[name], n, captions.get(name, caption))
            for n, (name, caption) in enumerate(((k, c) for k, c in FIGURES.items() if k in made), 1)]
    parts.append(h.section("Figures", *figs if figs else ["No figure: nothing to draw yet."], anchor="figures"))
    parts.append(h.section("Selection", *[h.selection_block(a, s) for a, s in data.summaries.items()]
                           or ["No selection summary yet."], anchor="selection"))
    parts.append(h.section(
        "Student profiles", h.Raw("<h3>Against the base student</h3>"),
        h.wide_comparison(vs_base, data.arms, "base") if len(vs_base) else "No comparison: profiles missing.",
        *(h.comparisons_by_reference(vs_random, data.arms, lambda r: _random_label(data, r)) if len(vs_random)
          else [h.Raw("<h3>Against the random arm</h3>"), "No comparison: profiles missing."]),
        "Random arms (the whole pool's and the passive arms restricted to teachers) are read against base only.",
        anchor="comparisons"))
    train_rows = [[a, m.get("student", "?"), m.get("method", "?"), (m.get("data") or {}).get("n_examples", "n/a"),
                   m.get("steps", "n/a"), h.num(m.get("final_loss")), h.num(m.get("mean_loss")),
                   h.num(m.get("seconds"))] for a, m in data.train_meta.items()]
    parts.append(h.section("Training", h.table(["arm", "student", "method", "examples", "steps", "final loss",
                                                "mean loss", "seconds"], train_rows, left=3)
                           if train_rows else "No student trained yet.", anchor="training"))
    notes = analysis.nan_notes(data)
    parts.append(h.section("Notes", "Undefined values (NaN, never shown as 0), prompts without a selection, "
                           "and the caveats recorded with each attribute.",
                           h.table(["where", "note"], notes, left=2) if notes else "Nothing to note.",
                           anchor="notes"))
    parts.append(_provenance(data))
    return parts


def _provenance(data: RunData) -> h.Raw:
    import yaml

    c, meta = data.config, data.run_meta
    teachers = [t.get("model") or f"offline: {', '.join(t.get('outputs') or [])}" for t in c.get("teachers") or []]
    student = (c.get("student") or {}).get("model", "?")
    gen = c.get("generation") or {}
    facts = [["run name", data.name], ["seed", c.get("seed", "?")], ["teachers", "; ".join(teachers) or "?"],
             ["student", student], ["candidates per prompt per teacher (k)", gen.get("k", "?")],
             ["sampling", ", ".join(f"{k}={gen[k]}" for k in ("temperature", "top_p", "max_new_tokens") if k in gen)],
             ["scoring metrics", ", ".join((c.get("scoring") or {}).get("metrics") or [])],
             ["run started", meta.get("created_at", "?")], ["python", meta.get("python", "?")],
             ["platform", meta.get("platform", "?")]]
    facts += [[f"version: {k}", v] for k, v in (meta.get("versions") or {}).items()]
    prof_rows = [[n, p.model, ", ".join(p.config.get("suites") or []), len(p.attributes),
                  p.provenance.get("created_at", "?"), (p.provenance.get("versions") or {}).get("heirloom", "?")]
                 for n, p in data.profiles.items()]
    stages = [[k, v] for k, v in data.stages.items()]
    return h.section(
        "Configuration and provenance", h.table(["", "value"], facts, left=2),
        h.Raw("<h3>Profiles</h3>"), h.table(["profile", "model", "suites", "attributes", "made", "heirloom"],
                                             prof_rows, left=3) if prof_rows else "No profile yet.",
        h.Raw("<h3>Stages</h3>"), h.table(["stage", "status"], stages, left=2),
        h.Raw("<h3>config.yaml</h3><pre>" + h.esc(yaml.safe_dump(c, sort_keys=False, allow_unicode=True))
              + "</pre>"), anchor="provenance")


def _md(x: Any) -> str:
    """A markdown table cell: no pipes or newlines, and no live HTML (markdown renders inline HTML)."""
    import html

    return html.escape(str(x), quote=False).replace("|", "\\|").replace("\n", " ")


def summary_markdown(data: RunData, targeted: pd.DataFrame) -> str:
    """The targeted-changes table in markdown (selection level always, student level when profiled)."""
    header, rows = h.targeted_rows(targeted, markup=False)
    lines = [f"# {_md(data.name)}: targeted changes", ""]
    if rows:
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(_md(v) for v in r) + " |" for r in rows]
    else:
        lines.append("No arm with an objective has a selection summary yet.")
    lines += ["", "% change = 100 x (value - reference) / |reference|; [95% bootstrap CI]; n/a = undefined."]
    if data.missing:
        lines += ["", "Missing from this run:"] + [f"- {_md(m)}" for m in data.missing]
    return "\n".join(lines) + "\n"
