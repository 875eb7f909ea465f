"""The lexicographic driver of pod packing: one term at a time, each proven optimum fixed before the
next (shared by the CP-SAT and MIP backends; they only build and run models).

A backend hands in `Stages`: `minimise(k)` solves with term k as the objective (the terms before it
fixed), `fix(k, value, proven)` adds term k == value (a proven optimum) or term k <= value (the
incumbent's level of a term left unproven: the later terms are still improved, as the Priority
Matters solver does), `release(k)` drops the fixes of term k and the later ones, `hint(where)`
warms the next solve. The driver keeps the best placement seen (by the instance's objective), skips
a solve when the incumbent already meets the term's trivial bound, and returns the proven bound:
the proven prefix, the first unproven term's bound, then the trivial bound of every later term.

A backend gives a term part of the time left when later terms follow, and the later terms often
finish early (a disruption term over a fixed placement count); the window they leave goes back
to the first term left unproven (its hold and the later ones released, minimised again from the
incumbent), then to the terms after it, at most `REVISITS` times; only when that term's solve
ran and was stopped (not when the backend refused it for lack of time). An earlier term outranks
everything after it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

from optkit.problems import pod_objective
from optkit.result import Termination

if TYPE_CHECKING:
    from optkit.problems.pod_packing import PodPacking
    from optkit.problems.pod_repair import Usage
    from optkit.solve import Outcome, SolveOptions


class StageAnswer(NamedTuple):
    """What one term's solve found: status, a placement (or None), a proven lower bound (or None)."""

    status: str  # "optimal", "feasible", "infeasible", "unknown" or "error"
    where: list[int | None] | None = None
    bound: int | None = None
    detail: str = ""


class Stages(Protocol):
    def minimise(self, k: int) -> StageAnswer: ...

    def fix(self, k: int, value: int, proven: bool = True) -> None: ...

    def release(self, k: int) -> None: ...

    def hint(self, where: Sequence[int | None]) -> None: ...


class _Incumbent:
    def __init__(self, problem: PodPacking, opts: SolveOptions):
        self.p, self.opts = problem, opts
        self.where: list[int | None] | None = None
        self.obj: list[int] | None = None

    def offer(self, where: Sequence[int | None] | None) -> bool:
        if where is None or not self.p.check(self.p.to_solution(list(where))).feasible:
            return False
        obj = self.p.objective_of(where)
        if self.obj is not None and obj >= self.obj:
            return False
        self.where, self.obj = list(where), obj
        self.opts.report(self.p.to_solution(self.where), obj)
        return True


def answer_without_model(problem: PodPacking, usage: Usage, **fields) -> Outcome:
    """The outcome of the placement `usage.where` found without a model (the fast path's repair and
    neighbourhoods): its proven bound is the leading terms that meet their trivial bounds (no
    placement does better there), then each later term's trivial bound; optimal when every term
    meets its bound. The repair's node masks say which pods have a node."""
    from optkit.solve import Outcome

    where = usage.where
    obj = problem.objective_of(where)
    lows = pod_objective.lower_bounds(problem, lambda i: bool(usage.eligible(i).any()))
    k = next((k for k, (o, lo) in enumerate(zip(obj, lows)) if o > lo), len(lows))
    solution = problem.to_solution(list(where))
    if k == len(lows):
        return Outcome(solution=solution, objective=obj, proven_optimal=True, **fields)
    bound = obj[:k] + lows[k:]
    return Outcome(
        solution=solution,
        objective=obj,
        termination=Termination.TIME_LIMIT,
        bound=bound,
        **fields,
    )


#: the first unproven term is revisited when at least this share of the window is left
REVISIT_SHARE = 0.1
#: at most this many times (each revisit gives the term half the time left, as the first pass)
REVISITS = 3


def _time_to_revisit(opts: SolveOptions) -> bool:
    return opts.time_limit is not None and opts.remaining() >= REVISIT_SHARE * opts.time_limit


def solve_lexicographic(
    problem: PodPacking,
    stages: Stages,
    opts: SolveOptions,
    starts: Sequence[Sequence[int | None]] = (),
    known: Sequence[int | None] = (),
) -> Outcome:
    """Minimise the instance's objective terms in order; `starts` are known placements (checked),
    `known` proven lower bounds of terms (given the earlier terms at their optima; None: none)."""
    from optkit.solve import Outcome

    lows = pod_objective.lower_bounds(problem)
    for k, b in enumerate(known):
        if b is not None:
            lows[k] = max(lows[k], b)
    best = _Incumbent(problem, opts)
    for where in starts:
        best.offer(where)
    if best.where is not None:
        stages.hint(best.where)
    proven: list[int] = []  # optima of the leading terms, each proven with the earlier ones fixed
    statuses: list[str] = []
    bound: list[int] | None = None
    settled = True  # every term so far proven
    revisits = 0
    searched = False  # the first unproven term's solve ran (and was stopped), not refused
    t0 = time.monotonic()
    k = 0
    while k < len(lows):
        if settled and best.obj is not None and best.obj[:k] == proven and best.obj[k] <= lows[k]:
            statuses.append("bound")
            proven.append(best.obj[k])
            stages.fix(k, best.obj[k])
        elif opts.expired():
            if settled:
                bound = proven + lows[k:] if (k or revisits) else None
            break
        else:
            ans = stages.minimise(k)
            statuses.append(ans.status)
            if best.offer(ans.where):
                stages.hint(best.where)
            if ans.status == "infeasible" and k == 0:
                return Outcome(proven_infeasible=True, stats={"statuses": statuses})
            if best.obj is None:
                if ans.status == "error":
                    return Outcome(termination=Termination.ERROR, message=ans.detail)
                bound = [max(lows[0], ans.bound)] + lows[1:] if ans.bound is not None else None
                break
            if settled and ans.status == "optimal" and best.obj[:k] == proven:
                proven.append(best.obj[k])
                stages.fix(k, best.obj[k])
            else:
                if settled:  # the first term left unproven: the bound ends here
                    if ans.bound is not None:  # a proven bound of this term, kept for a revisit
                        lows[k] = max(lows[k], ans.bound)
                    bound = proven + lows[k:] if (k or ans.bound is not None) else None
                    settled, searched = False, ans.status == "feasible"
                stages.fix(k, best.obj[k], proven=False)  # keep the incumbent's level
        k += 1
        revisit = not settled and searched and revisits < REVISITS
        if k == len(lows) and revisit and _time_to_revisit(opts):
            revisits, settled, k = revisits + 1, True, len(proven)
            statuses.append("revisit")
            stages.release(k)
            stages.hint(best.where)
    stats = {"statuses": statuses, "lex_wall_s": round(time.monotonic() - t0, 4)}
    if best.where is None:
        return Outcome(termination=Termination.TIME_LIMIT, bound=bound, stats=stats)
    solution = problem.to_solution(best.where)
    if len(proven) == len(lows):
        return Outcome(solution=solution, objective=best.obj, proven_optimal=True, stats=stats)
    return Outcome(
        solution=solution,
        objective=best.obj,
        termination=Termination.TIME_LIMIT,
        bound=bound,
        stats=stats,
    )
