"""Numba kernels of the SSDP for 1 || sum w_j T_j (see `ssdp.py` for the method).

The network: a node (t, j) means "job j completes at time t" on a machine without idle time,
t = 0..T with T = sum p. A path from time 0 to T is a sequence of jobs that may repeat or miss
jobs (the job-occurrence constraints are relaxed with multipliers u); an arc i -> j into (t, j)
exists when i != j and the adjacent pair (i, j) ending at t is not improved by interchanging it.
Node costs are c_j(t) = w_j max(0, t - d_j) - u_j.

Each kernel is one pass over the time axis; the recurrences chain times p_j apart, so they are
loops (numba) rather than array expressions.
"""

from __future__ import annotations

import numba as nb
import numpy as np

INF = 1e30


@nb.njit(cache=True, inline="always")
def precedes(i, j, t, p, d, w, before):
    """True if job i may run right before job j when j completes at t: j need not precede i
    (`before`, see `_precedence`) and the pair costs less than (or, tied, i < j) the interchanged
    pair. Some optimal sequence has no other adjacent pair."""
    if before[j, i]:
        return False
    s = t - p[i] - p[j]
    a = w[i] * max(0, s + p[i] - d[i]) + w[j] * max(0, t - d[j])
    b = w[j] * max(0, s + p[j] - d[j]) + w[i] * max(0, t - d[i])
    return a < b or (a == b and i < j)


@nb.njit(cache=True)
def forward(p, d, w, u, alive, before):
    """The network with interchange arcs and without 2-cycles (j i j): F[t, j, 0] = cheapest path
    from 0 to node (t, j), F[t, j, 1] = cheapest one whose previous job differs from the first's;
    P[t, j, r] their previous jobs (n: none). A path into (t, j) from (t - p_j, i) uses i's
    cheapest path unless that one comes from j, then its second.

    Each row's jobs are kept sorted by their cheapest cost, so that a node stops looking once
    the next job's cheapest path cannot beat its second."""
    rows, n = alive.shape
    F = np.full((rows, n, 2), INF)
    P = np.full((rows, n, 2), -1, np.int32)
    order = np.empty((rows, n), np.int32)
    order[0] = np.arange(n)
    for t in range(1, rows):
        for j in range(n):
            tp = t - p[j]
            if tp < 0 or not alive[t, j]:
                continue
            c = w[j] * max(0, t - d[j]) - u[j]
            if tp == 0:
                F[t, j, 0] = c
                P[t, j, 0] = n
                continue
            b1, b2, a1, a2 = INF, INF, -1, -1
            for q in range(n):
                i = order[tp, q]
                f = F[tp, i, 0]
                if f >= b2:
                    break
                if i == j or not precedes(i, j, t, p, d, w, before):
                    continue
                v = f if P[tp, i, 0] != j else F[tp, i, 1]
                if v < b1:
                    b2, a2, b1, a1 = b1, a1, v, i
                elif v < b2:
                    b2, a2 = v, i
            if a1 >= 0:
                F[t, j, 0] = b1 + c
                P[t, j, 0] = a1
            if a2 >= 0:
                F[t, j, 1] = b2 + c
                P[t, j, 1] = a2
        order[t] = np.argsort(F[t, :, 0]).astype(np.int32)
    return F, P


