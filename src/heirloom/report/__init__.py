"""The run report: a self-contained HTML page, PNG figures and a markdown summary.

    from heirloom.report import write_report
    path = write_report("runs/demo")          # runs/demo/report/index.html

Modules: `collect` (read a run directory, list what is missing), `analysis`
(comparisons, targeted-changes table, k sweep, NaN notes), `figures`,
`inheritance_figures` and `selection_figures` (matplotlib, PNG), `html` (escaping, tables, the page),
`build` (`write_report`). Matplotlib is imported only when a figure is drawn.
"""

from .build import write_report

__all__ = ["write_report"]
