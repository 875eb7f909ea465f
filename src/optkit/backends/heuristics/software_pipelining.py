"""Rau's iterative modulo scheduling (IMS), plus a greedy warp-group assignment.

For II = MII, MII + 1, ...: schedule ops by decreasing height (longest latency-weighted path to
the end of the loop body, with loop-carried edges weighted latency - II * distance), each at the
first cycle of [Estart, Estart + II - 1] free in the modulo reservation table; when none is
free, force it in and evict the ops it conflicts with (resources, then dependences), within a
budget of `budget` x n placements. With warp groups, two ways per II, keeping the best result:
(1) fix a candidate assignment first (dependence components round-robin over the consumer groups,
all on one group, issue-load balancing, random balanced ones) and schedule with each group as a
capacity-1 unit (blocking waits included), re-assigning groups by depth-first search when the
schedule breaks a register limit; (2) schedule without groups (also with handoff-inflated
latencies and shuffled priorities) and assign groups by depth-first search. Then II + 1.
"""

from __future__ import annotations

import random

from optkit.problems.software_pipelining import SoftwarePipelining
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def heights(problem: SoftwarePipelining, ii: int, extra: int = 0) -> list[int]:
    """HeightR: longest path (latency + extra - ii * distance) from each op to any sink."""
    h = [op.cycles for op in problem.ops]
    for _ in range(problem.n + 1):
        changed = False
        for u, v, lat, d, _ in problem.arcs:
            w = h[v] + lat + extra - ii * d
            if w > h[u]:
                h[u] = w
                changed = True
        if not changed:
            break
    return h


def modulo_schedule(
    problem: SoftwarePipelining,
    ii: int,
    budget: int,
    extra: int = 0,
    rng: random.Random | None = None,
    group: list[int] | None = None,
    opts: SolveOptions | None = None,
) -> list[int] | None:
    """One IMS attempt at `ii` (resources and dependences); starts or None. With a fixed
    `group` per op, each warp group is a unit of capacity 1 that an op holds for its issue
    cycles and, on a blocking edge inside its group, for at least the edge's latency; handoff
    latency is added on edges between groups."""
    # kept whole (137 lines): Rau's IMS loop as published: budget, slot search and evictions share
    # one schedule state
    n = problem.n
    caps = dict(problem.units)
    uses = [list(x) for x in problem.uses]
    hold = [problem.issue(v) for v in range(n)]
    waits_in: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (producer, distance)
    waits_out: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (consumer, distance)
    if group is not None:
        for g in set(group):
            caps[f"#wg{g}"] = 1
        for u, w, lat, d, blocking in problem.arcs:
            if not blocking or group[u] != group[w]:
                continue
            if u == w:
                hold[u] = max(hold[u], d * ii)
            else:
                hold[u] = max(hold[u], lat - d * ii)
                waits_in[w].append((u, d))
                waits_out[u].append((w, d))
        for v in range(n):
            uses[v] += [(f"#wg{group[v]}", t) for t in range(min(hold[v], ii + 1))]
    preds: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    succs: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    for u, v, lat, d, _ in problem.arcs:
        if group is not None and group[u] != group[v]:
            lat += problem.handoff
        preds[v].append((u, lat + extra, d))
        succs[u].append((v, lat + extra, d))
    h = heights(problem, ii, extra)
    noise = [rng.random() if rng else 0.0 for _ in range(n)]

    def order_key(v):
        return (-h[v], noise[v], v)

    start: list[int | None] = [None] * n
    last: list[int | None] = [None] * n
    mrt: dict[tuple[str, int], list[int]] = {}

    # blocking edges inside a group: the group is busy from the producer's start until the
    # consumer's start; the part beyond the producer's static hold is held by whichever of the
    # two is placed second (known once both are placed)
    held: list[list[tuple[str, int]]] = [[] for _ in range(n)]

    def keys(v: int, t: int) -> list[tuple[str, int]]:
        out = [(u, (t + off) % ii) for u, off in uses[v]]
        if group is None:
            return out
        tag = f"#wg{group[v]}"
        for u, d in waits_in[v]:
            if start[u] is not None:
                out += [(tag, c % ii) for c in range(start[u] + hold[u], t + d * ii)][:ii]
        for w, d in waits_out[v]:
            if start[w] is not None:
                out += [(tag, c % ii) for c in range(t + hold[v], start[w] + d * ii)][:ii]
        return out

    def fits(v: int, t: int) -> bool:
        need: dict[tuple[str, int], int] = {}
        for key in keys(v, t):
            need[key] = need.get(key, 0) + 1
        return all(len(mrt.get(k, [])) + c <= caps[k[0]] for k, c in need.items())

    def place(v: int, t: int) -> None:
        start[v] = t
        held[v] = keys(v, t)
        for key in held[v]:
            mrt.setdefault(key, []).append(v)

    def evict(v: int) -> None:
        for key in held[v]:
            mrt[key].remove(v)
        held[v] = []
        start[v] = None

    horizon = problem.horizon_for(ii)
    left = budget * n
    while left > 0:
        if opts is not None:
            opts.check_clock()
        todo = [v for v in range(n) if start[v] is None]
        if not todo:
            break
        left -= 1
        v = min(todo, key=order_key)
        estart = max(
            [0] + [start[p] + lat - ii * d for p, lat, d in preds[v] if start[p] is not None]
        )
        t = None
        for c in range(estart, estart + ii):  # a long op makes each test cost its cycles
            if opts is not None:
                opts.check_clock()
            if fits(v, c):
                t = c
                break
        if t is None:
            t = estart if last[v] is None or estart > last[v] else last[v] + 1
            need: dict[tuple[str, int], int] = {}
            for key in keys(v, t):
                need[key] = need.get(key, 0) + 1
            if any(c > caps[key[0]] for key, c in need.items()):
                # a blocking wait longer than the II: reschedule the producer it waits on
                for u in [u for u, _ in waits_in[v]] + [w for w, _ in waits_out[v]]:
                    if start[u] is not None:
                        evict(u)
                need = {}
                for key in keys(v, t):
                    need[key] = need.get(key, 0) + 1
            for key, c in need.items():
                if c > caps[key[0]]:
                    return None  # the op conflicts with itself at this II
                while len(mrt.get(key, [])) + c > caps[key[0]]:
                    evict(mrt[key][0])
        for s, lat, d in succs[v]:
            if s != v and start[s] is not None and start[s] + ii * d < t + lat:
                evict(s)
        for p, lat, d in preds[v]:
            if p != v and start[p] is not None and t + ii * d < start[p] + lat:
                evict(p)
        if t + problem.ops[v].cycles > horizon + 2 * ii * n:
            return None
        place(v, t)
        last[v] = t
    if any(s is None for s in start):
        return None
    return [int(s) for s in start]  # type: ignore[arg-type]