@nb.njit(cache=True)
def backward(p, d, w, u, alive, before):
    """The mirror of `forward`: G[t, j, r] = cheapest (r = 0) and second cheapest (r = 1, with
    another next job) path from node (t, j) to T, c_j(t) excluded; S their next jobs (n: none);
    also the cheapest whole path."""
    rows, n = alive.shape
    T = rows - 1
    G = np.full((rows, n, 2), INF)
    S = np.full((rows, n, 2), -1, np.int32)
    G[T, :, 0] = 0.0
    S[T, :, 0] = n
    H = np.empty((n, 2))  # H[k, r] = c_k(t + p_k) + G[t + p_k, k, r]
    best = INF
    for t in range(T - 1, -1, -1):
        for k in range(n):
            te = t + p[k]
            H[k, 0] = INF
            H[k, 1] = INF
            if te <= T and alive[te, k]:
                c = w[k] * max(0, te - d[k]) - u[k]
                if G[te, k, 0] < INF:
                    H[k, 0] = c + G[te, k, 0]
                if G[te, k, 1] < INF:
                    H[k, 1] = c + G[te, k, 1]
        order = np.argsort(H[:, 0])
        if t == 0:
            best = H[order[0], 0]
            break
        for j in range(n):
            if t < p[j] or not alive[t, j]:
                continue
            b1, b2, a1, a2 = INF, INF, -1, -1
            for kk in range(n):
                k = order[kk]
                h = H[k, 0]
                if h >= b2:
                    break
                if k == j or not precedes(j, k, t + p[k], p, d, w, before):
                    continue
                v = h if S[t + p[k], k, 0] != j else H[k, 1]
                if v < b1:
                    b2, a2, b1, a1 = b1, a1, v, k
                elif v < b2:
                    b2, a2 = v, k
            G[t, j, 0] = b1
            S[t, j, 0] = a1
            G[t, j, 1] = b2
            S[t, j, 1] = a2
    return G, S, best


@nb.njit(cache=True)
def through(F, P, G, S):
    """The cheapest path through each node of `forward` and `backward`'s network: its cheapest
    halves unless they would make a 2-cycle (the same job before and after)."""
    rows, n = F.shape[0], F.shape[1]
    out = np.empty((rows, n))
    for t in range(rows):
        for j in range(n):
            if P[t, j, 0] != S[t, j, 0] or P[t, j, 0] >= n or P[t, j, 0] < 0:
                out[t, j] = F[t, j, 0] + G[t, j, 0]
            else:
                out[t, j] = min(F[t, j, 0] + G[t, j, 1], F[t, j, 1] + G[t, j, 0])
    return out


@nb.njit(cache=True)
def path_of(F, P, p):
    """The jobs of `forward`'s cheapest path ending at T, in order; empty when the network has
    no path (the walk would read past its arrays)."""
    rows, n = F.shape[0], F.shape[1]
    t = rows - 1
    j = np.argmin(F[t, :, 0])
    if F[t, j, 0] >= INF:
        return np.empty(0, np.int64)
    r = 0
    out = []
    while True:
        out.append(j)
        i = P[t, j, r]
        t -= p[j]
        if i == n:
            break
        if i < 0 or t <= 0:
            return np.empty(0, np.int64)
        r = 0 if P[t, i, 0] != j else 1
        j = i
    out.reverse()
    return np.array(out, np.int64)


@nb.njit(cache=True)
def _grow(a, size, cap):
    out = np.empty(cap, a.dtype)
    out[:size] = a[:size]
    return out


@nb.njit(cache=True, inline="always")
def _pruned(v, t, j, want, cut, has_other, base, olo, ohi, omask, oval):
    """True if no path through node (t, j) whose half so far costs v and whose states in the
    other direction carry `want` can beat the upper bound (`cut`). The other half costs at least
    base[t, j] (the unmemorised network's cost, checked first: no search) and, once there is a
    previous pass, that pass's state for `want` (binary search; pruned if it was pruned)."""
    if v + base[t, j] > cut:
        return True
    if not has_other:
        return False
    a, b = olo[t, j], ohi[t, j]
    while a < b:
        m = (a + b) // 2
        if omask[m] < want:
            a = m + 1
        else:
            b = m
    return not (a < ohi[t, j] and omask[a] == want) or v + oval[a] > cut


@nb.njit(cache=True, inline="always")
def _job_of(job, link, n):
    """The job of the state `link` points to (n for none: the end, or the forward start state,
    whose job is n)."""
    return n if link < 0 else job[link]


@nb.njit(cache=True, inline="always")
def _value(store, k, j, n):
    """The cost of state k's cheapest path (or half) that does not have job j next to it."""
    job, mask, val, link, done, val2, link2, count = store
    return val[k] if _job_of(job, link[k], n) != j else val2[k]


