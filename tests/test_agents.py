"""The agents act: users bid through their strategies every round, planners clear their
sub-markets, resources settle; the round leaves one record that every reader uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from agents import Shading
from agents.strategies import UserHistory
from market.core.model import METRICS, MarketModel, dimension_metrics
from market.errors import MarketInputError
from market.studies.bench import bench_scenario
from scenarios.config import load, parse
from scenarios.synthetic import generate
from tests.conftest import DATA


def _model(mechanism: str, seed: int = 1) -> MarketModel:
    return MarketModel(load(DATA / "small.toml").replace(oracle=False), mechanism=mechanism, rng=seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_shading_assigned_after_round_one_lowers_first_price_revenue(seed):
    control, shaded = _model("first_price", seed), _model("first_price", seed)
    control.step()
    shaded.step()
    assert control.metrics == shaded.metrics
    for user in shaded.user_agents:
        user.strategy = Shading(0.5)
    control.run_for(4)
    shaded.run_for(4)
    revenue = [m.rounds_table().set_index("round")["revenue"] for m in (control, shaded)]
    assert revenue[0].loc[0] == revenue[1].loc[0]
    later = slice(1, None)
    # first price charges the bid: halving every bid lowers what the round collects
    assert (revenue[1].loc[later] < revenue[0].loc[later]).all()
    assert revenue[1].loc[later].sum() < 0.75 * revenue[0].loc[later].sum()


@dataclass(frozen=True)
class WinnersShade:
    """Shades to 0.5 once a user has won anything (reads its history)."""

    name: str = "winners-shade"

    def bid_scale(self, history: UserHistory) -> np.ndarray:
        return np.where(history.wins > 0, 0.5, 1.0)


def test_strategies_see_their_users_history_every_round():
    model = _model("first_price")
    strategy = WinnersShade()
    for user in model.user_agents:
        user.strategy = strategy
    model.step()
    assert np.all(model.record.book.bid_scale == 1.0)  # nobody had won anything yet
    winners = {a.index for a in model.user_agents if a.wins > 0}
    assert winners
    model.step()
    book = model.record.book
    expected = np.where(np.isin(book.user, list(winners)), 0.5, 1.0)
    assert np.array_equal(book.bid_scale, expected)
    # each user's history is its own ledger row
    agent = next(a for a in model.user_agents if a.index in winners)
    assert agent.history.wins[0] == agent.wins and agent.history.rounds == 2


def test_a_strategy_returning_a_bad_scale_is_named():
    @dataclass(frozen=True)
    class Broken:
        name: str = "broken"

        def bid_scale(self, history: UserHistory) -> float:
            return float("nan")

    model = _model("mohaf")
    model.user_agents[3].strategy = Broken()
    user_id = model.user_agents[3].user_id
    user_id = user_id.item() if isinstance(user_id, np.generic) else user_id  # as the user wrote it
    with pytest.raises(MarketInputError, match=rf"^user {user_id!r}: strategy 'broken' returned bid scale nan "):
        model.step()


@pytest.mark.parametrize(("answer", "got"), [
    (lambda n: np.ones(n + 1), r"an array of shape \(\d+,\)"), (lambda n: "high", "something that is not numbers"),
])
def test_a_strategy_answering_for_the_wrong_users_is_named(answer, got):
    class Wrong:
        name = "wrong"

        def bid_scale(self, history: UserHistory) -> np.ndarray:
            return answer(history.users.size)

    model = _model("mohaf")
    model.user_agents[3].strategy = Wrong()
    with pytest.raises(MarketInputError, match=rf"^strategy 'wrong': bid_scale must return one number or one per user \(1\), got {got}$"):
        model.step()


def test_a_plain_dataclass_strategy_acts_as_its_own_group():
    """Not frozen, so not hashable: grouped by identity (it raised TypeError: unhashable type)."""

    @dataclass
    class Half:
        name: str = "half"

        def bid_scale(self, history: UserHistory) -> float:
            return 0.5

    model = _model("mohaf")
    a, b = Half(), Half()
    model.user_agents[1].strategy = model.user_agents[2].strategy = a
    model.user_agents[3].strategy = b
    model.step()
    assert model.record.bid_scale[[1, 2, 3]].tolist() == [0.5, 0.5, 0.5]
    assert model.record.bid_scale[0] == 1.0


def test_planners_clear_the_round_and_resources_settle_it():
    model = _model("mohaf")
    model.run_for(3)
    record = model.record
    served = int((record.outcome.resource >= 0).sum())
    # every served request was served by a cluster planner or the root's spill-over, or
    # added by the root's refinement of the round (MOHAF refines)
    assert sum(p.served for p in model.planners) + model.root.served + model.root.refined == served
    assert model.root.served == record.metrics["spilled"]
    assert sum(p.cleared for p in model.planners) == record.book.size
    # the resources' ledger holds what the round's allocations paid
    alloc = model.allocations_table()
    assert sum(a.revenue for a in model.resource_agents) == pytest.approx(alloc["payment"].sum())
    assert np.array_equal([a.load for a in model.resource_agents], model.resource_ledger.load)


def test_preview_plays_the_same_round_without_touching_the_model():
    model = _model("mohaf")
    model.run_for(2)
    before = (model.round, model.price.copy(), model.status.copy(), model.resource_ledger.used.copy())
    preview = model.preview("mohaf")
    assert (model.round, len(model.rounds_table())) == (2, 2)
    assert np.array_equal(model.price, before[1]) and np.array_equal(model.status, before[2])
    assert np.array_equal(model.resource_ledger.used, before[3])
    model.step()
    # the preview is the round step() then plays (same pipeline; mohaf draws nothing at random)
    assert preview.metrics == model.metrics
    assert np.array_equal(preview.outcome.resource, model.record.outcome.resource)


def test_the_datacollector_is_the_source_of_rounds():
    model = _model("greedy")
    model.run_for(3)
    table = model.datacollector.get_table_dataframe("rounds")
    dims = dimension_metrics(model.dimensions)
    assert dims == ["utilization_cpu", "utilization_mem", "dominant_share_jain", "envy_share"]
    assert list(table.columns) == ["mechanism", "seed", "round", *METRICS, *dims]
    assert table["round"].tolist() == [0, 1, 2]
    assert table.iloc[-1][[*METRICS, *dims]].to_dict() == pytest.approx(model.metrics)
    assert model.record.round == 2 and model.record.metrics is model.metrics


@pytest.mark.parametrize("mechanism", ["mohaf", "greedy"])
def test_rounds_on_the_kept_candidate_buffers_are_those_on_new_arrays(mechanism):
    """The model's workspace lends the same buffers every round; no round sees another's tables."""
    kept, fresh = _model(mechanism), _model(mechanism)
    fresh.workspace = None  # clear_round then allocates every table anew
    kept.run_for(2)
    fresh.run_for(2)
    assert kept.workspace.nbytes > 0
    kept.step()
    fresh.step()
    kept.run_for(kept.config.rounds - 3)
    fresh.run_for(fresh.config.rounds - 3)
    assert kept.rounds_table().equals(fresh.rounds_table())
    assert kept.metrics == fresh.metrics
    assert kept.workspace.nbytes == 0  # the run's last round played: the buffers are let go
    kept.step()  # a round past the end lends them anew, and lets them go again
    fresh.step()
    assert kept.rounds_table().equals(fresh.rounds_table()) and kept.workspace.nbytes == 0


def test_a_round_of_the_same_book_writes_the_same_buffers_again():
    # market bench's market: every request in the book from round 0
    scenario = parse(bench_scenario(400, 100, "mohaf", 3, 0, 0, None), "bench", Path.cwd())
    source = {key: value for key, value in scenario.source_params().items() if key != "source"}
    market = generate(source, 1, np.random.default_rng(0), scenario.dimensions)
    model = MarketModel(scenario, mechanism="mohaf", rng=0, market=market)
    model.step()
    k = model.round_params.candidates
    lent = model.workspace.array("primary.utility", 1, k, float)
    model.reopen()  # every request back in the book (as market bench does): the same rows again
    model.step()
    assert np.shares_memory(lent, model.workspace.array("primary.utility", 1, k, float))
