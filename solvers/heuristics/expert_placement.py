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
balancedness is at least the references'.
"""

from __future__ import annotations

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
    pack_w = np.zeros(num_packs)
    pack_n = np.zeros(num_packs, dtype=int)
    masked = pack_w.copy()  # the weights of packs with room; inf when full
    for item in np.argsort(-weights, kind="stable"):
        best = int(np.argmin(masked))  # first lightest pack with room
        pack[item], rank[item] = best, pack_n[best]
        pack_w[best] += float(weights[item])
        pack_n[best] += 1
        masked[best] = pack_w[best] if pack_n[best] < per_pack else np.inf
    return pack, rank


def replicate(weights: np.ndarray, num_phy: int, max_replicas: int | None = None) -> tuple[np.ndarray, np.ndarray]:
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


def eplb_layer(w: np.ndarray, num_phy: int, num_groups: int, num_nodes: int, num_gpus: int) -> np.ndarray:
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
    log2mlog = np.array([(gpack[e // group_size] * groups_per_node + grank[e // group_size]) * group_size
                         + e % group_size for e in range(E)])
    mlog2log = np.empty(E, dtype=int)
    mlog2log[log2mlog] = np.arange(E)
    out = []
    for n in range(num_nodes):
        mlogs = mlog2log[n * per_node_log:(n + 1) * per_node_log]
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
            raise ValueError(f"parameter 'num_groups': {E} experts do not split into {num_groups} equal groups")
        expected = [g // (G // N) for g in range(G)] if G % N == 0 else None
        if expected is None or list(problem.node_of_gpu) != expected:
            raise ValueError("EPLB's hierarchical policy needs nodes of equal size with consecutive GPUs "
                             "(gpu_node = 0,0,..,1,1,..); use num_groups=1 for the global policy")
        if E // N > num_phy // N:
            raise ValueError("EPLB's hierarchical policy needs at least as many slots per node as experts per node")
    slots = [eplb_layer(problem.load_array[l], num_phy, num_groups if hierarchical else 1,
                        N if hierarchical else 1, G).tolist() for l in range(problem.num_layers)]
    return slots, "hierarchical" if hierarchical and N > 1 else "global"


def repair_duplicates(problem: ExpertPlacement, slots: list[list[int]]) -> tuple[list[list[int]], int]:
    """Swap away replicas that share a GPU with another replica of the same expert; returns (slots, swaps)."""
    S, G = problem.slots_per_gpu, problem.gpus
    node = problem.node_of_gpu
    swaps = 0
    out = []
    for l, row in enumerate(slots):
        row = list(row)
        w = problem.load_array[l]
        for _ in range(problem.num_slots):
            cnt = np.zeros(problem.num_experts, dtype=int)
            for e in row:
                if e >= 0:
                    cnt[e] += 1
            share = np.where(cnt > 0, w / np.maximum(cnt, 1), 0.0)
            gpu_sets = [set() for _ in range(G)]
            dup = None
            for s, e in enumerate(row):
                if e < 0:
                    continue
                if e in gpu_sets[s // S]:
                    dup = s
                gpu_sets[s // S].add(e)
            if dup is None:
                break
            g, e = dup // S, row[dup]
            loads = [sum(share[x] for x in row[h * S:(h + 1) * S] if x >= 0) for h in range(G)]
            best = None
            for t in range(problem.num_slots):
                h, f = t // S, row[t]
                if h == g or e in gpu_sets[h] or (f >= 0 and f in gpu_sets[g]):
                    continue
                sf = share[f] if f >= 0 else 0.0
                key = (node[h] != node[g], max(loads[g] - share[e] + sf, loads[h] - sf + share[e]), t)
                if best is None or key < best[0]:
                    best = (key, t)
            if best is None:  # no swap can fix it (e.g. more replicas than GPUs): drop the extra replica
                row[dup] = -1
                swaps += 1
                continue
            t = best[1]
            row[dup], row[t] = row[t], row[dup]
            swaps += 1
        out.append(row)
    return out, swaps


@register("eplb", "expert-placement", params={"num_groups": 1, "repair": False})
def eplb(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """DeepSeek's EPLB (hierarchical / global policy), the baseline."""
    try:
        slots, policy = eplb_slots(problem, int(opts.params["num_groups"]))
    except ValueError as e:
        return Outcome(termination=Termination.ERROR, message=f"eplb: {e}")
    dup = int(np.maximum(problem.replica_matrix(slots) - 1, 0).sum())
    stats = {"policy": policy, "same_gpu_replicas_before_repair": dup}
    if dup and not opts.params["repair"]:
        return Outcome(termination=Termination.ERROR, stats=stats,
                       message=f"eplb placed {dup} replica(s) on a GPU that already holds the same expert, "
                               "which the spec forbids; rerun with --param repair=true for the repaired variant")
    if dup:
        slots, swaps = repair_duplicates(problem, slots)
        stats["repair_swaps"] = swaps
    return Outcome(solution={"slots": slots}, stats=stats)