def assign_groups(
    problem: SoftwarePipelining,
    ii: int,
    start: list[int],
    rng: random.Random | None = None,
    nodes: int = 400,
) -> list[int] | None:
    """Warp-group assignment of a fixed schedule: depth-first over ops in start order, each
    trying the groups that keep every constraint among the assigned ops, within `nodes` checks."""
    wg = problem.warp_groups
    assert wg is not None
    n = problem.n
    order = sorted(range(n), key=lambda v: (start[v], rng.random() if rng else 0, v))
    group: list[int | None] = [None] * n
    consumers = [g for g in range(wg.count) if g != wg.producer] or [wg.producer]
    budget = [nodes]

    def choices(v: int) -> list[int]:
        if problem.ops[v].variable_latency:
            return [wg.producer]
        out = list(consumers)
        if rng:
            rng.shuffle(out)
        if wg.producer not in out and not wg.producer_exclusive:
            out.append(wg.producer)
        # groups not used yet are interchangeable with each other: try only the first of them
        used = {g for g in group if g is not None}
        fresh = [g for g in out if g not in used and wg.reg_limit[g] == wg.reg_limit[out[0]]]
        return [g for g in out if g in used or g not in fresh[1:]]

    def dfs(i: int) -> bool:
        if i == n:
            return True
        v = order[i]
        for g in choices(v):
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            group[v] = g
            if not problem.violations(ii, start, group, limit=1) and dfs(i + 1):
                return True
        group[v] = None
        return False

    return [int(g) for g in group] if dfs(0) else None  # type: ignore[arg-type]


