"""The mechanism conformance check: built-ins pass, broken plug-ins fail naming the invariant.

Plug-ins come in two ways: as classes in this file, and through an entry point of a
temporary distribution (a directory on ``sys.path`` with a module and a ``.dist-info``
declaring the group ``market.mechanisms``), which ``importlib.metadata`` finds like an
installed package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import mechanisms
from mechanisms import create
from mechanisms.base import Allocation, Mechanism, paid
from mechanisms.checks import (
    DIMENSIONS,
    INVARIANTS,
    InvariantError,
    build_market,
    check_allocation,
    check_mechanism,
    held_markets,
    markets,
)
from mechanisms.first_price import FirstPrice
from mechanisms.greedy import Greedy
from tests.conftest import installed_distribution

BUILT_INS = ["best_fit", "dot_product", "drf", "first_price", "greedy", "mohaf", "optimal", "random", "second_price"]


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_passes(name):
    assert name in mechanisms.available()
    assert check_mechanism(create(name)) > len(INVARIANTS)


def test_the_markets_include_the_degenerate_cases():
    shapes = {label: (m.n_requests, m.capacity.shape[0], m.candidates.shape[1]) for label, m in markets(2)}
    assert (0, 0, 0) in shapes.values()
    assert any(n > 0 and k == 0 for n, _, k in shapes.values())
    assert any(n > 0 and m == 0 for n, m, _ in shapes.values())
    assert any(label.startswith("ties") for label in shapes)
    assert sum(label.startswith("random") for label in shapes) == 2


def test_the_markets_cover_one_to_four_dimensions():
    by_dims: dict[int, list[str]] = {}
    for label, m in markets(2):
        assert m.demand.shape[1] == m.capacity.shape[1], label
        by_dims.setdefault(m.demand.shape[1], []).append(label)
    assert set(DIMENSIONS) == {1, 3, 4} and set(by_dims) == {1, 2, 3, 4}
    for d in DIMENSIONS:
        assert {f"D={d}: no capacity in dimension {d - 1}", f"D={d}: dimension {d - 1} binds",
                f"D={d}: tight capacity: dimension {d - 1} short by a hair"} <= set(by_dims[d])
    by_label = dict(markets(0))
    zero = by_label["D=3: no capacity in dimension 2"]
    assert np.all(zero.capacity[:, 2] == 0) and np.any(zero.demand[:, 2] == 0) and np.any(zero.demand[:, 2] > 0)
    binds = by_label["D=4: dimension 3 binds"]
    assert binds.demand[:, 3].sum() > binds.capacity[:, 3].sum()
    assert np.all(binds.demand[:, :3].sum(axis=0) < binds.capacity[:, :3].min(axis=0))


def test_the_held_markets_carry_durations_that_bid_prices_act_on():
    held = dict(held_markets())
    assert set(held) <= set(dict(markets(0)))
    assert [m.rounds_left for m in held.values()] == [2, 3, 4]
    assert all(m.duration.shape == (m.n_requests,) and m.duration.max() > 1 for m in held.values())
    # MOHAF's bid prices charge held capacity there: some allocation differs from the per-round F's
    rng = np.random.default_rng(0)
    moved = [label for label, m in held.items()
             if not np.array_equal(create("mohaf", hold=0.5).allocate(m, rng).choice, create("mohaf").allocate(m, rng).choice)]
    assert moved


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mohaf", {"rank": "density"}),
        ("mohaf", {"hold": 0.5}),
        ("mohaf", {"hold": 2.0, "bid_prices": "round", "discount": 0.8}),
        ("drf", {"payment": "reserve"}),
    ],
)
def test_built_ins_with_parameters_pass(name, params):
    assert check_mechanism(create(name, **params)) > len(INVARIANTS)


def test_the_flat_and_truthful_contract_is_declared():
    assert Mechanism.flat is False and Mechanism.truthful is False
    assert mechanisms.mechanism_class("optimal").flat is True
    assert mechanisms.mechanism_class("second_price").truthful is True
    assert not any(mechanisms.mechanism_class(n).flat for n in BUILT_INS if n != "optimal")


# --- broken plug-ins, one per invariant ---------------------------------------------------


class Overcharge(Greedy):
    """Serves like greedy but charges winners twice their budget."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        alloc.payment = np.where(alloc.choice >= 0, 2.0 * market.budget, 0.0)
        return alloc