@nb.njit(cache=True)
def _flush(buf, m, j, store, cap_max):
    """Append the candidates buf[:m] of one node to the store, one state per distinct set, with
    the cheapest candidate and the cheapest from another neighbouring state, sorted by set.
    Returns the store and whether it fitted."""
    bm, bv, bp, bd = buf
    job, mask, val, link, done, val2, link2, count = store
    order = np.argsort(bm[:m], kind="mergesort")
    if count + m > job.shape[0]:
        cap = max(2 * job.shape[0], count + m)
        if cap > cap_max:
            if count + m > cap_max:
                return store, False
            cap = cap_max
        job = _grow(job, count, cap)
        mask = _grow(mask, count, cap)
        val = _grow(val, count, cap)
        link = _grow(link, count, cap)
        done = _grow(done, count, cap)
        val2 = _grow(val2, count, cap)
        link2 = _grow(link2, count, cap)
    q = 0
    while q < m:
        s = bm[order[q]]
        best, second = order[q], -1
        r = q + 1
        while r < m and bm[order[r]] == s:
            o = order[r]
            if bv[o] < bv[best]:
                best, second = o, best
            elif second < 0 or bv[o] < bv[second]:
                second = o
            r += 1
        job[count] = j
        mask[count] = s
        val[count] = bv[best]
        link[count] = bp[best]
        done[count] = bd[best]
        val2[count] = INF if second < 0 else bv[second]
        link2[count] = -1 if second < 0 else bp[second]
        count += 1
        q = r
    return (job, mask, val, link, done, val2, link2, count), True


@nb.njit(cache=True)
def _push(buf, m, s, v, k, dn):
    bm, bv, bp, bd = buf
    if m == bm.shape[0]:
        bm = _grow(bm, m, 2 * m)
        bv = _grow(bv, m, 2 * m)
        bp = _grow(bp, m, 2 * m)
        bd = _grow(bd, m, 2 * m)
    bm[m] = s
    bv[m] = v
    bp[m] = k
    bd[m] = dn
    return (bm, bv, bp, bd), m + 1


@nb.njit(cache=True)
def new_buffer():
    return (np.empty(64, np.uint64), np.empty(64), np.empty(64, np.int32), np.empty(64, np.int32))


@nb.njit(cache=True)
def memo_forward(t0, t1, net, bit, left_p, cut, other, lo, hi, store, cap_max, budget):
    """Extend the forward memorising network over times t0..t1-1, or fewer: it stops after the
    first time at which it has made more than `budget` states (so that the caller can look at the
    clock).

    A state is (t, j, S): node (t, j) with S the set (bit mask) of memorised jobs done up to t,
    j included, so that a memorised job occurs at most once and, at T, exactly once. The states
    of node (t, j) are store[lo[t, j]:hi[t, j]], sorted by S; `store` = (job, mask, val, pred,
    done, val2, pred2, count) with val the cost of the cheapest path to the state, pred its
    previous state, val2 and pred2 the same for the cheapest path whose previous job differs
    (no path goes j i j), and done = p(S); state 0 is the empty start. A state is dropped when
    no path through it can beat the upper bound (`cut`, with the other half of the path bounded
    by `other`, see `_pruned`) or when the memorised jobs left do not fit before T. Returns the
    store, the next time to extend and whether the store had room (at most cap_max states).
    """
    p, d, w, u, alive, before = net
    has_other, base, olo, ohi, omask, oval, ofull = other
    n = alive.shape[1]
    T = alive.shape[0] - 1
    buf = new_buffer()
    first = store[7]
    for t in range(t0, t1):
        if store[7] - first > budget:
            return store, t, True
        for j in range(n):
            tp = t - p[j]
            if tp < 0 or not alive[t, j]:
                continue
            mask, done = store[1], store[4]
            c = w[j] * max(0, t - d[j]) - u[j]
            bj = bit[j]
            pj = p[j] if bj else 0
            m = 0
            for i in range(n + 1):
                if tp == 0:  # only the start state precedes
                    if i > 0:
                        break
                    a, b = 0, 1
                else:
                    if i == n or i == j or hi[tp, i] == lo[tp, i]:
                        continue
                    if not precedes(i, j, t, p, d, w, before):
                        continue
                    a, b = lo[tp, i], hi[tp, i]
                for k in range(a, b):
                    s = mask[k]
                    if s & bj or left_p - done[k] - pj > T - t:
                        continue
                    v = _value(store, k, j, n) + c
                    if v >= INF:
                        continue
                    s |= bj
                    if _pruned(v, t, j, ofull & ~s, cut, has_other, base, olo, ohi, omask, oval):
                        continue
                    buf, m = _push(buf, m, s, v, k, done[k] + pj)
            if m == 0:
                continue
            lo[t, j] = store[7]
            store, fits = _flush(buf, m, j, store, cap_max)
            if not fits:
                return store, t, False
            hi[t, j] = store[7]
    return store, t1, True


