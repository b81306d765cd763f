"""The SolaraViz dashboard: model hooks, headless Solara rendering, the CLI, a real browser."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import ipyvuetify
import numpy as np
import pytest
import solara

from market.apps.commands import dashboard as dashboard_command
from market.apps.dashboard import (
    ABSENT,
    COMPARISON,
    DashboardModel,
    effective_weights,
    make_page,
    node_values,
    round_option,
    round_plots_height,
    scale_market,
    strategy_counts,
    summary_markdown,
    tree_layout,
    user_mix,
)
from market.core.model import MarketModel
from market.core.pricing import PriceRule, Tatonnement
from scenarios.config import load

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


# --- the model behind the dashboard ---------------------------------------------------
def test_dashboard_run_equals_plain_model_run():
    """Comparing mechanisms before each round must not change the run itself."""
    dash = DashboardModel("default", "mohaf", rng=3, custom_settings=True, w_cost=0.5, w_qos=0.2, w_energy=0.1, w_fairness=0.2, eta=0.05, target=0.7, clusters=3)
    base = load("default")
    plain = MarketModel(base.replace(
        utility=base.utility.replace(weights=(0.5, 0.2, 0.1, 0.2)), pricing=base.pricing.replace(eta=0.05, target=0.7),
        clustering=base.clustering.replace(clusters=3), oracle=False,
    ), "mohaf", rng=3)
    for _ in range(4):
        dash.step()
        plain.step()
    assert dash.round_records == plain.round_records
    assert np.array_equal(dash.price, plain.price)
    assert dash.hierarchy.n_clusters == 3


def test_comparison_rows_match_each_mechanisms_own_run():
    """Round 0 starts from the same state for every mechanism: the comparison row of a
    deterministic mechanism equals that mechanism's own recorded round 0."""
    dash = DashboardModel("default", "mohaf", rng=2)
    dash.step()
    table = dash.comparison
    assert set(table.index) == {"best_fit", "dot_product", "drf", "first_price", "greedy", "mohaf", "random",
                                "second_price"}
    assert list(table.columns) == COMPARISON
    for name in ("greedy", "first_price", "second_price", "drf", "best_fit", "dot_product"):
        own = MarketModel(load("default").replace(oracle=False), name, rng=2)
        own.step()
        for col in COMPARISON[:-1]:
            assert table.at[name, col] == pytest.approx(own.metrics[col], rel=1e-12, abs=1e-12), (name, col)
    for col in COMPARISON[:-1]:
        assert table.at["mohaf", col] == dash.metrics[col]
    # mechanisms differ on this book: the table is not one row repeated
    assert table["welfare"].nunique() > 1


def test_comparison_with_exact_optimum_bounds_every_mechanism():
    dash = DashboardModel("tight", "greedy", rng=1, size=0.25, optimum=True)
    dash.step()
    table = dash.comparison
    assert "optimal" in table.index
    assert (table["welfare_vs_opt"] <= 1 + 1e-6).all()
    assert table.at["optimal", "welfare_vs_opt"] == 1.0


def test_overrides_size_weights_and_end_of_run():
    cfg = load("default")
    big = scale_market(cfg, 2.0)
    assert [big.market[k] for k in ("resources", "users", "requests")] == [200, 120, 2400]
    assert scale_market(cfg, 1.0) is cfg
    assert effective_weights((1.0, 1.0, 0.0, 0.0)) == (0.5, 0.5, 0.0, 0.0)
    assert effective_weights((0.1, 0.2, 0.3, 0.1)) == (0.1, 0.2, 0.3, 0.1)
    half = DashboardModel("default", rng=1, size=0.5, custom_settings=True, w_cost=0.8, w_qos=0.8, w_energy=0.2, w_fairness=0.2)
    assert half.n_resources == 50 and half.request_ids.size == 600
    assert half.round_params.weights == pytest.approx((0.4, 0.4, 0.1, 0.1))
    small = DashboardModel(str(DATA / "small.toml"), "greedy", rng=1, compare=False)
    assert small.running
    for _ in range(small.config.rounds):
        small.step()
    assert not small.running  # Play stops after the scenario's rounds
    assert "(finished)" in summary_markdown(small)
    assert list(small.comparison.index) == ["greedy"]


