"""The leaderboard's HTML: Jinja2 templates with autoescaping, and the charts drawn for them.

Shared by the web app and the static export; they differ only in how pages link to each other
(``Links``). Every string from the chain or the state files reaches the page escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cortex.leaderboard.charts import PALETTE, Series, line_chart, sparkline

# No scripts anywhere; styles and SVG are inline. Sent as a header by the app, and as a meta tag.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
METRIC_ORDER = ("accuracy", "depth", "penalties", "hit_rate", "brier", "ece", "parse_rate", "answered", "new_tokens")


@dataclass(frozen=True)
class Links:
    """Where the pages point: the app's routes, or the export's files."""

    home: str
    api: str
    miner: Callable[[int], str]


APP_LINKS = Links("/", "/api/v1/leaderboard", lambda uid: f"/miner/{int(uid)}")
FILE_LINKS = Links("index.html", "leaderboard.json", lambda uid: f"miner-{int(uid)}.html")

_env = Environment(loader=PackageLoader("cortex.leaderboard", "templates"), autoescape=select_autoescape(default=True))


def num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def metric(value: float | None) -> str:
    """Four significant digits: counts read as counts, small rates keep their precision."""
    return "–" if value is None else f"{value:.4g}"


def short(hotkey: str) -> str:
    return hotkey if len(hotkey) <= 12 else f"{hotkey[:6]}…{hotkey[-4:]}"


def delta(history: Sequence[Mapping], key: str) -> Markup:
    """The change since the previous round, as an arrow with the difference; empty without one."""
    if len(history) < 2 or history[-1].get(key) is None or history[-2].get(key) is None:
        return Markup("")
    change = history[-1][key] - history[-2][key]
    if abs(change) < 5e-4:
        return Markup('<span class="muted">=</span>')
    css, arrow = ("up", "▲") if change > 0 else ("down", "▼")
    return Markup(f'<span class="{css}" title="since the previous round">{arrow}{abs(change):.3f}</span>')


def _render(name: str, snap: Mapping, links: Links, **extra) -> str:
    return _env.get_template(name).render(
        s=snap, home=links.home, api=links.api, miner_href=links.miner, csp=CSP, num=num, metric=metric, short=short,
        delta=delta, spark=sparkline, **extra)


def base_chart(history: Sequence[Mapping]) -> Markup:
    """The averager's rounds: merged, current-base and best-single rewards, each round's status marked."""
    labels = [f"r{r['round']}" for r in history]

    def gate(key: str) -> list[float | None]:
        return [r["gate"].get(key) if r["gate"] else None for r in history]

    series = [Series("merged", gate("merged_reward"), PALETTE[0]), Series("base", gate("base_reward"), PALETTE[1]),
              Series("best single", gate("best_single_reward"), PALETTE[2], dashed=True)]
    return line_chart(labels, series, chart_id="base-history", markers=[r["status"] for r in history],
                      title="Gate rewards per averager round (green: published, red: rejected, grey: skipped)")


PROGRESS_METRICS = (("mean_reward", "held-out reward (higher is better)", PALETTE[0]),
                    ("parse_rate", "parse rate (higher is better)", PALETTE[3]),
                    ("brier", "Brier score of p_up (lower is better)", PALETTE[2]),
                    ("brier_skill", "Brier skill, 1 − Brier / 0.25 over every question (higher is better)", PALETTE[1]))


def progress_charts(cid: str, points: Sequence[Mapping]) -> Markup:
    """The base on the averager's fixed benchmark, genesis first: one small chart per metric, each round's
    status marked under its point."""
    labels = [p["label"] for p in points]
    charts = [line_chart(labels, [Series(name.split(" (")[0], [p[key] for p in points], color)],
                         chart_id=f"base-progress-{key}", title=name, markers=[p["status"] for p in points],
                         width=380, height=230)
              for key, name, color in PROGRESS_METRICS]
    return Markup(f'<div class="progress" id="base-progress" data-competition="{escape(cid)}">'
                  + "".join(charts) + "</div>")


def index_page(snap: Mapping, links: Links) -> str:
    progress = {cid: progress_charts(cid, points) for cid, points in snap.get("base_progress", {}).items() if points}
    return _render("index.html", snap, links, base_chart=base_chart(snap["base_history"]), progress_charts=progress)


def miner_page(snap: Mapping, uid: int, links: Links) -> str | None:
    """The miner's detail page, or None when ``uid`` is not on the leaderboard."""
    m = snap["miners"].get(str(uid))
    if m is None:
        return None
    keys = [k for k in METRIC_ORDER if k in m["metrics"]] + sorted(k for k in m["metrics"] if k not in METRIC_ORDER)
    labels = [f"r{h['round']}" for h in m["history"]]
    chart = line_chart(labels, [Series("advantage", [h["advantage"] for h in m["history"]], PALETTE[0]),
                                Series("mean reward", [h["mean_reward"] for h in m["history"]], PALETTE[3])],
                       chart_id="miner-history", title=f"uid {uid}: advantage over the base and mean reward per round")
    return _render("miner.html", snap, links, m=m, metric_keys=keys, history_chart=chart)