PLACE_SLACK = 1.0

# -- greedy-affinity -----------------------------------------------------------------------------


def replica_counts(problem: ExpertPlacement) -> np.ndarray:
    """`[L, E]` replica counts: EPLB's rule (highest load per replica next), at most one per GPU."""
    return np.stack([replicate(problem.load_array[l], problem.num_slots, problem.gpus)[1]
                     for l in range(problem.num_layers)])


def lpt_layer(w: np.ndarray, r: np.ndarray, G: int, S: int) -> np.ndarray | None:
    """Largest share first onto the least loaded GPU with a free slot and no replica of it: `[E, G]` 0/1."""
    X = np.zeros((len(w), G), dtype=int)
    load = np.zeros(G)
    free = np.full(G, S)
    share = w / r
    items = sorted(((share[e], e) for e in range(len(w)) for _ in range(r[e])), key=lambda t: (-t[0], t[1]))
    for sh, e in items:
        cand = np.where((free > 0) & (X[e] == 0), load, np.inf)
        g = int(np.argmin(cand))
        if not np.isfinite(cand[g]):
            return None
        X[e, g] = 1
        load[g] += sh
        free[g] -= 1
    return X


def _to_rows(problem: ExpertPlacement, X: np.ndarray) -> list[list[int]]:
    S = problem.slots_per_gpu
    rows = []
    for l in range(X.shape[0]):
        row = []
        for g in range(problem.gpus):
            es = [int(e) for e in np.flatnonzero(X[l, :, g])]
            row += es + [-1] * (S - len(es))
        rows.append(row)
    return rows


class _Affinity:
    """Scores of putting expert e of layer l on GPU g, given the neighbouring layers' placements.

    Placing one replica of e on g keeps `sum_f a[e, f] x_f(g) min(1/r_e, 1/r_f)` tokens on the GPU
    (exact, for GPU-local traffic) and about `sum_f a[e, f] P_f(node of g) / r_e` in the node; the
    score weighs them by the link costs saved.
    """

    def __init__(self, problem: ExpertPlacement, r: np.ndarray):
        A = problem.affinity_array
        c_in, c_out = problem.link_costs
        N = problem.num_nodes
        self.node_w = (c_out - c_in) if N > 1 else 0.0
        self.gpu_w = c_in if (c_in > 0 or self.node_w == 0) else 0.0
        if self.gpu_w == 0 and self.node_w == 0:
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
            self.next[l], self.prev[l + 1] = B, np.ascontiguousarray(B.T)
            self.next_raw[l], self.prev_raw[l + 1] = A[l], np.ascontiguousarray(A[l].T)

    def score(self, l: int, X: np.ndarray, have: list[bool]) -> np.ndarray:
        """`[E, G]`: link cost saved per replica of e placed on g."""
        E, G = X.shape[1], X.shape[2]
        sc = np.zeros((E, G))
        for nb, B, raw in ((l - 1, self.prev[l], self.prev_raw[l]), (l + 1, self.next[l], self.next_raw[l])):
            if B is None or not have[nb]:
                continue
            Xn = X[nb].astype(float)
            sc += self.gpu_w * _column_sums(B, X[nb])
            if self.node_w:
                Pn = (Xn @ self.onehot) * self.inv[nb][:, None]  # [E_nb, N] node shares
                sc += self.node_w * ((raw @ Pn) @ self.onehot.T) * self.inv[l][:, None]
        return sc