def test_a_scenarios_own_weights_and_pricing_unless_set():
    """The sidebar's weight and price sliders apply only when ticked: stationary is a tatonnement
    market (eta 0.05), audit-unit weighs 0.5/0.4/0.1/0 (both showed the default's settings)."""
    for name in ("stationary", "audit-unit"):
        own = load(name)
        dash = DashboardModel(name, "greedy", rng=1, compare=False, w_cost=0.9, rule="utilization", eta=0.01)
        assert dash.config.utility == own.utility and dash.config.pricing == own.pricing, name
        assert dash.notice is None
    dash = DashboardModel("stationary", "greedy", rng=1, compare=False, custom_settings=True, rule="utilization")
    assert dash.config.pricing.rule == "utilization" and dash.round_params.weights == pytest.approx((0.4, 0.3, 0.1, 0.2))
    assert "tatonnement pricing, step 0.05" in summary_markdown(DashboardModel("stationary", "greedy", compare=False))


def test_a_scenario_that_cannot_be_built_is_one_line_on_the_page(tmp_path, monkeypatch, capsys):
    """A trace not yet fetched: the default scenario with the error above it, not a traceback for a page."""
    monkeypatch.setenv("MARKET_DATA_DIR", str(tmp_path))
    dash = DashboardModel("alibaba-gpu", "greedy", rng=1, compare=False)
    assert dash.scenario_name == "default" and dash.config.name == "default"
    assert dash.notice.startswith("alibaba-gpu cannot be shown: ") and "market data fetch alibaba-gpu-2023" in dash.notice
    assert "\n" not in dash.notice and dash.notice in summary_markdown(dash)
    assert capsys.readouterr().err == f"dashboard: {dash.notice}\n"
    dash.step()  # it plays
    missing = DashboardModel(str(tmp_path / "nope.toml"), compare=False)
    assert missing.config.name == "default" and "nope.toml" in missing.notice


def test_user_mix_is_always_a_valid_mix():
    """Any slider positions give shares >= 0 summing to 1, truthful users the remainder."""
    assert user_mix(0.0, 0.0, 0.0) == {"truthful": 1.0}
    assert user_mix(0.1, 0.2, 0.3) == pytest.approx({"shading": 0.1, "learning": 0.2, "pacing": 0.3, "truthful": 0.4})
    assert user_mix(0.0, 1.0, 0.0) == {"learning": 1.0}
    assert user_mix(0.6, 0.6, 0.0) == pytest.approx({"shading": 0.5, "learning": 0.5})  # scaled down
    assert user_mix(-0.5, 2.0, 0.25) == pytest.approx({"learning": 0.8, "pacing": 0.2})  # clipped, then scaled
    rng = np.random.default_rng(0)
    load("default").users.replace(mix=user_mix(0.3, 0.3, 0.3), shading_share=0.0)  # the scenario accepts it
    for shares in rng.uniform(-0.2, 1.2, size=(200, 3)):
        mix = user_mix(*shares)
        assert all(v > 0 for v in mix.values()) and abs(sum(mix.values()) - 1.0) <= 1e-9, (shares, mix)


def test_mix_and_price_rule_controls_reach_the_model():
    every = DashboardModel("default", rng=1, rule="tatonnement", custom_settings=True, custom_mix=True, share_learning=1.0, compare=False)
    assert strategy_counts(every) == {"learning": len(every.user_agents)}
    assert {agent.strategy.name for agent in every.user_agents} == {"learning"}
    assert isinstance(every.price_rule, Tatonnement) and every.config.pricing.rule == "tatonnement"
    assert every.price_rule.eta == pytest.approx(0.02)
    every.step()
    summary = summary_markdown(every)  # the tatonnement rule has no target: no crash, no target shown
    assert "tatonnement pricing, step 0.02." in summary and f"learning {len(every.user_agents)}." in summary
    # the sliders' mix assigns users exactly as the same mix in a scenario does
    mixed = DashboardModel("default", rng=4, custom_mix=True, share_shading=0.2, share_learning=0.3, share_pacing=0.25,
                           compare=False)
    assert mixed.config.users.mix == pytest.approx({"shading": 0.2, "learning": 0.3, "pacing": 0.25, "truthful": 0.25})
    base = load("default")
    plain = MarketModel(base.replace(users=base.users.replace(mix=mixed.config.users.mix, shading_share=0.0),
                                     oracle=False), "mohaf", rng=4)
    names = [agent.strategy.name for agent in mixed.user_agents]
    assert names == [agent.strategy.name for agent in plain.user_agents]
    counts = strategy_counts(mixed)
    assert set(counts) == {"truthful", "shading", "learning", "pacing"} and sum(counts.values()) == 60
    assert all(abs(counts[k] - 60 * share) <= 10 for k, share in mixed.config.users.mix.items()), counts
    # without custom_mix the scenario's own users (default: 20% shade) and the utilisation rule
    own = DashboardModel("default", rng=4, share_learning=1.0, compare=False)
    assert own.config.users == base.users and "learning" not in strategy_counts(own)
    assert type(own.price_rule) is PriceRule and own.price_rule.target == pytest.approx(0.8)


