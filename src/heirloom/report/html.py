"""The self-contained HTML page: inline CSS, figures as base64 PNG, every text escaped.

Everything that comes from the run (names, notes, config values) goes through
`html.escape` in `cell`/`esc`; only markup built here is marked `Raw`. The page
holds numbers and names, never model generations. Left out: computing anything
(`analysis`) and drawing (`figures`).
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.t,th.t{text-align:left}
tr:nth-child(even) td{background:#fafafa}
.good{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}.na{color:#888}
.missing{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em 1em}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.82em}.small{font-size:.85em;color:#555}
"""


class Raw(str):
    """Markup built by this module (already safe)."""


def esc(x: Any) -> str:
    return x if isinstance(x, Raw) else html.escape(str(x), quote=True)


def num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, (int, bool)) and not isinstance(x, float):
        return str(x)
    return f"{float(x):.{digits}g}"


def pct(x: Any, low: Any = math.nan, high: Any = math.nan) -> str:
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    text = f"{float(x):+.1f}%"
    if low is not None and high is not None and math.isfinite(float(low)) and math.isfinite(float(high)):
        text += f" [{float(low):+.1f}, {float(high):+.1f}]"
    return text


def judged(text: str, change: float, direction: str) -> Raw:
    """A % change coloured by whether it went the way the objective wanted."""
    cls = ""
    if direction in ("max", "min") and change is not None and math.isfinite(change) and change != 0:
        cls = "good" if (change > 0) == (direction == "max") else "bad"
    return Raw(f'<span class="{cls}">{esc(text)}</span>' if cls else esc(text))


def table(header: list[str], rows: Iterable[list[Any]], left: int = 1, text_cols: Iterable[int] = ()) -> Raw:
    """The first `left` columns and `text_cols` hold text (left aligned); the others numbers."""
    text_cols = set(range(left)) | set(text_cols)

    def cell(tag: str, i: int, value: Any) -> str:
        text = esc(value)
        cls = ' class="t"' if i in text_cols else (' class="na"' if text == "n/a" else "")
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return Raw(f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>")


def figure(path: Path, number: int, caption: str) -> Raw:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return Raw(f'<figure id="fig{number}"><img alt="Figure {number}" src="data:image/png;base64,{data}">'
               f"<figcaption><b>Figure {number}.</b> {esc(caption)}</figcaption></figure>")


def section(title: str, *parts: Any, anchor: str = "") -> Raw:
    anchor = f' id="{esc(anchor)}"' if anchor else ""
    body = "\n".join(p if isinstance(p, Raw) else f"<p>{esc(p)}</p>" for p in parts if p)
    return Raw(f"<h2{anchor}>{esc(title)}</h2>\n{body}")


def bullet_list(items: Iterable[Any], cls: str = "") -> Raw:
    items = list(items)
    if not items:
        return Raw("")
    body = "".join(f"<li>{esc(i)}</li>" for i in items)
    return Raw(f'<ul class="{cls}">{body}</ul>' if cls else f"<ul>{body}</ul>")


def page(title: str, parts: list[Any]) -> str:
    body = "\n".join(p if isinstance(p, Raw) else f"<p>{esc(p)}</p>" for p in parts if p)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n"
            f"{body}\n</body></html>\n")


