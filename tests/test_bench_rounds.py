"""``market bench --scenario``: the rounds of a scenario's own market, timed."""

from __future__ import annotations

import pytest

from market.errors import MarketInputError
from market.studies.bench import bench_rounds


def test_a_scenarios_rounds_are_timed():
    out = bench_rounds("default", "greedy", rounds=2, settings={"market.requests": 300, "horizon": 20})
    assert out["rounds"] == 2 and out["round_s"] > 0 and out["round_s_max"] >= out["round_s"]
    assert out["requests"] == 300
    # Contract 5's keys, as in the synthetic bench: default has 100 resources in 2 clusters
    assert (out["resources"], out["clusters"], out["dimensions"]) == (100, 2, 2) and out["candidates"] >= 1


@pytest.mark.parametrize("settings", [{"users.shading_share": 0.5}, {"market.requests": -1}, {"horizon": 0}])
def test_bad_settings_are_one_line(settings):
    with pytest.raises(MarketInputError) as err:
        bench_rounds("default", "greedy", rounds=1, settings=settings)
    assert "\n" not in str(err.value)
