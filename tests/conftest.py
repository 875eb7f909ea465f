"""Shared fixtures: the public benchmark data beside the repository, and instance folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
