"""CP-SAT model of MoE expert placement (replication, slots, locality-aware communication).

Variables, for layer l, expert e, GPU g, replica count k = 1..K (K = `max_replicas`):
`y[l,e,k]` (e has k replicas), `z[l,e,g,k]` (e has a replica on g and k replicas in all).
With `Q = lcm(1..K)`, the scaled share `f[l,e,g] = sum_k (Q/k) z[l,e,g,k]` is `Q` times the share
of e's tokens served on g. Load of g: `sum_e load[l,e] f[l,e,g] / Q`; `M[l] >= load` of every GPU.
Communication (for each (e, f') with affinity a > 0): `m[l,e,f',g] <= f[l,e,g]`, `<= f[l+1,f',g]`
(tokens that stay on g, times Q), `n[l,e,f',v] <=` the same node sums (tokens that stay in node v).
Minimise `sum_l M[l] + w a (c_in (1 - sum_g m / Q) + (c_out - c_in)(1 - sum_v n / Q))`.
The data are scaled to integers; optimality and bounds are claimed only when the scaling is exact
(integer loads and affinities, link costs and weight with at most 6 decimals).
"""

from __future__ import annotations

import math
from typing import Any

from optkit.problems.expert_placement import ExpertPlacement
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

#: models with more variables than this are not built; the warm start is returned instead
MAX_VARS = 400_000


def decimal_scale(values, max_decimals: int = 6) -> int | None:
    """Smallest 10^d (d <= max_decimals) making every value an integer, or None."""
    for d in range(max_decimals + 1):
        s = 10**d
        if all(abs(v * s - round(v * s)) <= 1e-9 * max(1.0, abs(v * s)) for v in values):
            return s
    return None


def model_size(problem: ExpertPlacement, K: int) -> int:
    L, E, G = problem.num_layers, problem.num_experts, problem.gpus
    pairs = 0
    if problem.affinity_array is not None:
        pairs = int((problem.affinity_array > 0).sum())
    return L * E * (K + G * K) + pairs * (G + (problem.num_nodes if problem.num_nodes > 1 else 0))


def prepare(
    problem: ExpertPlacement, opts: SolveOptions, exact: Any
) -> tuple[Outcome | None, list, int]:
    """What both exact models do first: report the warm start; return (an outcome if that settles it — the model is too large, or
    without communication the layers separate and `by_layer` solves them one by one — the warm start
    slots, the most replicas an expert may need)."""
    from optkit.backends.heuristics.expert_placement import best_heuristic_slots, max_replicas

    warm = (
        opts.initial_solution["slots"]
        if opts.initial_solution
        else best_heuristic_slots(problem, int(opts.params["num_groups"]))
    )
    warm = [list(r) for r in warm]
    if problem.check(
        {"slots": warm}
    ).feasible:  # what a caller's wall clock returns if the solve overruns
        opts.report({"slots": warm}, problem.objective_of(warm))
    K = max_replicas(problem)
    if model_size(problem, K) > MAX_VARS:
        return (
            Outcome(
                solution={"slots": warm},
                termination=Termination.COMPLETED,
                message=f"model too large (> {MAX_VARS} variables); returned the heuristic warm start",
            ),
            warm,
            K,
        )
    if not (problem.affinity_array is not None and problem.weight > 0) and problem.num_layers > 1:
        return by_layer(problem, opts, warm, exact), warm, K
    return None, warm, K