class FirstColumn(Mechanism):
    """Everyone takes its first column, whether it is a candidate and whether it fits."""

    def allocate(self, market, rng):
        n, k = market.candidates.shape
        choice = np.full(n, 0 if k else -1, dtype=np.int64)
        return Allocation(choice, np.zeros(n))


class FirstCandidate(Mechanism):
    """Everyone takes its first real candidate, whether it fits or not."""

    def allocate(self, market, rng):
        valid = market.valid
        choice = np.where(valid.any(axis=1), valid.argmax(axis=1) if valid.size else -1, -1).astype(np.int64)
        return Allocation(choice, paid(market, choice, market.reserve))


class Mutates(Greedy):
    """Greedy that spends the capacity it was given in place."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        market.capacity[:] = 0.0
        return alloc


class Sneaky(Greedy):
    """Turns the input writeable again before changing it: caught by comparing bytes."""

    def allocate(self, market, rng):
        if market.budget.size:
            market.budget.flags.writeable = True
            market.budget[0] += 1.0
        return super().allocate(market, rng)


class SwapsAScalar(Greedy):
    """Changes a frozen dataclass field behind its back."""

    def allocate(self, market, rng):
        object.__setattr__(market, "fairness_weight", market.fairness_weight + 1.0)
        return super().allocate(market, rng)


class GlobalRandom(Greedy):
    """Greedy that drops winners at random, from fresh entropy instead of the rng it is given."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        drop = np.random.default_rng().random(market.n_requests) < 0.5
        alloc.choice = np.where(drop, -1, alloc.choice)
        alloc.payment = np.where(drop, 0.0, alloc.payment)
        return alloc


class CrashesWhenEmpty(Greedy):
    """Assumes there is at least one request."""

    def allocate(self, market, rng):
        _ = market.demand[0]
        return super().allocate(market, rng)


class ChargesTheUnserved(Mechanism):
    """Charges an entry fee to everybody."""

    def allocate(self, market, rng):
        return Allocation(np.full(market.n_requests, -1, dtype=np.int64), np.minimum(0.01, market.budget))


class PaysUsers(Greedy):
    """Winners receive money."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        alloc.payment = np.where(alloc.choice >= 0, -1.0, 0.0)
        return alloc


class NanPayment(Greedy):
    """Winners pay NaN."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        alloc.payment = np.where(alloc.choice >= 0, np.nan, 0.0)
        return alloc


class ReturnsTuple(Greedy):
    """Returns ``(choice, payment)`` instead of an Allocation."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        return alloc.choice, alloc.payment


class FloatChoice(Greedy):
    """Returns the choice as floats."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        alloc.choice = alloc.choice.astype(float)
        return alloc