def test_learning_and_tatonnement_run_equals_plain_model_run():
    """Comparing mechanisms (what-if rounds) leaves the learners, pacers and tatonnement prices alone."""
    dash = DashboardModel("default", "mohaf", rng=5, rule="tatonnement", eta=0.05, custom_settings=True, custom_mix=True,
                          share_learning=0.5, share_pacing=0.3)
    base = load("default")
    plain = MarketModel(base.replace(
        pricing=base.pricing.replace(rule="tatonnement", eta=0.05),
        users=base.users.replace(mix={"learning": 0.5, "pacing": 0.3, "truthful": 0.2}, shading_share=0.0), oracle=False,
    ), "mohaf", rng=5)
    for _ in range(3):
        dash.step()
        plain.step()
    assert dash.round_records == plain.round_records
    assert np.array_equal(dash.price, plain.price)
    assert len(dash.comparison) > 1


def test_round_option_plots_bid_to_value_and_the_price_gap(tmp_path):
    """bid/value is always plotted; the price gap when the run has the column, else a note."""
    small = tmp_path / "clearing.toml"
    small.write_text((DATA / "small.toml").read_text().replace("[users]", "[pricing]\nclearing = true\n\n[users]"))
    model = DashboardModel(str(small), "greedy", rng=1, compare=False)
    assert model.config.pricing.clearing
    for _ in range(3):
        model.step()
    records = model.round_records
    option = round_option(records, model.dimensions, model.rounds_table().columns)
    lines = {s["name"]: s for s in option["series"]}
    assert [p[1] for p in lines["bid / value"]["data"]] == pytest.approx([r["bid_to_value"] for r in records])
    assert [p[1] for p in lines["posted vs clearing"]["data"]] == pytest.approx([r["price_gap"] for r in records])
    assert [p[0] for p in lines["posted vs clearing"]["data"]] == [0, 1, 2]
    assert all(t["subtext"] == "" for t in option["title"])
    assert 0 < records[0]["bid_to_value"] < 1  # 30% of the users shade by 0.8
    # no clearing: no price-gap line, the panel says why; round 0 (no record) does not crash
    plain = DashboardModel(str(DATA / "small.toml"), "greedy", rng=1, compare=False)
    assert round_option(plain.round_records, plain.dimensions, plain.rounds_table().columns)["series"][-1]["data"] == []
    plain.step()
    for option in (round_option(plain.round_records, plain.dimensions, plain.rounds_table().columns),
                   round_option(plain.round_records)):
        names = [s["name"] for s in option["series"]]
        assert "bid / value" in names and "posted vs clearing" not in names
        notes = {t["text"]: t["subtext"] for t in option["title"]}
        assert notes["Price gap"] == ABSENT["price_gap"] and notes["Bid / value"] == ""
    assert len(option["grid"]) == 8 and round_plots_height(8) == 540 and round_plots_height(6) == 375