@register(
    "cpsat",
    "expert-placement",
    exact=True,
    bounds=True,
    warm_start=True,
    requires=("ortools",),
    versions=("ortools",),
    params={"num_groups": 1, "log": False},
)
def cpsat(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """Exact CP-SAT model with replica counts, slots and linearised communication; warm start from the heuristics."""
    import numpy as np
    from ortools.sat.python import cp_model

    from optkit.backends.cpsat._common import solve_model

    L, E, G, S = problem.num_layers, problem.num_experts, problem.gpus, problem.slots_per_gpu
    N = problem.num_nodes
    settled, warm, K = prepare(problem, opts, cpsat)
    if settled is not None:
        return settled
    W = problem.load_array
    A = problem.affinity_array
    c_in, c_out = problem.link_costs
    w = problem.weight
    use_comm = A is not None and w > 0
    Q = math.lcm(*range(1, K + 1))
    # integer scaling: loads * D, and the communication coefficients w*c*a * C
    D = decimal_scale(W.ravel().tolist())
    exact = D is not None
    D = D or 10**6
    cn_w = (c_out - c_in) if N > 1 else 0.0
    if use_comm:
        pos = A[A > 0]
        C = decimal_scale(np.concatenate([pos * (w * c_in), pos * (w * cn_w)]).tolist())
        exact = exact and C is not None
        C = C or 10**6
    else:
        C = 1
    # objective: sum M (scaled by D*Q) * C*... ; see the docstring: true = const + obj / den
    Wi = np.rint(W * D).astype(np.int64)

    model = cp_model.CpModel()
    z = {}
    y = {}
    f = {}  # scaled shares, as linear expressions
    x = {}
    for l in range(L):
        for e in range(E):
            opts.check_clock()  # building a large model can take the whole limit
            ys = [model.new_bool_var(f"y{l}_{e}_{k}") for k in range(1, K + 1)]
            model.add_exactly_one(ys)
            for k in range(1, K + 1):
                y[l, e, k] = ys[k - 1]
            for g in range(G):
                for k in range(1, K + 1):
                    z[l, e, g, k] = model.new_bool_var(f"z{l}_{e}_{g}_{k}")
                    model.add_implication(z[l, e, g, k], y[l, e, k])
                x[l, e, g] = sum(z[l, e, g, k] for k in range(1, K + 1))
                model.add(x[l, e, g] <= 1)
                f[l, e, g] = sum((Q // k) * z[l, e, g, k] for k in range(1, K + 1))
            for k in range(1, K + 1):
                model.add(sum(z[l, e, g, k] for g in range(G)) == k * y[l, e, k])
        for g in range(G):
            model.add(sum(x[l, e, g] for e in range(E)) <= S)
    # symmetry: GPUs are interchangeable when there is one node (or nodes of equal size)
    sizes = np.bincount(problem.node_of_gpu)
    consecutive = list(problem.node_of_gpu) == sorted(problem.node_of_gpu)
    # without communication every layer has its own GPU symmetry, else only layer 0 has it
    sym_layers = range(L) if not use_comm else range(1)
    for l in sym_layers:
        if N == 1 and K == 1:  # order GPUs by their smallest expert
            for e in range(E):
                for g in range(e + 1, G):
                    model.add(x[l, e, g] == 0)
        elif (N == 1 or not use_comm) or (consecutive and len(set(sizes.tolist())) == 1):
            model.add(x[l, 0, 0] == 1)
    # loads
    total = int(Wi.sum(axis=1).max()) * Q
    M = [model.new_int_var(0, total, f"M{l}") for l in range(L)]
    for l in range(L):
        for g in range(G):
            model.add(sum(int(Wi[l, e]) * f[l, e, g] for e in range(E)) <= M[l])
    obj = [int(C) * m for m in M]  # M is load * D * Q
    den = D * Q * C
    const = 0.0
    hint_vars: list = []
    if use_comm:
        node_gpus = [[g for g in range(G) if problem.node_of_gpu[g] == v] for v in range(N)]
        cap_node = max(len(gs) for gs in node_gpus) * S
        for l in range(L - 1):
            mvars = {}  # (e, e2) -> [m per GPU]
            nvars = {}
            hint_vars.append((l, mvars, nvars, node_gpus))
            for e in range(E):
                opts.check_clock()
                for e2 in range(E):
                    a = float(A[l, e, e2])
                    if a <= 0:
                        continue
                    const += w * a * (c_in + cn_w)
                    if c_in:
                        ms = []
                        for g in range(G):
                            m = model.new_int_var(0, Q, "")
                            model.add(m <= f[l, e, g])
                            model.add(m <= f[l + 1, e2, g])
                            ms.append(m)
                        mvars[e, e2] = ms
                        obj.append(-round(w * c_in * a * C) * D * sum(ms))
                    if cn_w:
                        ns = []
                        for gs in node_gpus:
                            n = model.new_int_var(0, Q, "")
                            model.add(n <= sum(f[l, e, g] for g in gs))
                            model.add(n <= sum(f[l + 1, e2, g] for g in gs))
                            ns.append(n)
                        nvars[e, e2] = ns
                        obj.append(-round(w * cn_w * a * C) * D * sum(ns))
            _comm_cuts(model, A[l], mvars, nvars, f, l, E, G, S, Q, node_gpus, cap_node)
    model.minimize(sum(obj))

    # warm start
    Xw = problem.replica_matrix(warm)
    rw = Xw.sum(axis=2)
    for l in range(L):
        for e in range(E):
            for k in range(1, K + 1):
                model.add_hint(y[l, e, k], int(rw[l, e] == k))
                for g in range(G):
                    model.add_hint(z[l, e, g, k], int(rw[l, e] == k and Xw[l, e, g] > 0))

    _hint_rest(model, problem, Xw, M, Wi, Q, hint_vars)

    def extract(value) -> dict:
        rows = []
        for l in range(L):
            row = []
            for g in range(G):
                es = [e for e in range(E) if any(value(z[l, e, g, k]) for k in range(1, K + 1))]
                row += es + [-1] * (S - len(es))
            rows.append(row)
        return {"slots": rows}

    def bound_of(raw: float) -> float:
        return math.floor((const + raw / den) * 1e6 - 1e-3) / 1e6

    out = solve_model(
        model,
        opts,
        extract,
        objective_of=lambda s: problem.objective_of(s["slots"]),
        bound_of=bound_of,
    )
    out.stats.update({"max_replicas": K, "exact_scaling": exact})
    if out.solution is None and not out.proven_infeasible:
        out.solution = {"slots": [list(r) for r in warm]}
        out.bound = out.bound if exact else None
        return out
    if out.solution is not None and problem.objective_of(warm) < problem.objective_of(
        out.solution["slots"]
    ):
        out.solution = {"slots": [list(r) for r in warm]}
    if not exact:
        out.proven_optimal, out.bound = False, None
        out.message = (
            "loads or costs are not exactly representable as scaled integers: no optimality claim"
        )
    elif out.proven_optimal:
        out.bound = None  # the facade sets bound = objective
    return out


def _comm_cuts(model, a, mvars, nvars, f, l, E, G, S, Q, node_gpus, cap_node) -> None:
    """Valid inequalities that make the linear relaxation see the slot limits.

    On GPU g at most S experts of the next layer sit beside e, so `sum_f m[e,f,g] <= S f[e,g]`
    (and the mirror image); e's tokens that stay on a GPU are at most those to its S best partners:
    `sum_f a[e,f] sum_g m[e,f,g] <= Q * (sum of the S largest a[e,.])`; the same per node.
    """
    import numpy as np

    for _levels, vars_, cap, groups in (
        (0, mvars, S, [[g] for g in range(G)]),
        (1, nvars, cap_node, node_gpus),
    ):
        if not vars_:
            continue
        for e in range(E):
            row = [(e2, vars_[e, e2]) for e2 in range(E) if (e, e2) in vars_]
            if not row:
                continue
            for i, gs in enumerate(groups):
                model.add(sum(v[i] for _, v in row) <= cap * sum(f[l, e, g] for g in gs))
            top = np.sort(a[e])[::-1][:cap].sum()
            if np.all(np.abs(a[e] - np.rint(a[e])) < 1e-9):
                model.add(sum(int(a[e, e2]) * sum(v) for e2, v in row) <= Q * round(top))
        for e2 in range(E):
            col = [(e, vars_[e, e2]) for e in range(E) if (e, e2) in vars_]
            if not col:
                continue
            for i, gs in enumerate(groups):
                model.add(sum(v[i] for _, v in col) <= cap * sum(f[l + 1, e2, g] for g in gs))
            top = np.sort(a[:, e2])[::-1][:cap].sum()
            if abs(top - round(top)) < 1e-9 and np.all(np.abs(a[:, e2] - np.rint(a[:, e2])) < 1e-9):
                model.add(sum(int(a[e, e2]) * sum(v) for e, v in col) <= Q * round(top))


def _hint_rest(model, problem, Xw, M, Wi, Q, hint_vars) -> None:
    """Hint the load and communication variables too, so that the warm start is a complete solution."""
    import numpy as np

    r = np.maximum(Xw.sum(axis=2), 1)
    F = (Xw > 0) * (Q // r)[:, :, None]  # scaled shares [L, E, G]
    for l, m in enumerate(M):
        model.add_hint(m, int(max(int((Wi[l] * F[l, :, g]).sum()) for g in range(problem.gpus))))
    for l, mvars, nvars, node_gpus in hint_vars:
        for (e, e2), ms in mvars.items():
            for g, v in enumerate(ms):
                model.add_hint(v, int(min(F[l, e, g], F[l + 1, e2, g])))
        for (e, e2), ns in nvars.items():
            for i, gs in enumerate(node_gpus):
                model.add_hint(ns[i], int(min(F[l, e, gs].sum(), F[l + 1, e2, gs].sum())))


def by_layer(problem: ExpertPlacement, opts: SolveOptions, warm, solve_one) -> Outcome:
    """Without communication the layers are independent: solve each alone and add up.

    Optimal only if every layer is; the bound is the sum of the layers' bounds (when all have one).
    """
    from optkit.solve import SolveOptions as Opts
    from optkit.solve import TimeUp

    L = problem.num_layers
    rows, bounds, optimal, term = [], [], True, Termination.COMPLETED
    stats: dict = {"layers_optimal": 0}
    for l in range(L):
        if opts.expired():  # no layer gets a slice of time that is not there: the rest keep warm
            rows.extend(list(r) for r in warm[l:])
            optimal, term = False, Termination.TIME_LIMIT
            bounds.extend([None] * (L - l))
            break
        sub = ExpertPlacement(
            gpus=problem.gpus,
            slots_per_gpu=problem.slots_per_gpu,
            load=[problem.load[l]],
            gpu_node=problem.gpu_node,
        )
        limit = None if opts.time_limit is None else opts.remaining() / (L - l)
        sub_opts = Opts(
            time_limit=limit,
            threads=opts.threads,
            seed=opts.seed,
            initial_solution={"slots": [list(warm[l])]},
            params=opts.params,
        )
        try:
            out = solve_one(sub, sub_opts)
        except TimeUp:  # its share ran out while its model was being built
            out = Outcome(termination=Termination.TIME_LIMIT)
        sol = out.solution["slots"][0] if out.solution else list(warm[l])
        if sub.objective_of([sol]) > sub.objective_of([list(warm[l])]):
            sol = list(warm[l])
        rows.append(sol)
        optimal = optimal and out.proven_optimal
        stats["layers_optimal"] += int(out.proven_optimal)
        bounds.append(sub.objective_of([sol]) if out.proven_optimal else out.bound)
        if out.termination != Termination.COMPLETED:
            term = out.termination
    bound = None
    if not optimal and all(b is not None for b in bounds):
        bound = math.floor(sum(bounds) * 1e6 - 1e-3) / 1e6
    return Outcome(
        solution={"slots": rows},
        termination=term,
        proven_optimal=optimal,
        bound=bound,
        stats=stats,
        message="layers solved one by one (no communication term)",
    )