def component_groups(
    problem: SoftwarePipelining, rng: random.Random | None = None, random_tries: int = 0
) -> list[list[int]]:
    """Candidate warp-group assignments, each respecting `same_group` edges, variable latency on
    the producer and `producer_exclusive`: (1) the connected components of the zero-distance
    dependence graph dealt round-robin to the consumer groups (a sub-tile's chain per group),
    (2) everything on one group, (3) ops in topological order to the group with the least issue
    load so far, preferring a predecessor's group, (4) `random_tries` random balanced ones."""
    import networkx as nx

    wg = problem.warp_groups
    assert wg is not None
    n = problem.n
    consumers = [g for g in range(wg.count) if g != wg.producer]
    if not wg.producer_exclusive or not consumers:
        consumers = consumers + [wg.producer]
    # atoms: ops tied by same_group edges move together
    tie = nx.Graph()
    tie.add_nodes_from(range(n))
    tie.add_edges_from(
        (problem.index[e.from_], problem.index[e.to]) for e in problem.edges if e.same_group
    )
    atom_of = {}
    atoms = sorted((sorted(c) for c in nx.connected_components(tie)), key=lambda c: c[0])
    for i, atom in enumerate(atoms):
        for v in atom:
            atom_of[v] = i
    fixed = {
        i: wg.producer
        for i, atom in enumerate(atoms)
        if any(problem.ops[v].variable_latency for v in atom)
    }
    free = [i for i in range(len(atoms)) if i not in fixed]
    out: list[list[int]] = []

    def emit(choice: dict[int, int]) -> None:
        grp = [0] * n
        for i, atom in enumerate(atoms):
            for v in atom:
                grp[v] = fixed.get(i, choice.get(i, consumers[0]))
        if grp not in out:
            out.append(grp)

    # (1) and (2)
    dag = nx.Graph()
    dag.add_nodes_from(free)
    dag.add_edges_from(
        (atom_of[u], atom_of[v])
        for u, v, _, d, _ in problem.arcs
        if d == 0 and atom_of[u] in dag and atom_of[v] in dag and atom_of[u] != atom_of[v]
    )
    comps = sorted((sorted(c) for c in nx.connected_components(dag)), key=lambda c: c[0])
    emit({i: consumers[k % len(consumers)] for k, comp in enumerate(comps) for i in comp})
    emit({i: consumers[0] for i in free})
    # (3) balance issue load in topological order
    order = _topological(problem)
    for r in [None] + [rng] * (random_tries if rng else 0):
        load = {g: 0 for g in consumers}
        choice: dict[int, int] = {}
        for v in order:
            i = atom_of[v]
            if i in fixed or i in choice:
                continue
            work = sum(problem.issue(w) for w in atoms[i])
            preds = {choice.get(atom_of[u]) for u, w, _, d, _ in problem.arcs if w == v and d == 0}
            if r is None:
                g = min(consumers, key=lambda c: (load[c] + (0 if c in preds else 1), c))
            else:
                g = min(consumers, key=lambda c: load[c] + r.random() * (1 + work))
            choice[i] = g
            load[g] += work
        emit(choice)
    return out


def _topological(problem: SoftwarePipelining) -> list[int]:
    indeg = [0] * problem.n
    succ: list[list[int]] = [[] for _ in range(problem.n)]
    for u, v, _, d, _ in problem.arcs:
        if d == 0 and u != v:
            indeg[v] += 1
            succ[u].append(v)
    ready = [v for v in range(problem.n) if indeg[v] == 0]
    order = []
    while ready:
        v = ready.pop(0)
        order.append(v)
        for w in succ[v]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    return order + [v for v in range(problem.n) if v not in order]


def compact(
    problem: SoftwarePipelining,
    ii: int,
    start: list[int],
    group: list[int] | None,
    passes: int = 4,
    opts: SolveOptions | None = None,
) -> list[int]:
    """Shorten a feasible schedule: move each op (earliest first) to the earliest cycle that keeps
    the whole schedule feasible, until nothing moves (or the time limit is reached: the schedule
    as compacted so far, still feasible)."""
    start = list(start)
    grp: list[int | None] = list(group) if group is not None else [None] * problem.n
    preds: list[list[tuple[int, int, int]]] = [[] for _ in range(problem.n)]
    for u, v, lat, d, _ in problem.arcs:
        preds[v].append((u, lat, d))
    for _ in range(passes):
        moved = False
        for v in sorted(range(problem.n), key=lambda x: start[x]):
            if opts is not None and opts.expired():
                return start
            lo = max([0] + [start[u] + lat - ii * d for u, lat, d in preds[v] if u != v])
            for t in range(lo, start[v]):
                if opts is not None and opts.expired():
                    return start  # feasible: the move being tried is not made
                old, start[v] = start[v], t
                if not problem.violations(ii, start, grp, limit=1):
                    moved = True
                    break
                start[v] = old
        if not moved:
            break
    return start


