"""Pod-packing placements that are equal up to the problem's symmetries.

Identical nodes can swap their contents and identical pods their targets without changing what is
placed; `fewer_moves` picks, among those, the placement that keeps the most running pods home.
"""

from __future__ import annotations

from optkit.problems.pod_packing import PodPacking


def fewer_moves(problem: PodPacking, where: list[int | None]) -> list[int | None]:
    """The same packing up to symmetry, relabelled so that as many running pods as possible stay home.

    Two symmetries leave every placement count unchanged: identical nodes (same capacity, labels,
    taints, no non-movable pod) can swap their contents, and identical movable pods (same requests,
    priority, constraints) can swap their targets. Nodes are matched to maximise the running pods
    that end on their current node (a linear assignment per class of identical nodes), then within
    each group of identical pods the running ones take their own node where the group has a target
    there, the other running pods take the remaining nodes before any pending pod does (fewest
    evictions), and pending pods take what is left. Returns the relabelled placement (never worse:
    the caller's checker decides).
    """
    from collections import defaultdict

    import numpy as np
    from scipy.optimize import linear_sum_assignment

    P = problem
    where = list(where)
    pinned = {
        P.current[i] for i, pod in enumerate(P.pods) if not pod.movable and P.current[i] is not None
    }
    for members in P.identical_nodes(pinned):
        pos = {j: k for k, j in enumerate(members)}
        gain = np.zeros((len(members), len(members)))
        for i, j in enumerate(where):
            if j in pos and P.current[i] in pos:
                gain[pos[j], pos[P.current[i]]] += 1
        rows, cols = linear_sum_assignment(-gain)
        relabel = {members[r]: members[c] for r, c in zip(rows, cols)}
        where = [relabel.get(j, j) for j in where]
    groups = defaultdict(list)
    for i, pod in enumerate(P.pods):
        if pod.movable:
            groups[
                (P.pod_signature[i], tuple(P.request_matrix[i]), pod.priority, P.candidates[i])
            ].append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        targets = defaultdict(int)
        for i in members:
            targets[where[i]] += 1
        rest = []
        for i in members:
            home = P.current[i]
            if home is not None and targets[home] > 0:
                where[i] = home
                targets[home] -= 1
            else:
                rest.append(i)
        left = [j for j, n in targets.items() if j is not None for _ in range(n)] + [
            None
        ] * targets[None]
        rest.sort(
            key=lambda i: P.current[i] is None
        )  # running pods first: a node rather than eviction
        for i, j in zip(rest, left):
            where[i] = j
    return where
