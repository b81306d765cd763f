"""Jain's index and the Gini coefficient: textbook values, edge cases, any magnitude."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.metrics import gini, jain


def gini_definition(x) -> float:
    """``sum_ab |x_a - x_b| / (2 n^2 mean)`` over every ordered pair (Gini, 1912)."""
    x = np.asarray(x, dtype=float)
    return sum(abs(a - b) for a, b in itertools.product(x, x)) / (2 * x.size**2 * x.mean())


@pytest.mark.parametrize(
    ("x", "expected"),
    [([1, 1, 1, 1], 1.0), ([1, 0, 0, 0], 0.25), ([3, 1], 0.8), ([1, 2, 3], 36 / 42), ([5], 1.0),
     ([], 1.0), ([0, 0], 1.0)],
)
def test_jain_textbook_values(x, expected):
    """``(sum x)^2 / (n sum x^2)``: 1 for equal shares, 1/n when one takes all (Jain et al. 1984)."""
    assert jain(np.array(x, dtype=float)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("x", "expected"),
    [([1, 1, 1], 0.0), ([0, 0, 0, 1], 0.75), ([1, 3], 0.25), ([1, 2, 3], 2 / 9), ([], 0.0), ([0, 0], 0.0)],
)
def test_gini_textbook_values(x, expected):
    assert gini(np.array(x, dtype=float)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-150, 1e150, 1e200, 1e300])
def test_indices_do_not_under_or_overflow(scale):
    """Both are scale-free; before, ``jain([1e-200, 0])`` was 1 (x * x underflowed) and
    ``jain([1e200, 1e200, 0])`` 1 (inf / inf)."""
    x = np.array([2.0, 1.0, 1.0, 0.0])
    assert jain(x * scale) == pytest.approx(jain(x), rel=1e-12) == pytest.approx(16 / 24)
    assert gini(x * scale) == pytest.approx(gini(x), rel=1e-12) == pytest.approx(gini_definition(x))


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.just(0.0) | st.floats(1e-3, 1e6), min_size=1, max_size=8), st.sampled_from([1e-250, 1e-3, 1.0, 1e250]))
def test_indices_match_their_definitions_at_any_scale(values, scale):
    x = np.array(values)
    if x.max() == 0.0:
        assert jain(x * scale) == 1.0 and gini(x * scale) == 0.0
        return
    assert 1 / x.size - 1e-12 <= jain(x * scale) <= 1.0
    assert jain(x * scale) == pytest.approx(x.sum() ** 2 / (x.size * (x**2).sum()), rel=1e-9)
    assert gini(x * scale) == pytest.approx(gini_definition(x), rel=1e-9, abs=1e-12)