def test_tree_layout_and_colours_follow_the_hierarchy():
    model = DashboardModel("default", rng=1)
    for _ in range(3):
        model.step()
    graph = model.hierarchy_graph
    layout = tree_layout(graph)
    assert len(layout.names) == graph.number_of_nodes() == 1 + model.hierarchy.n_clusters + model.n_resources
    assert layout.edges.shape == (graph.number_of_edges(), 2)
    assert sorted(layout.node_of_resource.tolist()) == sorted(set(layout.node_of_resource.tolist()))
    util = node_values(model, layout, "utilisation")
    for c, node in enumerate(layout.cluster_node):
        assert util[node] == pytest.approx(model.resource_ledger.load[model.hierarchy.members(c)].mean())
    assert util[0] == pytest.approx(model.resource_ledger.load.mean())
    j = 17
    assert util[layout.node_of_resource[j]] == pytest.approx(model.resource_ledger.load[j])
    price = node_values(model, layout, "price")
    assert price[layout.node_of_resource[j]] == pytest.approx(model.price[j] / model.resource_columns["unit_cost"][j])
    # a big market is drawn with aggregated resource nodes, each the mean of its members
    agg = tree_layout(graph, max_nodes=50)
    n_resource_nodes = int((agg.kind == "resource").sum())
    assert n_resource_nodes <= 50 + model.hierarchy.n_clusters
    values = node_values(model, agg, "utilisation")
    node = agg.node_of_resource[j]
    members = np.flatnonzero(agg.node_of_resource == node)
    assert members.size > 1
    assert values[node] == pytest.approx(model.resource_ledger.load[members].mean())


def test_round_option_has_one_point_per_round():
    model = DashboardModel("default", rng=1)
    for _ in range(5):
        model.step()
    option = round_option(model.round_records)
    jain = [s for s in option["series"] if s["name"] in ("all requests", "winners only")]
    assert len(jain) == 2
    assert [p[0] for p in jain[0]["data"]] == [0, 1, 2, 3, 4]
    assert [p[1] for p in jain[1]["data"]] == pytest.approx([r["jain_winners"] for r in model.round_records])


def test_a_gpu_market_plots_every_dimension_and_compares_every_mechanism():
    model = DashboardModel("alibaba-gpu", mechanism="best_fit", rng=1)
    for _ in range(2):
        model.step()
    assert model.dimensions == ("cpu", "mem", "gpu")
    option = round_option(model.round_records, model.dimensions)
    lines = {s["name"]: s for s in option["series"]}
    for d in model.dimensions:
        assert [p[1] for p in lines[d]["data"]] == pytest.approx([r[f"utilization_{d}"] for r in model.round_records])
    assert [p[1] for p in lines["dominant shares"]["data"]] == pytest.approx(
        [r["dominant_share_jain"] for r in model.round_records])
    assert set(model.comparison.index) >= {"best_fit", "dot_product", "drf", "mohaf"}
    assert model.comparison.loc["best_fit", "n_allocated"] == model.round_records[-1]["n_allocated"]


# --- headless Solara rendering ---------------------------------------------------------
def _render(model: DashboardModel):
    reactive = solara.reactive(model)

    @solara.component
    def Root():
        with solara.AppLayout():  # without it the sidebar is not rendered
            make_page(reactive)

    _, rc = solara.render(Root(), handle_error=False)
    return reactive, rc


def _widgets(rc) -> list:
    """Every widget of the page (rc.find stops descending at its first match)."""
    import ipywidgets

    seen: dict[int, ipywidgets.Widget] = {}
    queue = list(rc.find(ipywidgets.Widget).widgets)
    while queue:
        value = queue.pop()
        if isinstance(value, ipywidgets.Widget):
            if id(value) in seen:
                continue
            seen[id(value)] = value
            queue.extend(getattr(value, k) for k in value.keys)
        elif isinstance(value, list | tuple):
            queue.extend(value)
        elif isinstance(value, dict):
            queue.extend(value.values())
    return list(seen.values())


def _texts(rc) -> str:
    """The HTML of every HTML block on the page (the summary and the mechanism table)."""
    from solara.widgets import HTML

    return "\n".join(w.unsafe_innerHTML or "" for w in _widgets(rc) if isinstance(w, HTML))


def _echarts(rc, element_id: str):
    from solara.components.echarts import EchartsWidget

    found = [w for w in _widgets(rc) if isinstance(w, EchartsWidget) and (w.attributes or {}).get("id") == element_id]
    assert len(found) == 1, element_id
    return found[0]