def _column_sums(B: np.ndarray, Xn: np.ndarray) -> np.ndarray:
    """`B @ Xn` for a 0/1 matrix `Xn` [E, G], by summing the selected columns of B per GPU."""
    ee, gg = np.nonzero(Xn.T)  # sorted by GPU
    gpu_of, experts = ee, gg
    out = np.zeros((B.shape[0], Xn.shape[1]))
    if len(experts) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, gpu_of[1:] != gpu_of[:-1]])
    out[:, gpu_of[starts]] = np.add.reduceat(B[:, experts], starts, axis=1)
    return out


def _place_layer(share: np.ndarray, r: np.ndarray, sc: np.ndarray, cap: float, S: int,
                 slack: float = 1.0) -> np.ndarray | None:
    """Greedy under the cap: largest replica first, onto the best-scoring GPU that still fits."""
    E, G = sc.shape
    X = np.zeros((E, G), dtype=int)
    load = np.zeros(G)
    free = np.full(G, S)
    items = sorted(((share[e], e) for e in range(E) for _ in range(r[e])), key=lambda t: (-t[0], t[1]))
    eps = 1e-9 * max(1.0, cap)
    remaining = len(items)
    for sh, e in items:
        ok = (free > 0) & (X[e] == 0)
        fit = ok & (load + sh <= cap + eps)
        if not fit.any():
            if not ok.any():
                return None
            g = int(np.argmin(np.where(ok, load, np.inf)))
        else:
            # LPT with affinity: among GPUs whose load is within `slack * share` of the lightest
            # one that fits, the best score (ties: the lighter GPU)
            lo = load[fit].min()
            near = fit & (load <= lo + slack * sh)
            key = np.where(near, sc[e] - 1e-12 * load, -np.inf)
            g = int(np.argmax(key))
        X[e, g] = 1
        load[g] += sh
        free[g] -= 1
        remaining -= 1
    return X


def _swap_search(X: np.ndarray, share: np.ndarray, sc: np.ndarray, cap: float, rounds: int,
                 top: int = 3) -> np.ndarray:
    """Rounds of improving swaps of two replicas on different GPUs, keeping both GPUs under the cap.

    The scores do not depend on this layer's own placement, so a swap's gain is exact:
    `gain(i, j) = d_i(g_j) + d_j(g_i)` with `d_i(h) = sc[e_i, h] - sc[e_i, g_i]`. Each round looks,
    for every replica i, at the replicas on its `top` best other GPUs, and applies the best
    improving swaps that are still feasible.
    """
    G = X.shape[1]
    eps = 1e-9 * max(1.0, cap)
    top = min(top, G - 1)
    if top < 1:
        return X
    for _ in range(rounds):
        gg, ee = np.nonzero(X.T)  # replicas sorted by GPU
        R = len(ee)
        if R < 2:
            break
        counts = np.bincount(gg, minlength=G)
        width = int(counts.max())
        on = np.full((G, width), -1)  # replica indices per GPU
        pos = np.arange(R) - np.repeat(np.cumsum(counts) - counts, counts)
        on[gg, pos] = np.arange(R)
        D = sc[ee] - sc[ee, gg][:, None]  # [R, G]
        D[np.arange(R), gg] = -np.inf
        H = np.argpartition(-D, top - 1, axis=1)[:, :top]  # [R, top] best other GPUs
        J = on[H]  # [R, top, width] partner replicas
        valid = J >= 0
        Jc = np.where(valid, J, 0)
        gain = D[np.arange(R)[:, None, None], H[:, :, None]] + D[Jc, gg[:, None, None]]
        gain = np.where(valid, gain, -np.inf)
        flat = np.flatnonzero(gain.ravel() > 1e-9)
        if len(flat) == 0:
            break
        order = flat[np.argsort(-gain.ravel()[flat], kind="stable")][: 4 * R].tolist()
        load = (share @ X).tolist()
        on_gpu = X.astype(bool).tolist()  # python lists: scalar access in the loop is cheap
        moved = [False] * R
        applied = 0
        sh = share[ee].tolist()
        eel, ggl = ee.tolist(), gg.tolist()
        Jflat = J.ravel().tolist()
        stride = top * width
        for k in order:
            i = k // stride
            j = Jflat[k]
            if moved[i] or moved[j]:
                continue
            ei, gi, ej, gj = eel[i], ggl[i], eel[j], ggl[j]
            if on_gpu[ei][gj] or on_gpu[ej][gi]:
                continue
            d = sh[j] - sh[i]
            if load[gi] + d > cap + eps or load[gj] - d > cap + eps:
                continue
            on_gpu[ei][gi] = on_gpu[ej][gj] = False
            on_gpu[ei][gj] = on_gpu[ej][gi] = True
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
    # value[g_ref, g_new] = score of moving reference GPU g_ref's experts to GPU g_new
    value = X_ref.T.astype(float) @ sc
    cols = assignment(-value)
    out = np.zeros_like(X_ref)
    out[:, cols] = X_ref
    return out