@nb.njit(cache=True)
def memo_backward(t0, t1, net, bit, left_p, cut, other, lo, hi, store, cap_max, budget):
    """The mirror of `memo_forward`, over times t0 down to t1+1: a state (t, j, R) carries the
    set R of memorised jobs done after t, val the cheapest cost of the jobs after t (c_j(t)
    excluded) and `pred` its next state (-1 at T)."""
    p, d, w, u, alive, before = net
    has_other, base, olo, ohi, omask, oval, ofull = other
    n = alive.shape[1]
    T = alive.shape[0] - 1
    buf = new_buffer()
    first = store[7]
    for t in range(t0, t1, -1):
        if store[7] - first > budget:
            return store, t, True
        for j in range(n):
            if t < p[j] or not alive[t, j]:
                continue
            mask, done = store[1], store[4]
            bj = bit[j]
            m = 0
            if t == T:
                if not _pruned(0.0, t, j, ofull, cut, has_other, base, olo, ohi, omask, oval):
                    buf, m = _push(buf, m, np.uint64(0), 0.0, -1, 0)
            else:
                for k in range(n):
                    te = t + p[k]
                    if k == j or te > T or hi[te, k] == lo[te, k]:
                        continue
                    if not precedes(j, k, te, p, d, w, before):
                        continue
                    ck = w[k] * max(0, te - d[k]) - u[k]
                    bk = bit[k]
                    pk = p[k] if bk else 0
                    for q in range(lo[te, k], hi[te, k]):
                        r = mask[q] | bk
                        if r & bj or left_p - done[q] - pk > t:
                            continue
                        v = _value(store, q, j, n) + ck
                        if v >= INF:
                            continue
                        want = ofull & ~r
                        if _pruned(v, t, j, want, cut, has_other, base, olo, ohi, omask, oval):
                            continue
                        buf, m = _push(buf, m, r, v, q, done[q] + pk)
            if m == 0:
                continue
            lo[t, j] = store[7]
            store, fits = _flush(buf, m, j, store, cap_max)
            if not fits:
                return store, t, False
            hi[t, j] = store[7]
    return store, t1, True


@nb.njit(cache=True)
def memo_start(net, bit, full, lo, hi, store):
    """The cheapest whole path of a backward memorising network: (cost, its first state)."""
    p, d, w, u, alive, before = net
    job, mask, val, succ, done, val2, succ2, count = store
    best, arg = INF, -1
    for k in range(alive.shape[1]):
        te = p[k]
        c = w[k] * max(0, te - d[k]) - u[k]
        for q in range(lo[te, k], hi[te, k]):
            if mask[q] | bit[k] == full and val[q] + c < best:
                best, arg = val[q] + c, q
    return best, arg


@nb.njit(cache=True)
def memo_path(store, first, forward, n):
    """The jobs of the path through state `first` (its cheapest): backwards through `pred` from
    a state at T (forward store), or onwards through `succ` from a state at the start (backward
    store); at each state the cheapest path that does not repeat the job just left."""
    job, mask, val, link, done, val2, link2, count = store
    out = []
    k = first
    nxt = link[k]
    while k > 0 if forward else k >= 0:
        out.append(job[k])
        q = nxt
        if q > 0 or (not forward and q >= 0):
            nxt = link[q] if _job_of(job, link[q], n) != job[k] else link2[q]
        k = q
    if forward:
        out.reverse()
    return np.array(out, np.int64)
