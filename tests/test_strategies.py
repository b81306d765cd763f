"""Bidding strategies as plug-ins: the registry, ``[users] mix`` validation, the EXP3
learner over shading factors, adaptive pacing of a run budget, and what-if safety (their
state lives in the copied user ledger, never in the shared strategy objects)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from agents.bandit import uniforms
from agents.strategies import (
    USER_SALT,
    Learning,
    Pacing,
    Shading,
    Truthful,
    UserHistory,
    assign_strategies,
    available_strategies,
    create_strategy,
    register_strategy,
    strategy_class,
    strategy_mix,
    unregister_strategy,
)
from agents.user import (
    UserLedger,
    affordable,
    bid_scales,
    exhausted_users,
    remaining_budgets,
    update_strategies,
)
from market.errors import MarketInputError


def _agents(strategies):
    """Stand-ins for UserAgents (what bid_scales / update_strategies read: index, strategy)."""
    return [SimpleNamespace(index=u, strategy=s, user_id=f"u{u}") for u, s in enumerate(strategies)]


def _settle(ledger, served, payment, value, budget):
    n = ledger.wins.size
    ledger.settle(np.arange(n), np.asarray(served, dtype=bool), np.asarray(payment, dtype=float), np.zeros(n),
                  ledger.memory, value=np.asarray(value, dtype=float), budget=np.asarray(budget, dtype=float))


# --- registry and mix ------------------------------------------------------------------

def test_registry_has_the_built_ins_and_takes_plug_ins():
    assert {"truthful", "shading", "learning", "pacing"} <= set(available_strategies())
    assert strategy_class("shading") is Shading
    assert create_strategy("shading", factor=0.6) == Shading(0.6)
    assert create_strategy("learning", grid=[0.5, 1.0], eta=1.0).grid == (0.5, 1.0)

    @register_strategy("always-half")
    @dataclass(frozen=True)
    class Half:
        name: str = "always-half"

        def bid_scale(self, history: UserHistory) -> float:
            return 0.5

    try:
        assert "always-half" in available_strategies()
        assert strategy_mix({"always-half": 0.25, "truthful": 0.75}) == [("always-half", 0.25), ("truthful", 0.75)]
    finally:
        unregister_strategy("always-half")
    assert "always-half" not in available_strategies()


@pytest.mark.parametrize(("mix", "params", "key"), [
    ({"truthful": 0.5, "bogus": 0.5}, {}, "users.mix.bogus: unknown strategy 'bogus'"),
    ({"truthful": 0.5, "shading": 0.4}, {}, "users.mix: shares must sum to 1, got 0.9"),
    ({"truthful": 1.2, "shading": -0.2}, {}, "users.mix.shading: share must be a finite number >= 0"),
    ({"truthful": 0.5, "shading": float("nan")}, {}, "users.mix.shading: share must be a finite number"),
    ({"pacing": 1.0}, {"pacing": {"budget_share": -0.1}}, "users.pacing_budget_share: budget_share must be"),
    ({"pacing": 1.0}, {"pacing": {"eta": 0.0}}, "users.pacing_eta: eta must be in (0, 10]"),
    ({"learning": 1.0}, {"learning": {"eta": 11}}, "users.learning_eta: eta must be in (0, 10]"),
    ({"learning": 1.0}, {"learning": {"grid": [0.5, 1.6]}}, "users.learning_grid: grid values must be in (0, 1.5]"),
    ({"learning": 1.0}, {"learning": {"grid": [0.9, 0.5]}}, "users.learning_grid: grid must be sorted"),
    ({"learning": 1.0}, {"learning": {"grid": []}}, "users.learning_grid: grid must not be empty"),
    ({"learning": 1.0}, {"learning": {"speed": 2}}, "users.mix.learning: bad parameters"),
    ({}, {}, "users.mix: must be a non-empty table"),
])
def test_bad_mix_or_params_is_one_line_naming_the_key(mix, params, key):
    with pytest.raises(MarketInputError) as err:
        strategy_mix(mix, params, source="s.toml")
    text = str(err.value)
    assert text.startswith(f"s.toml: {key}"), text
    assert "\n" not in text


def test_mix_orders_truthful_last_and_reproduces_the_old_shading_share_draw():
    mix = strategy_mix({"truthful": 0.7, "shading": 0.3}, {"shading": {"factor": 0.8}})
    assert mix == [("shading", 0.3), ("truthful", 0.7)]
    assigned = assign_strategies(mix, {"shading": {"factor": 0.8}}, 500, np.random.default_rng(7))
    old = np.random.default_rng(7).random(500) < 0.3  # the model's shading_share rule
    assert [isinstance(s, Shading) for s in assigned] == old.tolist()
    assert all(s == Truthful() for s, o in zip(assigned, old, strict=True) if not o)
    four = strategy_mix({"truthful": 0.25, "shading": 0.25, "learning": 0.25, "pacing": 0.25})
    names = [s.name for s in assign_strategies(four, {}, 4000, np.random.default_rng(1))]
    counts = {n: names.count(n) for n in ("truthful", "shading", "learning", "pacing")}
    assert all(900 < c < 1100 for c in counts.values()), counts


# --- settlement feeds the strategies ---------------------------------------------------

def test_settle_books_value_and_surplus_per_user():
    ledger = UserLedger.empty(2)
    user = np.array([0, 0, 1, 1])
    served = np.array([True, True, False, True])
    payment = np.array([3.0, 1.0, 0.0, 2.0])
    value = np.array([8.0, 2.0, 5.0, 1.0])  # the unserved request's value is ignored
    budget = np.array([10.0, 4.0, 5.0, 2.0])
    ledger.settle(user, served, payment, np.zeros(4), np.zeros(2), value=value, budget=budget)
    assert ledger.last_requests.tolist() == [2, 2]
    assert ledger.last_value.tolist() == [10.0, 1.0]
    assert ledger.last_surplus.tolist() == [6.0, -1.0]
    assert ledger.last_relative_surplus == pytest.approx([0.5 + 0.25, -0.5])
    plain = UserLedger.empty(2)
    plain.settle(user, served, payment, np.zeros(4), np.zeros(2))  # old call: surplus fields stay 0
    assert plain.last_surplus.tolist() == [0.0, 0.0] and plain.last_requests.tolist() == [2, 2]


# --- the learner -----------------------------------------------------------------------

def test_exp3_log_weights_after_two_hand_computed_updates():
    learner = Learning(grid=(0.5, 1.0), eta=0.5, gamma=0.0, seed=0)
    ledger = UserLedger.empty(1)
    agents = _agents([learner])
    # round 0: uniform p = (0.5, 0.5); the draw is 0.609 -> factor 1.0 (index 1)
    assert uniforms(0, 0, np.array([0]), USER_SALT)[0] == pytest.approx(0.60896169)
    assert bid_scales(agents, ledger).tolist() == [1.0]
    # served: value 8, paid 4, budget 10 -> reward x = 0.4
    _settle(ledger, [True], [4.0], [8.0], [10.0])
    update_strategies(agents, ledger)
    # log_w[1] += eta * x / p = 0.5 * 0.4 / 0.5 = 0.4, then shifted so the largest is 0
    assert ledger.strategy_state[learner.state_key][0] == pytest.approx([-0.4, 0.0])
    # round 1: p = softmax(-0.4, 0) = (0.401312, 0.598688); the draw 0.410 -> factor 1.0 again
    p1 = 1.0 / (1.0 + math.exp(-0.4))
    assert learner.probabilities(ledger.history(np.array([0])))[0] == pytest.approx([1 - p1, p1])
    assert uniforms(0, 1, np.array([0]), USER_SALT)[0] == pytest.approx(0.41000567)
    assert bid_scales(agents, ledger).tolist() == [1.0]
    # served: value 6, paid 5, budget 10 -> x = 0.1; log_w[1] += 0.5 * 0.1 / 0.598688 = 0.083516
    _settle(ledger, [True], [5.0], [6.0], [10.0])
    update_strategies(agents, ledger)
    assert ledger.strategy_state[learner.state_key][0] == pytest.approx([-0.483516002301782, 0.0])
    # a loss (payment above value) pushes the played factor down: x = -0.2 at p = 0.618
    _settle(ledger, [True], [6.0], [4.0], [10.0])
    k = int(learner.arm(ledger.history(np.array([0])), 2)[0])
    p = learner.probabilities(ledger.history(np.array([0])))[0]
    assert (k, p[0]) == (0, pytest.approx(1 - 1 / (1 + math.exp(-0.483516002301782))))  # the round-2 draw is below p[0] = 0.381422
    update_strategies(agents, ledger)
    # log_w[0] = -0.483516 + 0.5 * (-0.2) / 0.381422 = -0.745693
    assert ledger.strategy_state[learner.state_key][0] == pytest.approx([-0.483516002301782 - 0.1 / p[0], 0.0])
    assert ledger.strategy_state[learner.state_key][0][0] == pytest.approx(-0.745693, abs=1e-6)


def test_a_user_without_requests_learns_nothing():
    learner = Learning(grid=(0.5, 1.0))
    ledger = UserLedger.empty(2)
    ledger.settle(np.array([1]), np.array([True]), np.array([1.0]), np.zeros(1), np.zeros(2),
                  value=np.array([2.0]), budget=np.array([2.0]))
    update_strategies(_agents([learner, learner]), ledger)
    weights = ledger.strategy_state[learner.state_key]
    assert weights[0].tolist() == [0.0, 0.0]
    assert weights[1].tolist() != [0.0, 0.0]


def test_learner_converges_to_the_best_factor_under_first_price():
    """Surplus (1 - s) * win(s), win probability increasing in s: 0.7 is the best factor.

    win(s) = 0.95 for s >= 0.7, else 0.1 * s, so the expected surplus per unit of value is
    0.5: 0.025, 0.6: 0.024, 0.7: 0.285, 0.8: 0.19, 0.9: 0.095, 1.0: 0.
    """
    grid = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    learner = Learning(grid=grid, gamma=0.05, seed=3)  # eta 0.2
    n_users, rounds = 200, 400
    agents = _agents([learner] * n_users)
    ledger = UserLedger.empty(n_users)
    rng = np.random.default_rng(11)
    played = []
    for _ in range(rounds):
        s = bid_scales(agents, ledger)
        win = rng.random(n_users) < np.where(s >= 0.7 - 1e-9, 0.95, 0.1 * s)
        _settle(ledger, win, np.where(win, s, 0.0), np.where(win, 1.0, 0.0), np.ones(n_users))  # first price
        update_strategies(agents, ledger)
        played.append(s)
    p = learner.probabilities(ledger.history(np.arange(n_users)))
    assert p.mean(axis=0).argmax() == grid.index(0.7)
    assert p[:, grid.index(0.7)].mean() > 0.8
    assert np.mean(p.argmax(axis=1) == grid.index(0.7)) > 0.9
    late = np.concatenate(played[-50:])
    assert np.mean(np.isclose(late, 0.7)) > 0.8
    early = np.concatenate(played[:10])
    assert np.mean(np.isclose(early, 0.7)) < 0.3


def test_learner_is_deterministic_per_seed_and_asking_changes_nothing():
    learner = Learning(seed=5)
    ledger = UserLedger.empty(50)
    agents = _agents([learner] * 50)
    first = bid_scales(agents, ledger)
    assert np.array_equal(first, bid_scales(agents, ledger))  # asking twice: same answer, no state
    assert ledger.strategy_state == {}
    other = bid_scales(_agents([Learning(seed=6)] * 50), ledger)
    assert not np.array_equal(first, other)
    assert set(first.tolist()) <= set(learner.grid)


# --- pacing ----------------------------------------------------------------------------

def test_pacing_mu_rises_when_overspending_and_falls_when_underspending():
    pacer = Pacing(budget_share=0.5, eta=0.1, rounds=10, target="fixed")
    agents = _agents([pacer, pacer])
    ledger = UserLedger.empty(2, budget_total=np.array([100.0, 100.0]))  # run budget 50, target 5 a round
    assert bid_scales(agents, ledger).tolist() == [1.0, 1.0]
    _settle(ledger, [True, False], [10.0, 0.0], [10.0, 0.0], [10.0, 10.0])
    update_strategies(agents, ledger)
    mu = ledger.strategy_state["pacing.mu"]
    # user 0: 0 - 0.1 * (5 - 10) / 5 = 0.1; user 1 underspent but mu >= 0
    assert mu.tolist() == pytest.approx([0.1, 0.0])
    _settle(ledger, [True, True], [10.0, 2.0], [10.0, 2.0], [10.0, 10.0])
    update_strategies(agents, ledger)
    assert ledger.strategy_state["pacing.mu"].tolist() == pytest.approx([0.2, 0.0])
    assert bid_scales(agents, ledger) == pytest.approx([1 / 1.2, 1.0])
    _settle(ledger, [False, False], [0.0, 0.0], [0.0, 0.0], [10.0, 10.0])  # nothing spent: 0.2 - 0.1 * 5 / 5
    update_strategies(agents, ledger)
    assert ledger.strategy_state["pacing.mu"].tolist() == pytest.approx([0.1, 0.0])
    assert remaining_budgets(agents, ledger).tolist() == pytest.approx([30.0, 48.0])


def test_pacing_re_solves_the_target_rate_from_what_is_left():
    pacer = Pacing(budget_share=0.5, eta=0.1, rounds=10)  # target = "remaining"
    agents = _agents([pacer, pacer])
    ledger = UserLedger.empty(2, budget_total=np.array([100.0, 100.0]))  # run budget 50
    _settle(ledger, [True, False], [10.0, 0.0], [10.0, 0.0], [10.0, 10.0])
    update_strategies(agents, ledger)  # rho_0 = 50 / 10 = 5: user 0 as with a fixed rate
    assert ledger.strategy_state["pacing.mu"].tolist() == pytest.approx([0.1, 0.0])
    _settle(ledger, [True, True], [10.0, 2.0], [10.0, 2.0], [10.0, 10.0])
    update_strategies(agents, ledger)  # user 0: rho_1 = 40 / 9; 0.1 - 0.1 * (40/9 - 10) / (40/9) = 0.225
    assert ledger.strategy_state["pacing.mu"].tolist() == pytest.approx([0.225, 0.0])
    _settle(ledger, [False, False], [0.0, 0.0], [0.0, 0.0], [10.0, 10.0])
    update_strategies(agents, ledger)  # user 0: rho_2 = 30 / 8, nothing spent: 0.225 - 0.1
    assert ledger.strategy_state["pacing.mu"].tolist() == pytest.approx([0.125, 0.0])
    with pytest.raises(ValueError, match="target"):
        Pacing(target="soon")


def test_pacing_needs_the_run_budgets():
    with pytest.raises(ValueError, match="budget_total"):
        bid_scales(_agents([Pacing()]), UserLedger.empty(1))


def test_affordable_keeps_the_requests_that_fit_first_come_first_served():
    user = np.array([0, 1, 0, 0, 1, 2, 0, 1])
    cap = np.array([4.0, 1.0, 2.0, 3.0, 5.0, 100.0, 1.0, 0.5])
    remaining = np.array([7.0, 0.5, np.inf])
    # user 0: 4, 4+2 = 6 fit, +3 does not (skipped), +1 = 7 fits; user 1: 1 and 5 exceed
    # 0.5, the last 0.5 fits; user 2 has no limit
    assert affordable(user, cap, remaining).tolist() == [True, False, True, False, False, True, True, True]
    assert affordable(np.zeros(0, dtype=np.int64), np.zeros(0), remaining).tolist() == []


def test_paced_users_never_spend_beyond_their_run_budget():
    """A posted price charges its price whatever the bid: only dropping requests keeps the budget."""
    rounds, n_users, per_user = 60, 30, 4
    pacer = Pacing(budget_share=0.3, eta=0.2, rounds=rounds)
    agents = _agents([pacer] * (n_users - 5) + [Truthful()] * 5)
    rng = np.random.default_rng(2)
    budgets = rng.uniform(5, 15, size=(rounds, n_users, per_user))
    total = budgets.sum(axis=(0, 2))
    ledger = UserLedger.empty(n_users, budget_total=total)
    run_budget = np.where(np.arange(n_users) < n_users - 5, 0.3 * total, np.inf)
    user = np.repeat(np.arange(n_users), per_user)
    dropped = 0
    for t in range(rounds):
        budget = budgets[t].ravel()
        keep = affordable(user, budget, remaining_budgets(agents, ledger))
        dropped += int((~keep).sum())
        scale = bid_scales(agents, ledger)[user]
        value = budget * rng.uniform(0.5, 1.0, size=budget.size)
        price = 0.6 * budget  # posted price <= budget
        served = keep & (scale * value >= 0.5 * budget)
        _settle_rows(ledger, user, served, np.where(served, price, 0.0), value, budget)
        update_strategies(agents, ledger)
        assert np.all(ledger.spend <= run_budget * (1 + 1e-12))
    paced = slice(0, n_users - 5)
    assert dropped > 0
    assert np.all(ledger.spend[paced] > 0.5 * run_budget[paced])  # it does spend, paced
    assert exhausted_users(agents, ledger)[paced].sum() >= 1 or np.all(ledger.spend[paced] <= run_budget[paced])
    assert bid_scales(agents, ledger)[exhausted_users(agents, ledger)].max(initial=1e-9) == 1e-9


def _settle_rows(ledger, user, served, payment, value, budget):
    ledger.settle(user, served, payment, np.zeros(user.size), ledger.memory, value=value, budget=budget)


# --- what-if safety --------------------------------------------------------------------

def test_updating_a_copy_leaves_the_original_ledger_unchanged():
    learner, pacer = Learning(seed=1), Pacing(rounds=5)
    agents = _agents([learner, pacer, learner])
    ledger = UserLedger.empty(3, budget_total=np.array([10.0, 10.0, 10.0]))
    _settle(ledger, [True, True, False], [1.0, 3.0, 0.0], [2.0, 4.0, 0.0], [2.0, 4.0, 2.0])
    update_strategies(agents, ledger)
    before = {k: v.copy() for k, v in ledger.strategy_state.items()}
    spend, scales = ledger.spend.copy(), bid_scales(agents, ledger)
    what_if = ledger.copy()
    _settle(what_if, [True, True, True], [1.0, 2.0, 1.0], [2.0, 2.0, 2.0], [2.0, 4.0, 2.0])
    update_strategies(agents, what_if)
    assert set(ledger.strategy_state) == set(before)
    for key, value in before.items():
        assert np.array_equal(ledger.strategy_state[key], value), key
        assert not np.array_equal(what_if.strategy_state[key], value), key
    assert np.array_equal(ledger.spend, spend) and ledger.rounds == 1
    assert np.array_equal(bid_scales(agents, ledger), scales)
    assert ledger.budget_total is not what_if.budget_total


# --- through the model ---------------------------------------------------------------------


def _mixed(mix: dict[str, float], rounds: int = 8):
    from scenarios.config import load

    sc = load("default")
    return sc.replace(oracle=False, rounds=rounds, users=sc.users.replace(shading_share=0.0, mix=mix))


def test_a_mixed_population_plays_reproducibly_and_pacers_keep_their_budgets():
    from market.core.model import MarketModel

    sc = _mixed({"truthful": 0.25, "learning": 0.5, "pacing": 0.25})
    runs = []
    for _ in range(2):
        model = MarketModel(sc, "first_price", 3)
        names = {a.strategy.name for a in model.user_agents}
        assert names == {"truthful", "learning", "pacing"}
        for _ in range(8):
            before = {k: v.copy() for k, v in model.user_ledger.strategy_state.items()}
            model.preview("greedy")  # a what-if round leaves the learners alone
            assert all(np.array_equal(before[k], model.user_ledger.strategy_state[k]) for k in before)
            model.step()
        runs.append(model.rounds_table())
        pacers = np.array([a.index for a in model.user_agents if a.strategy.name == "pacing"])
        budget = 0.5 * model.user_budget[pacers]
        assert (model.user_ledger.spend[pacers] <= budget * (1 + 1e-9) + 1e-9).all()
    assert runs[0].equals(runs[1])


def test_an_unknown_strategy_in_the_mix_is_one_line():
    from market.core.model import MarketModel
    from market.errors import MarketInputError

    with pytest.raises(MarketInputError, match=r"users\.mix\.bogus") as err:
        MarketModel(_mixed({"truthful": 0.5, "bogus": 0.5}), "greedy", 1)
    assert "\n" not in str(err.value)


def test_bid_to_value_is_the_scale_users_bid_at():
    from market.core.model import MarketModel
    from scenarios.config import load

    sc = load("default").replace(oracle=False, rounds=3)
    for share, expect in ((0.0, 1.0), (1.0, 0.8)):  # b_ij <= 1: min(scale, 1 / b) = scale
        model = MarketModel(sc.replace(users=sc.users.replace(shading_share=share, shading_factor=0.8)), "first_price", 1)
        for _ in range(3):
            model.step()
        assert model.rounds_table()["bid_to_value"].to_numpy() == pytest.approx(expect)


# --- a plug-in strategy from its own package: entry point and [users.params.<name>] ---------

WIN_SHY = '''
from dataclasses import dataclass

import numpy as np

from agents.strategies import StrategyParamError


@dataclass(frozen=True)
class WinShy:
    """Bid the true value until a user has won `wins` requests, then `factor` of it."""

    wins: int = 3
    factor: float = 0.7
    name: str = "win_shy"

    def __post_init__(self):
        if not 0 < self.factor <= 1.5:
            raise StrategyParamError("factor", f"must be in (0, 1.5], got {self.factor!r}")

    def bid_scale(self, history):
        return np.where(history.wins >= self.wins, self.factor, 1.0)
'''


@pytest.fixture
def win_shy_package(tmp_path):
    """A distribution whose entry point (group ``market.strategies``) names ``win_shy``; gone afterwards."""
    from tests.conftest import installed_distribution

    try:
        with installed_distribution(tmp_path, "win_shy_pkg", WIN_SHY, "[market.strategies]\nwin_shy = win_shy_pkg:WinShy\n"):
            yield tmp_path
    finally:
        unregister_strategy("win_shy")


SHY_SCENARIO = """
name = "shy"
rounds = 4
seeds = [1]
mechanisms = ["first_price"]
[market]
source = "synthetic"
resources = 10
users = 20
requests = 120
[users]
mix = { truthful = 0.5, win_shy = 0.5 }
[users.params.win_shy]
wins = 1
factor = FACTOR
"""


def test_a_plug_in_strategy_from_an_entry_point_with_its_scenario_parameters(win_shy_package, tmp_path, capsys):
    """The README's recipe as a package: `market run` finds it and builds it with [users.params.win_shy]."""
    import pandas as pd

    from market.apps.cli import main
    from market.core.model import MarketModel
    from scenarios.config import load

    assert "win_shy" in available_strategies()
    path = tmp_path / "shy.toml"
    path.write_text(SHY_SCENARIO.replace("FACTOR", "0.5"))
    model = MarketModel(load(str(path)), "first_price", 1)
    shy = [a.strategy for a in model.user_agents if a.strategy.name == "win_shy"]
    assert shy and all(s.factor == 0.5 and s.wins == 1 for s in shy)
    assert load(str(path)).to_dict()["users"]["params"] == {"win_shy": {"wins": 1, "factor": 0.5}}  # the manifest's
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0, capsys.readouterr().err
    rounds = pd.read_parquet(tmp_path / "run" / "rounds.parquet")
    assert rounds["bid_to_value"].iloc[-1] < 1.0  # users who have won bid half their value
    # its parameters refused by the class, or given for a built-in strategy: one line naming the key
    path.write_text(SHY_SCENARIO.replace("FACTOR", "2.0"))
    assert main(["run", str(path), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {path}: users.params.win_shy.factor: factor must be in (0, 1.5], got 2.0\n"
    path.write_text(SHY_SCENARIO.replace("FACTOR", "0.5").replace("wins = 1", "speed = 1"))
    assert main(["run", str(path), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}: users.params.win_shy: bad parameters")
    path.write_text(SHY_SCENARIO.replace("FACTOR", "0.5").replace("[users.params.win_shy]", "[users.params.win_shi]"))
    assert main(["run", str(path), "--out", str(tmp_path / "bad"), "--quiet"]) == 2  # a typo: not left at defaults
    assert capsys.readouterr().err == (f"error: {path}: key 'users.params.win_shi': no strategy 'win_shi' in "
                                       "users.mix (truthful, win_shy)\n")
    path.write_text(SHY_SCENARIO.replace("FACTOR", "0.5") + "[users.params.shading]\nfactor = 0.5\n")
    assert main(["run", str(path), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "users.params.shading" in err and "users.shading_<param>" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()
