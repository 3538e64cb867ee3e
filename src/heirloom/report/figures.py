"""Profile-level figures (PNG): percent change per attribute, passive inheritance of the whole
pool's random arm (runs without per-teacher passive arms), judges, k sweep.

Built on `matplotlib.figure.Figure` with the Agg canvas, never pyplot, so making a
report changes no global matplotlib state and needs no display. Attribute names go on
the y axis of horizontal bars (long names stay readable, never overlap). Each function
returns the written path, or None when it has nothing to draw. Text from the run
(arm, metric, teacher names) passes through `plain` so a `$` cannot turn on mathtext.
Left out: selection-level figures (`selection_figures`), the per-teacher passive figure and
single- vs multi-source (`inheritance_figures`), the HTML.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DPI = 130
MAX_ATTRIBUTES = 36  # more rows than this stop being readable; the tables keep all of them
TARGET_SHADE = "#fff3bf"
SPREAD = ("/median", "/std")  # companions of a mean attribute: in the tables, not in the figures


def plain(text, width: int = 0) -> str:
    """Text for a figure: `$` literal (no mathtext), cut to `width` characters when given."""
    text = str(text)
    if width and len(text) > width:
        text = text[: width - 1] + "\u2026"
    return text.replace("$", r"\$")


def arm_colors(arms: list[str]) -> dict[str, str]:
    import matplotlib

    # tab10, then the light tab20 shades (arms 11-20): neighbours in a figure never share a hue pair
    tab10, tab20 = matplotlib.colormaps["tab10"], matplotlib.colormaps["tab20"]
    return {a: matplotlib.colors.to_hex(tab10(i) if i < 10 else tab20((2 * i + 1) % 20))
            for i, a in enumerate(arms)}


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _scale(ax, values: np.ndarray) -> str:
    """Linear axis, or symlog when a few huge changes would flatten all the others."""
    v = np.abs(values[np.isfinite(values)])
    if v.size and v.max() > 250 and v.max() > 20 * max(np.median(v), 1.0):
        ax.set_xscale("symlog", linthresh=10)
        return "percent change (%, symmetric log scale)"
    return "percent change (%)"


def is_breakdown(name: str) -> bool:
    """A per-group attribute (`bias/bbq/Age/accuracy`), as opposed to an overall one (`bias/bbq/all/...`)."""
    parts = name.split("/")
    return len(parts) >= 4 and parts[2] != "all"


def pick_attributes(df: pd.DataFrame, targeted: set[str], limit: int = MAX_ATTRIBUTES) -> tuple[list[str], bool]:
    """Attributes to draw, in table order: all, or the targeted ones, then overall attributes before
    per-group breakdowns (small groups give the noisiest, largest % changes), each by largest change."""
    order = list(dict.fromkeys(df["attribute"]))
    if len(order) <= limit:
        return order, False
    size = df.assign(a=df["pct_change"].abs()).groupby("attribute")["a"].max().fillna(-1)
    keep = set(a for a in order if a in targeted)
    rest = size.drop(list(keep), errors="ignore")
    keep |= set(sorted(rest.index, key=lambda a: (is_breakdown(a), -rest[a]))[:max(limit - len(keep), 0)])
    return [a for a in order if a in keep], True


def _bars(ax, df: pd.DataFrame, attrs: list[str], arms: list[str], colors: dict[str, str],
          targets: dict[str, set[str]]) -> None:
    """Grouped horizontal bars: one group per attribute (top to bottom), one bar per arm."""
    n = len(arms)
    height = 0.8 / max(n, 1)
    y0 = np.arange(len(attrs))[::-1].astype(float)
    shaded = {a for arm in arms for a in targets.get(arm, ())}
    for y, attr in zip(y0, attrs):
        if attr in shaded:
            ax.axhspan(y - 0.45, y + 0.45, color=TARGET_SHADE, zorder=0)
    for i, arm in enumerate(arms):
        sub = df[df["arm"] == arm].set_index("attribute").reindex(attrs)
        ys = y0 + 0.4 - height * (i + 0.5)
        vals = sub["pct_change"].to_numpy(float)
        hatch = ["//" if a in targets.get(arm, ()) else "" for a in attrs]
        bars = ax.barh(ys, np.nan_to_num(vals), height=height * 0.92, color=colors[arm], zorder=2)
        for bar, h, v in zip(bars, hatch, vals):
            bar.set_hatch(h)
            if h:
                bar.set_edgecolor("black")
            if not np.isfinite(v):
                bar.set_visible(False)
        for y, v in zip(ys, vals):
            if not np.isfinite(v):
                ax.text(0, y, " n/a", va="center", ha="left", fontsize=6, color="#666666")
        lo, hi = sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float)
        ok = np.isfinite(vals) & np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            err = np.vstack([np.maximum(vals - lo, 0), np.maximum(hi - vals, 0)])[:, ok]
            ax.errorbar(vals[ok], ys[ok], xerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2, zorder=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y0, [plain(a, 40) for a in attrs], fontsize=8)
    for label, attr in zip(ax.get_yticklabels(), attrs):
        if attr in shaded:
            label.set_fontweight("bold")
    ax.set_ylim(-0.6, len(attrs) - 0.4)
    ax.grid(axis="x", color="#dddddd", zorder=1)
    # the CIs count too: a near-0 reference (bias scores) gives CIs that flatten every bar on a linear axis
    ax.set_xlabel(_scale(ax, df[df["attribute"].isin(attrs)][["pct_change", "ci_low", "ci_high"]]
                         .to_numpy(float).ravel()))


def percent_change_figure(vs_base: pd.DataFrame, vs_random: pd.DataFrame, arms: list[str],
                          colors: dict[str, str], targets: dict[str, set[str]], path: Path,
                          labels: dict[str, str] | None = None) -> tuple[Path, int] | None:
    """Fig. 1: each attribute's % change per arm, vs base (left) and vs the arm's own random arm (right).
    Returns the path and how many attributes were drawn when some were left out (else 0); with many
    arms fewer attributes fit (targeted ones first). `labels`: legend text per arm."""
    from matplotlib.patches import Patch

    vs_base = vs_base[~vs_base["attribute"].str.endswith(SPREAD) & vs_base["arm"].isin(arms)]
    vs_random = vs_random[~vs_random["attribute"].str.endswith(SPREAD) & vs_random["arm"].isin(arms)]
    panels = [(title, df, [a for a in arms if a in set(df["arm"])])
              for title, df in (("vs base model", vs_base), ("vs the arm's own random arm", vs_random)) if len(df)]
    if not panels:
        return None
    every = {a for s in targets.values() for a in s}
    n_arms = max(len(p[2]) for p in panels)
    limit = MAX_ATTRIBUTES if n_arms <= 4 else max(12, MAX_ATTRIBUTES * 4 // n_arms)
    attrs, cut = pick_attributes(pd.concat([p[1] for p in panels], ignore_index=True), every, limit)
    fig = new_figure(5.2 * len(panels) + 1.8, 1.4 + len(attrs) * (0.16 + 0.11 * n_arms))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, df, shown) in zip(axes, panels):
        _bars(ax, df, attrs, shown, colors, targets)
        ax.set_title(f"Change {title}", fontsize=10)
    shown = {a for p in panels for a in p[2]}
    handles = [Patch(color=colors[a], label=plain((labels or {}).get(a, a), 60)) for a in arms if a in shown]
    if every:
        handles.append(Patch(facecolor=TARGET_SHADE, label="targeted attribute (bold)"))
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="the arm's own target"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 2 if labels else 4), fontsize=8,
               title="arm (error bars: bootstrap 95% CI)", title_fontsize=8)
    fig.suptitle("Student attributes after fine-tuning, per selection arm", fontsize=11)
    return save(fig, path), len(attrs) if cut else 0


def passive_figure(random_vs_base: pd.DataFrame, path: Path) -> Path | None:
    """Fig. 2: the random arm (plain distillation) vs base on every attribute, coloured by suite."""
    import matplotlib
    from matplotlib.patches import Patch

    df = random_vs_base[~random_vs_base["attribute"].str.endswith(SPREAD)]
    if df.empty:
        return None
    attrs, _ = pick_attributes(df, set())
    df = df.set_index("attribute").loc[attrs]
    suites = list(dict.fromkeys(df["suite"]))
    cmap = matplotlib.colormaps["Set2"]
    color = {s: cmap(i % 8) for i, s in enumerate(suites)}
    fig = new_figure(7.5, 1.5 + 0.24 * len(attrs))
    ax = fig.subplots()
    y = np.arange(len(attrs))[::-1]
    vals = df["pct_change"].to_numpy(float)
    ax.barh(y, np.nan_to_num(vals), color=[color[s] for s in df["suite"]], zorder=2)
    lo, hi = df["ci_low"].to_numpy(float), df["ci_high"].to_numpy(float)
    ok = np.isfinite(vals) & np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.errorbar(vals[ok], y[ok], xerr=np.vstack([np.maximum(vals - lo, 0), np.maximum(hi - vals, 0)])[:, ok],
                    fmt="none", ecolor="black", elinewidth=0.8, capsize=2, zorder=3)
    for yy, v in zip(y, vals):
        if not np.isfinite(v):
            ax.text(0, yy, " n/a", va="center", fontsize=7, color="#666666")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [plain(a, 48) for a in attrs], fontsize=8)
    ax.set_ylim(-0.6, len(attrs) - 0.4)
    ax.grid(axis="x", color="#dddddd", zorder=1)
    ax.set_xlabel(_scale(ax, vals))
    ax.set_title("Passive inheritance: the random arm's student (whole pool) vs base", fontsize=11)
    ax.legend(handles=[Patch(color=color[s], label=plain(s, 20)) for s in suites], title="suite", fontsize=8,
              loc="best")
    return save(fig, path)


def judge_heatmap(matrix: pd.DataFrame, path: Path) -> Path | None:
    """Fig. 3: share of pairs on which two judges (or a judge and the reference) agree."""
    if matrix is None or matrix.shape[0] < 2:
        return None
    n = matrix.shape[0]
    # names are kept whole up to 40 characters (arms of one family differ at the end: ...-3.1-8B, ...-3.2-1B)
    labels = [plain(x, 40) for x in matrix.index]
    room = 0.065 * max(len(x) for x in labels)  # inches for the longest tick label at 8 pt
    cell = 0.62 if n <= 10 else 0.5
    fig = new_figure(2.0 + room + cell * n, 1.2 + 0.75 * room + cell * n)  # x labels at 45 degrees
    ax = fig.subplots()
    im = ax.imshow(matrix.to_numpy(float), vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for tick in (*ax.get_xticklabels(), *ax.get_yticklabels()):
        if tick.get_text() == "reference":  # the human annotations, not a model
            tick.set_fontweight("bold")
    for i in range(n):
        for j in range(n):
            v = matrix.iat[i, j]
            ax.text(j, i, "n/a" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                    fontsize=8 if n <= 10 else 6.5, color="black" if np.isfinite(v) and v > 0.6 else "white")
    fig.colorbar(im, ax=ax, label="agreement (share of shared pairs)", shrink=0.8)
    ax.set_title("Judge agreement (same verdict, ties included)", fontsize=10)
    return save(fig, path)


def k_sweep_figure(sweep: pd.DataFrame, path: Path) -> Path | None:
    """Fig. 5: gain vs the pool's random arm against candidates per prompt, per objective, pool and metric."""
    if sweep.empty:
        return None
    keys = list(dict.fromkeys(zip(sweep["objective"], sweep["teachers"], sweep["metric"])))
    ncol = min(len(keys), 3)
    nrow = -(-len(keys) // ncol)
    fig = new_figure(max(4.6 * ncol, 6.0), 0.9 + 4.6 * nrow)
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (objective, teachers, metric) in zip(axes, keys):
        d = sweep[(sweep["objective"] == objective) & (sweep["teachers"] == teachers) & (sweep["metric"] == metric)]
        sel = d.drop_duplicates("arm")
        ax.plot(sel["candidates"], sel["sel_pct_vs_random"], "o-", label="selected data (selection level)")
        st = d[np.isfinite(d["pct_vs_random"].to_numpy(float))]
        for attr, a in st.groupby("attribute", sort=False):
            err = np.vstack([a["pct_vs_random"] - a["ci_low"], a["ci_high"] - a["pct_vs_random"]])
            ax.errorbar(a["candidates"], a["pct_vs_random"], yerr=np.nan_to_num(np.maximum(err, 0)), fmt="s--",
                        capsize=3, label=f"student: {plain(attr, 40)} (95% CI)")
        rnd = d[d["is_random"].astype(bool)].drop_duplicates("arm")
        if len(rnd):
            ax.plot(rnd["candidates"], rnd["sel_pct_vs_random"], "D", color="#555555", markersize=7, zorder=4,
                    label=f"random arm {plain(rnd['arm'].iloc[0], 30)} (k=1, 0 by definition)")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(sorted(set(np.round(d["candidates"].to_numpy(float), 2))))
        ax.set_xlabel("candidates per prompt (mean over prompts)")
        ax.set_ylabel(f"% change of {plain(metric, 24)} vs random arm")
        ax.set_title(f"{plain(objective, 40)}\npool: {plain(teachers, 50)}", fontsize=9)
        ax.grid(color="#dddddd")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)  # never over a curve
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    fig.suptitle("Gain over random selection as the candidate pool grows (one pool per panel)", fontsize=11)
    return save(fig, path)
