"""Shared fixtures: the public benchmark data beside the repository, and instance folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

# Hypothesis profiles: "ci" (the default) for every run, "nightly" for the long run
# (HYPOTHESIS_PROFILE=nightly), "planted" = ci without the example database nor shrinking, so that the planted-bug
# benchmark's runs are independent (benchmarks/planted_bugs.py). Tests that set max_examples
# themselves keep it; the checker tests scale with the profile.
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("nightly", max_examples=1000, **_COMMON)
settings.register_profile(
    "planted",
    max_examples=100,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no replay, no shrinking: a failure is all it needs
    **_COMMON,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = ROOT / "instances"
SHARED = Path(os.environ.get("OPTKIT_SHARED", ROOT.parent / "shared")) / "benchmarks"


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"public benchmark data not found at {SHARED} (set OPTKIT_SHARED)")
    return SHARED


def solver_names(problem: str, **capabilities: bool) -> list[str]:
    """Names of the registered solvers of `problem` whose capabilities match (e.g. `exact=True`),
    for parametrizing a test over the registry instead of a hand-written list."""
    from optkit.registry import solver_specs

    return [
        s.name
        for s in solver_specs(problem)
        if all(getattr(s, cap) == want for cap, want in capabilities.items())
    ]
