"""Build a scenario's market for one seed, whatever its source."""

from __future__ import annotations

import numpy as np
import pandas as pd

from market.errors import MarketInputError
from scenarios import synthetic
from scenarios.config import Scenario
from scenarios.tables import MarketData, read_table, validate


def build_market(scenario: Scenario, seed: int) -> MarketData:
    """The market a run of ``scenario`` with ``seed`` sees (tabular format).

    The market depends on the seed only (never on the mechanism), so every mechanism
    faces the same requests and resources; and it spans the scenario's ``horizon``, never
    the rounds a run plays, so a shorter run plays the first rounds of the same market.

    Raises:
        MarketInputError: on bad tables or source parameters.
    """
    market = _build(scenario, seed)
    if "dimensions" in scenario.market and market.dimensions != scenario.dimensions:
        raise MarketInputError(
            f"key 'market.dimensions': a {scenario.market['source']} market has dimensions "
            f"{list(market.dimensions)}, not {list(scenario.dimensions)}", source=scenario.path)
    return market


def _build(scenario: Scenario, seed: int) -> MarketData:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4D41524B]))  # "MARK"
    source = scenario.market["source"]
    dims = scenario.dimensions
    if source == "synthetic":
        try:
            return synthetic.generate(scenario.source_params(), scenario.horizon, rng, dims)
        except MarketInputError as exc:
            raise MarketInputError(str(exc), source=scenario.path) from None
    if source == "tabular":
        req = validate(read_table(scenario.market["requests"]), "requests", scenario.market["requests"], dims)
        res = validate(read_table(scenario.market["resources"]), "resources", scenario.market["resources"], dims)
        pmax = float(scenario.utility.priority_max)
        return MarketData(req, res, priority_max=max(pmax, float(req["priority"].max()) if len(req) else 1.0),
                          dimensions=dims)
    if source == "google2011":
        from scenarios import trace_markets

        return trace_markets.build(scenario, rng)
    if source == "alibaba_gpu":
        from scenarios import alibaba_gpu

        return alibaba_gpu.build(scenario, rng)
    if source == "azure_llm":
        from scenarios import azure_llm

        return azure_llm.build(scenario, rng)
    raise MarketInputError(f"unknown market source {source!r}", source=scenario.path)


def late_requests(market: MarketData, scenario: Scenario) -> pd.DataFrame:
    """Requests that arrive after both the market's horizon and the rounds played.

    They lie outside the scenario's market and no run reaches them (ignored, with a
    warning). Requests beyond the rounds played but within the horizon are not late: a
    shorter run simply does not reach them.
    """
    last = max(scenario.rounds, scenario.horizon)
    return market.requests[market.requests["round"] >= last]


def market_notes(scenario: Scenario) -> dict:
    """What building the scenario's market left out, for the run's manifest.

    ``{"trace_drops": counts}`` for a Google 2011 ``real`` market (records dropped or
    read by a documented rule: :func:`scenarios.trace_markets.dropped_records`) or an
    Alibaba GPU market (:func:`scenarios.alibaba_gpu.dropped_records`, with the pods whose
    GPU models are not among the sampled nodes), else ``{}``.
    """
    if scenario.market.get("source") == "alibaba_gpu":
        from scenarios import alibaba_gpu

        return {"trace_drops": alibaba_gpu.dropped_records(scenario)}
    if scenario.market.get("source") != "google2011":
        return {}
    from scenarios import trace_markets

    drops = trace_markets.dropped_records(scenario)
    return {"trace_drops": drops} if drops else {}