def test_render_step_and_reset():
    reactive, rc = _render(DashboardModel("default", "mohaf", rng=1))
    step = rc.find(ipyvuetify.Btn, children=["Step"])
    for _ in range(3):
        step.widget.click()
    model = reactive.value
    assert model.round == 3 and len(model.round_records) == 3
    assert "Round 3 of 20" in _texts(rc)
    plots = _echarts(rc, "round-plots")
    assert [p[0] for p in plots.option["series"][0]["data"]] == [0, 1, 2]
    assert not model.comparison.empty
    rc.find(ipyvuetify.Btn, children=["Reset"]).widget.click()
    fresh = reactive.value
    assert fresh is not model and fresh.round == 0 and fresh.round_records == []
    assert "Round 0 of 20" in _texts(rc)
    assert _echarts(rc, "round-plots").option["series"][0]["data"] == []
    # same settings after Reset: the same market
    assert fresh.seed == model.seed and fresh.n_resources == model.n_resources


def test_reset_rebuilds_with_changed_controls():
    reactive, rc = _render(DashboardModel())
    rc.find(ipyvuetify.Slider, label="Clusters (0 = scenario's)").widget.v_model = 6
    rc.find(ipyvuetify.Slider, label="Market size (x scenario)").widget.v_model = 0.5
    rc.find(ipyvuetify.Slider, label="Pricing step eta").widget.v_model = 0.1
    rc.find(ipyvuetify.Slider, label="Weight: cost").widget.v_model = 0.6
    rc.find(ipyvuetify.Slider, label="Seed").widget.v_model = 7
    rc.find(ipyvuetify.Select, label="Mechanism").widget.v_model = "greedy"
    rc.find(ipyvuetify.Select, label="Scenario").widget.v_model = "tight"
    assert reactive.value.hierarchy.n_clusters == 2  # nothing changes before Reset
    rc.find(ipyvuetify.Btn, children=["Reset"]).widget.click()
    model = reactive.value
    assert model.scenario_name == "tight" and model.mechanism_name == "greedy" and model.seed == 7
    assert model.hierarchy.n_clusters == 6
    assert model.n_resources == 60  # tight has 120 resources
    # the weights and the price rule apply only with their checkbox: else the scenario's
    assert model.config.utility == load("tight").utility and model.config.pricing == load("tight").pricing
    rc.find(ipyvuetify.Checkbox, label="Set the weights and the price rule below (else the scenario's)").widget.v_model = True
    rc.find(ipyvuetify.Btn, children=["Reset"]).widget.click()
    model = reactive.value
    assert model.price_rule.eta == pytest.approx(0.1)
    assert model.round_params.weights == pytest.approx((0.5, 0.25, 0.1 / 1.2, 0.2 / 1.2))  # 0.6 + 0.3 + 0.1 + 0.2 > 1
    rc.find(ipyvuetify.Btn, children=["Step"]).widget.click()
    assert model.round == 1 and model.comparison.loc["greedy", "n_allocated"] == model.metrics["n_allocated"]
    assert "tight" in _texts(rc)


def test_reset_applies_the_strategy_mix_and_price_rule():
    reactive, rc = _render(DashboardModel(compare=False))
    rc.find(ipyvuetify.Select, label="Price rule").widget.v_model = "tatonnement"
    rc.find(ipyvuetify.Slider, label="Share: learning").widget.v_model = 0.7
    rc.find(ipyvuetify.Slider, label="Share: pacing").widget.v_model = 0.6
    rc.find(ipyvuetify.Slider, label="Share: shading").widget.v_model = 0.0
    rc.find(ipyvuetify.Checkbox, label="Set the weights and the price rule below (else the scenario's)").widget.v_model = True
    rc.find(ipyvuetify.Btn, children=["Reset"]).widget.click()
    model = reactive.value
    assert isinstance(model.price_rule, Tatonnement)
    assert model.config.users == load("default").users  # the shares apply only with the checkbox
    rc.find(ipyvuetify.Checkbox, label="Set the users' strategy mix (else the scenario's)").widget.v_model = True
    rc.find(ipyvuetify.Btn, children=["Reset"]).widget.click()
    model = reactive.value
    assert model.config.users.mix == pytest.approx({"learning": 0.7 / 1.3, "pacing": 0.6 / 1.3})  # scaled to sum 1
    counts = strategy_counts(model)
    assert set(counts) == {"learning", "pacing"} and sum(counts.values()) == len(model.user_agents)
    rc.find(ipyvuetify.Btn, children=["Step"]).widget.click()
    assert f"learning {counts['learning']}" in _texts(rc) and "tatonnement pricing" in _texts(rc)
    plots = _echarts(rc, "round-plots")
    lines = {s["name"]: s["data"] for s in plots.option["series"]}
    assert lines["bid / value"] == [[0, pytest.approx(model.round_records[0]["bid_to_value"], abs=1e-6)]]
    assert "posted vs clearing" not in lines  # default has no clearing prices
    assert "height: 540px" in plots.attributes["style"]


