"""Exact dynamic programme over layers for single-node expert placement (small layers, many layers).

On one node all GPUs are interchangeable, so a layer's placement matters only up to relabelling
its GPUs: a *state* is an unlabelled collection of `gpus` expert sets (at most `slots_per_gpu`
each, together covering every expert). Between consecutive layers the labels are chosen by a
matching of the two collections' GPU sets, and any chain of matchings is realisable (label layer 0
freely, then follow the matchings). Hence the optimum is a shortest path:

    V[0][s] = maxload_0(s)
    V[l+1][t] = maxload_{l+1}(t) + min_s ( V[l][s] + w c_in (total_l - bestlocal_l(s, t)) )

where `bestlocal_l(s, t)` is the largest number of affinity tokens kept on their GPU over all
matchings of s's sets to t's sets (a tiny assignment problem, enumerated over the `gpus!`
permutations). The DP is exact; it is used when the states and matchings are few (Mixtral-scale:
8 experts, 4 GPUs x 2 slots gives 105 states per layer and 24 matchings).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from optkit.backends.starts import start_from
from optkit.problems.expert_placement import ExpertPlacement
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

MAX_STATES = 4000
MAX_WORK = 3e8  # states^2 * matchings per layer pair, summed


def layer_states(
    E: int, G: int, S: int, limit: int = MAX_STATES
) -> list[tuple[frozenset, ...]] | None:
    """All unlabelled placements of one layer (G sets of <= S distinct experts covering 0..E-1), or None if too many."""
    subsets = [
        frozenset(c) for size in range(S + 1) for c in itertools.combinations(range(E), size)
    ]
    if math.comb(len(subsets) + G - 1, G) > 50 * limit * max(1, G):
        return None
    full = frozenset(range(E))
    out = []
    for combo in itertools.combinations_with_replacement(range(len(subsets)), G):
        sets = [subsets[i] for i in combo]
        if frozenset().union(*sets) == full:
            out.append(tuple(sets))
            if len(out) > limit:
                return None
    return out


@register("dp", "expert-placement", exact=True, bounds=True, params={})
def dp(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """Exact DP over layers for single-node instances with small layers (e.g. Mixtral on 4 GPUs)."""
    # kept whole (87 lines): one DP over layers: states, transitions and the backtrack share the
    # state table
    from scipy.optimize import linear_sum_assignment  # imported here: discovery stays cheap

    L, E, G, S = problem.num_layers, problem.num_experts, problem.gpus, problem.slots_per_gpu
    use_comm = problem.affinity_array is not None and problem.weight > 0 and L > 1
    if problem.num_nodes > 1:
        return _fallback(problem, opts, "multi-node instance (GPUs are not interchangeable)")
    states = layer_states(E, G, S)
    if states is None:
        return _fallback(problem, opts, f"more than {MAX_STATES} placements per layer")
    n = len(states)
    hungarian = math.factorial(G) > 720
    perms = None if hungarian else np.array(list(itertools.permutations(range(G))))
    work = (L - 1) * n * n * (G**3 * 20 if hungarian else len(perms)) if use_comm else 0
    if work > MAX_WORK:
        return _fallback(problem, opts, "too many transitions between layer placements")
    X = np.zeros((n, E, G))  # X[s, e, g]: expert e in set g of state s
    for i, st in enumerate(states):
        for g, sset in enumerate(st):
            for e in sset:
                X[i, e, g] = 1.0
    r = X.sum(axis=2)  # [n, E] replica counts
    W = problem.load_array
    # max load per (layer, state): shares load/r
    maxload = np.stack(
        [np.einsum("se,seg->sg", W[l][None, :] / r, X).max(axis=1) for l in range(L)]
    )
    A = problem.affinity_array
    w = problem.weight * problem.link_costs[0]
    use_comm = use_comm and w > 0
    V = maxload[0].copy()
    back = []
    for l in range(L - 1):
        if opts.expired():
            return Outcome(
                termination=Termination.TIME_LIMIT, message="dp: time limit before the last layer"
            )
        if use_comm:
            inv = 1.0 / r
            if np.all(r == 1):
                # block affinity B[s, i, t, j] = sum_{e in s_i, f in t_j} A[e, f]
                B = np.einsum("seg,ef,tfh->sgth", X, A[l], X, optimize=True)
            else:  # with replicas a pair keeps min(1/r_e, 1/r_f) of its tokens on a shared GPU
                B = _block_min(X, inv, A[l])
            # best matching value per (s, t): max over permutations p of sum_i B[s, i, t, p[i]]
            local = np.full((n, n), -np.inf)
            if hungarian:
                for a_ in range(n):
                    for b_ in range(n):
                        _, col = linear_sum_assignment(B[a_, :, b_, :], maximize=True)
                        local[a_, b_] = B[a_, np.arange(G), b_, col].sum()
            else:
                for p in perms:
                    local = np.maximum(local, B[:, np.arange(G), :, p].sum(axis=0))
            total = float(A[l].sum())
            trans = w * (total - local)  # [s, t]
        else:
            trans = np.zeros((n, n))
        cand = V[:, None] + trans
        arg = np.argmin(cand, axis=0)
        back.append(arg)
        V = cand[arg, np.arange(n)] + maxload[l + 1]
    last = int(np.argmin(V))
    path = [last]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    path.reverse()
    # labels: layer 0 as enumerated; then the best matching to the previous layer
    labelled = [list(states[path[0]])]
    for l in range(1, L):
        prev = labelled[-1]
        cur = list(states[path[l]])
        if use_comm:  # cur set best[i] goes with prev GPU i
            val = np.array(
                [
                    [_local(prev[i], cur[j], A[l - 1], r, path, l) for j in range(G)]
                    for i in range(G)
                ]
            )
            _, best = linear_sum_assignment(val, maximize=True)
            cur = [cur[best[i]] for i in range(G)]
        labelled.append(cur)
    slots = [
        [e for sset in layer for e in sorted(sset) + [-1] * (S - len(sset))] for layer in labelled
    ]
    return Outcome(solution={"slots": slots}, proven_optimal=True, stats={"states_per_layer": n})


def _fallback(problem: ExpertPlacement, opts: SolveOptions, why: str) -> Outcome:
    """Outside the DP's reach: the greedy-affinity placement, with no optimality claim."""
    start = start_from(problem, "greedy-affinity", opts)
    return Outcome(
        solution=start.solution if start is not None else None,
        message=f"dp not applicable ({why}); returned the greedy-affinity placement, no claim",
    )


def _block_min(X: np.ndarray, inv: np.ndarray, a: np.ndarray) -> np.ndarray:
    """B[s, i, t, j] = sum_{e in s_i, f in t_j} a[e, f] min(1/r_s(e), 1/r_t(f))."""
    n, _, G = X.shape
    out = np.zeros((n, G, n, G))
    for s in range(n):
        mins = np.minimum(inv[s][None, :, None], inv[:, None, :])  # [t, e, f]
        val = a[None, :, :] * mins  # [t, e, f]
        out[s] = np.einsum("eg,tef,tfh->gth", X[s], val, X)
    return out


def _local(prev_set, cur_set, a, r, path, l) -> float:
    rp, rc = r[path[l - 1]], r[path[l]]
    return float(sum(a[e, f] * min(1.0 / rp[e], 1.0 / rc[f]) for e in prev_set for f in cur_set))
