"""Large neighbourhoods around the pending pods: CP-SAT re-packs a few nodes at a time, everything
else fixed, and a neighbourhood's answer is kept only when it improves the instance's objective.

The step after the targeted repair (`optkit.problems.pod_repair`) on clusters too large for the
exact model. Each neighbourhood is built around one pending pod that has a node, the highest
priority first (among equals, the one whose neighbourhoods failed least often):
- nodes: the few allowed nodes where it lacks least room, plus nodes with the most free room
  (where pods of the first may go), drawn at random among the best;
- pods: every pod on those nodes, and pending pods of the highest priorities allowed there.
Its sub-problem: those pods on those nodes (or pending), with the objective's terms restricted to
them. The pods outside do not change, so the sub-problem's terms differ from the whole plan's by
constants: lexicographically better there is better for the whole plan, and the plan never gets
worse. The terms are minimised in blocks: as many terms as fit one weighted sum below 2^53
(usually all of them, at most two blocks), each block's optimum fixed before the next.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from optkit.problems.pod_repair import Usage

if TYPE_CHECKING:
    from optkit.problems.pod_packing import PodPacking
    from optkit.solve import SolveOptions

#: nodes of a neighbourhood: around the pending pod, and with the most free room
NEAR_NODES, ROOMY_NODES = 5, 3
#: pending pods offered to a neighbourhood besides the one it is built around
MORE_PENDING = 16
#: seconds one neighbourhood's CP-SAT solve may take at most
SUB_SECONDS = 0.3
#: neighbourhoods in a row that improve nothing before the search stops (without a time limit)
PATIENCE = 50


class Improved(NamedTuple):
    where: list[int | None]
    stats: dict


def term_coefficients(problem: PodPacking) -> tuple[np.ndarray, np.ndarray]:
    """Per objective term, the coefficient of placed_i and of stays_i of every pod (NumPy: cheap
    at 40,000 pods), from the same `Term` fields as `Term.linear`."""
    prio = np.array([p.priority for p in problem.pods], dtype=np.int64)
    running = np.array([j is not None for j in problem.current], dtype=bool)
    a = np.zeros((len(problem.objective_terms), problem.n_pods), dtype=np.int64)
    b = np.zeros_like(a)
    for k, t in enumerate(problem.objective_terms):
        counts = np.ones(problem.n_pods, bool) if t.min_priority is None else prio >= t.min_priority
        a[k] = np.where(counts, -t.gain + running * (t.move - t.evict), 0)
        b[k] = np.where(counts & running, -t.move, 0)
    return a, b


def improve(problem: PodPacking, opts: SolveOptions, u: Usage, end: float | None) -> Improved:
    """Large neighbourhoods from the placement of `u` (updated in place) until `end` (a
    `time.monotonic()` value; without one, until `PATIENCE` neighbourhoods in a row improve
    nothing)."""
    # kept whole (75 lines): one loop of choice, solve and acceptance over the shared incumbent
    P = problem
    t0 = time.monotonic()
    if end is not None and end - t0 < 0.1:
        return Improved(list(u.where), {"neighbourhoods": 0})
    rng = random.Random(opts.seed)
    a, b = term_coefficients(P)
    pending = {
        i for i in range(P.n_pods) if u.where[i] is None and u.movable[i] and u.eligible(i).any()
    }
    failures: dict[int, int] = {}
    tries = gains = idle = 0
    while pending:
        now = time.monotonic()
        if (end is not None and end - now < 0.05) or (end is None and idle >= PATIENCE):
            break
        # the pod whose neighbourhoods failed least often, the highest priority first
        order = sorted(pending, key=lambda i: (failures.get(i, 0), -u.prio[i], rng.random()))
        target = order[0]
        nodes = _nodes(u, target, rng)
        pods = sorted({k for j in nodes for k in u.on_node[j]}) + [target]
        by_prio = sorted(pending - {target}, key=lambda i: -u.prio[i])
        pods += [i for i in by_prio if u.eligible(i)[nodes].any()][:MORE_PENDING]
        left = None if end is None else end - time.monotonic()
        better = _resolve(P, opts, u, pods, nodes, a, b, left)
        tries += 1
        if better is None:
            failures[target] = failures.get(target, 0) + 1
            idle += 1
            continue
        idle = 0
        gains += 1
        for i in pods:
            u.remove(i)
        for i, j in better.items():
            u.place(i, j)
        for i in pods:
            if u.where[i] is None and u.movable[i]:
                pending.add(i)
            else:
                pending.discard(i)
        opts.report(P.to_solution(u.where))
    stats = {"neighbourhoods": tries, "improving": gains, "lns_s": round(time.monotonic() - t0, 4)}
    return Improved(list(u.where), stats)


def _nodes(u: Usage, i: int, rng: random.Random) -> list[int]:
    """Allowed nodes where pod i lacks least room, and nodes with the most free room (each drawn
    at random among the best few)."""
    elig = np.flatnonzero(u.eligible(i))
    short = sum(np.maximum(q - u.free[r, elig], 0) / u.scale[r] for r, q in enumerate(u.rows[i]))
    near = elig[np.argsort(short, kind="stable")[: 3 * NEAR_NODES]].tolist()
    chosen = set(rng.sample(near, min(NEAR_NODES, len(near))))
    free = (u.free / u.scale[:, None]).sum(axis=0)
    free[list(chosen)] = -np.inf
    roomy = np.argsort(-free, kind="stable")[: 4 * ROOMY_NODES].tolist()
    chosen |= set(rng.sample(roomy, min(ROOMY_NODES, len(roomy))))
    return sorted(chosen)


def _resolve(P, opts, u: Usage, pods, nodes, a, b, left) -> dict[int, int] | None:
    """The sub-problem's lexicographic optimum (or the best found in time), as pod -> node for the
    pods placed, when strictly better than the pods' current placement; else None."""
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    placed, stays = {}, {}
    for i in pods:
        cur = P.current[i]
        elig = u.eligible(i)
        allowed = [j for j in nodes if elig[j] or (j == cur and P.may_stay(i, j))]
        if not u.movable[i]:
            allowed = [u.where[i]]
        for j in allowed:
            x[i, j] = m.new_bool_var("")
        placed[i] = sum(x[i, j] for j in allowed)
        if not u.movable[i]:
            m.add(placed[i] == 1)
        elif len(allowed) > 1:
            m.add(placed[i] <= 1)
        if cur is not None and (i, cur) in x:
            stays[i] = x[i, cur]
    for j in nodes:
        for r in range(u.req.shape[1]):
            terms = [(int(u.req[i, r]), x[i, j]) for i in pods if (i, j) in x and u.req[i, r]]
            if sum(q for q, _ in terms) > u.cap[j, r]:
                m.add(sum(q * v for q, v in terms) <= int(u.cap[j, r]))
    exprs, ranges, now = [], [], []
    for k in range(a.shape[0]):
        parts = [(int(a[k, i]), placed[i]) for i in pods if a[k, i]]
        parts += [(int(b[k, i]), v) for i, v in stays.items() if b[k, i]]
        exprs.append(sum(c * v for c, v in parts))
        ranges.append(sum(abs(c) for c, _ in parts))
        now.append(
            sum(int(a[k, i]) for i in pods if u.where[i] is not None)
            + sum(int(b[k, i]) for i in stays if u.where[i] == P.current[i])
        )
    for (i, j), v in x.items():
        m.add_hint(v, u.where[i] == j)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = opts.threads
    solver.parameters.random_seed = opts.seed
    deadline = time.monotonic() + (SUB_SECONDS if left is None else min(SUB_SECONDS, left - 0.05))
    found = None
    for block in _blocks(ranges):
        spare = deadline - time.monotonic()
        if spare <= 0:
            break
        weights = _weights([ranges[k] for k in block])
        objective = sum(w * exprs[k] for w, k in zip(weights, block))
        m.minimize(objective)
        solver.parameters.max_time_in_seconds = spare
        status = solver.solve(m)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            break
        found = {i: j for (i, j), v in x.items() if solver.value(v)}
        values = [int(solver.value(exprs[k])) for k in block]
        m.clear_hints()
        for (i, j), v in x.items():
            m.add_hint(v, found.get(i) == j)
        if status != cp_model.OPTIMAL:
            break
        for k, v in zip(block, values):
            m.add(exprs[k] == v)
    if found is None:
        return None
    after = [
        sum(int(a[k, i]) for i in pods if i in found)
        + sum(int(b[k, i]) for i in stays if found.get(i) == P.current[i])
        for k in range(a.shape[0])
    ]
    return found if after < now else None


def _blocks(ranges: list[int]) -> list[list[int]]:
    """Consecutive terms grouped so that each group's exact weighted sum stays below 2^53."""
    out: list[list[int]] = []
    span = 1
    for k, r in enumerate(ranges):
        if out and span * (r + 1) < 2**53:
            out[-1].append(k)
            span *= r + 1
        else:
            out.append([k])
            span = r + 1
    return out


def _weights(ranges: list[int]) -> list[int]:
    """Weights that order the weighted sum exactly lexicographically over terms of these ranges."""
    w, acc = [0] * len(ranges), 1
    for k in range(len(ranges) - 1, -1, -1):
        w[k] = acc
        acc *= ranges[k] + 1
    return w