def ims_solve(
    problem: SoftwarePipelining,
    opts: SolveOptions,
    budget: int,
    tries: int,
    ii_max: int | None = None,
) -> tuple[dict | None, int | None]:
    """(solution, ii) of the first II at which IMS succeeds, or (None, None).

    Each schedule found is reported at once (`opts.report`), so that when the clock runs out
    (`TimeUp`, raised in the middle of an attempt) the best one so far is the answer."""
    mii = problem.mii()
    if mii is None:
        return None, None
    if ii_max is None:
        ii_max = problem.default_ii_max()
    rng = random.Random(opts.seed)
    for ii in range(mii, ii_max + 1):
        if opts.expired():
            break
        found: list[dict] = []
        if problem.warp_groups is None:
            for attempt in range(1 + tries):
                start = modulo_schedule(
                    problem, ii, budget, 0, random.Random(attempt) if attempt else None, opts=opts
                )
                if start is None:
                    if attempt == 0:
                        break  # the plain attempt failed: next II (noise only polishes the length)
                    continue
                if not found:
                    _report(problem, opts, problem.solution_from(ii, start))
                start = compact(problem, ii, start, None, opts=opts)
                found.append(_report(problem, opts, problem.solution_from(ii, start)))
        else:
            for attempt, grp in enumerate(
                component_groups(problem, random.Random(opts.seed), tries)
            ):
                if opts.expired():
                    break
                start = modulo_schedule(
                    problem, ii, budget, 0, random.Random(attempt) if attempt else None, grp, opts
                )
                if start is None:
                    continue
                if problem.violations(ii, start, grp, limit=1):
                    # the schedule may still fit another assignment (registers, blocking waits)
                    regrouped = assign_groups(problem, ii, start, random.Random(attempt), nodes=100)
                    if regrouped is None:
                        continue
                    grp = regrouped
                start = compact(problem, ii, start, grp, opts=opts)
                found.append(_report(problem, opts, problem.solution_from(ii, start, grp)))
            # also: schedule first, then assign groups (finds other trade-offs)
            extras = [0, problem.handoff] if problem.handoff else [0]
            for attempt in range(tries):
                if opts.expired():
                    break
                extra = extras[attempt % len(extras)]
                r = rng if attempt >= len(extras) else None
                start = modulo_schedule(problem, ii, budget, extra, r, opts=opts)
                if start is None:
                    continue
                group = assign_groups(problem, ii, start, r)
                if group is not None:
                    start = compact(problem, ii, start, group, opts=opts)
                    found.append(_report(problem, opts, problem.solution_from(ii, start, group)))
        checked = [(problem.check(sol), sol) for sol in found]
        feasible = [(rep.objective, i, sol) for i, (rep, sol) in enumerate(checked) if rep.feasible]
        if feasible:
            return min(feasible, key=lambda t: (t[0], t[1]))[2], ii
    return None, None


def _report(problem: SoftwarePipelining, opts: SolveOptions, solution: dict) -> dict:
    """Report `solution` when it is feasible and better than the incumbent; return it."""
    report = problem.check(solution)
    best = opts.incumbent[1] if opts.incumbent else None
    if report.feasible and (best is None or report.objective < best):
        opts.report(solution, report.objective)
    return solution


@register(
    "ims",
    "software-pipelining",
    exact=False,
    bounds=False,
    deterministic=True,
    params={"budget": 6, "tries": 12, "ii_max": 0},
)
def ims(problem: SoftwarePipelining, opts: SolveOptions) -> Outcome:
    """Rau's iterative modulo scheduling; greedy warp-group assignment when groups are given."""
    reason = problem.infeasibility_reason()
    if reason is not None:
        return Outcome(proven_infeasible=True, message=reason)
    budget, tries = int(opts.params["budget"]), int(opts.params["tries"])
    ii_max = int(opts.params["ii_max"]) or None  # 0: where one iteration fits sequentially
    sol, _ = ims_solve(problem, opts, budget, tries, ii_max)
    if sol is None:
        term = Termination.TIME_LIMIT if opts.expired() else Termination.COMPLETED
        return Outcome(termination=term, message="iterative modulo scheduling found no schedule")
    obj = problem.check(sol).objective
    opts.report(sol, obj)
    return Outcome(solution=sol, objective=obj, stats={"mii": problem.mii()})