# --- tables of the report --------------------------------------------------------
def targeted_rows(df: pd.DataFrame, markup: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the targeted-changes table (markup: colour the % changes by direction)."""
    def judged_(text: str, change: float, direction: str):
        return judged(text, change, direction) if markup else text

    header = ["arm", "vs random arm", "objective", "metric", "selected: chosen", "selected: random",
              "selected % vs random", "student attribute", "base", "random", "arm", "% vs base [95% CI]",
              "% vs random [95% CI]"]
    rows = []
    for r in df.itertuples():
        has = bool(r.attribute)
        rnd = r.random_arm if isinstance(r.random_arm, str) and r.random_arm else "n/a"
        rows.append([r.arm, rnd, r.objective, r.metric, num(r.sel_chosen), num(r.sel_random),
                     judged_(pct(r.sel_pct_vs_random), r.sel_pct_vs_random, r.direction),
                     r.attribute or f"n/a ({r.note})",
                     num(r.base) if has else "n/a", num(r.random) if has else "n/a", num(r.value) if has else "n/a",
                     judged_(pct(r.pct_vs_base, r.ci_base_low, r.ci_base_high), r.pct_vs_base, r.direction)
                     if has else "n/a",
                     judged_(pct(r.pct_vs_random, r.ci_random_low, r.ci_random_high), r.pct_vs_random, r.direction)
                     if has else "n/a"])
    return header, rows


def wide_comparison(df: pd.DataFrame, arms: list[str], reference: str) -> Raw:
    """Attributes as rows; per arm its value and % change [CI] against `reference`."""
    if df.empty:
        return Raw("")
    arms = [a for a in arms if a in set(df["arm"])]
    header = ["attribute", "unit", reference]
    for a in arms:
        header += [f"{a}", f"{a}: % [95% CI]"]
    header.append("notes")
    rows = []
    for attr, g in df.groupby("attribute", sort=False):
        by_arm = g.set_index("arm")
        first = g.iloc[0]
        row = [attr, first["unit"], num(first["base"])]
        for a in arms:
            if a in by_arm.index:
                r = by_arm.loc[a]
                row += [num(r["value"]), pct(r["pct_change"], r["ci_low"], r["ci_high"])]
            else:
                row += ["n/a", "n/a"]
        notes = sorted({f"{a}: {n}" for a, n in zip(g["arm"], g["note"]) if n})
        row.append("; ".join(notes))
        rows.append(row)
    return table(header, rows, left=2, text_cols=[len(header) - 1])


def comparisons_by_reference(df: pd.DataFrame, arms: list[str], describe) -> list[Raw]:
    """One wide table per reference profile (each arm is read against its own random arm), so the
    reference column holds that reference's values; `describe(reference)` says what it is."""
    out = []
    for ref in dict.fromkeys(df["reference"]):
        sub = df[df["reference"] == ref]
        shown = [a for a in arms if a in set(sub["arm"])]
        out.append(Raw(f"<h3>Against the random arm {esc(ref)}</h3><p>{esc(describe(ref))}; read against it: "
                       f"{esc(', '.join(shown))}.</p>"))
        out.append(wide_comparison(sub, arms, f"{ref} (random arm)"))
    return out


def selection_block(arm: str, s: dict[str, Any]) -> Raw:
    c = s.get("counts") or {}
    cap = s.get("max_candidates")
    head = (f"objective {s.get('objective', '?')} (kind {s.get('objective_kind', '?')}, seed {s.get('seed', '?')}); "
            f"{c.get('selected', '?')} of {c.get('prompts', '?')} prompts selected from {c.get('candidates', '?')} "
            f"candidates; {c.get('unqualified', 0)} unqualified; k = {s.get('k', '?')}"
            + (f"; first {cap} samples per teacher only" if cap else "")
            + (f"; restricted to {', '.join(s['arm_teachers'])}, read against the random arm "
               f"{s.get('random_arm', '?')}" if s.get("arm_teachers") else ""))
    metric_rows = [[m.get("metric"), m.get("role") or "", num(m.get("chosen")), num(m.get("pool")),
                    num(m.get("random")), pct(m.get("pct_vs_pool")), pct(m.get("pct_vs_random")),
                    f"{m.get('n_chosen', '?')}/{m.get('n_pool', '?')}/{m.get('n_random', '?')}"]
                   for m in s.get("metrics", [])]
    metrics = table(["metric", "role", "chosen", "pool", "random", "% vs pool", "% vs random",
                     "n (chosen/pool/random)"], metric_rows, left=2)
    teacher_rows = [[t.get("teacher"), t.get("chosen"), num(t.get("chosen_share"), 3), t.get("random"),
                     num(t.get("random_share"), 3), t.get("pool"), num(t.get("pool_share"), 3)]
                    for t in s.get("teachers", [])]
    teachers = table(["teacher", "chosen", "chosen share", "random", "random share", "pool", "pool share"],
                     teacher_rows)
    return Raw(f"<h3>{esc(arm)}</h3><p>{esc(head)}</p>{metrics}{teachers}")
