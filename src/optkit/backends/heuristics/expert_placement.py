"""Heuristics for MoE expert placement: DeepSeek's EPLB (the baseline) and greedy-affinity.

`eplb` is our own implementation of the algorithm published in deepseek-ai/EPLB (`eplb.py`):

- hierarchical policy (when `num_groups` is a multiple of the number of nodes): pack the expert
  groups onto nodes with balanced packing (heaviest group first onto the lightest node that still
  has room for a group), replicate within each node (each extra replica goes to the expert with
  the highest load per replica), then pack each node's replicas onto its GPUs with the same
  balanced packing (every GPU gets exactly `slots_per_gpu` replicas);
- global policy (otherwise): the same with one group and one node.

Like the original it may put two replicas of one expert on the same GPU, which the spec forbids.
With the default `repair=false` such an output is reported as an error result (the baseline stays
faithful); `repair=true` swaps each duplicate with a replica on another GPU of the same node,
choosing the swap that keeps the two GPUs' loads lowest (stats give the number of repairs).

`greedy-affinity`: same replica counts as EPLB, a per-layer load cap equal to the best balanced
reference placement (LPT with distinct GPUs, and EPLB), then layer by layer a greedy that puts
each replica (largest first) on the GPU that keeps the most affinity tokens local under the cap,
followed by swap local search against both neighbouring layers. A layer never ends above its cap
(else the reference placement, relabelled to match the previous layer, is used), so its
balancedness is at least the references'. `traffic="gpu"` scores GPU-local tokens only instead of
the link cost saved.

`traffic_lower_bound(problem)`: a lower bound on the cross-GPU traffic of any placement (the
b-matching LP bound, see its docstring and docs/expert_placement.md); not used by the solvers.
"""

from __future__ import annotations

import heapq

import numpy as np

from optkit.problems.expert_placement import ExpertPlacement
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

# -- EPLB ---------------------------------------------------------------------------------------


def balanced_pack(weights: np.ndarray, num_packs: int) -> tuple[np.ndarray, np.ndarray]:
    """EPLB's balanced packing of n items into packs of exactly n / num_packs items each.

    Heaviest item first (stable order on ties), each onto the lightest pack that is not full
    (lowest index on ties). Returns (pack of each item, rank of the item inside its pack).
    """
    n = len(weights)
    per_pack = n // num_packs
    if per_pack == 1:
        return np.arange(n), np.zeros(n, dtype=int)
    pack = np.full(n, -1, dtype=int)
    rank = np.full(n, -1, dtype=int)
    # a heap of (weight, index) over the packs with room pops the first lightest one, as argmin would
    heap = [(0.0, b) for b in range(num_packs)]
    count = [0] * num_packs
    wl = np.asarray(weights, dtype=float).tolist()
    for item in np.argsort(-np.asarray(weights), kind="stable").tolist():
        pw, best = heapq.heappop(heap)
        pack[item], rank[item] = best, count[best]
        count[best] += 1
        if count[best] < per_pack:
            heapq.heappush(heap, (pw + wl[item], best))
    return pack, rank


