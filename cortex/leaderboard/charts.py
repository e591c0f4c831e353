"""Inline SVG charts for the leaderboard pages: no JavaScript, nothing fetched from elsewhere.

Pure functions from numbers to SVG text. Every label is escaped here, so callers may pass
strings that came from files or the chain; the result is marked safe for the templates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#64748b", "#d97706", "#059669", "#db2777")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per x position; None leaves a gap
    color: str = PALETTE[0]
    dashed: bool = False


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers spanning [lo, hi]."""
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    # rounded, so that float error never prints as 1.1e-16 or -0
    return [round(start + k * step, 12) + 0.0 for k in range(math.ceil((hi - start) / step) + 1)]


def line_chart(labels: Sequence[str], series: Sequence[Series], *, chart_id: str, title: str,
               markers: Sequence[str | None] = (), width: int = 760, height: int = 280) -> Markup:
    """A line chart over ``labels`` (the x positions), one path and its points per series.

    ``markers`` names a CSS class per x position (for instance a round's status), drawn as a
    small mark under the axis.
    """
    if any(len(s.values) != len(labels) for s in series):
        raise ValueError("every series needs one value (or None) per label")
    left, right, top, bottom = 56, 16, 34, 46
    values = [v for s in series for v in s.values if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    ticks = _ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    n = len(labels)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else 0.0)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    out = [(f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'),
           f'<text class="chart-title" x="{left}" y="20">{escape(title)}</text>']
    for t in ticks:
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    step = max(1, math.ceil(n / 16))  # at most about 16 x labels
    for i, label in enumerate(labels):
        marker = markers[i] if i < len(markers) and markers[i] else ""
        if marker:
            out.append(f'<rect class="marker {escape(marker)}" x="{x(i) - 4:.1f}" y="{height - bottom + 4}" '
                       f'width="8" height="6"><title>{escape(label)}: {escape(marker)}</title></rect>')
        if i % step == 0:
            out.append(f'<text class="tick" x="{x(i):.1f}" y="{height - bottom + 24}" '
                       f'text-anchor="middle">{escape(label)}</text>')
    for k, s in enumerate(series):
        points = [(i, v) for i, v in enumerate(s.values) if v is not None]
        path, previous = [], None
        for i, v in points:
            path.append(f"{'L' if previous == i - 1 else 'M'}{x(i):.1f},{y(v):.1f}")
            previous = i
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        out.append(f'<path class="series series-{k}" d="{" ".join(path)}" fill="none" stroke="{escape(s.color)}" '
                   f'stroke-width="2"{dash}/>')
        for i, v in points:
            out.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" '
                       f'fill="{escape(s.color)}"><title>{escape(s.name)} {escape(labels[i])}: {v:.4g}</title>'
                       f'</circle>')
        lx = left + 8 + 170 * k
        out.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{height - 8}" y2="{height - 8}" stroke="{escape(s.color)}" '
                   f'stroke-width="3"{dash}/><text class="legend" x="{lx + 24}" y="{height - 4}">'
                   f'{escape(s.name)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def sparkline(values: Sequence[float | None], *, width: int = 90, height: int = 22) -> Markup:
    """A small trend line (for instance a row's win rate over the last rounds); empty for < 2 values."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return Markup("")
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span = hi - lo or 1.0
    n = len(values) - 1
    coords = " ".join(f"{2 + (width - 4) * i / n:.1f},{height - 2 - (height - 4) * (v - lo) / span:.1f}"
                      for i, v in points)
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'xmlns="http://www.w3.org/2000/svg"><polyline points="{coords}" fill="none" '
                  f'stroke="{PALETTE[0]}" stroke-width="1.5"/></svg>')