class ShortPayment(Greedy):
    """Returns one payment too few."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        alloc.payment = alloc.payment[:-1] if alloc.payment.size else np.zeros(1)
        return alloc


class PastTheEnd(Mechanism):
    """Chooses column K."""

    def allocate(self, market, rng):
        n, k = market.candidates.shape
        return Allocation(np.full(n, k, dtype=np.int64), np.zeros(n))


class FitsTwoColumns(Mechanism):
    """First candidate that fits in row order, but only cpu and memory (the first two columns) are checked."""

    def allocate(self, market, rng):
        free = market.capacity.copy()
        choice = np.full(market.n_requests, -1, dtype=np.int64)
        for i in range(market.n_requests):
            for c, j in enumerate(market.candidates[i]):
                if j >= 0 and np.all(market.demand[i, :2] <= free[j, :2] + 1e-12):
                    free[j] -= market.demand[i]
                    choice[i] = c
                    break
        return Allocation(choice, paid(market, choice, market.posted))


class FlatAsString(Greedy):
    """Declares ``flat`` as a string."""

    flat: ClassVar = "yes"


class ClaimsTruthful(FirstPrice):
    """Pay-your-bid, declared truthful: shading pays, so the claim fails."""

    truthful: ClassVar[bool] = True


BROKEN = [
    (Overcharge, "payment-budget"),
    (FirstColumn, "qos"),
    (FirstCandidate, "capacity"),
    (FitsTwoColumns, "capacity"),
    (Mutates, "no-mutation"),
    (Sneaky, "no-mutation"),
    (SwapsAScalar, "no-mutation"),
    (GlobalRandom, "determinism"),
    (CrashesWhenEmpty, "no-crash"),
    (ChargesTheUnserved, "unserved-pays-nothing"),
    (PaysUsers, "payment-nonnegative"),
    (NanPayment, "payment-finite"),
    (ReturnsTuple, "returns-allocation"),
    (FloatChoice, "single-assignment"),
    (ShortPayment, "payment-shape"),
    (PastTheEnd, "choice-range"),
    (FlatAsString, "interface"),
    (ClaimsTruthful, "truthful"),
]


@pytest.mark.parametrize(("cls", "invariant"), BROKEN, ids=[c.__name__ for c, _ in BROKEN])
def test_a_broken_mechanism_fails_naming_the_invariant(cls, invariant):
    with pytest.raises(AssertionError, match=f"^invariant '{invariant}': ") as info:
        check_mechanism(cls())
    assert isinstance(info.value, InvariantError) and info.value.invariant == invariant


def test_every_invariant_has_a_broken_mechanism():
    assert {inv for _, inv in BROKEN} == set(INVARIANTS)


def test_the_message_says_where_capacity_broke():
    with pytest.raises(AssertionError) as info:
        check_mechanism(FirstCandidate())
    assert info.value.market is not None
    assert f"(market {info.value.market!r})" in str(info.value)
    assert "resource 0 dimension" in str(info.value) and "over by" in str(info.value)


def test_capacity_is_checked_in_every_dimension():
    """A third demand column counts although the built-in kernels only know two."""
    market = build_market(np.zeros((2, 1)), np.array([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8]]), np.ones((1, 3)))
    check_allocation(market, Allocation(np.array([0, -1]), np.zeros(2)), "3-d")
    with pytest.raises(AssertionError, match=r"invariant 'capacity': resource 0 dimension 2 over by 0\.6"):
        check_allocation(market, Allocation(np.array([0, 0]), np.zeros(2)), "3-d")


def test_a_mechanism_blind_to_a_third_dimension_fails_on_the_three_dimensional_markets():
    with pytest.raises(InvariantError) as info:
        check_mechanism(FitsTwoColumns())
    assert info.value.invariant == "capacity" and info.value.market.startswith("D=3: ")
    assert "dimension 2 over by" in str(info.value)


class RefinesIntoOverflow(Greedy):
    """Greedy whose root refinement hands everyone its first real candidate, fitting or not."""

    def refines(self, n_requests):
        return True

    def refine(self, market, choice, rng):
        return FirstCandidate().allocate(market, rng)


class RefinesInPlace(Greedy):
    """Greedy whose refinement writes into the allocation it is given."""

    def refines(self, n_requests):
        return True

    def refine(self, market, choice, rng):
        choice[:] = -1
        return Allocation(choice, np.zeros(market.n_requests))


def test_a_refinement_is_checked_like_an_allocation():
    with pytest.raises(InvariantError) as info:
        check_mechanism(RefinesIntoOverflow())
    assert info.value.invariant == "capacity" and info.value.market.endswith(" (refine)")
    with pytest.raises(InvariantError) as info:
        check_mechanism(RefinesInPlace())
    assert info.value.invariant == "no-mutation" and "refine wrote" in str(info.value)


def test_mohaf_refinement_passes_and_is_counted():
    """MOHAF refines every conformance market (all under its limit): more checks than Greedy."""
    assert check_mechanism(create("mohaf")) > check_mechanism(create("greedy"))


def test_a_non_mechanism_fails_the_interface():
    with pytest.raises(AssertionError, match=r"^invariant 'interface': "):
        check_mechanism(object())


# --- a plug-in registered through an entry point -------------------------------------------

PLUGIN = '''
import numpy as np

from mechanisms.base import Allocation, Mechanism, paid
from mechanisms.greedy import Greedy


class Overcharge(Greedy):
    """Greedy allocation, but winners pay their budget plus one."""

    def allocate(self, market, rng):
        alloc = super().allocate(market, rng)
        alloc.payment = np.where(alloc.choice >= 0, market.budget + 1.0, 0.0)
        return alloc


class Posted(Mechanism):
    """First fitting candidate in request order; winners pay the posted price."""

    def allocate(self, market, rng):
        free = market.capacity.copy()
        choice = np.full(market.n_requests, -1, dtype=np.int64)
        for i in range(market.n_requests):
            for c, j in enumerate(market.candidates[i]):
                if j >= 0 and np.all(market.demand[i] <= free[j]):
                    free[j] -= market.demand[i]
                    choice[i] = c
                    break
        return Allocation(choice, paid(market, choice, market.posted))
'''


@pytest.fixture
def entry_point_plugin(tmp_path: Path) -> Iterator[Path]:
    """A distribution ``market-test-plugin`` with mechanisms ``ep_overcharge`` and ``ep_posted``.

    Yields the directory that holds it (on ``sys.path`` meanwhile); afterwards the path,
    the module and the registrations are gone again.
    """
    entry_points = ("[market.mechanisms]\n"
                    "ep_overcharge = market_test_plugin:Overcharge\n"
                    "ep_posted = market_test_plugin:Posted\n")
    try:
        with installed_distribution(tmp_path, "market_test_plugin", textwrap.dedent(PLUGIN), entry_points):
            yield tmp_path
    finally:
        for name in ("ep_overcharge", "ep_posted"):
            mechanisms.unregister(name)


def test_an_entry_point_plugin_is_found_and_checked(entry_point_plugin):
    names = mechanisms.available()
    assert {"ep_overcharge", "ep_posted"} <= set(names)
    good = create("ep_posted")
    assert good.name == "ep_posted" and not good.flat
    assert check_mechanism(good) > len(INVARIANTS)
    with pytest.raises(AssertionError, match=r"^invariant 'payment-budget': request \d+ pays .* > its budget"):
        check_mechanism(create("ep_overcharge"))


def test_the_plugin_is_gone_after_the_fixture():
    assert not {"ep_overcharge", "ep_posted"} & set(mechanisms.available())


# --- market check-mechanism ----------------------------------------------------------------


def test_the_command_passes_a_built_in(capsys):
    from market.apps.cli import main

    assert main(["check-mechanism", "greedy", "--markets", "2"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"ok: greedy passes \d+ checks\n", out)


def test_the_command_fails_a_plugin_naming_the_invariant(entry_point_plugin, capsys):
    from market.apps.cli import main

    assert main(["check-mechanism", "ep_overcharge"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("invariant 'payment-budget': ") and err.count("\n") == 1


def test_the_command_rejects_an_unknown_name_or_parameter(capsys):
    from market.apps.cli import main

    assert main(["check-mechanism", "no_such_mechanism"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown mechanism 'no_such_mechanism'") and err.count("\n") == 1
    assert main(["check-mechanism", "mohaf", "--param", "rank=sideways"]) == 2
    assert capsys.readouterr().err.startswith("error: mechanism 'mohaf': bad parameters")


def test_the_installed_command_finds_an_entry_point_plugin(entry_point_plugin):
    """A fresh interpreter with the plug-in's directory on PYTHONPATH, as after ``pip install``."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(entry_point_plugin), str(root)])}
    proc = subprocess.run([sys.executable, "-m", "market", "check-mechanism", "ep_overcharge"],
                          check=False, capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("invariant 'payment-budget': ")