def replicate(
    weights: np.ndarray, num_phy: int, max_replicas: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """EPLB's replication: extra replica to the expert with the highest load per replica.

    Returns (logical expert of each physical replica, replica count of each expert); the first
    `len(weights)` physical replicas are the experts themselves in order. `max_replicas` (not in
    EPLB) caps the count, leaving physical slots unused (-1) when every expert is capped.
    """
    n = len(weights)
    phy2log = np.full(num_phy, -1, dtype=int)
    phy2log[:n] = np.arange(n)
    cnt = np.ones(n, dtype=int)
    w = np.asarray(weights, dtype=float)
    for i in range(n, num_phy):
        per = w / cnt
        if max_replicas is not None:
            per = np.where(cnt < max_replicas, per, -np.inf)
            if not np.isfinite(per).any():
                break
        e = int(np.argmax(per))
        phy2log[i] = e
        cnt[e] += 1
    return phy2log, cnt


def eplb_layer(
    w: np.ndarray, num_phy: int, num_groups: int, num_nodes: int, num_gpus: int
) -> np.ndarray:
    """EPLB for one layer: the logical expert of each physical slot (GPU-major order)."""
    if num_groups % num_nodes:
        num_groups, num_nodes = 1, 1  # global policy
    E = len(w)
    group_size = E // num_groups
    groups_per_node = num_groups // num_nodes
    per_node_log = E // num_nodes
    per_node_phy = num_phy // num_nodes
    per_gpu = num_phy // num_gpus
    # step 1: expert groups onto nodes
    gw = w.reshape(num_groups, group_size).sum(axis=1)
    gpack, grank = balanced_pack(gw, num_nodes)
    log2mlog = np.array(
        [
            (gpack[e // group_size] * groups_per_node + grank[e // group_size]) * group_size
            + e % group_size
            for e in range(E)
        ]
    )
    mlog2log = np.empty(E, dtype=int)
    mlog2log[log2mlog] = np.arange(E)
    out = []
    for n in range(num_nodes):
        mlogs = mlog2log[n * per_node_log : (n + 1) * per_node_log]
        wn = w[mlogs].astype(float)
        # step 2: replicas inside the node
        phy2mlog, cnt = replicate(wn, per_node_phy)
        # step 3: replicas onto the node's GPUs
        pack, rank = balanced_pack(wn[phy2mlog] / cnt[phy2mlog], num_gpus // num_nodes)
        pphy2phy = np.empty(per_node_phy, dtype=int)
        pphy2phy[pack * per_gpu + rank] = np.arange(per_node_phy)
        out.append(mlogs[phy2mlog[pphy2phy]])
    return np.concatenate(out)


def eplb_slots(problem: ExpertPlacement, num_groups: int = 1) -> tuple[list[list[int]], str]:
    """EPLB's placement of every layer and the policy used ('hierarchical' or 'global')."""
    G, E, N = problem.gpus, problem.num_experts, problem.num_nodes
    num_phy = problem.num_slots
    if num_groups < 1:
        raise ValueError(f"parameter 'num_groups' must be >= 1, got {num_groups}")
    hierarchical = num_groups % N == 0
    if hierarchical:
        if E % num_groups:
            raise ValueError(
                f"parameter 'num_groups': {E} experts do not split into {num_groups} equal groups"
            )
        expected = [g // (G // N) for g in range(G)] if G % N == 0 else None
        if expected is None or list(problem.node_of_gpu) != expected:
            raise ValueError(
                "EPLB's hierarchical policy needs nodes of equal size with consecutive GPUs "
                "(gpu_node = 0,0,..,1,1,..); use num_groups=1 for the global policy"
            )
        if E // N > num_phy // N:
            raise ValueError(
                "EPLB's hierarchical policy needs at least as many slots per node as experts per node"
            )
    slots = [
        eplb_layer(
            problem.load_array[l],
            num_phy,
            num_groups if hierarchical else 1,
            N if hierarchical else 1,
            G,
        ).tolist()
        for l in range(problem.num_layers)
    ]
    return slots, "hierarchical" if hierarchical and N > 1 else "global"


def repair_duplicates(
    problem: ExpertPlacement, slots: list[list[int]]
) -> tuple[list[list[int]], int]:
    """Swap away replicas that share a GPU with another replica of the same expert; returns (slots, swaps).

    One duplicate at a time (the last slot whose expert already sits earlier on the same GPU): swap
    it with the replica in slot t on another GPU h, such that neither GPU ends with two replicas of
    one expert, minimising (h on another node, the larger of the two GPUs' new loads, t); drop it
    when no swap exists (more replicas than GPUs).
    """
    S, G, E = problem.slots_per_gpu, problem.gpus, problem.num_experts
    node = np.asarray(problem.node_of_gpu)
    n_slots = problem.num_slots
    swaps = 0
    out = []
    X = problem.replica_matrix(slots)
    gpu_of = np.arange(n_slots) // S
    later = np.tril(np.ones((S, S), dtype=bool), -1)  # [k, j]: j is an earlier slot than k
    for l, row in enumerate(slots):
        if X[l].max() <= 1:  # no duplicate in this layer: nothing to do
            out.append(list(row))
            continue
        w = problem.load_array[l]
        R = np.asarray(row, dtype=int).copy()
        share = None
        for _ in range(n_slots):
            if share is None:  # replica counts change only when a replica is dropped
                cnt = np.bincount(R[R >= 0], minlength=E)
                share = np.where(cnt > 0, w / np.maximum(cnt, 1), 0.0)
            M = R.reshape(G, S)
            same = (M[:, :, None] == M[:, None, :]) & later[None] & (M[:, :, None] >= 0)
            dups = np.flatnonzero(same.any(axis=2).ravel())
            if len(dups) == 0:
                break
            dup = int(dups[-1])
            g, e = dup // S, int(R[dup])
            has = np.zeros((E + 1, G), dtype=bool)  # row E: empty slots
            has[np.where(R >= 0, R, E), gpu_of] = True
            has[E] = False
            sl = np.where(M >= 0, share[np.maximum(M, 0)], 0.0)
            loads = np.zeros(G)
            for k in range(S):  # in slot order, as a running sum
                loads = loads + sl[:, k]
            f = R
            sf = np.where(f >= 0, share[np.maximum(f, 0)], 0.0)
            ok = (gpu_of != g) & ~has[e, gpu_of] & ~has[np.where(f >= 0, f, E), g]
            if (
                not ok.any()
            ):  # no swap can fix it (e.g. more replicas than GPUs): drop the extra replica
                R[dup] = -1
                share = None
                swaps += 1
                continue
            val = np.maximum(loads[g] - share[e] + sf, loads[gpu_of] - sf + share[e])
            t_ok = np.flatnonzero(ok)
            order = np.lexsort((t_ok, val[t_ok], node[gpu_of[t_ok]] != node[g]))
            t = int(t_ok[order[0]])
            R[dup], R[t] = R[t], R[dup]
            swaps += 1
        out.append(R.tolist())
    return out, swaps


@register("eplb", "expert-placement", params={"num_groups": 0, "repair": False})
def eplb(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """DeepSeek's EPLB (hierarchical / global policy), the baseline; `num_groups` 0 takes the
    instance's `num_groups` (1 when it has none)."""
    try:
        groups = int(opts.params["num_groups"]) or problem.num_groups or 1
        slots, policy = eplb_slots(problem, groups)
    except ValueError as e:
        return Outcome(termination=Termination.ERROR, message=f"eplb: {e}")
    dup = int(np.maximum(problem.replica_matrix(slots) - 1, 0).sum())
    stats = {"policy": policy, "same_gpu_replicas_before_repair": dup}
    if dup and not opts.params["repair"]:
        return Outcome(
            termination=Termination.ERROR,
            stats=stats,
            message=f"eplb placed {dup} replica(s) on a GPU that already holds the same expert, "
            "which the spec forbids; rerun with --param repair=true for the repaired variant",
        )
    if dup:
        slots, swaps = repair_duplicates(problem, slots)
        stats["repair_swaps"] = swaps
    return Outcome(solution={"slots": slots}, stats=stats)


PLACE_SLACK = 1.0

# -- greedy-affinity -----------------------------------------------------------------------------


def replica_counts(problem: ExpertPlacement) -> np.ndarray:
    """`[L, E]` replica counts: EPLB's rule (highest load per replica next), at most one per GPU."""
    return np.stack(
        [
            replicate(problem.load_array[l], problem.num_slots, problem.gpus)[1]
            for l in range(problem.num_layers)
        ]
    )


def lpt_layer(w: np.ndarray, r: np.ndarray, G: int, S: int) -> np.ndarray | None:
    """Largest share first onto the least loaded GPU with a free slot and no replica of it: `[E, G]` 0/1."""
    X = np.zeros((len(w), G), dtype=int)
    share = (np.asarray(w, dtype=float) / r).tolist()
    rl = np.asarray(r).tolist()
    items = sorted(
        ((share[e], e) for e in range(len(w)) for _ in range(rl[e])), key=lambda t: (-t[0], t[1])
    )
    heap = [
        (0.0, g) for g in range(G)
    ]  # (load, GPU) of the GPUs with a free slot: first lightest on top
    free = [S] * G
    on = [set() for _ in range(G)]
    for sh, e in items:
        skipped = []
        while heap and e in on[heap[0][1]]:
            skipped.append(heapq.heappop(heap))
        if not heap:
            return None
        load, g = heapq.heappop(heap)
        for t in skipped:
            heapq.heappush(heap, t)
        X[e, g] = 1
        on[g].add(e)
        free[g] -= 1
        if free[g] > 0:
            heapq.heappush(heap, (load + sh, g))
    return X


class _Affinity:
    """Scores of putting expert e of layer l on GPU g, given the neighbouring layers' placements.

    Placing one replica of e on g keeps `sum_f a[e, f] x_f(g) min(1/r_e, 1/r_f)` tokens on the GPU
    (exact, for GPU-local traffic) and about `sum_f a[e, f] P_f(node of g) / r_e` in the node; the
    score weighs them by the link costs saved.
    """

    def __init__(self, problem: ExpertPlacement, r: np.ndarray, gpu_only: bool = False):
        A = problem.affinity_array
        c_in, c_out = problem.link_costs
        N = problem.num_nodes
        self.node_w = (c_out - c_in) if N > 1 and not gpu_only else 0.0
        self.gpu_w = c_in if (c_in > 0 or self.node_w == 0) else 0.0
        if self.gpu_w == 0 and self.node_w == 0 or gpu_only:
            self.gpu_w = 1.0
        self.onehot = np.zeros((problem.gpus, N))
        self.onehot[np.arange(problem.gpus), problem.node_of_gpu] = 1.0
        self.inv = 1.0 / np.maximum(r.astype(float), 1.0)
        L = problem.num_layers
        self.prev: list = [None] * L  # [E this, E prev] matrices
        self.next: list = [None] * L
        self.prev_raw: list = [None] * L
        self.next_raw: list = [None] * L
        if A is None:
            return
        for l in range(L - 1):
            mins = np.minimum.outer(self.inv[l], self.inv[l + 1])
            B = A[l] * mins
            self.next[l], self.prev[l + 1] = B, B.T  # transposed views: matmul needs no copy
            self.next_raw[l], self.prev_raw[l + 1] = A[l], A[l].T

    def score(self, l: int, X: np.ndarray, have: list[bool]) -> np.ndarray:
        """`[E, G]`: link cost saved per replica of e placed on g."""
        E, G = X.shape[1], X.shape[2]
        sc = np.zeros((E, G))
        for nb, B, raw in (
            (l - 1, self.prev[l], self.prev_raw[l]),
            (l + 1, self.next[l], self.next_raw[l]),
        ):
            if B is None or not have[nb]:
                continue
            Xn = X[nb].astype(float)
            sc += self.gpu_w * _column_sums(B, X[nb])
            if self.node_w:
                Pn = (Xn @ self.onehot) * self.inv[nb][:, None]  # [E_nb, N] node shares
                sc += self.node_w * ((raw @ Pn) @ self.onehot.T) * self.inv[l][:, None]
        return sc


def _column_sums(B: np.ndarray, Xn: np.ndarray) -> np.ndarray:
    """`B @ Xn` for a 0/1 matrix `Xn` [E, G] (a dense BLAS product beats gathering columns here)."""
    return B @ Xn.astype(float)


def _place_layer(
    share: np.ndarray, r: np.ndarray, sc: np.ndarray, cap: float, S: int, slack: float = 1.0
) -> np.ndarray | None:
    """Greedy under the cap: largest replica first, onto the best-scoring GPU that still fits.

    Among the GPUs with a free slot, no replica of the expert yet and room under the cap, those
    whose load is within `slack * share` of the lightest one are candidates; the best score wins
    (ties: the lighter GPU, then the lower index). When no GPU fits under the cap, the lightest
    allowed GPU takes it (the caller checks the cap). Plain Python lists: 32-wide numpy calls per
    replica cost more than the loop.
    """
    E, G = sc.shape
    X = np.zeros((E, G), dtype=int)
    load = [0.0] * G
    free = [S] * G
    open_g = list(range(G))  # GPUs with a free slot, in index order
    on = [[False] * G for _ in range(E)]
    scl = sc.tolist()
    shl = np.asarray(share, dtype=float).tolist()
    rl = np.asarray(r).tolist()
    items = sorted(
        ((shl[e], e) for e in range(E) for _ in range(rl[e])), key=lambda t: (-t[0], t[1])
    )
    eps = 1e-9 * max(1.0, cap)
    inf = float("inf")
    for sh, e in items:
        one = on[e]
        lim = cap + eps - sh
        lightest, light_load, lo = -1, inf, inf
        for g in open_g:  # the lightest allowed GPU, and the lightest load among those that fit
            if one[g]:
                continue
            lg = load[g]
            if lg < light_load:
                lightest, light_load = g, lg
            if lg <= lim and lg < lo:
                lo = lg
        if lightest < 0:
            return None
        if lo == inf:
            g = lightest
        else:
            near = lo + slack * sh
            row = scl[e]
            g, best = -1, -inf
            for h in open_g:
                if one[h]:
                    continue
                lh = load[h]
                if lh <= lim and lh <= near:
                    v = row[h] - 1e-12 * lh
                    if v > best:
                        g, best = h, v
        X[e, g] = 1
        one[g] = True
        load[g] += sh
        free[g] -= 1
        if free[g] == 0:
            open_g.remove(g)
    return X


def _swap_search(
    X: np.ndarray, share: np.ndarray, sc: np.ndarray, cap: float, rounds: int, top: int = 3
) -> np.ndarray:
    """Rounds of improving swaps of two replicas on different GPUs, keeping both GPUs under the cap.

    The scores do not depend on this layer's own placement, so a swap's gain is exact:
    `gain(i, j) = d_i(g_j) + d_j(g_i)` with `d_i(h) = sc[e_i, h] - sc[e_i, g_i]`. Each round looks,
    for every replica i, at the replicas on its `top` best other GPUs, and applies the best
    improving swaps that are still feasible.
    """
    # kept whole (94 lines): one swap round: candidates, feasibility filter and application share
    # the loads
    G = X.shape[1]
    eps = 1e-9 * max(1.0, cap)
    top = min(top, G - 1)
    if top < 1:
        return X
    scf = sc.ravel()
    for _ in range(rounds):
        Xf = X.ravel()
        gg, ee = np.nonzero(X.T.astype(bool))  # replicas sorted by GPU
        R = len(ee)
        if R < 2:
            break
        counts = np.bincount(gg, minlength=G)
        width = int(counts.max())
        on = np.full((G, width), -1)  # replica indices per GPU
        pos = np.arange(R) - np.repeat(np.cumsum(counts) - counts, counts)
        on[gg, pos] = np.arange(R)
        base = ee * G  # flat row offsets into sc / X
        D = sc[ee] - scf[base + gg][:, None]  # [R, G]: gain of moving replica i to GPU h
        D[np.arange(R), gg] = -np.inf
        rows = np.arange(R)
        Dm = D.copy()
        best = []
        for _t in range(
            top
        ):  # the `top` best other GPUs of each replica (repeated argmax: cheaper than argpartition)
            h = Dm.argmax(axis=1)
            best.append(h)
            Dm[rows, h] = -np.inf
        H = np.stack(best, axis=1)  # [R, top]
        J = on[H]  # [R, top, width] partner replicas
        valid = J >= 0
        Jc = np.where(valid, J, 0)
        Df = D.ravel()
        Hi = (np.arange(R) * G)[:, None] + H  # flat index of D[i, h]
        gain = (Df[Hi][:, :, None] + Df[Jc * G + gg[:, None, None]]).ravel()
        cand = np.flatnonzero(valid.ravel() & (gain > 1e-9))  # improving swaps (i, j), flat
        if len(cand) == 0:
            break
        loadv = share @ X
        # keep those feasible now: both GPUs stay under the cap, neither expert already on the other GPU
        ci = cand // (top * width)
        cj = Jc.ravel()[cand]
        gi, gj = gg[ci], gg[cj]
        shr = share[ee]
        d = shr[cj] - shr[ci]  # load moving onto g_i
        ok = (
            (loadv[gi] + d <= cap + eps)
            & (loadv[gj] - d <= cap + eps)
            & (Xf[base[ci] + gj] == 0)
            & (Xf[base[cj] + gi] == 0)
        )
        flat = cand[ok]
        if len(flat) == 0:
            break
        order = np.argsort(-gain[flat], kind="stable")[: 4 * R]  # best first
        load = loadv.tolist()
        occ = set(
            np.flatnonzero(Xf).tolist()
        )  # e * G + g of every replica (cheap membership tests)
        moved = [False] * R
        applied = 0
        sh = shr.tolist()
        eel, ggl = ee.tolist(), gg.tolist()
        for i, j in zip(ci[ok][order].tolist(), cj[ok][order].tolist()):
            if moved[i] or moved[j]:
                continue
            ei, gi, ej, gj = eel[i], ggl[i], eel[j], ggl[j]
            if ei * G + gj in occ or ej * G + gi in occ:
                continue
            d = sh[j] - sh[i]
            if load[gi] + d > cap + eps or load[gj] - d > cap + eps:
                continue
            occ.difference_update((ei * G + gi, ej * G + gj))
            occ.update((ei * G + gj, ej * G + gi))
            X[ei, gi] = X[ej, gj] = 0
            X[ei, gj] = X[ej, gi] = 1
            load[gi] += d
            load[gj] -= d
            moved[i] = moved[j] = True
            applied += 1
        if not applied:
            break
    return X


def _relabel(X_ref: np.ndarray, sc: np.ndarray) -> np.ndarray:
    """Permute the GPUs of a reference layer placement to maximise the affinity score."""
    from scipy.optimize import linear_sum_assignment  # imported here: discovery stays cheap

    # value[g_ref, g_new] = score of moving reference GPU g_ref's experts to GPU g_new
    value = X_ref.T.astype(float) @ sc
    _, cols = linear_sum_assignment(value, maximize=True)
    out = np.zeros_like(X_ref)
    out[:, cols] = X_ref
    return out


def greedy_affinity_X(
    problem: ExpertPlacement,
    num_groups: int = 1,
    sweeps: int = 2,
    rounds: int = 5,
    opts: SolveOptions | None = None,
    slack: float = 0.0,
    match_eplb: bool = True,
    traffic: str = "cost",
    stats: dict | None = None,
) -> np.ndarray:
    """The greedy-affinity placement as an `[L, E, G]` 0/1 array.

    `traffic="cost"` scores a placement by the link cost it saves (GPU-local tokens weigh `c_in`,
    node-local ones `c_out - c_in` more: the checker's `comm_cost`); `"gpu"` counts GPU-local tokens
    only (the checker's `cross_gpu_traffic`). `stats`, when given, gets `stopped_early` (the time
    limit cut the search: later layers are relabelled references, sweeps skipped).
    """
    # kept whole (87 lines): the algorithm's four steps (docs/expert_placement.md) share the layer
    # caps and the clock
    if traffic not in ("cost", "gpu"):
        raise ValueError(f"parameter 'traffic': 'cost' or 'gpu', got {traffic!r}")
    L, G, S = problem.num_layers, problem.gpus, problem.slots_per_gpu
    W = problem.load_array
    r = replica_counts(problem)
    refs: list[np.ndarray] = []  # balanced reference placements per layer, [L, E, G]
    lpt = [lpt_layer(W[l], r[l], G, S) for l in range(L)]
    if all(x is not None for x in lpt):
        refs.append(np.stack(lpt))
    eplb_max = None
    # EPLB with the given num_groups sets the cap; the global policy is a reference only when it is
    # the one asked for (elsewhere LPT is at least as balanced on almost every layer, and it costs time)
    for ng in sorted({1, num_groups}) if not refs or num_groups == 1 else [num_groups]:
        try:
            slots, _ = eplb_slots(problem, ng)
        except ValueError:
            continue
        Xe = problem.replica_matrix(slots)
        if Xe.max() > 1:
            Xe = problem.replica_matrix(repair_duplicates(problem, slots)[0])
        if Xe.max() <= 1 and Xe.sum(axis=2).min() >= 1:
            refs.append(Xe)
            if ng == num_groups:
                eplb_max = problem._gpu_loads(Xe).max(axis=1)
    ref_loads = [problem._gpu_loads(Xr).max(axis=1) for Xr in refs]
    best_ref = np.argmin(np.stack(ref_loads), axis=0)  # per layer
    cap = np.min(np.stack(ref_loads), axis=0) * (1.0 + slack)
    if match_eplb and eplb_max is not None:
        # use the slack EPLB leaves: never less balanced than (repaired) EPLB, layer by layer
        cap = np.maximum(cap, eplb_max)
    ref = np.stack([refs[best_ref[l]][l] for l in range(L)])
    r = ref.sum(axis=2)  # replica counts of the chosen reference, per layer
    share = W / np.maximum(r, 1)
    if problem.affinity_array is None:
        return ref
    aff = _Affinity(problem, r, gpu_only=traffic == "gpu")
    stats = {} if stats is None else stats
    stats["stopped_early"] = False
    X = np.zeros_like(ref)
    have = [False] * L
    X[0] = ref[0]
    have[0] = True
    for l in range(1, L):
        sc = aff.score(l, X, have)
        if (
            opts is not None and opts.expired()
        ):  # out of time: the reference layer, relabelled (cheap)
            X[l] = _relabel(ref[l], sc)
            have[l] = True
            stats["stopped_early"] = True
            continue
        cand = _place_layer(share[l], r[l], sc, cap[l], S, PLACE_SLACK)
        if cand is not None and (share[l] @ cand).max() <= cap[l] * (1 + 1e-9):
            X[l] = cand
        else:  # the greedy broke the cap: the reference layer, relabelled to follow its neighbour
            X[l] = _relabel(ref[l], sc)
        X[l] = _swap_search(X[l], share[l], sc, cap[l], rounds)
        have[l] = True
    for sweep in range(sweeps):
        if opts is not None and opts.expired():
            stats["stopped_early"] = True
            break
        for l in range(L):
            sc = aff.score(l, X, have)
            X[l] = _swap_search(X[l], share[l], sc, cap[l], rounds)
            if opts is not None and opts.expired() and (l < L - 1 or sweep < sweeps - 1):
                stats["stopped_early"] = True
                break
    return X


@register(
    "greedy-affinity",
    "expert-placement",
    params={"num_groups": 1, "sweeps": 2, "rounds": 5, "traffic": "cost"},
    default=True,
)
def greedy_affinity(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """Balanced as EPLB or better per layer, with affinity-aware GPU choice and swap search."""
    stats: dict = {}
    try:
        X = greedy_affinity_X(
            problem,
            int(opts.params["num_groups"]),
            int(opts.params["sweeps"]),
            int(opts.params["rounds"]),
            opts,
            traffic=str(opts.params["traffic"]),
            stats=stats,
        )
    except ValueError as e:
        return Outcome(termination=Termination.ERROR, message=f"greedy-affinity: {e}")
    term = Termination.TIME_LIMIT if stats.get("stopped_early") else Termination.COMPLETED
    return Outcome(solution={"slots": problem.slots_of(X)}, termination=term, stats=stats)


# -- a lower bound on cross-GPU traffic ------------------------------------------------------------


def _pair_stay_bound(a: np.ndarray, S: int, lp: bool = True) -> tuple[float, str]:
    """Upper bound on the tokens of one layer pair that can stay on their GPU (see `traffic_lower_bound`).

    Any `u, v >= 0` gives the bound `S sum u + S sum v + sum_ef max(0, a_ef - u_e - v_f)` (weak
    duality of the b-matching LP). `u_e` = the S-th largest entry of row e with `v = 0` is the row
    bound, the mirror the column bound; with `lp`, HiGHS's optimal duals give the LP's optimum.
    The bound is recomputed from the duals (clipped at 0), so solver tolerances cannot make it invalid.
    """
    E, F = a.shape
    k = min(S, F)
    zero_u, zero_v = np.zeros(E), np.zeros(F)

    def dual_value(u: np.ndarray, v: np.ndarray) -> float:
        u, v = np.maximum(u, 0.0), np.maximum(v, 0.0)
        return float(S * u.sum() + S * v.sum() + np.maximum(a - u[:, None] - v[None, :], 0.0).sum())

    u_row = -np.partition(-a, k - 1, axis=1)[:, k - 1] if S < F else zero_u
    v_col = -np.partition(-a, min(S, E) - 1, axis=0)[min(S, E) - 1] if S < E else zero_v
    best = min(
        (dual_value(u_row, zero_v), "rows"),
        (dual_value(zero_u, v_col), "columns"),
        (float(a.sum()), "total"),
    )
    if not (lp and S < max(E, F) and a.any()):
        return best
    try:
        import scipy.sparse as sp
        from scipy.optimize import linprog
    except ImportError:  # scipy is a dependency; without it the combinatorial bound stands
        return best
    ii, jj = np.nonzero(a)
    n = len(ii)
    cols = np.arange(n)
    M = sp.vstack(
        [
            sp.csr_matrix((np.ones(n), (ii, cols)), shape=(E, n)),
            sp.csr_matrix((np.ones(n), (jj, cols)), shape=(F, n)),
        ]
    ).tocsr()
    res = linprog(-a[ii, jj], A_ub=M, b_ub=np.full(E + F, float(S)), bounds=(0, 1), method="highs")
    if res.status == 0:
        y = -np.asarray(res.ineqlin.marginals)
        best = min(best, (dual_value(y[:E], y[E:]), "lp"))
    return best


def traffic_lower_bound(problem: ExpertPlacement, lp: bool = True) -> dict:
    """A lower bound on the cross-GPU traffic of ANY feasible placement (replicas included).

    For one layer pair, the checker keeps `a_ef * w_ef` tokens of pair (e, f) on their GPU with
    `w_ef = overlap(e, f) / max(r_e, r_f)`, where `overlap` counts GPUs holding both. Then
    `0 <= w_ef <= 1` and `sum_f w_ef <= sum_f overlap(e, f) / r_e <= S` (each of e's r_e GPUs holds at
    most S experts of layer l+1), and the same over e for each f. So the tokens that stay are at most
    the optimum of the bipartite b-matching LP `max sum a w` over those constraints; any dual
    solution bounds that from above (rows only: the S largest entries of each row; columns only:
    the mirror). Cross-GPU traffic >= total affinity - sum over pairs of the bound.

    Returns `cross_gpu_min` (tokens), `local_share_max`, `affinity_total`, `per_pair` (stay bounds)
    and `method` per pair ("lp", "rows", "columns" or "total").
    """
    A = problem.affinity_array
    if A is None:
        return {
            "cross_gpu_min": 0.0,
            "local_share_max": 1.0,
            "affinity_total": 0.0,
            "per_pair": [],
            "method": [],
        }
    S = problem.slots_per_gpu
    stays, methods = [], []
    for l in range(A.shape[0]):
        b, how = _pair_stay_bound(A[l], S, lp)
        stays.append(min(b, float(A[l].sum())))
        methods.append(how)
    total = float(A.sum())
    stay = float(sum(stays))
    return {
        "cross_gpu_min": max(total - stay, 0.0),
        "local_share_max": stay / total if total > 0 else 1.0,
        "affinity_total": total,
        "per_pair": stays,
        "method": methods,
    }
