"""Selection-level figures (PNG), from the arms' `summary.json` alone.

- `selection_means_figure`: per metric, the mean of the chosen candidates, of the
  whole pool and of the random pick, for every arm (one panel per metric, since
  metrics have different units; an arm's own objective metric is hatched).
- `teacher_share_figure`: which teacher's candidate was kept, as shares, per arm
  drawing from two or more teachers, against the whole pool's and its random pick's
  shares (multi-source runs only).

These exist for every run that got through selection, so a partial run still has
figures. Left out: profile-level figures (`figures`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .figures import new_figure, plain, save

KINDS = (("chosen", "chosen", None), ("pool", "pool mean", "#bbbbbb"), ("random", "random pick", "#555555"))


def _metric_rows(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict]]:
    """metric -> arm -> its summary row."""
    out: dict[str, dict[str, dict]] = {}
    for arm, s in summaries.items():
        for row in s.get("metrics", []):
            out.setdefault(row["metric"], {})[arm] = row
    return out


def selection_means_figure(summaries: dict[str, dict[str, Any]], colors: dict[str, str], path: Path) -> Path | None:
    from matplotlib.patches import Patch

    rows = _metric_rows(summaries)
    if not rows:
        return None
    metrics = list(rows)
    arms = list(summaries)
    many = len(arms) > 8  # wider panels and whole arm names (passive.X-3.1-8B vs passive.X-3.2-1B)
    ncol = min(2 if many else 3, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig = new_figure(6.4 * ncol if many else min(4.0 * ncol, 13), 0.8 + (4.3 if many else 3.0) * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    x = np.arange(len(arms))
    w = 0.27
    for ax, metric in zip(axes, metrics):
        for k, (key, _, color) in enumerate(KINDS):
            vals = np.array([(rows[metric].get(a) or {}).get(key) for a in arms], dtype=float)
            bars = ax.bar(x + (k - 1) * w, np.nan_to_num(vals), width=w * 0.95,
                          color=[color or colors[a] for a in arms], zorder=2)
            for bar, a, v in zip(bars, arms, vals):
                if not np.isfinite(v):
                    bar.set_visible(False)
                    ax.text(bar.get_x() + w / 2, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
                elif key == "chosen" and metric in (summaries[a].get("objective_metrics") or []):
                    bar.set_hatch("//")
                    bar.set_edgecolor("black")
        ax.set_xticks(x, [plain(a, 32 if many else 16) for a in arms], rotation=(45 if many else 30)
                      if len(arms) > 3 else 0, ha="right" if len(arms) > 3 else "center", rotation_mode="anchor",
                      fontsize=7 if many else 8)
        ax.set_title(plain(metric, 40), fontsize=10)
        ax.set_ylabel(f"mean {plain(metric, 24)}", fontsize=8)
        ax.grid(axis="y", color="#dddddd", zorder=1)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles = [Patch(facecolor="white", edgecolor="black", label="chosen (arm colour)")]
    handles += [Patch(color=c, label=label) for _, label, c in KINDS[1:]]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="chosen, the arm's objective"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle("Selected data: chosen vs pool vs random pick, per metric and arm", fontsize=11)
    return save(fig, path)


def teacher_share_figure(summaries: dict[str, dict[str, Any]], path: Path) -> Path | None:
    import matplotlib
    from matplotlib.patches import Patch

    teachers = list(dict.fromkeys(t["teacher"] for s in summaries.values() for t in s.get("teachers", [])))
    if len(teachers) < 2:
        return None
    # reference rows from an arm over the whole pool (pool and random pick are shared when no arm caps
    # candidates); arms restricted to one teacher have nothing to share out and are left out
    whole = [s for s in summaries.values() if not s.get("arm_teachers")] or list(summaries.values())
    first = max(whole, key=lambda s: len(s.get("teachers", [])))
    rows = [(f"{arm} (chosen)", {t["teacher"]: t.get("chosen_share") for t in s.get("teachers", [])})
            for arm, s in summaries.items()
            if s.get("objective_kind") != "random" and len(s.get("teachers", [])) > 1]
    rows += [("random pick", {t["teacher"]: t.get("random_share") for t in first.get("teachers", [])}),
             ("whole pool", {t["teacher"]: t.get("pool_share") for t in first.get("teachers", [])})]
    cmap = matplotlib.colormaps["tab20"]
    fig = new_figure(8.0, 1.6 + 0.38 * len(rows) + 0.18 * len(teachers))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    for i, t in enumerate(teachers):
        share = np.array([r.get(t) if r.get(t) is not None else np.nan for _, r in rows], dtype=float)
        share = np.nan_to_num(share)
        ax.barh(y, share, left=left, color=cmap(i % 20), edgecolor="white", zorder=2)
        for yy, lft, s in zip(y, left, share):
            if s >= 0.06:
                ax.text(lft + s / 2, yy, f"{s:.0%}", ha="center", va="center", fontsize=7)
        left += share
    ax.set_yticks(y, [plain(r[0], 32) for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of kept answers from each teacher (whole pool: share of candidates)")
    ax.set_title("Teacher wins per arm (multi-source)", fontsize=11)
    fig.legend(handles=[Patch(color=cmap(i % 20), label=plain(t, 40)) for i, t in enumerate(teachers)],
               loc="outside lower center", ncol=min(3, len(teachers)), fontsize=8, title="teacher")
    return save(fig, path)
