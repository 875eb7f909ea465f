"""Per (problem, solver) figures of a set of results lines: shared by `optkit batch` and `optkit report`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from statistics import mean

from optkit.batch.records import line_gap


@dataclass
class SolverSummary:
    problem: str
    solver: str
    tasks: int = 0
    solved: int = 0  # a feasible solution
    optimal: int = 0
    infeasible: int = 0
    errors: int = 0
    mean_gap: float | None = None  # over lines with a known optimum or a proven bound
    gap_count: int = 0
    mean_time: float | None = None

    def row(self) -> list[str]:
        gap = "" if self.mean_gap is None else f"{100 * self.mean_gap:.3g} % ({self.gap_count})"
        time = "" if self.mean_time is None else f"{self.mean_time:.3f}"
        return [
            self.problem,
            self.solver,
            str(self.tasks),
            str(self.solved),
            str(self.optimal),
            str(self.infeasible),
            str(self.errors),
            gap,
            time,
        ]


HEADER = [
    "problem",
    "solver",
    "tasks",
    "solved",
    "optimal",
    "infeasible",
    "errors",
    "mean gap (n)",
    "mean time (s)",
]


def summarize(lines: Iterable[dict]) -> list[SolverSummary]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for d in lines:
        groups.setdefault((str(d.get("problem")), str(d.get("solver"))), []).append(d)
    out = []
    for (problem, solver), ds in sorted(groups.items()):
        s = SolverSummary(problem, solver, tasks=len(ds))
        s.solved = sum(d.get("status") in ("optimal", "feasible") for d in ds)
        s.optimal = sum(d.get("status") == "optimal" for d in ds)
        s.infeasible = sum(d.get("status") == "infeasible" for d in ds)
        s.errors = sum(d.get("status") == "error" for d in ds)
        gaps = [g for g in (line_gap(d) for d in ds) if g is not None]
        if gaps:
            s.mean_gap, s.gap_count = mean(gaps), len(gaps)
        times = [d["runtime_s"] for d in ds if isinstance(d.get("runtime_s"), (int, float))]
        if times:
            s.mean_time = mean(times)
        out.append(s)
    return out
