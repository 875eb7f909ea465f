"""Large-neighbourhood search for pod packing (`cpsat` with `lns=on`): a few nodes at a time
re-packed by CP-SAT with everything else fixed, kept when the objective improves."""

from __future__ import annotations

import random
import time

from optkit.backends.cpsat.pod_models import PodModel
from optkit.backends.cpsat.pod_packing import weights_for
from optkit.problems.pod_packing import PodPacking
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def lns(problem: PodPacking, opts: SolveOptions, start: list[int | None]) -> Outcome:
    """Large-neighbourhood search for big clusters: from `start`,
    repeatedly free a few nodes (the fullest-fragmented ones plus random ones), and let CP-SAT re-pack the
    pods on them together with the highest-priority pending pods that could use the space, everything
    else fixed; a neighbourhood's answer is kept when the lexicographic objective improves. No bound."""
    # kept whole (93 lines): one neighbourhood loop: choice, sub-model and acceptance share the
    # incumbent
    from ortools.sat.python import cp_model

    P = problem
    rng = random.Random(opts.seed)
    where = list(start)
    best = P.objective_of(where)
    opts.report(P.to_solution(where), best)
    R = P.resources
    req, cap = P.request_matrix, P.capacity_matrix
    load = [[0] * len(R) for _ in range(P.n_nodes)]
    for i, j in enumerate(where):
        if j is not None:
            for r in range(len(R)):
                load[j][r] += req[i][r]
    iters = improved = 0
    size = min(P.n_nodes, 8)
    deadline = opts.remaining(default=10.0)
    t_end = time.monotonic() + deadline
    while time.monotonic() < t_end - 0.05:
        pending = [i for i in range(P.n_pods) if where[i] is None and P.candidates[i]]
        if not pending:
            break
        iters += 1

        # neighbourhood: nodes with the most free capacity (normalised), plus random nodes
        def free(j):
            return sum((cap[j][r] - load[j][r]) / cap[j][r] for r in range(len(R)) if cap[j][r])

        by_free = sorted(range(P.n_nodes), key=lambda j: -free(j) + rng.random() * 0.05)
        chosen = set(by_free[: size // 2])
        while len(chosen) < size:
            chosen.add(rng.randrange(P.n_nodes))
        nodes = sorted(chosen)
        top = max(P.pods[i].priority for i in pending)
        cand_pending = [
            i
            for i in pending
            if P.pods[i].priority == top and any(j in chosen for j in P.candidates[i])
        ]
        rng.shuffle(cand_pending)
        sub_pods = [i for i in range(P.n_pods) if where[i] in chosen]
        sub_pods += cand_pending[: 4 * size]
        # every pod on the chosen nodes is in sub_pods, so those nodes start empty; the rest stays fixed
        pm = PodModel(P, pods=sub_pods, nodes=nodes)
        sub_where = list(where)
        before_terms = _terms(P, sub_pods, where)
        ranges = [(-sum(1 for i in sub_pods if P.pods[i].priority == p), 0) for p in P.priorities]
        nrun = sum(1 for i in sub_pods if P.current[i] is not None)
        ranges += [(0, nrun), (0, nrun)]
        weights = weights_for(ranges)
        if weights[0] * max(1, -ranges[0][0]) > 2**62:
            break
        pm.m.minimize(sum(w * t for w, t in zip(weights, pm.terms)))
        pm.m.add(
            sum(w * t for w, t in zip(weights, pm.terms))
            <= sum(w * t for w, t in zip(weights, before_terms))
        )
        pm.hint(where)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = opts.threads
        solver.parameters.random_seed = opts.seed
        solver.parameters.max_time_in_seconds = max(0.05, min(0.3, t_end - time.monotonic()))
        status = solver.solve(pm.m)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            continue
        for i in sub_pods:
            sub_where[i] = None
        for (i, j), v in pm.x.items():
            if solver.value(v):
                sub_where[i] = j
        obj = P.objective_of(sub_where)
        if obj < best:
            for i in sub_pods:
                if where[i] is not None:
                    for r in range(len(R)):
                        load[where[i]][r] -= req[i][r]
                if sub_where[i] is not None:
                    for r in range(len(R)):
                        load[sub_where[i]][r] += req[i][r]
            where, best = sub_where, obj
            improved += 1
            opts.report(P.to_solution(where), best)
    return Outcome(
        solution=P.to_solution(where),
        objective=best,
        termination=Termination.TIME_LIMIT,
        stats={"mode": "lns", "iterations": iters, "improvements": improved},
    )


def _terms(P: PodPacking, pods: list[int], where) -> list[int]:
    out = [
        -sum(1 for i in pods if P.pods[i].priority == p and where[i] is not None)
        for p in P.priorities
    ]
    running = [i for i in pods if P.current[i] is not None]
    out.append(sum(1 for i in running if where[i] is None))
    out.append(sum(1 for i in running if where[i] is not None and where[i] != P.current[i]))
    return out