def test_colour_toggle_switches_the_network_to_prices():
    reactive, rc = _render(DashboardModel())
    rc.find(ipyvuetify.Btn, children=["Step"]).widget.click()
    view = _echarts(rc, "hierarchy-view")
    assert view.option["visualMap"]["text"][0] == "utilisation"
    toggle = rc.find(ipyvuetify.BtnToggle).widget
    toggle.v_model = 1  # the "price" button
    view = _echarts(rc, "hierarchy-view")
    assert view.option["visualMap"]["text"][0] == "price / unit cost"
    nodes = view.option["series"][0]["data"]
    model = reactive.value
    assert len(nodes) == 1 + model.hierarchy.n_clusters + model.n_resources


# --- command line ------------------------------------------------------------------------
def test_cli_command_and_errors():
    cmd = dashboard_command.server_command("127.0.0.1", 8765)
    assert cmd[:4] == [sys.executable, "-m", "solara", "run"]
    assert Path(cmd[4]) == ROOT / "market" / "apps" / "dashboard.py"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8765"
    assert "--no-open" in cmd and "--production" in cmd
    out = subprocess.run([sys.executable, "-m", "market", "dashboard", "--help"], capture_output=True, text=True, check=True)
    assert "--host" in out.stdout and "--port" in out.stdout


def test_cli_fails_in_one_line_on_a_busy_or_bad_port(capsys):
    from market.apps.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: cannot serve on 127.0.0.1:{port}: Address already in use"]
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--port", "70000"])
    assert exc.value.code == 2 and "1..65535" in capsys.readouterr().err


# --- a real browser ----------------------------------------------------------------------
#: window sizes the layout must hold at: no panel over another, the mechanism table whole
WINDOWS = [(1400, 1000), (1920, 1080)]
#: what solara's CDN proxy logs when an asset is neither in solara-assets nor fetchable
FAILED_FETCH = re.compile(r"Could not load URL|Failed writing cache file", re.IGNORECASE)
#: every top-level card (the sidebar's and the page's panels) and the tab bar, their boxes,
#: and how far each one's content runs past its right edge
PANELS_JS = """() => {
  const top = [...document.querySelectorAll('.v-card, .v-tabs-bar')]
    .filter(e => !e.parentElement.closest('.v-card') && e.getClientRects().length);
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const label = e => e.classList.contains('v-tabs-bar') ? 'tab bar'
    : (e.className.match(/market-panel-\\w+/) || [(e.innerText || '').split('\\n')[0].slice(0, 30)])[0];
  const table = document.querySelector('#mechanism-table');
  return {
    panels: top.map(e => ({name: label(e), box: box(e), overflow: e.scrollWidth - e.clientWidth})),
    table: table && {box: box(table.querySelector('table')), hidden: table.scrollWidth - table.clientWidth,
                     card: box(table.closest('.v-card'))},
  };
}"""


def _overlap(a: list[float], b: list[float]) -> float:
    """Side of the smaller of the two overlaps (x and y) of boxes ``[left, top, right, bottom]``; <= 0: none."""
    return min(min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium; missing, the test fails (never skips): CI installs it in .ci/run."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's chromium "
                    "(apt-get install -y chromium; .ci/run installs it in CI)")
    return CHROMIUM


