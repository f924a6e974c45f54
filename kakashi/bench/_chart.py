"""The benchmark as a PNG: one panel per case, one bar per library (``--chart FILE``).

matplotlib is optional (``pip install 'kakashi[chart]'``) and imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KAKASHI_COLOUR = "#d1495b"
PEER_COLOUR = "#8d99ae"
LOST_COLOUR = "#b00020"


def write_chart(results: Sequence[Any], cases: Sequence[str], titles: dict[str, str], path: str, heading: str) -> None:
    """Draw ``results`` (``Result`` objects of one run) to ``path``.

    Bars are median nanoseconds per call (shorter is faster). A run that lost lines, hung
    or failed is marked in red next to its library, so a fast bar that lost lines cannot
    pass for a good one.

    Raises:
        SystemExit: matplotlib is not installed (with the install command).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--chart needs matplotlib: pip install 'kakashi[chart]'") from None

    shown = [case for case in cases if any(r.case == case for r in results)]
    if not shown:
        raise SystemExit("--chart: no results to draw")
    columns = min(3, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, shown, strict=False):
        runs = [r for r in results if r.case == case]
        names = [r.lib for r in runs]
        values = [r.median if r.ns else 0.0 for r in runs]
        colours = [KAKASHI_COLOUR if r.lib == "kakashi" or r.lib.endswith("+kakashi") else PEER_COLOUR for r in runs]
        positions = list(range(len(runs)))[::-1]  # first library at the top
        ax.barh(positions, values, color=colours)
        ax.set_yticks(positions, names, fontsize=8)
        ax.set_title(titles.get(case, case), fontsize=10)
        ax.set_xlabel("ns per call (median)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        top = max(values) if any(values) else 1.0
        ax.set_xlim(0, top * 1.45)
        for y, run, value in zip(positions, runs, values, strict=True):
            if run.failure:
                ax.text(top * 0.02, y, _short(run.failure), va="center", fontsize=7, color=LOST_COLOUR)
                continue
            label = f"{value:,.0f}"
            colour = "black"
            if run.lost:
                label += f"  LOST {run.lost:,} lines"
                colour = LOST_COLOUR
            ax.text(value + top * 0.02, y, label, va="center", fontsize=7, color=colour)
    figure.suptitle(heading, fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _short(failure: str) -> str:
    text = failure.strip().splitlines()[-1] if failure.strip() else "failed"
    return text if len(text) <= 48 else text[:45] + "..."