def greedy_affinity_X(problem: ExpertPlacement, num_groups: int = 1, sweeps: int = 2, rounds: int = 4,
                      opts: SolveOptions | None = None, slack: float = 0.0, match_eplb: bool = True) -> np.ndarray:
    """The greedy-affinity placement as an `[L, E, G]` 0/1 array."""
    L, G, S = problem.num_layers, problem.gpus, problem.slots_per_gpu
    W = problem.load_array
    r = replica_counts(problem)
    refs: list[np.ndarray] = []  # balanced reference placements per layer, [L, E, G]
    lpt = [lpt_layer(W[l], r[l], G, S) for l in range(L)]
    if all(x is not None for x in lpt):
        refs.append(np.stack(lpt))
    eplb_max = None
    for ng in sorted({1, num_groups}):
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
    aff = _Affinity(problem, r)
    X = np.zeros_like(ref)
    have = [False] * L
    X[0] = ref[0]
    have[0] = True
    for l in range(1, L):
        sc = aff.score(l, X, have)
        cand = _place_layer(share[l], r[l], sc, cap[l], S, PLACE_SLACK)
        if cand is not None and (share[l] @ cand).max() <= cap[l] * (1 + 1e-9):
            X[l] = cand
        else:  # the greedy broke the cap: the reference layer, relabelled to follow its neighbour
            X[l] = _relabel(ref[l], sc)
        X[l] = _swap_search(X[l], share[l], sc, cap[l], rounds)
        have[l] = True
    for _ in range(sweeps):
        if opts is not None and opts.expired():
            break
        for l in range(L):
            sc = aff.score(l, X, have)
            X[l] = _swap_search(X[l], share[l], sc, cap[l], rounds)
            if opts is not None and opts.expired():
                break
    return X


@register("greedy-affinity", "expert-placement", params={"num_groups": 1, "sweeps": 2, "rounds": 4}, default=True)
def greedy_affinity(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """Balanced as EPLB or better per layer, with affinity-aware GPU choice and swap search."""
    X = greedy_affinity_X(problem, int(opts.params["num_groups"]), int(opts.params["sweeps"]),
                          int(opts.params["rounds"]), opts)
    return Outcome(solution={"slots": _to_rows(problem, X)})


def best_heuristic_slots(problem: ExpertPlacement, num_groups: int = 1) -> list[list[int]]:
    """The better (by objective) of greedy-affinity and repaired EPLB: the exact models' warm start."""
    cands = [_to_rows(problem, greedy_affinity_X(problem, num_groups, sweeps=1, rounds=2))]
    for ng in sorted({1, num_groups}):
        try:
            slots, _ = eplb_slots(problem, ng)
        except ValueError:
            continue
        cands.append(repair_duplicates(problem, slots)[0])
    feasible = [c for c in cands if problem.check({"slots": c}).feasible]
    return min(feasible, key=problem.objective_of)


def max_replicas(problem: ExpertPlacement) -> int:
    """The most replicas one expert can have: one per GPU, and no more than the spare slots allow."""
    return max(1, min(problem.gpus, problem.num_slots - problem.num_experts + 1))


def assignment(cost: np.ndarray) -> np.ndarray:
    """Min-cost perfect assignment of a square matrix (Hungarian method, O(n^3)): column of each row."""
    n = cost.shape[0]
    INF = float("inf")
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=int)  # p[j]: row matched to column j (1-based, 0 = none)
    way = np.zeros(n + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, INF)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], INF)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    col = np.zeros(n, dtype=int)
    for j in range(1, n + 1):
        if p[j]:
            col[p[j] - 1] = j - 1
    return col
