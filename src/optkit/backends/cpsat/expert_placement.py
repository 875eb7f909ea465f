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

from optkit.problems.expert_placement import ExpertPlacement
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions


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
    # kept whole (163 lines): one model, read top to bottom against the formulation in the module
    # docstring
    import numpy as np
    from ortools.sat.python import cp_model

    from optkit.backends.cpsat._common import solve_model
    from optkit.backends.expert_placement_exact import decimal_scale, prepare

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
