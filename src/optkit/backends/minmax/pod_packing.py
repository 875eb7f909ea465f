"""Pod packing as min-max violation (solver `minmax`): minimise the worst node overload, tier by tier.

The DMMV model of a set of pods: one exactly-one group per pod whose options are the nodes it may
run on (`PodPacking.candidates`), rows = (node, resource) usage, `usage <= capacity - usage of the
non-movable pods`, each row scaled by 1 / capacity, so the maximum violation is the worst relative
overload; a plan with maximum violation 0 is a valid packing. Moves: transfers (a pod to another
node) and group swaps (two pods exchange nodes), evaluated in batches by the engine.

The lexicographic objective (placed pods per priority tier first) is followed tier by tier, from
the highest priority down, each tier with an equal share of the remaining time:

1. the pods of priority >= p are placed: where they are (their current node at the start), the
   new ones best fit (least resulting relative load);
2. the engine minimises the worst overload (half the tier's time);
3. while a node stays overloaded and time is left, one pod of this tier per overloaded node is
   left pending (not-running pods first: no eviction; then the biggest request on the node's worst
   resource) and the engine runs again; a final repair leaves pods pending until nothing is
   overloaded, then the tier's pending pods are inserted first fit or after moving one pod aside;
4. the result competes (checker objective) with "previous tier's packing + first fit of this
   tier" and with best-fit decreasing from scratch, so a tier never loses what the tiers above had.

Finally pending pods are inserted (first fit, or after moving one pod aside) and moved pods go back
to their current node when it has room (fewer moves). An incumbent is reported after each tier.
No bound is claimed.
"""

from __future__ import annotations

import time

import numpy as np

from optkit.problems.pod_packing import PodPacking
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

PARAMS = {"backend": "auto", "tiebreak": "pnorm", "max_stall": 30, "max_iters": 0}
#: candidate pairs (pod x allowed node) whose arrays the encoding builds per second, at least:
#: 320,000 in 0.03 s, 8 million in 1.05 s, 32 million in 7.6 s (it grows faster than the pairs)
ENCODE_PAIRS_PER_S = 3_000_000
#: the search runs only when its encoding is estimated to take at most this share of the window
ENCODE_SHARE = 0.3


