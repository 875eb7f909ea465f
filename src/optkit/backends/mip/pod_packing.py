"""MIP for pod packing through PuLP (HiGHS or CBC): the assignment model, term by term in the
instance's order through the shared lexicographic driver (`optkit.problems.pod_lex`).

x[i, j] binary for the nodes pod i is allowed on and fits on when empty; placed_i = sum_j x[i, j]
<= 1; sum_i q_ir x[i, j] <= C_jr per node and resource; non-movable pods fixed. Each objective term
(`optkit.problems.pod_objective`) is linear in placed_i and stays_i = x[i, current node]; each is
minimised with the proven optima of the earlier ones fixed (no big weights, so no numerical
trouble). The bound is the proven prefix, the current term's dual bound rounded up, then each
later term's trivial bound.

Time: the targeted repair (`optkit.problems.pod_repair`) is the start and the answer whenever the
model cannot be built and handed to HiGHS in the window. PuLP builds the model in Python (about
30,000 candidate pairs a second here) and hands it to HiGHS at each solve at about the same pace,
so the model is built only when twice its estimated build time fits the window, its build stops
at the window's end, and a term is solved only while the time left covers the hand-over.
"""

from __future__ import annotations

import math
import time

from optkit.problems.pod_lex import StageAnswer, answer_without_model, solve_lexicographic
from optkit.problems.pod_packing import PodPacking
from optkit.problems.pod_repair import candidate_pairs, repair_usage
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions, TimeUp

#: candidate pairs PuLP builds (and hands over) per second, measured here under load: 29-43k
BUILD_PAIRS_PER_S = 30_000
#: share of the window the repair may use
REPAIR_SHARE = 0.2
#: handing the model to HiGHS took 1.6-1.75 times its build (80 nodes x 10 pods each, 64,000
#: pairs: built in 2.4 s, handed over in 3.8-4.2 s); a term is solved only when twice is left
HANDOVER_PER_BUILD = 2.0


class MipStages:
    """The driver's `Stages` over one PuLP model."""

    def __init__(self, problem: PodPacking, opts: SolveOptions, deadline: float | None = None):
        """The model; past `deadline` (a `time.monotonic()` value) the build stops with `TimeUp`."""
        import pulp

        self.pulp, self.p, self.opts = pulp, problem, opts
        t0 = time.monotonic()
        P = problem
        prob = self.prob = pulp.LpProblem("pod_packing", pulp.LpMinimize)
        self.x = {}
        by_node: dict[int, list[int]] = {j: [] for j in range(P.n_nodes)}
        for i in range(P.n_pods):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeUp
            for j in P.candidates[i]:
                self.x[i, j] = prob.add_variable(f"x_{i}_{j}", cat="Binary")
                by_node[j].append(i)
        self.y = {i: pulp.lpSum(self.x[i, j] for j in P.candidates[i]) for i in range(P.n_pods)}
        self.ok = True
        for i in range(P.n_pods):
            if len(P.candidates[i]) > 1:
                prob += self.y[i] <= 1, f"one_{i}"
            if not P.pods[i].movable:
                if (i, P.current[i]) not in self.x:
                    self.ok = False
                    return
                prob += self.x[i, P.current[i]] == 1, f"fixed_{i}"
        req, cap = P.request_matrix, P.capacity_matrix
        for j in range(P.n_nodes):
            for r in range(len(P.resources)):
                c = cap[j][r]
                pods = [i for i in by_node[j] if req[i][r] > 0]
                if c is not None and sum(req[i][r] for i in pods) > c:
                    prob += pulp.lpSum(req[i][r] * self.x[i, j] for i in pods) <= c, f"cap_{j}_{r}"
        self.terms = [self._expr(t) for t in P.objective_terms]
        # each term's value as a variable, so that fixing and releasing a term are its bounds
        self.held = [prob.add_variable(f"term_{k}") for k in range(len(self.terms))]
        for k, (held, term) in enumerate(zip(self.held, self.terms)):
            prob += held == term, f"held_{k}"
        self.build_s = time.monotonic() - t0

    def _expr(self, term):
        const, placed, stays = term.linear(self.p)
        parts = [a * self.y[i] for i, a in placed.items()]
        parts += [
            b * self.x[i, self.p.current[i]]
            for i, b in stays.items()
            if (i, self.p.current[i]) in self.x
        ]
        return self.pulp.lpSum(parts) + const

    def minimise(self, k: int) -> StageAnswer:
        from optkit.backends.pulp_model import ensure_time_to_hand_over, solve_problem, value

        try:
            ensure_time_to_hand_over(self.opts, self.build_s, per_build=HANDOVER_PER_BUILD)
        except TimeUp:
            return StageAnswer("unknown", detail="no time to hand the model to HiGHS")
        self.prob.setObjective(self.terms[k] + 0)
        ans = solve_problem(self.prob, self.opts)
        if ans.proven_infeasible:
            return StageAnswer("infeasible", detail=ans.detail)
        if ans.termination == Termination.ERROR:
            return StageAnswer("error", detail=f"MIP backend: {ans.detail}")
        where = None
        if ans.has_solution:
            where = [None] * self.p.n_pods
            for (i, j), v in self.x.items():
                if value(v) > 0.5:
                    where[i] = j
        bound = None if ans.bound is None else math.ceil(ans.bound - 1e-6)
        status = "optimal" if ans.proven_optimal else "feasible" if where else "unknown"
        return StageAnswer(status, where, bound, ans.detail)

    def fix(self, k: int, value: int, proven: bool = True) -> None:
        self.held[k].lowBound = value if proven else None
        self.held[k].upBound = value

    def release(self, k: int) -> None:
        for held in self.held[k:]:
            held.lowBound = held.upBound = None

    def hint(self, where) -> None:
        """PuLP's HiGHS interface takes no start; the driver keeps the incumbent itself."""


@register(
    "mip",
    "pod-packing",
    exact=True,
    bounds=True,
    deterministic=True,
    requires=("pulp",),
    versions=("pulp", "highspy"),
    params={"backend": "highs", "log": False},
)
def mip(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Term-by-term MIP of the assignment model (PuLP; backend=highs|cbc), from the targeted repair."""
    t0 = time.monotonic()
    window = opts.remaining(default=60.0)
    usage = repair_usage(problem, deadline=t0 + REPAIR_SHARE * window)
    repaired = list(usage.where)
    opts.report(problem.to_solution(repaired))
    est = candidate_pairs(problem) / BUILD_PAIRS_PER_S
    if opts.time_limit is None or 2 * est <= opts.remaining():
        try:
            stages = MipStages(problem, opts, deadline=t0 + window)
        except TimeUp:
            stages = None
        if stages is not None and not stages.ok:
            return Outcome(proven_infeasible=True, message="a non-movable pod cannot stay")
        if stages is not None:
            out = solve_lexicographic(problem, stages, opts, [repaired])
            out.stats["build_s"] = round(stages.build_s, 4)
            return out
    return answer_without_model(
        problem,
        usage,
        message="the model could not be built and handed to HiGHS in the window: the repair's plan",
        stats={"path": "repair", "estimated_build_s": round(est, 3)},
    )
