"""One picture of one solution per problem kind, drawn from the instance dict and the solution dict alone
(the formats of the spec), so that they do not depend on the problem modules' internals.

Each `draw_<kind>(fig, instance, solution)` fills a matplotlib figure; `PICTURES` maps kinds to them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

ON_TIME, LATE, NEUTRAL = "#4c9f70", "#d1495b", "#5b7db1"


def draw_tardiness(fig: Any, instance: dict, solution: dict) -> None:
    """Gantt chart of the single machine: one row per position in the sequence, due dates marked."""
    p = instance["processing_times"]
    d = instance["due_dates"]
    n = len(p)
    w = instance.get("weights") or [1] * n
    r = instance.get("release_dates") or [0] * n
    seq = solution["sequence"]
    ax = fig.add_subplot(1, 1, 1)
    t = 0
    total = 0
    for row, j in enumerate(seq):
        start = max(t, r[j])
        t = start + p[j]
        late = t > d[j]
        total += w[j] * max(0, t - d[j])
        ax.barh(
            row,
            p[j],
            left=start,
            height=0.7,
            color=LATE if late else ON_TIME,
            edgecolor="white",
            linewidth=0.3,
        )
        ax.plot([d[j], d[j]], [row - 0.45, row + 0.45], color="black", linewidth=1)
        if n <= 40:
            ax.text(
                start + p[j] / 2, row, str(j), ha="center", va="center", fontsize=7, color="white"
            )
    ax.invert_yaxis()
    ax.set_xlabel("time")
    ax.set_ylabel("position in the sequence")
    ax.set_yticks([])
    ax.set_title(
        f"Gantt chart: {n} jobs, total weighted tardiness {total} "
        f"(red: tardy, black tick: due date)",
        fontsize=9,
    )


def draw_pod_packing(fig: Any, instance: dict, solution: dict) -> None:
    """CPU and memory requested on each node, as a share of its capacity; pending pods in the title."""
    nodes = instance["nodes"][:40]
    pods = {p["name"]: p for p in instance["pods"]}
    assignment = solution.get("assignment", {})
    used: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    pending = 0
    for name, node in assignment.items():
        if node is None:
            pending += 1
            continue
        for res, amount in pods.get(name, {}).get("requests", {}).items():
            used[node][res] += amount
    resources = [
        res for res in ("cpu", "memory") if any(res in n.get("capacity", {}) for n in nodes)
    ]
    ax = fig.add_subplot(1, 1, 1)
    height = 0.8 / max(1, len(resources))
    colors = [NEUTRAL, "#edae49", "#00798c"]
    for k, res in enumerate(resources):
        shares = []
        for n in nodes:
            cap = n.get("capacity", {}).get(res) or 0
            shares.append(100.0 * used[n["name"]][res] / cap if cap else 0.0)
        ax.barh(
            [i + k * height for i in range(len(nodes))],
            shares,
            height=height,
            label=res,
            color=colors[k % len(colors)],
        )
    ax.axvline(100, color="black", linewidth=0.8)
    ax.set_yticks([i + height * (len(resources) - 1) / 2 for i in range(len(nodes))])
    ax.set_yticklabels([n["name"] for n in nodes], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("requested, % of capacity")
    ax.legend(fontsize=8)
    ax.set_title(
        f"node utilisation: {len(assignment) - pending} pods placed, {pending} pending", fontsize=9
    )


def expert_gpu_loads(instance: dict, solution: dict) -> list[list[float]]:
    """Per layer, per GPU: the load it serves (an expert's load split evenly over its replicas)."""
    gpus, per = instance["gpus"], instance["slots_per_gpu"]
    loads = []
    for layer, slots in zip(instance["load"], solution["slots"]):
        replicas: dict[int, int] = defaultdict(int)
        for e in slots:
            replicas[e] += 1
        row = [0.0] * gpus
        for s, e in enumerate(slots):
            if 0 <= e < len(layer) and s // per < gpus:
                row[s // per] += layer[e] / replicas[e]
        loads.append(row)
    return loads


def draw_expert_placement(fig: Any, instance: dict, solution: dict) -> None:
    """Load per GPU: bars for the most loaded layer, and a heat map of every layer x GPU."""
    loads = expert_gpu_loads(instance, solution)
    worst = max(range(len(loads)), key=lambda l: max(loads[l]))
    ax = fig.add_subplot(1, 2 if len(loads) > 1 else 1, 1)
    row = loads[worst]
    mean = sum(row) / len(row)
    ax.bar(range(len(row)), row, color=NEUTRAL)
    ax.axhline(mean, color="black", linestyle="--", linewidth=0.8, label=f"mean {mean:.3g}")
    ax.set_xlabel("GPU")
    ax.set_ylabel("load")
    ax.legend(fontsize=8)
    ax.set_title(
        f"layer {worst} (most loaded): max/mean {max(row) / mean if mean else 0:.3f}", fontsize=9
    )
    if len(loads) > 1:
        ax2 = fig.add_subplot(1, 2, 2)
        im = ax2.imshow(loads, aspect="auto", cmap="viridis")
        ax2.set_xlabel("GPU")
        ax2.set_ylabel("layer")
        ax2.set_title("load per layer and GPU", fontsize=9)
        fig.colorbar(im, ax=ax2)


def draw_gpu_selection(fig: Any, instance: dict, solution: dict) -> None:
    """The GPU mix: how many of each type, and what each costs per hour."""
    price = {g["name"]: g.get("cost_per_hour", 0) for g in instance["gpu_types"]}
    counts = solution.get("counts", {})
    names = [g["name"] for g in instance["gpu_types"]]
    ax = fig.add_subplot(1, 1, 1)
    values = [counts.get(n, 0) for n in names]
    bars = ax.bar(names, values, color=NEUTRAL)
    for bar, n, c in zip(bars, names, values):
        if c:
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height(),
                f"${c * price[n]:.2f}/h",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    total = sum(counts.get(n, 0) * price.get(n, 0) for n in counts)
    ax.set_ylabel("GPUs")
    ax.set_title(f"GPU mix: {sum(values)} GPUs, ${total:.2f} per hour", fontsize=9)


def draw_software_pipelining(fig: Any, instance: dict, solution: dict) -> None:
    """The modulo reservation table: each unit (one row per unit of capacity) x cycle mod II."""
    ii = solution["ii"]
    start = solution["start"]
    units = instance["units"]
    rows: list[tuple[str, int]] = [(u, k) for u, cap in units.items() for k in range(cap)]
    cell: dict[tuple[str, int, int], str] = {}
    over: list[str] = []
    for op in instance["ops"]:
        if op["name"] not in start:
            continue
        s = start[op["name"]]
        reservation = op.get("reservation") or {op["unit"]: list(range(op["cycles"]))}
        for unit, offsets in reservation.items():
            for off in offsets:
                c = (s + off) % ii
                free = [k for k in range(units.get(unit, 0)) if (unit, k, c) not in cell]
                label = f"{op['name']}/{(s + off) // ii}"
                if free:
                    cell[(unit, free[0], c)] = label
                else:
                    over.append(label)
    ax = fig.add_subplot(1, 1, 1)
    for y, (unit, k) in enumerate(rows):
        for c in range(ii):
            label = cell.get((unit, k, c))
            ax.add_patch(_rect((c, y), "#cfe0f3" if label else "white"))
            if label:
                ax.text(c + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, ii)
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([c + 0.5 for c in range(ii)])
    ax.set_xticklabels([str(c) for c in range(ii)])
    ax.set_yticks([y + 0.5 for y in range(len(rows))])
    ax.set_yticklabels([f"{u}[{k}]" if units[u] > 1 else u for u, k in rows], fontsize=8)
    ax.set_xlabel("cycle mod II")
    title = f"modulo reservation table, II = {ii} (cells: op/stage)"
    if over:
        title += f"; over capacity: {', '.join(over[:4])}"
    ax.set_title(title, fontsize=9)


def _rect(xy: tuple[float, float], color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(xy, 1, 1, facecolor=color, edgecolor="gray", linewidth=0.5)


PICTURES: dict[str, Callable[[Any, dict, dict], None]] = {
    "tardiness": draw_tardiness,
    "pod-packing": draw_pod_packing,
    "expert-placement": draw_expert_placement,
    "gpu-selection": draw_gpu_selection,
    "software-pipelining": draw_software_pipelining,
}
