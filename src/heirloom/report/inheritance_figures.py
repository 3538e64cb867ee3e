"""The paper's Fig. 2 per teacher and Fig. 4 (PNG): passive inheritance, single- vs multi-source.

- `passive_teachers_figure` (Fig. 2): for every passive arm (objective random restricted to
  teachers: a student trained on one teacher's answers as they are) the % change of every
  profiled attribute against base, as a dot plot with bootstrap 95% CI bars: one panel per
  suite (each with its own x scale, since bias scores near 0 give huge percentages), one
  colour and marker per teacher, attributes on the y axis.
- `single_multi_figure` (Fig. 4): per objective run both single-source (one teacher) and
  multi-source (the whole pool), the gain of each arm over its own random arm: selection
  level (mean of the kept data) and student level (profile attribute, with CI).

Same conventions as `figures` (Figure + Agg, `plain` text). Left out: the fallback Fig. 2 of
runs without passive arms (`figures.passive_figure`), the numbers (`analysis`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figures import SPREAD, _scale, new_figure, pick_attributes, plain, save

MAX_PASSIVE_ATTRIBUTES = 60  # Fig. 2 shows every attribute up to this many (two columns of panels)
MARKERS = "osD^vP*Xh<>p"
SOURCE_COLORS = {"single": ("#1f4e79", "#4a90c2", "#8cc0e6", "#2e7d9a"), "multi": ("#d9711c", "#f2a65a", "#a64d00")}


def _panels(attrs: list[str], suite_of, ncol: int) -> list[list[tuple[str, list[str], bool]]]:
    """Attributes (in table order) into `ncol` columns of about equal length, each column a list of
    panels (suite, its rows, continued from the previous column). A column ends at a suite boundary
    when one is within 4 rows of the even split; a larger suite is split across columns."""
    per = -(-len(attrs) // ncol)
    cuts, start = [], 0
    bounds = [i for i in range(1, len(attrs)) if suite_of[attrs[i]] != suite_of[attrs[i - 1]]]
    for _ in range(ncol - 1):
        goal = start + per
        near = [b for b in bounds if b > start and abs(b - goal) <= 4]
        cut = min(near, key=lambda b: abs(b - goal)) if near else min(goal, len(attrs))
        cuts.append(cut)
        start = cut
    columns, start = [], 0
    for cut in cuts + [len(attrs)]:
        panels: list[tuple[str, list[str], bool]] = []
        for a in attrs[start:cut]:
            if panels and panels[-1][0] == suite_of[a]:
                panels[-1][1].append(a)
            else:
                panels.append((suite_of[a], [a], bool(columns) and columns[-1][-1][0] == suite_of[a]
                               and not panels))
        if panels:
            columns.append(panels)
        start = cut
    return columns


def passive_teachers_figure(vs_base: pd.DataFrame, labels: dict[str, str], path: Path) -> tuple[Path, int] | None:
    """Fig. 2 per teacher. `labels`: passive arm -> legend text (the teacher). Returns the path and the
    number of attributes drawn when some were left out (else 0)."""
    from matplotlib.lines import Line2D

    df = vs_base[~vs_base["attribute"].str.endswith(SPREAD) & vs_base["arm"].isin(labels)]
    if df.empty:
        return None
    arms = [a for a in labels if a in set(df["arm"])]
    attrs, cut = pick_attributes(df, set(), MAX_PASSIVE_ATTRIBUTES)
    suite_of = df.drop_duplicates("attribute").set_index("attribute")["suite"]
    columns = _panels(attrs, suite_of, 2 if len(attrs) > 20 else 1)
    row_h = 0.12 + 0.055 * len(arms)  # inches per attribute: one dodged marker per teacher
    tallest = max(sum(len(p[1]) + 1.1 for p in col) for col in columns)  # + title and x axis per panel
    fig = new_figure(6.8 * len(columns), 1.7 + 0.22 * len(arms) / 2 + row_h * tallest)
    sub = fig.subfigures(1, len(columns), squeeze=False)[0] if len(columns) > 1 else [fig]
    colors = {a: f"C{i % 10}" for i, a in enumerate(arms)}
    for sf, panels in zip(sub, columns):
        axes = np.atleast_1d(sf.subplots(len(panels), 1, squeeze=False, gridspec_kw={
            "height_ratios": [len(p[1]) + 0.6 for p in panels]}).ravel())
        for ax, (suite, rows, continued) in zip(axes, panels):
            y0 = np.arange(len(rows))[::-1].astype(float)
            step = 0.8 / max(len(arms), 1)
            for i, arm in enumerate(arms):
                d = df[df["arm"] == arm].set_index("attribute").reindex(rows)
                ys = y0 + 0.4 - step * (i + 0.5)
                v, lo, hi = (d[c].to_numpy(float) for c in ("pct_change", "ci_low", "ci_high"))
                ok = np.isfinite(v)
                ci = ok & np.isfinite(lo) & np.isfinite(hi)
                ax.errorbar(v[ci], ys[ci], xerr=np.vstack([np.maximum(v - lo, 0), np.maximum(hi - v, 0)])[:, ci],
                            fmt="none", ecolor=colors[arm], elinewidth=1.0, alpha=0.8, zorder=2)
                ax.plot(v[ok], ys[ok], MARKERS[i % len(MARKERS)], color=colors[arm], markersize=4.5, zorder=3,
                        markeredgecolor="black", markeredgewidth=0.3, linestyle="none")
                for y in ys[~ok]:
                    ax.text(0, y, " n/a", va="center", fontsize=5.5, color="#666666")
            for y in y0[1::2]:  # banding keeps a row's markers together
                ax.axhspan(y - 0.5, y + 0.5, color="#f4f4f4", zorder=0)
            ax.axvline(0, color="black", linewidth=0.8)
            prefix = f"{suite}/"
            ax.set_yticks(y0, [plain(a[len(prefix):] if a.startswith(prefix) else a, 52) for a in rows], fontsize=8)
            ax.set_ylim(-0.5, len(rows) - 0.5)
            ax.grid(axis="x", color="#dddddd", zorder=1)
            shown = df[df["attribute"].isin(rows)]  # CIs too: near-0 references (bias) give huge ones
            label = _scale(ax, shown[["pct_change", "ci_low", "ci_high"]].to_numpy(float).ravel())
            ax.set_xlabel(label.replace("percent change (%", "% change vs base (%"), fontsize=8)
            ax.set_title(f"suite: {plain(suite, 30)}" + (" (continued)" if continued else ""), fontsize=9,
                         loc="left")
    handles = [Line2D([], [], marker=MARKERS[i % len(MARKERS)], color=colors[a], linestyle="-", markersize=5,
                      markeredgecolor="black", markeredgewidth=0.3, label=plain(labels[a], 60))
               for i, a in enumerate(arms)]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8,
               title="student trained on the answers of (line: bootstrap 95% CI)", title_fontsize=8)
    fig.suptitle("Passive inheritance: each teacher's student vs the base student", fontsize=11)
    return save(fig, path), len(attrs) if cut else 0


def single_multi_figure(pairs: pd.DataFrame, path: Path) -> Path | None:
    """Fig. 4: per objective, single-source arm(s) next to the multi-source arm, each vs its own random arm."""
    from matplotlib.patches import Patch

    if pairs.empty:
        return None
    keys = list(dict.fromkeys(zip(pairs["objective"], pairs["max_candidates"].astype(object).where(
        pairs["max_candidates"].notna(), None), pairs["metric"])))
    ncol = min(len(keys), 3)
    nrow = -(-len(keys) // ncol)
    fig = new_figure(max(4.8 * ncol, 6.5), 1.0 + 4.6 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (objective, cap, metric) in zip(axes, keys):
        d = pairs[(pairs["objective"] == objective) & (pairs["metric"] == metric)
                  & (pairs["max_candidates"].isna() if cap is None else pairs["max_candidates"] == cap)]
        arms = list(dict.fromkeys(d["arm"]))
        attrs = [a for a in dict.fromkeys(d["attribute"]) if a]
        cats = ["selected data"] + [f"student:\n{plain(a, 30)}" for a in attrs]
        width = 0.8 / len(arms)
        used = {"single": 0, "multi": 0}
        handles = []
        for i, arm in enumerate(arms):
            a = d[d["arm"] == arm]
            first = a.iloc[0]
            palette = SOURCE_COLORS[first["source"]]
            color = palette[used[first["source"]] % len(palette)]
            used[first["source"]] += 1
            st = a.drop_duplicates("attribute").set_index("attribute").reindex(attrs)  # absent: n/a
            v, lo, hi = (np.concatenate([[first["sel_pct_vs_random"] if c == "pct_vs_random" else np.nan],
                                         st[c].to_numpy(float)]).astype(float)
                         for c in ("pct_vs_random", "ci_low", "ci_high"))
            x = np.arange(len(cats)) - 0.4 + width * (i + 0.5)
            bars = ax.bar(x, np.nan_to_num(v), width=width * 0.92, color=color, zorder=2,
                          hatch="" if first["source"] == "multi" else "..", edgecolor="white")
            # the value on each bar: a gain of exactly 0 (one candidate per prompt) is no missing bar
            # (mid-bar, clear of the CI bar at its end)
            for t in ax.bar_label(bars, [f"{y:+.1f}%" if np.isfinite(y) else "" for y in v], fontsize=6,
                                  label_type="center"):
                t.set_bbox({"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 0.8})
                t.set_zorder(5)
            ci = np.isfinite(v) & np.isfinite(lo) & np.isfinite(hi)
            if ci.any():
                ax.errorbar(x[ci], v[ci], yerr=np.vstack([np.maximum(v - lo, 0), np.maximum(hi - v, 0)])[:, ci],
                            fmt="none", ecolor="black", elinewidth=0.8, capsize=3, zorder=3)
            for xx in x[~np.isfinite(v)]:
                ax.text(xx, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="#666666")
            kind = (f"single-source ({first['teachers']})" if first["source"] == "single"
                    else "multi-source (all teachers)")
            handles.append(Patch(facecolor=color, hatch="" if first["source"] == "multi" else "..", edgecolor="white",
                                 label=plain(f"{arm}: {kind}, vs {first['random_arm']}", 80)))
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(cats)), cats, fontsize=8)
        ax.set_ylabel(f"% change of {plain(metric, 24)} vs the arm's random arm", fontsize=8)
        goal = {"max": "higher is the goal", "min": "lower is the goal"}.get(str(d["direction"].iloc[0]), "")
        cap_text = f", first {int(cap)} samples per teacher" if cap is not None else ""
        ax.set_title(f"{plain(objective, 40)}{cap_text}" + (f"\n({goal})" if goal else ""), fontsize=9)
        ax.grid(axis="y", color="#dddddd", zorder=1)
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1,
                  frameon=False)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    fig.suptitle("Single-source vs multi-source selection, each against its own random arm "
                 "(error bars: bootstrap 95% CI)", fontsize=10)
    return save(fig, path)
