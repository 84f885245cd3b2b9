"""What the report's figures share: series styles, the legend above, the DRW mark, the figure as inline SVG.

The SVG keeps matplotlib's drawing (text as glyph paths, so it looks the same
in every browser) without the parts that do not belong inside an HTML page:
the XML prolog and DOCTYPE, the metadata block and the namespace declarations
(an HTML parser puts `<svg>` in its namespace by itself). Element ids get the
figure's name as a prefix, so two figures on one page never share an id
(matplotlib names every figure's groups `figure_1`, `axes_1`, ...). The ids
matplotlib hashes stay salted at random: with a fixed salt, two identical
colour bars in one figure would share one.
"""

from __future__ import annotations

import io
import re
from typing import Sequence

from tailsam.config import Config

# One colour per entry, the same in every figure; an entry's seeds share it and differ by line style.
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")

_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_NAMESPACES = re.compile(r'\s+xmlns(?::xlink)?="[^"]*"')
_IDS = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


def plain(text: str) -> str:
    """`text` as matplotlib should show it, verbatim: `$` escaped (not maths), a leading `_` kept (matplotlib
    hides legend labels that start with one). Run and recipe names reach figures through it."""
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def mark_drw(axes: Sequence, configs: Sequence[Config]) -> tuple[list, list[str]]:
    """A dashed line on each of `axes` between the last epoch without DRW's class weights and the first with
    them, for each distinct switch among `configs`; returns the legend's handles and labels for them."""
    from matplotlib.lines import Line2D

    style = {"color": "0.45", "linewidth": 1, "linestyle": "--"}
    switches = sorted({c.loss.drw_start for c in configs
                       if c.loss.weighting == "drw" and c.loss.drw_start < c.train.epochs})
    for ax in axes:
        for epoch in switches:
            ax.axvline(epoch + 0.5, **style)
    return [Line2D([], [], **style) for _ in switches], [f"DRW from epoch {epoch + 1}" for epoch in switches]


def legend_above(figure, handles: list, labels: list) -> None:
    """The figure's legend in rows above its axes, where it covers no data, as many columns as fit its width."""
    if not labels:
        return
    # An item is about 0.075 inch per character of its label at font size 10, plus its line sample and gaps.
    item = 0.075 * max(map(len, labels), default=0) + 0.8
    fit = max(1, min(len(labels), int(figure.get_figwidth() * 0.95 // item)))
    rows = -(-len(labels) // fit)
    columns = -(-len(labels) // rows)   # as few columns as the rows need: 4 items in 2 x 2, not 3 + 1
    figure.legend(handles, labels, loc="outside upper center", ncols=columns, frameon=False)


def svg(figure, name: str) -> str:
    """`figure` as one `<svg>` element (a string of markup); `name`, unique on the page, prefixes its ids."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    head_end = text.index(">") + 1
    text = _NAMESPACES.sub("", text[:head_end]) + text[head_end:]
    prefix = f"{name}-"
    return _IDS.sub(lambda match: match.group(1) + prefix + match.group(2), text)
