"""Precedence (``after``, ``after_lag``) and deadlines (README, contract 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from market.core.model import MarketModel
from market.errors import MarketInputError
from scenarios.config import parse
from scenarios.tables import MarketData, validate


def _resources(m: int = 1, cpu: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({
        "resource_id": [f"gpu-{j}" for j in range(m)], "cpu": np.full(m, cpu), "mem": np.full(m, cpu),
        "unit_cost": np.full(m, 0.1), "reliability": 1.0, "availability": 1.0, "energy_efficiency": 1.0,
        "x": 0.0, "y": 0.0,
    })


def _requests(rows: list[dict]) -> pd.DataFrame:
    base = {"user_id": "u", "cpu": 1.0, "mem": 1.0, "budget": 10.0, "priority": 1, "x": 0.0, "y": 0.0}
    return pd.DataFrame([{**base, **r} for r in rows])


def _model(req: pd.DataFrame, res: pd.DataFrame, rounds: int = 8, patience: int = 10) -> MarketModel:
    sc = parse({"name": "p", "rounds": rounds, "seeds": [1], "mechanisms": ["greedy"],
                "market": {"source": "synthetic"}, "settlement": {"patience": patience}}, "p.toml", None)
    market = MarketData(validate(req, "requests", "requests.csv"), validate(res, "resources", "resources.csv"))
    model = MarketModel(sc, "greedy", 1, market=market)
    for _ in range(rounds):
        model.step()
    return model


def test_a_chain_is_served_in_order_with_its_lags():
    # one machine, one request at a time: prefill -> decode (lag 1) -> a follow-up (lag 2)
    req = _requests([
        {"request_id": "p", "round": 0, "after_lag": 1},
        {"request_id": "d", "round": 0, "after": "p", "after_lag": 1},
        {"request_id": "f", "round": 0, "after": "d", "after_lag": 2},
    ])
    model = _model(req, _resources())
    served = dict(zip(model.market.requests["request_id"], model.state.served_round, strict=True))
    assert served == {"p": 0, "d": 1, "f": 3}


def test_a_successor_of_an_unserved_request_never_enters_the_book():
    # "p" cannot fit anywhere (cpu 2 on a 1-cpu machine): "d" never arrives, "x" is served
    req = _requests([
        {"request_id": "p", "round": 0, "cpu": 2.0},
        {"request_id": "d", "round": 0, "after": "p"},
        {"request_id": "x", "round": 1},
    ])
    model = _model(req, _resources(), rounds=5, patience=1)
    status = dict(zip(model.market.requests["request_id"], model.state.status, strict=True))
    assert status == {"p": 2, "d": 0, "x": 1}
    assert model.rounds_table()["n_requests"].tolist() == [1, 2, 0, 0, 0]


def test_a_request_past_its_deadline_leaves_the_book():
    # two requests want the one machine in round 0; the loser's deadline is round 0
    req = _requests([
        {"request_id": "a", "round": 0, "budget": 20.0, "priority": 9},
        {"request_id": "b", "round": 0, "deadline": 0},
        {"request_id": "c", "round": 0, "deadline": 1, "priority": 1},
    ])
    model = _model(req, _resources(), rounds=3)
    status = dict(zip(model.market.requests["request_id"], model.state.status, strict=True))
    served = dict(zip(model.market.requests["request_id"], model.state.served_round, strict=True))
    assert served["a"] == 0 and status["b"] == 2 and served["b"] == -1
    assert served["c"] == 1  # served within its deadline


@pytest.mark.parametrize(("rows", "expect"), [
    ([{"request_id": "a", "round": 0, "after": "zz"}], "row 1 (line 2): column 'after' names no request_id of the table: 'zz'"),
    ([{"request_id": "a", "round": 0, "after": "a"}], "column 'after' names the request itself: 'a'"),
    ([{"request_id": "a", "round": 0, "after": "b"}, {"request_id": "b", "round": 0, "after": "a"}],
     "column 'after' makes a cycle"),
    ([{"request_id": "a", "round": 2, "deadline": 1}], "column 'deadline' must be a whole round >= the request's round"),
    ([{"request_id": "a", "round": 0, "deadline": 1.5}], "column 'deadline' must be a whole round"),
    ([{"request_id": "a", "round": 0, "after_lag": 0}], "column 'after_lag' must be >= 1"),
])
def test_bad_precedence_is_one_line(rows, expect):
    with pytest.raises(MarketInputError, match=None) as err:
        validate(_requests(rows), "requests", "requests.csv")
    assert expect in str(err.value)
    assert "\n" not in str(err.value)


def test_ids_are_matched_as_text():
    req = validate(_requests([{"request_id": 7, "round": 0}, {"request_id": 8, "round": 0, "after": "7"}]),
                   "requests", "requests.parquet")
    market = MarketData(req, validate(_resources(), "resources", "r.csv"))
    assert market.predecessor().tolist() == [-1, 0]
