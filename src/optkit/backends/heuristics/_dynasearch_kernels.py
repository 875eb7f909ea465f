"""Numba kernels of dynasearch for 1 || sum w_j T_j (see `dynasearch.py` for the method).

One step is a dynamic programme over positions j = 0..n-1 in O(n^2) time and O(n) memory:
for the block [i..j] ending at j, the deltas of the three moves are built incrementally,

    fwd(i, j) = sum_{k=i+1..j} (w_k max(0, L_k - p_i) - f_k) + end_i(i, j)  (job i after job j)
    bwd(i, j) = sum_{k=i..j-1} (w_k max(0, L_k + p_j) - f_k) + end_j(i, j)  (job j before job i)
    swap(i, j) = end_i + end_j + sum_{k=i+1..j-1} (w_k max(0, L_k + p_j - p_i) - f_k)

(L_k lateness, f_k weighted tardiness of the job at position k; end_i: the job at i completing
at C_j; end_j: the job at j starting at C_{i-1}). `fwd` keeps one running sum per start i, `bwd`
one running sum as i goes down. A swap costs O(j - i); it is evaluated only when its lower bound
(the tardy jobs in between shift by exactly p_j - p_i, the others do not gain) can beat the best
value known for j, which discards almost all blocks.

The signatures are given, so importing this module compiles the kernels, or with `cache=True`
loads them from numba's cache (milliseconds) once they were compiled on this machine: the facade
imports it before the solver's clock starts.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_I64 = nb.int64
_ARR = nb.int64[::1]


@nb.njit(_I64(_ARR, _ARR, _ARR, _ARR), cache=True, nogil=True)
def cost(seq, p, d, w):
    """Total weighted tardiness of the sequence."""
    c = 0
    total = 0
    for k in range(seq.shape[0]):
        j = seq[k]
        c += p[j]
        if c > d[j]:
            total += w[j] * (c - d[j])
    return total


@nb.njit(_I64(_ARR, _ARR, _ARR, _ARR, _ARR), cache=True, nogil=True)
def step(seq, p, d, w, out):
    """One dynasearch step from `seq` into `out`; returns the improvement (0: a local optimum,
    then `out` is a copy of `seq`)."""
    # kept whole (70 lines): the DP over positions and its move reconstruction share the arrays
    n = seq.shape[0]
    P = np.empty(n, np.int64)
    D = np.empty(n, np.int64)
    W = np.empty(n, np.int64)
    C = np.empty(n, np.int64)
    L = np.empty(n, np.int64)
    f = np.empty(n, np.int64)
    tw = np.zeros(n + 1, np.int64)  # tw[k] = weight of the tardy jobs at positions < k
    c = 0
    for k in range(n):
        j = seq[k]
        P[k], D[k], W[k] = p[j], d[j], w[j]
        c += P[k]
        C[k] = c
        L[k] = c - D[k]
        f[k] = W[k] * L[k] if L[k] > 0 else 0
        tw[k + 1] = tw[k] + (W[k] if L[k] >= 0 else 0)
    F = np.zeros(n + 1, np.int64)  # F[j] = best total change using positions 0..j-1
    choice = np.full(n + 1, -1, np.int64)
    kind = np.zeros(n + 1, np.int64)  # 0 swap, 1 forward insertion, 2 backward insertion
    fwd = np.zeros(n, np.int64)  # fwd[i] = sum over k = i+1..j of the forward-shift changes
    for j in range(n):
        best, arg, how = F[j], -1, 0
        bacc = 0
        for i in range(j - 1, -1, -1):
            fwd[i] += W[j] * max(0, L[j] - P[i]) - f[j]
            bacc += W[i] * max(0, L[i] + P[j]) - f[i]
            ei = W[i] * max(0, C[j] - D[i]) - f[i]
            ej = W[j] * max(0, C[i] - P[i] + P[j] - D[j]) - f[j]
            df = fwd[i] + ei
            db = bacc + ej
            delta, move = (df, 1) if df <= db else (db, 2)
            if j >= i + 2:
                shift = P[j] - P[i]
                lb = ei + ej + shift * (tw[j] - tw[i + 1])
                if lb < delta and F[i] + lb < best:
                    ex = ei + ej
                    for k in range(i + 1, j):
                        ex += W[k] * max(0, L[k] + shift) - f[k]
                    if ex < delta:
                        delta, move = ex, 0
            v = F[i] + delta
            if v < best:
                best, arg, how = v, i, move
        F[j + 1], choice[j + 1], kind[j + 1] = best, arg, how
    out[:] = seq
    if F[n] >= 0:
        return 0
    j = n
    while j > 0:
        a = choice[j]
        if a < 0:
            j -= 1
            continue
        b = j - 1
        if kind[j] == 0:
            out[a], out[b] = seq[b], seq[a]
        elif kind[j] == 1:
            out[a:b] = seq[a + 1 : b + 1]
            out[b] = seq[a]
        else:
            out[a + 1 : b + 1] = seq[a:b]
            out[a] = seq[b]
        j = a
    return -F[n]


@nb.njit(nb.types.UniTuple(_I64, 2)(_ARR, _ARR, _ARR, _ARR, _I64), cache=True, nogil=True)
def descend(seq, p, d, w, max_steps):
    """Up to `max_steps` dynasearch steps on `seq` in place: (total improvement, 1 if `seq` is
    now a local optimum else 0)."""
    out = np.empty_like(seq)
    gain = 0
    for _ in range(max_steps):
        g = step(seq, p, d, w, out)
        if g <= 0:
            return gain, 1
        gain += g
        seq[:] = out
    return gain, 0
