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