class _Packing:
    """Resource bookkeeping: requests, capacities (rows with a limit only), usage of a placement."""

    def __init__(self, problem: PodPacking):
        self.p = problem
        R = problem.resources
        self.req = np.array(problem.request_matrix, dtype=np.float64).reshape(
            problem.n_pods, len(R)
        )
        caps = problem.capacity_matrix
        self.limited = np.array([[c is not None for c in row] for row in caps], dtype=bool).reshape(
            problem.n_nodes, len(R)
        )
        self.cap = np.array(
            [[c if c is not None else np.inf for c in row] for row in caps], dtype=np.float64
        ).reshape(problem.n_nodes, len(R))
        self.scale = 1.0 / np.where(self.limited, np.maximum(self.cap, 1.0), 1.0)
        self.cand = problem.candidates
        self.cand_arr = [np.array(c, dtype=np.int64) for c in self.cand]
        top = (
            np.where(self.limited, self.cap, 0.0).max(axis=0) if self.cap.size else np.zeros(len(R))
        )
        self.size = (self.req / np.maximum(top, 1.0)).max(
            axis=1, initial=0.0
        )  # relative size of a pod
        self.movable = np.array([pod.movable for pod in problem.pods], dtype=bool)
        self.prio = np.array([pod.priority for pod in problem.pods])
        self.cur = problem.current

    def usage(self, where: list) -> np.ndarray:
        use = np.zeros_like(self.cap)
        for i, j in enumerate(where):
            if j is not None:
                use[j] += self.req[i]
        return use

    def overload(self, use: np.ndarray) -> np.ndarray:
        """Relative overload per node (max over its limited resources)."""
        over = np.where(self.limited, (use - self.cap) * self.scale, 0.0)
        return np.maximum(over, 0.0).max(axis=1) if over.size else np.zeros(self.cap.shape[0])

    def fits(self, use: np.ndarray, i: int, j: int) -> bool:
        return bool(np.all(~self.limited[j] | (use[j] + self.req[i] <= self.cap[j])))

    def _loads(self, use: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidate nodes, whether the pod fits there, relative load there with the pod)."""
        c = self.cand_arr[i]
        after = use[c] + self.req[i]
        lim = self.limited[c]
        fit = np.all(~lim | (after <= self.cap[c]), axis=1)
        load = np.where(lim, after * self.scale[c], 0.0).max(axis=1, initial=0.0)
        return c, fit, load

    def best_fit(self, use: np.ndarray, i: int, prefer: int | None = None) -> int | None:
        """The candidate node with the least resulting relative load (current node first on ties)."""
        c, _, load = self._loads(use, i)
        if c.size == 0:
            return None
        return int(c[np.lexsort((c, c != prefer, load))[0]])

    def first_fit(self, use: np.ndarray, i: int, prefer: int | None = None) -> int | None:
        """`prefer` if the pod fits there, else the fitting node left tightest (best fit); None if none."""
        c, fit, load = self._loads(use, i)
        if not fit.any():
            return None
        if prefer is not None and np.any(fit & (c == prefer)):
            return int(prefer)
        c, load = c[fit], load[fit]
        return int(c[np.lexsort((c, -load))[0]])


def _engine(
    pk: _Packing,
    where: list,
    play: list[int],
    fixed_use: np.ndarray,
    opts: SolveOptions,
    seed: int,
    deadline: float | None,
    max_stall: int | None = None,
) -> tuple[list, object | None]:
    """Minimise the worst relative overload of the pods in `play` (all placed in `where`)."""
    import scipy.sparse as sp

    from optkit.backends.minmax.engine import MinMaxModel, MinMaxParams, solve

    N, R = pk.cap.shape
    rows = np.argwhere(pk.limited)
    if len(rows) == 0 or not play:
        return where, None
    row_of = -np.ones((N, R), dtype=np.int64)
    row_of[rows[:, 0], rows[:, 1]] = np.arange(len(rows))
    P = len(play)
    mask = np.zeros((P, N), dtype=bool)
    for a, i in enumerate(play):
        mask[a, pk.cand_arr[i]] = True
    vid = np.full((P, N), -1, dtype=np.int64)
    n_var = int(mask.sum())
    vid[mask] = np.arange(n_var)
    ai, jj = np.nonzero(mask)
    pods = np.asarray(play)[ai]
    r_rows, r_cols, r_vals = [], [], []
    for r in range(R):
        ok = (row_of[jj, r] >= 0) & (pk.req[pods, r] != 0)
        r_rows.append(row_of[jj[ok], r])
        r_cols.append(vid[ai[ok], jj[ok]])
        r_vals.append(pk.req[pods[ok], r])
    A = sp.csr_matrix(
        (np.concatenate(r_vals), (np.concatenate(r_rows), np.concatenate(r_cols))),
        shape=(len(rows), n_var),
    )
    upper = (pk.cap - fixed_use)[rows[:, 0], rows[:, 1]]
    weights = pk.scale[rows[:, 0], rows[:, 1]]
    now_at = np.array([-1 if where[i] is None else where[i] for i in play])
    x0 = (jj == now_at[ai]).astype(np.float64)
    model = MinMaxModel(
        A, None, upper, np.tile([0.0, 1.0], (n_var, 1)), groups=vid, weights=weights
    )
    p = opts.params
    limit = None if deadline is None else max(1e-3, deadline - time.monotonic())
    params = MinMaxParams(
        backend=p["backend"],
        seed=seed,
        time_limit=limit,
        max_iters=p["max_iters"] or None,
        max_stall=max_stall or p["max_stall"],
        tiebreak=p["tiebreak"],
        single=False,
        transfer=True,
        swap=True,
        pairs=False,
    )
    res = solve(model, params, x0=x0)
    X = res.x[np.maximum(vid, 0)] * mask
    out = list(where)
    for a, i in enumerate(play):
        out[i] = int(np.argmax(X[a]))
    return out, res


def _overloaded(pk: _Packing, where: list) -> np.ndarray:
    return np.flatnonzero(pk.overload(pk.usage(where)) > 1e-12)


def _drop_one_per_node(
    pk: _Packing, where: list, play: list[int], prio: int
) -> tuple[list, list[int]]:
    """From each overloaded node, leave one pod of priority `prio` pending (the repair rule's choice)."""
    where = list(where)
    use = pk.usage(where)
    dropped = []
    for j in _overloaded(pk, where):
        worst_r = int(
            np.argmax(np.where(pk.limited[j], (use[j] - pk.cap[j]) * pk.scale[j], -np.inf))
        )
        on = [i for i in play if where[i] == j and pk.prio[i] == prio]
        if on:
            i = min(on, key=lambda i: (pk.cur[i] is not None, -pk.req[i, worst_r], i))
            where[i] = None
            dropped.append(i)
    return where, dropped


def _repair(pk: _Packing, where: list, play: list[int]) -> list:
    """Leave pods pending from overloaded nodes until none is overloaded (lowest priority first)."""
    where = list(where)
    use = pk.usage(where)
    in_play = set(play)
    stuck = np.zeros(pk.cap.shape[0], dtype=bool)
    while True:
        over = np.where(stuck, 0.0, pk.overload(use))
        j = int(np.argmax(over))
        if over[j] <= 1e-12:
            return where
        worst_r = int(
            np.argmax(np.where(pk.limited[j], (use[j] - pk.cap[j]) * pk.scale[j], -np.inf))
        )
        on = [i for i in in_play if where[i] == j]
        if not on:  # overloaded by non-movable pods alone: nothing to do on this node
            stuck[j] = True
            continue
        i = min(on, key=lambda i: (pk.prio[i], pk.cur[i] is not None, -pk.req[i, worst_r], i))
        where[i] = None
        use[j] -= pk.req[i]


def _greedy_insert(
    pk: _Packing, where: list, pods: list[int], deadline: float | None = None
) -> list:
    """Pending pods in order, each on its fitting node left tightest; past `deadline` the rest stay
    pending (at 1,000 nodes x 8,000 pods one pass takes about 0.6 s)."""
    where = list(where)
    use = pk.usage(where)
    for n, i in enumerate(pods):
        if deadline is not None and n % 64 == 0 and time.monotonic() > deadline:
            break
        if where[i] is None:
            j = pk.first_fit(use, i, prefer=pk.cur[i])
            if j is not None:
                where[i] = j
                use[j] += pk.req[i]
    return where


def _insert_with_moves(
    pk: _Packing, where: list, pods: list[int], deadline: float | None = None
) -> list:
    """Pending pods in order: first fit, else move one movable pod k off a node j (to another node
    where it fits) so that the pod fits on j; past `deadline` the rest stay pending (the move
    search is quadratic; at 1,000 nodes x 8,000 pods the first fits alone take 0.5 s a pass)."""
    where = list(where)
    use = pk.usage(where)
    for i in pods:
        if where[i] is not None or not pk.cand[i]:
            continue
        if deadline is not None and time.monotonic() > deadline:
            break
        j = pk.first_fit(use, i, prefer=pk.cur[i])
        if j is not None:
            where[i] = j
            use[j] += pk.req[i]
            continue
        done = False
        for j in pk.cand[i]:
            for k in (k for k in range(len(where)) if where[k] == j and pk.movable[k]):
                after = use[j] - pk.req[k] + pk.req[i]
                if not np.all(~pk.limited[j] | (after <= pk.cap[j])):
                    continue
                c, fit, load = pk._loads(use, k)
                ok = fit & (c != j)
                if not ok.any():
                    continue
                d = int(c[ok][np.lexsort((c[ok], c[ok] != pk.cur[k], -load[ok]))[0]])
                where[k], where[i] = d, j
                use[d] += pk.req[k]
                use[j] = after
                done = True
                break
            if done:
                break
    return where


def _move_back(pk: _Packing, where: list) -> list:
    where = list(where)
    use = pk.usage(where)
    for i, j in enumerate(where):
        c = pk.cur[i]
        if j is not None and c is not None and j != c and c in pk.cand[i]:
            use[j] -= pk.req[i]
            if pk.fits(use, i, c):
                where[i] = c
                use[c] += pk.req[i]
            else:
                use[j] += pk.req[i]
    return where


@register(
    "minmax",
    "pod-packing",
    exact=False,
    bounds=False,
    warm_start=True,
    deterministic=True,
    versions=("numpy", "scipy"),
    params=dict(PARAMS),
)
def minmax_pod_packing(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Min-max overload local search (CuPy or NumPy), tier by tier; overloaded pods left pending."""
    # kept whole (113 lines): the tier loop of the adapter: encode, search and decode share the
    # tier's fixed pods
    from optkit.problems.pod_repair import candidate_pairs, repair

    pairs = candidate_pairs(problem)
    if opts.time_limit is not None and pairs / ENCODE_PAIRS_PER_S > ENCODE_SHARE * opts.time_limit:
        return Outcome(
            solution=problem.to_solution(
                repair(problem, deadline=opts.started + 0.8 * opts.time_limit)
            ),
            termination=Termination.TIME_LIMIT,
            message=f"{pairs} candidate pairs do not encode in the window: the targeted repair's plan",
            stats={"path": "repair", "pairs": pairs},
        )
    pk = _Packing(problem)
    n = problem.n_pods
    if opts.initial_solution is not None:
        start = problem.placement_of(opts.initial_solution)
    else:
        start = [c if c is not None and c in pk.cand[i] else None for i, c in enumerate(pk.cur)]
    fixed = [i for i in range(n) if not pk.movable[i]]
    where: list = [None] * n
    for i in fixed:
        where[i] = pk.cur[i]
    fixed_use = pk.usage(where)
    stats = {
        "tiers": 0,
        "iterations": 0,
        "rounds": 0,
        "evaluated": 0,
        "pruned": 0,
        "engine_runs": 0,
        "engine_max_overload": [],
    }
    termination = Termination.COMPLETED
    tiers = problem.priorities
    seed = opts.seed
    backend = ""
    # finish early: the encoding above and the final passes below also take time (on 200 nodes x
    # 800 pods at 1 s, 0.9 of the time left ended at 1.20-1.34 s under load)
    deadline = None if opts.time_limit is None else opts.started + 0.8 * opts.time_limit - 0.05

    def run_engine(trial, play, tier_deadline, stall=None):
        nonlocal backend, termination
        # the engine's set-up grows with its variables (pod x allowed node): 0.5-1 us each on a
        # quiet machine (2 ms on 16 nodes x 128 pods, 0.1 s on 200 x 800), 2-3 times that under
        # load; it is not started unless its set-up fits before the tier's deadline
        setup = min(0.25, 0.02 + 2e-6 * sum(len(pk.cand_arr[i]) for i in play))
        if tier_deadline is not None and time.monotonic() >= tier_deadline - setup:
            termination = Termination.TIME_LIMIT
            return trial
        trial, res = _engine(
            pk, trial, play, fixed_use, opts, seed + stats["engine_runs"], tier_deadline, stall
        )
        if res is not None:
            stats["engine_runs"] += 1
            backend = res.device
            for k in ("iterations", "rounds", "evaluated", "pruned"):
                stats[k] += getattr(res, k)
            stats["engine_max_overload"].append(round(res.max_violation, 6))
            if res.termination == "time_limit":
                termination = Termination.TIME_LIMIT
        return trial

    for t, prio in enumerate(tiers):
        tier = [i for i in range(n) if pk.movable[i] and pk.prio[i] == prio and pk.cand[i]]
        if not tier:
            continue
        stats["tiers"] += 1
        tier_deadline = (
            None
            if deadline is None
            else time.monotonic() + max(0.0, deadline - time.monotonic()) / (len(tiers) - t)
        )
        previous = list(where)
        by_size = sorted(tier, key=lambda i: (pk.cur[i] is None, -pk.size[i], i))
        # b: the previous packing plus first fit of this tier; c: best fit decreasing from scratch
        # (before the search, which may take the tier's whole time)
        other = _greedy_insert(pk, previous, by_size, tier_deadline)
        scratch = [pk.cur[i] if not pk.movable[i] else None for i in range(n)]
        bfd = _greedy_insert(
            pk,
            scratch,
            sorted(
                (i for i in range(n) if pk.movable[i] and pk.prio[i] >= prio and pk.cand[i]),
                key=lambda i: (-pk.prio[i], -pk.size[i], i),
            ),
            tier_deadline,
        )
        # its moves search is quadratic: a quarter of the tier's time, the engine needs the rest
        quarter = (
            None
            if tier_deadline is None
            else time.monotonic() + 0.25 * max(0.0, tier_deadline - time.monotonic())
        )
        bfd = _insert_with_moves(pk, bfd, by_size, quarter)
        # a: start positions for the tier's pods, best fit for the others, then the engine; while a
        # node stays overloaded, leave one of this tier's pods pending per overloaded node and rerun
        trial = list(where)
        use = pk.usage(trial)
        for i in sorted(tier, key=lambda i: (start[i] is None, -pk.size[i], i)):
            j = start[i] if start[i] is not None else pk.best_fit(use, i, prefer=pk.cur[i])
            trial[i] = j
            if j is not None:
                use[j] += pk.req[i]
        play = [i for i in range(n) if pk.movable[i] and trial[i] is not None]
        first_deadline = (
            None
            if tier_deadline is None
            else time.monotonic() + 0.5 * max(0.0, tier_deadline - time.monotonic())
        )
        trial = run_engine(trial, play, first_deadline)
        while _overloaded(pk, trial).size and (
            tier_deadline is None or time.monotonic() < tier_deadline
        ):
            trial, dropped = _drop_one_per_node(pk, trial, play, prio)
            if not dropped:
                break
            play = [i for i in play if trial[i] is not None]
            trial = run_engine(trial, play, tier_deadline, stall=5)
        trial = _repair(pk, trial, play)
        trial = _insert_with_moves(pk, trial, by_size, tier_deadline)
        best = None
        for cand in (trial, other, bfd):
            over = pk.overload(pk.usage(cand)).max(initial=0.0)
            key = (over > 1e-12, problem.objective_of(cand))
            if best is None or key < best[0]:
                best = (key, cand)
        where = best[1]
        if not best[0][0]:
            opts.report(problem.to_solution(where), problem.objective_of(where))
    order = sorted(range(n), key=lambda i: (-pk.prio[i], pk.cur[i] is None, -pk.size[i], i))
    where = _insert_with_moves(pk, where, order, deadline)
    where = _move_back(pk, where)
    if problem.objective == "per-tier":
        where = _per_tier_guard(problem, where)
    solution = problem.to_solution(where)
    objective = problem.objective_of(where)
    stats["backend"] = backend
    opts.report(solution, objective)
    return Outcome(solution=solution, termination=termination, objective=objective, stats=stats)


def _per_tier_guard(problem: PodPacking, where: list) -> list:
    """Under the per-tier order the search's re-packing may restart high-priority pods for lower
    ones; the targeted repair of the current placement (which never does) wins when it is better."""
    from optkit.problems.pod_repair import repair

    alt = repair(problem)
    if problem.check(problem.to_solution(alt)).feasible and problem.objective_of(
        alt
    ) < problem.objective_of(where):
        return alt
    return where
