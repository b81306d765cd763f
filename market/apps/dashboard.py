"""The browser dashboard: Mesa SolaraViz over :class:`market.core.model.MarketModel`.

Serve it with ``market dashboard`` (loopback, port 8765) or ``solara run
market/apps/dashboard.py``. The sidebar picks the scenario and the mechanism and sets the
utility weights, the price rule (utilisation-driven or tatonnement), its step and target,
the users' strategy mix (:func:`user_mix`), the number of clusters, the market size and
the seed; **Reset** rebuilds the market with them, **Step** clears one round and
**Play** keeps clearing. The page shows the planner hierarchy (root, cluster planners,
resources) coloured by utilisation or price, per-round plots, a comparison of every
mechanism on the current round's order book, and the distribution of the utility users
have received, each in a card of the page's one tab; the cards wrap in rows and grow
with their content, so none runs over another.

:class:`DashboardModel` is a :class:`MarketModel` with flat, slider-friendly parameters
(SolaraViz's Reset calls ``DashboardModel(**params)``). Before each round it clears the
same order book, in the same state, with every other mechanism (nothing is settled), so
the comparison never changes the run: a dashboard run equals a plain ``MarketModel`` run
with the same settings. Each view is memoised on (model, round) and draws from arrays
aggregated before plotting, so a step only redraws what changed.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import markdown
import networkx as nx
import numpy as np
import pandas as pd
import solara
import solara.lab
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from market.core.model import MarketModel, RoundRecord
from market.core.pricing import PRICE_RULES
from market.errors import MarketInputError
from mechanisms import available
from scenarios import config as scenario_config
from scenarios.config import Scenario

#: market keys scaled by the "market size" slider (synthetic markets)
SIZE_KEYS = ("resources", "users", "requests")
#: columns of the mechanism comparison table, in order
COMPARISON = [
    "n_allocated", "efficiency", "welfare", "satisfaction", "jain", "jain_winners", "utilization",
    "revenue", "ir_violations", "alloc_ms",
]
#: per-round panels: title -> (metric, label) lines ("Utilisation" gets one line per
#: dimension of the market: :func:`panels`)
PANELS = {
    "Efficiency": [("efficiency", "efficiency")],
    "Jain's index": [("jain", "all requests"), ("jain_winners", "winners only"),
                     ("dominant_share_jain", "dominant shares")],
    "Utilisation": [("utilization", "utilisation")],
    "Revenue": [("revenue", "revenue")],
    "Mean price": [("mean_price", "mean price")],
    "Satisfaction": [("satisfaction", "served share")],
    "Bid / value": [("bid_to_value", "bid / value")],
    "Price gap": [("price_gap", "posted vs clearing")],
}
#: why a run has no column for a panel's metric (shown under the panel's title)
ABSENT = {"price_gap": "off: [pricing] clearing = false"}
#: the strategies whose shares the sidebar sets (truthful users are the remainder)
MIX_STRATEGIES = ("shading", "learning", "pacing")


def panels(dimensions: tuple[str, ...] | None = None) -> dict[str, list[tuple[str, str]]]:
    """:data:`PANELS` for a market: its utilisation per dimension (``utilization_<dim>``)."""
    if not dimensions:
        return PANELS
    return {**PANELS, "Utilisation": [(f"utilization_{d}", d) for d in dimensions]}
#: at most this many resource nodes are drawn (larger markets aggregate neighbours)
MAX_NODES = 1500
COLOUR_MODES = ["utilisation", "price"]
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
#: short column headers of the comparison table
HEADERS = {
    "n_allocated": "served", "efficiency": "eff.", "satisfaction": "sat.", "jain": "Jain",
    "jain_winners": "Jain win.", "utilization": "util.", "revenue": "revenue", "ir_violations": "IR viol.",
    "alloc_ms": "ms", "welfare_vs_opt": "/OPT",
}
DIVERGING = ["#3b4cc0", "#8db0fe", "#f2f2f2", "#f49a7b", "#b40426"]


def scale_market(scenario: Scenario, size: float) -> Scenario:
    """The scenario with a synthetic market scaled by ``size`` (others unchanged).

    Args:
        scenario: the scenario.
        size: factor applied to the numbers of resources, users and requests.

    Returns:
        A copy with the scaled ``[market]`` table, or ``scenario`` itself when
        ``size == 1`` or the market is not synthetic.
    """
    if size == 1 or scenario.market.get("source") != "synthetic":
        return scenario
    from scenarios.synthetic import DEFAULTS

    market = dict(scenario.market)
    for key in SIZE_KEYS:
        market[key] = max(1, round(float(market.get(key, DEFAULTS[key])) * size))
    return scenario.replace(market=market)


def user_mix(shading: float, learning: float, pacing: float) -> dict[str, float]:
    """The ``[users] mix`` of the sidebar's shares: always valid (shares >= 0, summing to 1).

    Each share is clipped to ``[0, 1]``; shares summing to more than 1 are scaled down to
    sum to 1; the truthful users are the remainder, ``1 - shading - learning - pacing``.
    Strategies with no share are left out (they would draw no user anyway).

    Args:
        shading: share of users shading their bids by ``[users] shading_factor``.
        learning: share of EXP3 learners over the bid-shading grid.
        pacing: share of users pacing a run budget.

    Returns:
        ``strategy -> share`` for :meth:`Users.replace` (``mix=``).
    """
    shares = np.clip(np.asarray((shading, learning, pacing), dtype=float), 0.0, 1.0)
    total = float(shares.sum())
    if total > 1.0:
        shares = shares / total
    mix = {name: float(x) for name, x in zip(MIX_STRATEGIES, shares) if x > 0}
    mix["truthful"] = max(0.0, 1.0 - math.fsum(mix.values()))
    return {name: x for name, x in mix.items() if x > 0}


def strategy_counts(model: MarketModel) -> dict[str, int]:
    """Users by the name of their bidding strategy, most common first."""
    counts = Counter(agent.strategy.name for agent in model.user_agents)
    return dict(counts.most_common())


def effective_weights(weights: tuple[float, ...]) -> tuple[float, float, float, float]:
    """Non-negative weights scaled down to sum to 1 if they sum to more (utility in [0, 1])."""
    w = np.clip(np.asarray(weights, dtype=float), 0.0, None)
    total = float(w.sum())
    if total > 1.0:
        w = w / total
    return tuple(float(x) for x in w)  # type: ignore[return-value]


class DashboardModel(MarketModel):
    """A :class:`MarketModel` with flat parameters for SolaraViz, plus a mechanism comparison.

    Args:
        scenario_name: shipped scenario name or scenario file.
        mechanism: the mechanism that clears the market.
        rng: integer seed (a text seed from the browser is converted).
        w_cost: weight of the cost utility (alpha).
        w_qos: weight of the QoS utility (beta).
        w_energy: weight of the energy utility (gamma).
        w_fairness: weight of the fairness utility (delta). Weights summing to more
            than 1 are scaled to sum to 1.
        rule: the price rule, ``utilization`` or ``tatonnement`` (``[pricing] rule``).
        eta: pricing step.
        target: target utilisation of the pricing rule (the utilisation rule only).
        custom_settings: use the four weights and the price rule, step and target above;
            False keeps the scenario's ``[utility]`` weights and ``[pricing]`` table.
        custom_mix: set the users' strategy mix from the three shares below
            (:func:`user_mix`); False keeps the scenario's ``[users]`` table.
        share_shading: share of bid-shading users (with ``custom_mix``).
        share_learning: share of learning (EXP3) users (with ``custom_mix``).
        share_pacing: share of budget-pacing users (with ``custom_mix``); truthful
            users are the remainder.
        clusters: number of cluster planners (0 = the scenario's setting).
        size: market size as a multiple of the scenario's (synthetic markets).
        compare: compare every mechanism on each round's order book.
        optimum: include the exact optimum (``optimal``) in the comparison.

    A scenario that cannot be built (bad input, e.g. a trace not yet fetched) gives the
    default scenario with the same settings and its one-line error in :attr:`notice`,
    which the page shows, instead of a traceback in place of the page.

    Attributes:
        comparison: the current round's comparison, one row per mechanism
            (:data:`COMPARISON` columns, plus ``welfare_vs_opt`` with ``optimum``).
        notice: why the chosen scenario is not shown (None: it is).
    """

    def __init__(
        self,
        scenario_name: str = "default",
        mechanism: str = "mohaf",
        rng: int | str | None = 1,
        w_cost: float = 0.4,
        w_qos: float = 0.3,
        w_energy: float = 0.1,
        w_fairness: float = 0.2,
        rule: str = "utilization",
        eta: float = 0.02,
        target: float = 0.8,
        custom_settings: bool = False,
        custom_mix: bool = False,
        share_shading: float = 0.0,
        share_learning: float = 0.0,
        share_pacing: float = 0.0,
        clusters: int = 0,
        size: float = 1.0,
        compare: bool = True,
        optimum: bool = False,
    ) -> None:
        def settings(name: str) -> Scenario:
            base = scale_market(scenario_config.load(name), float(size))
            mix = user_mix(share_shading, share_learning, share_pacing)
            return base.replace(
                utility=(base.utility.replace(weights=effective_weights((w_cost, w_qos, w_energy, w_fairness)))
                         if custom_settings else base.utility),
                pricing=base.pricing.replace(rule=rule, eta=eta, target=target) if custom_settings else base.pricing,
                users=base.users.replace(mix=mix, shading_share=0.0) if custom_mix else base.users,
                clustering=base.clustering.replace(clusters=int(clusters)) if int(clusters) else base.clustering,
                oracle=False, compare_flat=False,
            )

        self.notice: str | None = None
        try:
            super().__init__(settings(scenario_name), mechanism, rng)
        except MarketInputError as exc:
            if scenario_name == "default":
                raise
            # the page cannot show this scenario: say why above the default one
            self.notice = f"{scenario_name} cannot be shown: {exc}"
            print(f"dashboard: {self.notice}", file=sys.stderr)
            scenario_name = "default"
            super().__init__(settings(scenario_name), mechanism, rng)
        self.scenario_name = scenario_name
        self.size = float(size)
        self.optimum = bool(optimum)
        names = [n for n in available() if n != "optimal" or self.optimum] if compare else []
        self.compare_names = sorted({*names, mechanism})
        self.comparison = pd.DataFrame(columns=COMPARISON, index=pd.Index([], name="mechanism"))
        self.running = self.round < self.config.rounds

    def step(self) -> None:
        """Compare every mechanism on this round's order book, then clear the round.

        Each other mechanism plays the round through the model's own pipeline on a copy
        of the state (:meth:`MarketModel.preview`), so every row of the comparison is
        measured exactly as the recorded round is.
        """
        rows: dict[str, dict[str, float]] = {}
        for name in self.compare_names:
            if name != self.mechanism_name:
                rows[name] = self._comparison_row(self.preview(name))
        super().step()
        rows[self.mechanism_name] = self._comparison_row(self.record)
        table = pd.DataFrame.from_dict(rows, orient="index")[COMPARISON].sort_index()
        table.index.name = "mechanism"
        if "optimal" in table.index:
            opt = float(table.at["optimal", "welfare"])
            table["welfare_vs_opt"] = table["welfare"] / opt if opt > 0 else 1.0
        self.comparison = table
        self.running = self.round < self.config.rounds

    @staticmethod
    def _comparison_row(record: RoundRecord) -> dict[str, float]:
        return {k: record.metrics[k] for k in COMPARISON[:-1]} | {"alloc_ms": record.timings.get("alloc_ms", 0.0)}


# --- drawing: ECharts options (rendered in the browser; plain dicts, testable headless) ---
@dataclass(frozen=True)
class TreeLayout:
    """Radial positions of the planner tree: root in the centre, clusters, resources outside.

    Markets with more than ``max_nodes`` resources draw consecutive resources of a cluster
    as one aggregated node (their mean value), so the page stays light.
    """

    names: list[str]
    pos: np.ndarray  # (n, 2)
    kind: np.ndarray  # (n,) "root" | "cluster" | "resource"
    size: np.ndarray  # (n,) resources behind each node (root and clusters: their members)
    edges: np.ndarray  # (E, 2) node indices, parent first
    node_of_resource: np.ndarray  # (M,) drawn node of each resource
    cluster_node: np.ndarray  # (C,) node of each cluster planner


def tree_layout(graph: nx.DiGraph, max_nodes: int = MAX_NODES) -> TreeLayout:
    """Lay out the ``root -> cluster-c -> resource-j`` tree of :meth:`Hierarchy.graph`.

    Each cluster gets an angular sector proportional to its number of resources.
    """
    clusters = sorted(graph.successors("root"), key=_node_number)
    members = [sorted(_node_number(r) for r in graph.successors(c)) for c in clusters]
    m = sum(len(r) for r in members)
    group = max(1, -(-m // max_nodes))  # resources per drawn node
    names, pos, kind, size, edges = ["root"], [(0.0, 0.0)], ["root"], [m], []
    node_of_resource = np.zeros(m, dtype=np.int64)
    cluster_node = np.zeros(len(clusters), dtype=np.int64)
    start = 0.0
    for c, res in enumerate(members):
        width = 2 * np.pi * max(len(res), 1) / max(m, 1)
        mid = start + width / 2
        cluster_node[c] = len(names)
        edges.append((0, len(names)))
        names.append(f"cluster-{c}")
        pos.append((np.cos(mid), np.sin(mid)))
        kind.append("cluster")
        size.append(len(res))
        chunks = [res[i : i + group] for i in range(0, len(res), group)]
        for k, chunk in enumerate(chunks):
            angle = start + width * (k + 0.5) / len(chunks)
            radius = 2.0 + 0.3 * (k % 3)  # three rings keep dense sectors legible
            node_of_resource[chunk] = len(names)
            edges.append((int(cluster_node[c]), len(names)))
            label = f"resource-{chunk[0]}" if len(chunk) == 1 else f"resources {chunk[0]}..{chunk[-1]} ({len(chunk)})"
            names.append(label)
            pos.append((radius * np.cos(angle), radius * np.sin(angle)))
            kind.append("resource")
            size.append(len(chunk))
        start += width
    return TreeLayout(
        names, np.array(pos, dtype=float), np.array(kind), np.array(size, dtype=np.int64),
        np.array(edges, dtype=np.int64).reshape(-1, 2), node_of_resource, cluster_node,
    )


def _node_number(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def node_values(model: MarketModel, layout: TreeLayout, mode: str) -> np.ndarray:
    """Colour value of each node: utilisation, or price over unit cost.

    Planners (and aggregated resource nodes) show the mean over their resources.
    """
    if mode == "price":
        per_resource = model.price / np.maximum(model.resource_columns["unit_cost"], 1e-12)
    else:
        per_resource = model.resource_ledger.load
    n = len(layout.names)
    sums = np.bincount(layout.node_of_resource, weights=per_resource, minlength=n)
    values = sums / np.maximum(layout.size, 1)
    labels = model.hierarchy.labels
    c_sums = np.bincount(labels, weights=per_resource, minlength=layout.cluster_node.size)
    values[layout.cluster_node] = c_sums / np.maximum(layout.size[layout.cluster_node], 1)
    values[0] = float(per_resource.mean()) if per_resource.size else 0.0
    return values


def hierarchy_option(model: MarketModel, layout: TreeLayout, mode: str) -> dict[str, Any]:
    """ECharts option: the planner tree, nodes coloured by ``mode`` (utilisation or price)."""
    values = node_values(model, layout, mode)
    if mode == "price":  # diverging around "price = unit cost"
        half = max(float(np.abs(values - 1.0).max(initial=0.0)), 0.01)
        lo, hi, colours, label = 1.0 - half, 1.0 + half, DIVERGING, "price / unit cost"
    else:
        lo, hi, colours, label = 0.0, max(1.0, float(values.max(initial=0.0))), VIRIDIS, "utilisation"
    symbol = {"root": 26, "cluster": 16, "resource": 6}
    nodes = [
        {"name": name, "x": round(float(x), 4), "y": round(float(-y), 4), "value": round(float(v), 4),
         "symbolSize": symbol[k] + (2 if k == "resource" and s > 1 else 0)}
        for name, (x, y), v, k, s in zip(layout.names, layout.pos, values, layout.kind, layout.size)
    ]
    links = [{"source": int(a), "target": int(b)} for a, b in layout.edges]
    return {
        "animation": False,
        "title": {"text": "Planner hierarchy", "subtext": f"root, {layout.cluster_node.size} cluster planners, "
                  f"{model.n_resources} resources", "textStyle": {"fontSize": 13},
                  "subtextStyle": {"fontSize": 11}, "itemGap": 6},
        "tooltip": {"trigger": "item"},
        "visualMap": {"type": "continuous", "min": round(lo, 4), "max": round(hi, 4), "calculable": False,
                      "inRange": {"color": colours}, "text": [label, ""], "right": 0, "bottom": 10,
                      "itemHeight": 120, "seriesIndex": 0},
        "series": [{
            "type": "graph", "layout": "none", "roam": True, "data": nodes, "links": links,
            "lineStyle": {"color": "#bbbbbb", "width": 0.6}, "emphasis": {"focus": "adjacency"},
            "itemStyle": {"borderColor": "#333333", "borderWidth": 0.5}, "left": 10, "right": 90,
            "top": 56, "bottom": 10,
        }],
    }


#: per-round plots: panels per row, pixels per row of panels, pixels above the first row
#: and below the last (the x-axis name and the legend)
ROUND_COLUMNS, ROUND_ROW_PX, ROUND_MARGIN_PX = 3, 165, 45


def round_plots_height(n_panels: int) -> int:
    """Pixels the per-round plots need for ``n_panels`` panels (:data:`ROUND_COLUMNS` a row)."""
    return ROUND_MARGIN_PX + ROUND_ROW_PX * -(-n_panels // ROUND_COLUMNS)


def round_option(records: list[dict[str, Any]], dimensions: tuple[str, ...] | None = None,
                 columns: Collection[str] | None = None) -> dict[str, Any]:
    """ECharts option: per-round plots of :func:`panels` (one small grid each).

    A line whose metric is not a column of the run (``price_gap`` without ``[pricing]
    clearing``) is left out; a panel left with no line keeps its place, empty, with the
    reason (:data:`ABSENT`) under its title.

    Args:
        records: the ``rounds`` rows played so far.
        dimensions: the market's dimensions (one utilisation line each); None: the
            ``utilization`` column alone.
        columns: the run's ``rounds`` columns; None: those of ``records[0]`` (every
            metric while there is no record).
    """
    rounds = [int(r["round"]) for r in records]
    if columns is None:
        columns = records[0].keys() if records else None
    titles, grids, xs, ys, series = [], [], [], [], []
    shown = panels(dimensions)
    for i, (title, lines) in enumerate(shown.items()):
        col, row = i % ROUND_COLUMNS, i // ROUND_COLUMNS
        left, top = 2 + 33 * col, 30 + ROUND_ROW_PX * row  # percent across, pixels down
        present = [(metric, label) for metric, label in lines if columns is None or metric in columns]
        note = "" if present else "; ".join(ABSENT.get(metric, f"no {metric} in this run") for metric, _ in lines)
        titles.append({"text": title, "subtext": note, "left": f"{left + 19}%", "textAlign": "center",
                       "top": top - 24, "textStyle": {"fontSize": 12}, "subtextStyle": {"fontSize": 10}})
        grids.append({"left": f"{left + 7}%", "top": top, "width": "24%", "height": 110})
        xs.append({"type": "value", "gridIndex": i, "min": 0, "minInterval": 1, "name": "round" if i + ROUND_COLUMNS >= len(shown) else "",
                   "nameLocation": "middle", "nameGap": 20, "axisLabel": {"fontSize": 9}})
        ys.append({"type": "value", "gridIndex": i, "scale": True, "splitNumber": 3, "axisLabel": {"fontSize": 9}})
        for metric, label in present:
            series.append({
                "type": "line", "name": label, "xAxisIndex": i, "yAxisIndex": i, "showSymbol": True,
                "symbolSize": 4, "data": [[t, round(float(r[metric]), 6)] for t, r in zip(rounds, records)],
            })
    return {
        "animation": False, "title": titles, "grid": grids, "xAxis": xs, "yAxis": ys, "series": series,
        "tooltip": {"trigger": "axis"},
        "legend": {"data": [label for title in ("Jain's index", "Utilisation") for _, label in shown[title]],
                   "bottom": 0, "left": "center",
                   "textStyle": {"fontSize": 11}},
    }


def utility_option(user_utility: np.ndarray, bins: int = 20) -> dict[str, Any]:
    """ECharts option: histogram of the utility each user has received so far."""
    counts, edges = np.histogram(user_utility, bins=bins)
    labels = [f"{a:.2f}-{b:.2f}" for a, b in pairwise(edges)]
    return {
        "animation": False,
        "title": {"text": f"Users' received utility ({user_utility.size} users, sum over rounds)",
                  "left": "center", "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis"},
        "grid": {"left": 50, "right": 20, "top": 50, "bottom": 75},
        "xAxis": {"type": "category", "data": labels, "name": "utility received", "nameLocation": "middle",
                  "nameGap": 58, "axisLabel": {"rotate": 45, "fontSize": 9}},
        "yAxis": {"type": "value", "name": "users", "nameLocation": "middle", "nameGap": 35, "minInterval": 1},
        "series": [{"type": "bar", "name": "users", "data": [int(c) for c in counts], "barCategoryGap": "5%"}],
    }


def comparison_markdown(table: pd.DataFrame, current: str) -> str:
    """The comparison table as Markdown; the model's own mechanism is in bold."""
    if table.empty:
        return "_Step once to compare every mechanism on the round's order book._"
    cols = list(table.columns)
    lines = ["| mechanism | " + " | ".join(HEADERS.get(c, c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.iterrows():
        cells = [f"{int(row[c])}" if c in ("n_allocated", "ir_violations") else f"{row[c]:.3g}" for c in cols]
        label = f"**{name}**" if name == current else str(name)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(model: DashboardModel) -> str:
    """Round counter, the market's settings and where its requests stand."""
    w = model.round_params.weights
    rule = model.config.pricing.rule
    target = getattr(model.price_rule, "target", None)  # the tatonnement rule has none
    pricing = f"{rule} pricing, step {model.price_rule.eta:g}" + (f", target utilisation {target:g}" if target is not None else "")
    users = ", ".join(f"{name} {n}" for name, n in strategy_counts(model).items())
    done = " (finished)" if not model.running else ""
    rows = model.waiting(model.round)
    notice = f"**{model.notice}** Showing the default scenario.\n\n" if model.notice else ""
    return (
        f"### Round {model.round} of {model.config.rounds}{done}\n\n{notice}"
        f"**{model.scenario_name}** market, seed {model.seed}: {model.n_resources} resources in "
        f"{model.hierarchy.n_clusters} clusters, {model.request_ids.size} requests from "
        f"{len(model.user_agents)} users. Served so far {int(np.sum(model.status == 1))}, gave up "
        f"{int(np.sum(model.status == 2))}, next order book {rows.size}. "
        f"Weights (cost, QoS, energy, fairness) ({w[0]:.2f}, {w[1]:.2f}, {w[2]:.2f}, {w[3]:.2f}), "
        f"{pricing}. Users by strategy: {users}."
    )


# --- Solara components ------------------------------------------------------------------
def markdown_html(text: str) -> str:
    """Markdown rendered to HTML on the server, for :func:`solara.HTML`.

    ``solara.Markdown`` would also render on the server, but its browser side fetches
    KaTeX (math) from the CDN at every mount, which the offline assets (``solara-assets``)
    do not include: offline, the server logged ``Could not load URL`` at every page load.
    Nothing here is math.
    """
    return markdown.markdown(text, extensions=["tables"])


@solara.component
def RoundSummary(model: DashboardModel) -> None:
    """Round counter, settings, and every mechanism on the last round's order book."""
    update_counter.get()
    text = solara.use_memo(lambda: markdown_html(summary_markdown(model)), [model, model.round])
    table = solara.use_memo(
        lambda: markdown_html(comparison_markdown(model.comparison, model.mechanism_name)), [model, model.round],
    )
    caption = (f"**Mechanisms on round {max(model.round - 1, 0)}'s order book** "
               f"(bold: **{model.mechanism_name}**, the one clearing the market)")
    with solara.Column(gap="0px", classes=["market-summary"]):
        solara.HTML(unsafe_innerHTML=text)
        solara.HTML(unsafe_innerHTML=markdown_html(caption))
        # the table scrolls inside its card rather than run under its neighbours
        solara.HTML(unsafe_innerHTML=table, classes=["market-table"], attributes={"id": "mechanism-table"})


@solara.component
def HierarchyView(model: DashboardModel) -> None:
    """The planner tree, coloured by utilisation or price."""
    update_counter.get()
    mode, set_mode = solara.use_state(COLOUR_MODES[0])
    layout = solara.use_memo(lambda: tree_layout(model.hierarchy_graph), [model])
    option = solara.use_memo(lambda: hierarchy_option(model, layout, mode), [model, model.round, mode])
    with solara.Column(gap="4px"):
        solara.ToggleButtonsSingle(value=mode, values=COLOUR_MODES, on_value=set_mode, dense=True)
        solara.FigureEcharts(option, attributes={"id": "hierarchy-view", "style": "height: 360px; width: 100%;"},
                             responsive=True)


@solara.component
def RoundPlots(model: DashboardModel) -> None:
    """Per-round plots of :func:`panels`: efficiency, Jain, utilisation, ..., bid/value, price gap."""
    update_counter.get()
    option = solara.use_memo(
        lambda: round_option(model.round_records, model.dimensions, model.rounds_table().columns), [model, model.round],
    )
    height = round_plots_height(len(option["grid"]))
    solara.FigureEcharts(option, attributes={"id": "round-plots", "style": f"height: {height}px; width: 100%;"},
                         responsive=True)


@solara.component
def UtilityHistogram(model: DashboardModel) -> None:
    """Distribution of the utility users have received."""
    update_counter.get()
    option = solara.use_memo(lambda: utility_option(model.user_ledger.utility), [model, model.round])
    solara.FigureEcharts(
        option, attributes={"id": "utility-histogram", "style": "height: 375px; width: 100%;"}, responsive=True,
    )


def model_params() -> dict[str, dict[str, Any]]:
    """The sidebar controls (every one a ``DashboardModel`` parameter)."""
    scenarios = [name for name, _ in scenario_config.shipped()]
    return {
        "scenario_name": {"type": "Select", "value": "default", "values": scenarios, "label": "Scenario"},
        "mechanism": {"type": "Select", "value": "mohaf", "values": available(), "label": "Mechanism"},
        "rng": {"type": "SliderInt", "value": 1, "min": 0, "max": 999, "step": 1, "label": "Seed"},
        "custom_settings": {"type": "Checkbox", "value": False,
                            "label": "Set the weights and the price rule below (else the scenario's)"},
        "w_cost": {"type": "SliderFloat", "value": 0.4, "min": 0.0, "max": 1.0, "step": 0.05, "label": "Weight: cost"},
        "w_qos": {"type": "SliderFloat", "value": 0.3, "min": 0.0, "max": 1.0, "step": 0.05, "label": "Weight: QoS"},
        "w_energy": {"type": "SliderFloat", "value": 0.1, "min": 0.0, "max": 1.0, "step": 0.05, "label": "Weight: energy"},
        "w_fairness": {"type": "SliderFloat", "value": 0.2, "min": 0.0, "max": 1.0, "step": 0.05, "label": "Weight: fairness"},
        "rule": {"type": "Select", "value": "utilization", "values": list(PRICE_RULES), "label": "Price rule"},
        "eta": {"type": "SliderFloat", "value": 0.02, "min": 0.0, "max": 0.2, "step": 0.005, "label": "Pricing step eta"},
        "target": {"type": "SliderFloat", "value": 0.8, "min": 0.05, "max": 1.0, "step": 0.05, "label": "Target utilisation"},
        "custom_mix": {"type": "Checkbox", "value": False, "label": "Set the users' strategy mix (else the scenario's)"},
        **{f"share_{name}": {"type": "SliderFloat", "value": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                             "label": f"Share: {name}"} for name in MIX_STRATEGIES},
        "clusters": {"type": "SliderInt", "value": 0, "min": 0, "max": 20, "step": 1, "label": "Clusters (0 = scenario's)"},
        "size": {"type": "SliderFloat", "value": 1.0, "min": 0.25, "max": 4.0, "step": 0.25, "label": "Market size (x scenario)"},
        "compare": {"type": "Checkbox", "value": True, "label": "Compare all mechanisms each round"},
        "optimum": {"type": "Checkbox", "value": False, "label": "... and the exact optimum (slow)"},
    }


#: the panels of the page, row by row: (component, CSS class of its card)
PANEL_ROWS = [
    [(RoundSummary, "market-panel-summary"), (HierarchyView, "market-panel-hierarchy")],
    [(RoundPlots, "market-panel-rounds"), (UtilityHistogram, "market-panel-utility")],
]
#: the page's title (browser tab and app bar) and the name of its one tab
TITLE = "Market allocation"
TAB = "Market"
#: Each row of panels is a wrapping flexbox: a card is as high as its content, a row as
#: high as its highest card, and a card that does not fit beside the others moves below
#: them, so no card runs over another. A card's flex-basis is its preferred width; the
#: summary's fits its mechanism table (about 580 px, cells do not wrap), which scrolls
#: inside its card only in a window too narrow for it. From a 1400 px window up, the
#: summary and the hierarchy share the first row, the plots and the histogram the second.
CSS = """
.market-panels { display: flex; flex-direction: column; gap: 12px; padding: 12px 0 40px; }
.market-row { display: flex; flex-wrap: wrap; gap: 12px; align-items: stretch; }
.market-row > .market-panel { min-width: 0; margin: 0 !important; }
.market-row > .market-panel > .v-card__text { padding: 8px 12px; }
.market-panel-summary { flex: 1 1 620px; }
.market-panel-hierarchy { flex: 1 1 320px; }
.market-panel-rounds { flex: 3 1 520px; }
.market-panel-utility { flex: 2 1 360px; }
.market-summary { font-size: 13px; }
.market-summary h3 { margin: 6px 0 8px; }
.market-summary p { margin-bottom: 8px; }
.market-summary strong { font-weight: 700; }
.market-table { overflow-x: auto; }
.market-table table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
.market-table th, .market-table td { padding: 3px 5px; text-align: right; white-space: nowrap; }
.market-table th:first-child, .market-table td:first-child { text-align: left; }
.market-table thead th { border-bottom: 1px solid rgba(128, 128, 128, 0.5); }
.market-table tbody tr:nth-child(odd) { background: rgba(128, 128, 128, 0.08); }
"""


@solara.component
def MarketPanels(model: DashboardModel) -> None:
    """The page's one tab, :data:`TAB`: the panels of :data:`PANEL_ROWS`, each in its own card."""
    with solara.lab.Tabs(), solara.lab.Tab(TAB), solara.Div(classes=["market-panels"]):
        for row in PANEL_ROWS:
            with solara.Div(classes=["market-row"]):
                for component, css_class in row:
                    with solara.Card(margin=0, classes=["market-panel", css_class]):
                        component(model)


@solara.component
def Dashboard(model: DashboardModel | solara.Reactive[DashboardModel]) -> None:
    """SolaraViz's app bar and sidebar (controls, parameters) above :class:`MarketPanels`.

    Mesa 3.5's own components view cannot name its tabs ("Page 0") and lays panels on
    a draggable grid of fixed 390 px cells that content overflows, so SolaraViz gets
    no components and the panels are laid out here.
    """
    reactive = solara.use_reactive(model)  # the model Reset builds replaces its value
    solara.Title(TITLE)
    solara.Style(CSS)
    SolaraViz(reactive, components=[], model_params=model_params(), name=TITLE, play_interval=150)
    MarketPanels(reactive.value)


def make_page(model: DashboardModel | solara.Reactive[DashboardModel] | None = None) -> Any:
    """The dashboard page for ``model`` (a default-settings model if None).

    Pass a ``solara.reactive(model)`` to follow the model that Reset builds.
    """
    return Dashboard(model if model is not None else DashboardModel())


page = make_page()
