"""The facade's objective comparison: integers exactly, floats within a relative tolerance."""

from __future__ import annotations

import numpy as np
import pytest

import optkit
from optkit.problems.tardiness import Tardiness
from optkit.registry import _SOLVERS, SolverSpec
from optkit.result import Status, same_objective
from optkit.solve import Outcome


@pytest.mark.parametrize(
    "a, b, same",
    [
        (10**6, 10**6 - 1, False),  # one unit near 10^6 is a different objective
        (10**9, 10**9, True),
        (np.int64(10**6), 10**6 - 1, False),
        (10**6, 10**6 - 1.0, False),  # a float claim of an integer objective: absolute 1e-6
        (308, 308.0000000001, True),
        (308, 307.99999, False),
        (1e6, 1e6 + 0.5, True),  # floats: relative 1e-6
        (1.0, 1.0 + 2e-6, False),
        ([-3, 10**6], [-3, 10**6 - 1], False),
        ([-3, 5], [-3, 5], True),
    ],
)
def test_integers_exactly_floats_relatively(a, b, same):
    assert same_objective(a, b) is same
    assert same_objective(b, a) is same


def test_a_bound_one_unit_too_good_near_a_million_is_an_error(monkeypatch):
    """A tardiness instance whose only sequence costs 10^6: a claimed lower bound of 10^6 + 1 is
    beaten by the solver's own solution, and the facade must say so."""
    problem = Tardiness(processing_times=[10**6 + 1], due_dates=[1])  # tardiness exactly 10^6
    for bound, status in ((10**6 + 1, Status.ERROR), (10**6, Status.FEASIBLE)):
        spec = SolverSpec(
            "test-bound",
            "tardiness",
            lambda p, o, bound=bound: Outcome(solution={"sequence": [0]}, bound=bound),
            "heuristics",
        )
        monkeypatch.setitem(_SOLVERS, ("tardiness", "test-bound"), spec)
        result = optkit.solve(problem, "test-bound")
        assert result.status == status, (bound, result.message)