@pytest.fixture
def dashboard_server(tmp_path):
    """``market dashboard`` on a free loopback port, in its own process group, offline.

    Yields its URL and the file its output goes to. Its CDN is a closed loopback port,
    online or not, so any asset that solara-assets lacks is a failed fetch in that log.
    """
    port = _free_port()
    log = tmp_path / "server.log"
    env = os.environ | {"SOLARA_ASSETS_CDN": f"http://127.0.0.1:{_free_port()}/npm/"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "market", "dashboard", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"dashboard server exited with {proc.returncode}:\n{log.read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.25)
        else:
            pytest.fail("dashboard server did not open its port within 90 s")
        yield f"http://127.0.0.1:{port}/", log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_changed(locator, before: bytes, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        now = locator.screenshot()
        if now != before or time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def _check_layout(page, width: int, height: int) -> None:
    """At ``width`` x ``height``: no top-level panel over another, the mechanism table whole."""
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(300)  # the charts follow their cards (ResizeObserver)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}x{height}.png"))
    found = page.evaluate(PANELS_JS)
    panels = found["panels"]
    names = [p["name"] for p in panels]
    for name in ("tab bar", "market-panel-summary", "market-panel-hierarchy", "market-panel-rounds", "market-panel-utility"):
        assert name in names, (width, name, names)
    overlaps = [
        (a["name"], b["name"], round(_overlap(a["box"], b["box"]), 1))
        for i, a in enumerate(panels) for b in panels[i + 1 :] if _overlap(a["box"], b["box"]) > 1
    ]
    assert not overlaps, f"{width}x{height}: panels overlap (name, name, px): {overlaps}"
    for p in panels:
        assert p["overflow"] <= 1, f"{width}x{height}: {p['name']} content runs {p['overflow']} px past its card"
        assert p["box"][2] <= width + 1, f"{width}x{height}: {p['name']} runs past the window: {p['box']}"
    table = found["table"]
    assert table is not None, "no mechanism table"
    assert table["hidden"] <= 1, f"{width}x{height}: {table['hidden']} px of the mechanism table are scrolled away"
    (left, top, right, bottom), card = table["box"], table["card"]
    assert card[0] <= left and right <= card[2] and card[1] <= top and bottom <= card[3], (width, table)


def test_browser_steps_the_market(chromium, dashboard_server):
    from playwright.sync_api import expect, sync_playwright

    url, server_log = dashboard_server
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1250})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
            page.on("response", lambda r: failed.append(f"{r.url} ({r.status})") if r.status >= 400 else None)
            page.goto(url, timeout=60_000)
            step = page.get_by_role("button", name="Step")
            expect(step).to_be_visible(timeout=60_000)
            expect(page.get_by_text("Round 0 of 20")).to_be_visible(timeout=30_000)
            plots = page.locator("#round-plots")
            expect(plots.locator("canvas")).to_have_count(1, timeout=30_000)
            for control in ("Price rule", "Share: learning", "Share: pacing", "Share: shading"):
                expect(page.get_by_text(control, exact=True)).to_be_visible()
            expect(page.locator("#hierarchy-view canvas")).to_have_count(1, timeout=30_000)
            # the page and its one tab have names (Mesa's own tab reads "Page 0")
            assert page.title() == "Market allocation"
            tabs = page.get_by_role("tab")
            expect(tabs).to_have_count(1)
            tab = (tabs.first.text_content() or "").strip()
            assert tab == "Market" and not re.fullmatch(r"(?i)page \d+", tab), tab
            before = plots.screenshot()
            for k in range(1, 4):
                step.click()
                expect(page.get_by_text(f"Round {k} of 20")).to_be_visible(timeout=30_000)
            expect(page.get_by_text(re.compile(r"^Time: 3\.0$"))).to_be_visible()
            after = _wait_changed(plots, before)
            assert after != before, "the per-round plots did not change after three steps"
            expect(page.get_by_text("Mechanisms on round 2's order book", exact=False)).to_be_visible()
            expect(page.locator("#mechanism-table table").filter(has_text="second_price")).to_have_count(1)
            expect(page.locator("#mechanism-table th").filter(has_text="revenue")).to_have_count(1)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            for width, height in WINDOWS:
                _check_layout(page, width, height)
            page.get_by_role("button", name="Reset").click()
            expect(page.get_by_text("Round 0 of 20")).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    assert not [e for e in errors if "GlobalVue" in e or "is not a function" in e], errors
    fetches = [line for line in server_log.read_text().splitlines() if FAILED_FETCH.search(line)]
    assert not fetches, "the server failed to fetch assets offline:\n" + "\n".join(fetches)
    assert not failed, f"failed requests: {failed}"
