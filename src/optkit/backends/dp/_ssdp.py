"""Successive sublimation dynamic programming (SSDP) for 1 || sum w_j T_j.

After Tanaka, Fujikuma and Araki (J. Scheduling 12, 2009). The jobs run without idle time in
[0, T], T = sum p. Relaxing "each job exactly once" with multipliers u turns the problem into a
shortest path over the time-indexed network of `_ssdp_kernels` (nodes (t, j): job j completes at
t); its cost plus sum u is a lower bound for every u. The stages, each a tighter relaxation:

1. Multipliers: subgradient optimisation of that bound on the network whose arcs bar any
   adjacent pair that an interchange would improve and whose paths never go j i j (each node
   keeps its cheapest path and the cheapest with another previous job). Every 10 passes that
   raised the bound, the nodes are eliminated (stage 2), so that the passes get cheaper.
2. Elimination: with the best u, a forward and a backward pass give for each node the cheapest
   path through it; nodes whose bound cannot beat the upper bound (dynasearch's answer) go,
   for good (a node's bound holds whatever the multipliers).
3. Sublimation: jobs are memorised, five at a time, those with the fewest nodes left first
   (the choice of Tanaka's SiPS library, which adds up to 3 at a time: each adds few states):
   states become (t, j, S) with S the memorised jobs done, so that each of them occurs exactly
   once (and, as in stage 1, no path goes j i j). Jobs are added until the relaxed optimum is a sequence (then optimal) or no
   state can beat the upper bound (then the upper bound is optimal). Passes alternate between
   forward and backward, and each prunes its states with the previous pass's states of the
   other half of the path.

Stages 1 to 3 repeat in rounds with a growing cap on the states. The bound
only grows, and each improvement is recorded in `stats["bounds"]`; the objective is integral, so
a bound above UB - 1 proves UB optimal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from optkit.backends.dp import _ssdp_kernels as K
from optkit.backends.dp._precedence import precedences

#: float slack on bound comparisons (values are sums of at most n integers and the multipliers)
EPS = 1e-6
#: the memorising pass looks at the clock after each this many times or new states
ROWS_PER_CHUNK = 256
STATES_PER_CHUNK = 100_000
#: the subgradient step below which the multipliers are taken as converged
MIN_STEP = 1e-2
#: passes without a better bound before the subgradient step is halved
PATIENCE = 20
#: the multipliers' passes eliminate nodes after each this many (if the bound rose)
ELIMINATE_EVERY = 10
#: the most jobs memorised (a state's set is a 64-bit mask)
MAX_MEMO = 64
#: where n > MAX_MEMO, the last this many memorised are jobs that the relaxed optimum repeats or
#: misses (the fewest-nodes rule may fill the masks with jobs it already gets right)
LAST_WRONG = 16


@dataclass
class Answer:
    """What the SSDP established: the best sequence known, its cost, and a proven lower bound."""

    sequence: list[int]
    cost: int
    bound: int
    stats: dict = field(default_factory=dict)

    @property
    def optimal(self) -> bool:
        return self.bound >= self.cost


class SSDP:
    """One instance (jobs with p_j >= 1), an upper bound and its sequence, and a clock."""

    def __init__(
        self,
        p: list[int],
        d: list[int],
        w: list[int],
        upper: tuple[int, list[int]],
        deadline: float,
        on_bound: Callable[[int], None] | None = None,
        max_states: int = 20_000_000,
        add_per_round: int = 5,
        sg_block: int = 100,
        first_states: int = 250_000,
    ):
        # inside, the jobs are numbered in a topological order of the known pairs (`before`),
        # so that the tie-break of the network's arcs agrees with them (see `_precedence`)
        self.order, self.before = precedences(p, d, w)
        inner = {j: k for k, j in enumerate(self.order)}
        self.p = np.asarray([p[j] for j in self.order], np.int64)
        self.d = np.asarray([d[j] for j in self.order], np.int64)
        self.w = np.asarray([w[j] for j in self.order], np.int64)
        self.n = len(p)
        self.T = int(self.p.sum())
        self.ub, self.seq = upper[0], [inner[j] for j in upper[1]]
        self.deadline = deadline
        self.on_bound = on_bound
        self.max_states = max_states
        self.add_per_round = add_per_round
        self.sg_block = sg_block
        self.first_states = first_states
        self.bound = 0
        self.stats: dict = {"bounds": []}
        self.started = time.monotonic()
        self.full = False  # the last memorising pass ran out of room
        self.memo_capped = False  # the last sublimation memorised MAX_MEMO jobs
        self.alive = self.windows()

    def windows(self) -> np.ndarray:
        """The nodes (t, j) that the sequences respecting `before` can use: j completes no
        earlier than p_j plus the jobs known to precede it, no later than T less those known to
        follow it."""
        earliest = self.p + self.p @ self.before  # column j: the jobs known to precede j
        latest = self.T - self.before @ self.p  # row j: the jobs known to follow j
        t = np.arange(self.T + 1)[:, None]
        return (t >= earliest[None, :]) & (t <= latest[None, :])

    # -- bookkeeping ------------------------------------------------------------------------------
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def raise_bound(self, lb: float, stage: str) -> None:
        bound = min(self.ub, math.ceil(lb - EPS))
        if bound > self.bound:
            self.bound = bound
            self.stats["bounds"].append((stage, round(time.monotonic() - self.started, 4), bound))
            if self.on_bound is not None:
                self.on_bound(bound)

    def improve(self, seq: np.ndarray, stage: str) -> None:
        """Take a feasible sequence found by the relaxation if it beats the upper bound."""
        c = np.cumsum(self.p[seq])
        cost = int((self.w[seq] * np.maximum(0, c - self.d[seq])).sum())
        if cost < self.ub:
            self.ub, self.seq = cost, [int(j) for j in seq]
            self.stats.setdefault("improved_by", []).append(stage)

    def proven(self) -> bool:
        return self.bound >= self.ub

    def answer(self) -> Answer:
        self.stats["seconds"] = round(time.monotonic() - self.started, 4)
        sequence = [self.order[k] for k in self.seq]
        return Answer(sequence, self.ub, min(self.bound, self.ub), self.stats)

    # -- the stages -------------------------------------------------------------------------------
    def run(self) -> Answer:
        """Rounds of (a block of multiplier passes, elimination, sublimation), each round
        allowed four times the states of the last: an instance that the memorising passes prove
        with few states is not held up by multipliers it does not need, and one that needs better
        multipliers gets them before its states grow."""
        if self.n == 0 or self.ub == 0:
            self.bound = self.ub
            return self.answer()
        u, path, step, cap = np.zeros(self.n), None, 2.0, self.first_states
        while not self.proven() and not self.expired():
            if step >= MIN_STEP:
                u, path, step = self.subgradient(u, self.sg_block, step)
                if self.proven() or self.expired():
                    break
            F, G = self.eliminate(u)
            if self.proven() or self.expired():
                break
            self.full = self.memo_capped = False
            self.sublimate(u, F, G, path, min(cap, self.max_states))
            if self.memo_capped and step >= MIN_STEP:
                continue  # all the jobs it may memorise did not settle it: better multipliers
            if not self.full or cap >= self.max_states:
                break
            cap *= 4
        return self.answer()

    def counts(self, path: np.ndarray) -> np.ndarray:
        return np.bincount(path, minlength=self.n)

    def subgradient(self, u, iterations: int, step: float):
        """Polyak steps towards UB, halved after `patience` passes without a better bound.
        Returns the best multipliers, their relaxed optimum's path and the step reached."""
        best_u, best_lb, best_path = u.copy(), -math.inf, None
        stall, patience, fresh = 0, PATIENCE, False
        stage = "multipliers"
        passes = 0
        for passes in range(1, iterations + 1):  # noqa: B007 - counted after the loop
            F, P = K.forward(self.p, self.d, self.w, u, self.alive, self.before)
            lb = float(F[-1, :, 0].min()) + float(u.sum())
            path = K.path_of(F, P, self.p)
            g = 1.0 - self.counts(path)
            if lb > best_lb + EPS:
                best_u, best_lb, best_path, stall, fresh = u.copy(), lb, path, 0, True
                self.raise_bound(lb, stage)
            else:
                stall += 1
                if stall >= patience:
                    step, stall = step / 2, 0
            if fresh and passes % ELIMINATE_EVERY == 0:
                self.eliminate(best_u)  # a thinner network: faster passes, a higher bound
                fresh = False
            if not g.any():  # the relaxed optimum is a sequence: optimal
                self.improve(path, stage)
                self.raise_bound(lb, stage)
                break
            if self.proven() or step < MIN_STEP or self.expired():
                break
            u = u + step * (self.ub - lb) / float(g @ g) * g
        done = self.stats.get(stage, {}).get("iterations", 0)
        self.stats[stage] = {"iterations": done + passes, "bound": round(best_lb, 3)}
        return best_u, best_path, step

    def eliminate(self, u: np.ndarray) -> np.ndarray:
        """Remove the nodes through which no path beats the upper bound; returns the forward and
        backward costs F and G (bounds on the two halves of any path through a node)."""
        F, P = K.forward(self.p, self.d, self.w, u, self.alive, self.before)
        G, S, best = K.backward(self.p, self.d, self.w, u, self.alive, self.before)
        self.raise_bound(best + u.sum(), "elimination")
        cut = self.ub - 1 - float(u.sum()) + EPS
        self.alive &= K.through(F, P, G, S) <= cut
        F, G = F[:, :, 0].copy(), G[:, :, 0].copy()
        self.stats["nodes_alive"] = int(self.alive.sum())
        if not self.alive[-1].any():
            self.raise_bound(self.ub, "elimination")
        return F, G

    def sublimate(
        self, u: np.ndarray, F: np.ndarray, G: np.ndarray, path: np.ndarray, cap: int
    ) -> None:
        """Memorise jobs until the relaxed optimum is a sequence or nothing beats UB. The passes
        alternate between forward and backward, each pruning its states with the previous
        pass's states of the other half of the path (a state whose complement was pruned goes)."""
        memo: list[int] = []
        prev = None
        forward = True
        while not self.proven() and not self.expired():
            cnt = self.counts(path)
            if not (cnt != 1).any():
                break
            if len(memo) >= MAX_MEMO:
                self.memo_capped = True
                break
            # the jobs with the fewest nodes left first (each adds the fewest states), ties to
            # the jobs that the relaxed optimum misses or repeats most
            nodes = self.alive.sum(axis=0)
            rest = [j for j in range(self.n) if j not in memo]
            if not rest:
                break
            rest.sort(key=lambda j: (int(nodes[j]), -abs(1 - int(cnt[j]))))
            if self.n > MAX_MEMO and len(memo) >= MAX_MEMO - LAST_WRONG:
                # not every job fits: the last ones memorised are those the optimum gets wrong
                rest.sort(key=lambda j: int(cnt[j]) == 1)
            memo += rest[: min(self.add_per_round, MAX_MEMO - len(memo))]
            self.stats["memorised"] = len(memo)
            base = G if forward else F  # the cost of the other half in the unmemorised network
            out = self.memo_pass(u, base, memo, forward, prev, cap)
            if out is None:
                break
            path, prev = out
            forward = not forward

    def memo_pass(self, u, base, memo: list[int], forward: bool, prev, cap_states: int):
        """One pass of the memorising network: the relaxed optimum's path and this pass's states
        (for the next pass to prune with), or None when the pass proved UB optimal or ran out
        of time or room."""
        n, T = self.n, self.T
        bit = np.zeros(n, np.uint64)
        for k, j in enumerate(memo):
            bit[j] = np.uint64(1) << np.uint64(k)
        full = np.uint64((1 << len(memo)) - 1)
        net = (self.p, self.d, self.w, u, self.alive, self.before)
        left_p = int(self.p[memo].sum())
        cut = self.ub - 1 - float(u.sum()) + EPS
        if prev is None:
            none = np.zeros((1, 1), np.int64)
            other = (False, base, none, none, np.zeros(1, np.uint64), np.zeros(1), np.uint64(0))
        else:
            plo, phi, pstore, pfull = prev
            other = (True, base, plo, phi, pstore[1], pstore[2], pfull)
        lo = np.zeros((T + 1, n), np.int64)
        hi = np.zeros((T + 1, n), np.int64)
        cap = 1 << 16
        store = (
            np.full(cap, n, np.int32),
            np.zeros(cap, np.uint64),
            np.zeros(cap),
            np.zeros(cap, np.int32),
            np.zeros(cap, np.int32),
            np.full(cap, K.INF),
            np.full(cap, -1, np.int32),
            1 if forward else 0,  # the forward store starts with the empty start state
        )
        kernel = K.memo_forward if forward else K.memo_backward
        t = 1 if forward else T
        while (t <= T) if forward else (t > 0):
            if self.expired():
                return None
            t1 = min(T + 1, t + ROWS_PER_CHUNK) if forward else max(0, t - ROWS_PER_CHUNK)
            store, t, fits = kernel(
                t, t1, net, bit, left_p, cut, other, lo, hi, store, cap_states, STATES_PER_CHUNK,
            )  # fmt: skip
            if not fits:
                self.full = True
                self.stats["stopped"] = f"state store full ({cap_states} states)"
                return None
        self.stats["states"] = max(self.stats.get("states", 0), int(store[7]))
        self.stats["memo_passes"] = self.stats.get("memo_passes", 0) + 1
        self.stats.setdefault("passes", []).append(
            (len(memo), int(store[7]), round(time.monotonic() - self.started, 3))
        )
        self.alive &= hi > lo
        stage = f"memo {len(memo)}"
        if forward:
            ends = [k for j in range(n) for k in range(lo[T, j], hi[T, j])]
            first = min(ends, key=lambda k: store[2][k]) if ends else -1
            value = float(store[2][first]) if ends else math.inf
        else:
            value, first = K.memo_start(net, bit, full, lo, hi, store)
        if first < 0 or value >= K.INF:
            self.raise_bound(self.ub, stage)
            return None
        lb = value + float(u.sum())
        self.raise_bound(lb, stage)
        path = K.memo_path(store, first, forward, n)
        if not (self.counts(path) - 1).any():
            self.improve(path, stage)
            self.raise_bound(lb, stage)
        return path, (lo, hi, store, full)
