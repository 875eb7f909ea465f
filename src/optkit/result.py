"""The result of a solve: what was found (status) kept apart from why the solver stopped (termination)."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """What you have."""

    OPTIMAL = "optimal"  # a solution, proven optimal
    FEASIBLE = "feasible"  # a solution, optimality not proven
    INFEASIBLE = "infeasible"  # proven: no solution exists
    UNKNOWN = "unknown"  # no solution and nothing proven
    ERROR = "error"  # the solver failed or its output was rejected by the checker

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


class Termination(str, Enum):
    """Why the solver stopped."""

    COMPLETED = "completed"
    TIME_LIMIT = "time_limit"
    INTERRUPTED = "interrupted"
    ERROR = "error"


def relative_gap(objective: Any, bound: Any) -> float | None:
    """|objective - bound| / max(|objective|, tiny); None unless both are numbers.

    The one place where a gap is computed. 0 / 0 is a gap of 0. A lexicographic (list) objective
    has gap 0 when it equals its bound and no gap otherwise.
    """
    if isinstance(objective, (list, tuple)) and isinstance(bound, (list, tuple)):
        same = len(objective) == len(bound) and all(
            relative_gap(a, b) == 0.0 for a, b in zip(objective, bound)
        )
        return 0.0 if same else None
    if not _is_number(objective) or not _is_number(bound):
        return None
    diff = abs(objective - bound)
    if diff <= 1e-9 * max(1.0, abs(objective)):
        return 0.0
    return diff / max(abs(objective), 1e-9)


def same_objective(a: Any, b: Any) -> bool:
    """Equal objectives, lists element by element. Two integers are compared exactly; an integer
    against a float (a MIP's claim of an integer objective) within an absolute 1e-6, so one unit
    never passes at any magnitude; two floats within a relative 1e-6."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_objective(x, y) for x, y in zip(a, b))
    if _is_integer(a) and _is_integer(b):
        return bool(a == b)
    try:
        scale = 1.0 if _is_integer(a) or _is_integer(b) else max(1.0, abs(a), abs(b))
        return bool(abs(a - b) <= 1e-6 * scale)
    except TypeError:
        return a == b


def _is_integer(x: Any) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Result:
    """What `optkit.solve` returns and `optkit solve --json` prints (keys fixed by the spec)."""

    problem: str
    instance: str | None
    solver: str
    solver_version: str
    status: Status
    termination: Termination
    objective: Any = None
    bound: Any = None
    gap: float | None = None
    #: names of the components of a list (lexicographic) objective, in order; None for a scalar
    objective_terms: list[str] | None = None
    runtime_s: float = 0.0
    time_limit_s: float | None = None
    threads: int = 1
    seed: int = 0
    solution: dict | None = None
    metrics: dict = field(default_factory=dict)
    message: str | None = None
    params: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        d["termination"] = self.termination.value
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown result keys: {sorted(unknown)}")
        d = dict(d)
        d["status"] = Status(d["status"])
        d["termination"] = Termination(d["termination"])
        return cls(**d)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
