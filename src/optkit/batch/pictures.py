"""One picture of one solution per problem kind, drawn from the instance dict and the solution dict alone
(the formats of the spec), so that they do not depend on the problem modules' internals.

Each `draw_<kind>(fig, instance, solution)` fills a matplotlib figure; `PICTURES` maps kinds to them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

ON_TIME, LATE, NEUTRAL = "#4c9f70", "#d1495b", "#5b7db1"
MOVED, EVICTED, PLACED = "#f28e2b", "#d1495b", "black"


def figure_size(kind: str, instance: dict, solution: dict) -> tuple[float, float]:
    """Inches that keep every row readable: tall for many jobs or nodes, wide for three panels."""
    if kind == "tardiness":
        return (10.0, min(16.0, max(4.0, 0.12 * len(instance["processing_times"]) + 1.5)))
    if kind == "pod-packing":
        return (12.0, min(16.0, max(4.0, 0.35 * (len(instance["nodes"]) + 1) + 1.8)))
    if kind == "expert-placement":
        return (15.0, 5.0)
    if kind == "gpu-selection":
        return (12.0, 4.8)
    return (8.0, 5.0)


# -- tardiness --------------------------------------------------------------------------------------


def draw_tardiness(fig: Any, instance: dict, solution: dict) -> None:
    """Gantt chart of the single machine, one row per position in the sequence.

    A job's bar is green up to its due date and red past it (the red part is its tardiness); a black
    tick marks each due date. Job numbers are written inside the bars where they fit, and the
    y axis labels every k-th position so that 100+ jobs stay readable.
    """
    p = instance["processing_times"]
    d = instance["due_dates"]
    n = len(p)
    w = instance.get("weights") or [1] * n
    r = instance.get("release_dates") or [0] * n
    seq = solution["sequence"]
    ax = fig.add_subplot(1, 1, 1)
    t = total = tardy = 0
    spans = []
    for row, j in enumerate(seq):
        start = max(t, r[j])
        t = start + p[j]
        spans.append((row, j, start, t))
        late = max(0, t - d[j])
        total += w[j] * late
        tardy += late > 0
        if late:  # the tardiness: a red line from the due date to the completion
            ax.plot([d[j], t], [row, row], color=LATE, linewidth=0.8, zorder=1)
        on_time = min(p[j], max(0, d[j] - start))
        ax.barh(row, on_time, left=start, height=0.8, color=ON_TIME, linewidth=0)
        if late:
            ax.barh(row, p[j] - on_time, left=start + on_time, height=0.8, color=LATE, linewidth=0)
    ax.plot([d[j] for j in seq], range(n), "|", color="black", markersize=_row_points(fig, n) * 0.9)
    horizon = max(t, max(d))
    ax.set_xlim(0, horizon * 1.01)
    ax.set_ylim(n - 0.5, -0.5)
    step = max(1, n // 25)
    ax.set_yticks(range(0, n, step))
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("time")
    ax.set_ylabel("position in the sequence")
    _label_bars(fig, ax, spans, horizon * 1.01, n)
    from matplotlib.lines import Line2D

    handles = [_patch(ON_TIME, "on time"), _patch(LATE, "run past the due date")]
    handles.append(Line2D([], [], color=LATE, linewidth=0.8, label="tardiness (due to completion)"))
    handles.append(_line_marker("due date"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{n} jobs, {tardy} tardy, total weighted tardiness {total}", fontsize=9)


def _row_points(fig: Any, rows: int) -> float:
    """Height of one row of the axes in points (about: the axes take ~80 % of the figure)."""
    return fig.get_figheight() * 72 * 0.8 / max(1, rows)


def _label_bars(fig: Any, ax: Any, spans: list, horizon: float, rows: int) -> None:
    """Job numbers inside the bars that are wide and tall enough for them."""
    size = min(7.0, _row_points(fig, rows) * 0.75)
    if size < 4:
        return
    points_per_unit = fig.get_figwidth() * 72 * 0.6 / horizon  # the axes: ~60 % of the width
    for row, j, start, end in spans:
        text = str(j)
        if (end - start) * points_per_unit >= len(text) * size * 0.65 + 2:
            ax.text(
                (start + end) / 2, row, text, ha="center", va="center", fontsize=size, color="white"
            )
        else:  # beside the bar: right of it the row is empty (one job per row)
            ax.text(end, row, f" {text}", ha="left", va="center", fontsize=size, color="#333333")


def _patch(color: str, label: str, **kw: Any) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=color, label=label, **kw)


def _line_marker(label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="black", marker="|", linestyle="none", markersize=10, label=label)


# -- pod packing -------------------------------------------------------------------------------------


def draw_pod_packing(fig: Any, instance: dict, solution: dict) -> None:
    """Each node before and after: its pods stacked (coloured by priority) against its capacity.

    The resource shown is the most requested one relative to capacity (the bottleneck). A last row
    holds the pending pods. Pods that move are hatched and edged orange, pods evicted are edged
    red (before) and pods newly placed edged green (after).
    """
    import matplotlib as mpl

    nodes = instance["nodes"][:40]
    pods = instance["pods"]
    after = solution.get("assignment", {})
    resource = _bottleneck(instance)
    cap = {n["name"]: n.get("capacity", {}).get(resource) or 0 for n in nodes}
    prios = sorted({p.get("priority", 0) for p in pods})
    cmap = mpl.colormaps["Blues"]
    colour = {q: cmap(0.35 + 0.55 * k / max(1, len(prios) - 1)) for k, q in enumerate(prios)}
    rows = [n["name"] for n in nodes] + ["pending"]
    status = {}
    for pod in pods:
        before, now = pod.get("node"), after.get(pod["name"])
        if before is None:
            status[pod["name"]] = "placed" if now is not None else "pending"
        elif now is None:
            status[pod["name"]] = "evicted"
        else:
            status[pod["name"]] = "stays" if now == before else "moved"
    axes = fig.subplots(1, 2, sharey=True, sharex=True)
    ends: list[dict[str, float]] = []
    for ax, side in zip(axes, ("before", "after")):
        offset = dict.fromkeys(rows, 0.0)
        order = sorted(pods, key=lambda q: (-q.get("priority", 0), q["name"]))
        for pod in order:
            node = pod.get("node") if side == "before" else after.get(pod["name"])
            row = node if node in offset else "pending"
            if node is not None and node not in offset:
                continue  # a node beyond the first 40
            amount = pod.get("requests", {}).get(resource, 0)
            width = 100.0 * amount / cap[row] if row != "pending" and cap[row] else 0.0
            if row == "pending":
                width = 100.0 * amount / max(1, max(cap.values(), default=1))
            edge, hatch = _pod_mark(status[pod["name"]], side)
            ax.barh(
                rows.index(row),
                width,
                left=offset[row],
                height=0.75,
                color=colour[pod.get("priority", 0)],
                edgecolor=edge,
                linewidth=1.6 if edge != "white" else 0.5,
                hatch=hatch,
            )
            offset[row] += width
        ax.axvline(100, color="black", linewidth=0.8)
        ax.axhline(len(rows) - 1.5, color="gray", linewidth=0.6, linestyle=":")
        n_pending = sum(
            1 for q in pods if (q.get("node") if side == "before" else after.get(q["name"])) is None
        )
        ax.set_title(f"{side}: {n_pending} pod(s) pending", fontsize=9)
        ax.set_xlabel(f"{resource} requested, % of the node's capacity (pending: of the largest)")
        ends.append(offset)
    # the nodes set the scale; a long pending row is cut at the edge and its total written there
    right = max(110.0, 1.08 * max(v for end in ends for k, v in end.items() if k != "pending"))
    for ax, end in zip(axes, ends):
        ax.set_xlim(0, right)
        if end["pending"] > right:
            ax.text(
                right,
                len(rows) - 1,
                f"in all {end['pending']:.0f} %",
                ha="right",
                va="center",
                fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            )
    axes[0].set_yticks(range(len(rows)))
    axes[0].set_yticklabels(rows, fontsize=7)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)
    handles = [_patch(colour[q], f"priority {q}") for q in reversed(prios)]
    handles += [
        _patch("white", "moves", edgecolor=MOVED, hatch="///"),
        _patch("white", "evicted", edgecolor=EVICTED, hatch="xx", linewidth=1.6),
        _patch("white", "newly placed", edgecolor=PLACED, linewidth=1.6),
    ]
    axes[1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))


def _pod_mark(status: str, side: str) -> tuple[str, str | None]:
    """(edge colour, hatch) of a pod's bar; the marks are the same in both panels."""
    if status == "moved":
        return MOVED, "///"
    if status == "evicted":
        return EVICTED, "xx"
    if status == "placed":
        return PLACED, None
    return "white", None


def _bottleneck(instance: dict) -> str:
    """The resource with the largest total request relative to total capacity (cpu if none)."""
    totals: dict[str, float] = defaultdict(float)
    caps: dict[str, float] = defaultdict(float)
    for n in instance["nodes"]:
        for res, c in n.get("capacity", {}).items():
            caps[res] += c
    for pod in instance["pods"]:
        for res, q in pod.get("requests", {}).items():
            totals[res] += q
    shares = {res: totals[res] / caps[res] for res in totals if caps.get(res)}
    return max(shares, key=shares.get) if shares else "cpu"


# -- expert placement --------------------------------------------------------------------------------


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


def gpu_traffic(instance: dict, solution: dict, layer: int) -> list[list[float]] | None:
    """Tokens going from GPU g (layer `layer`) to GPU h (the next layer), each expert's tokens split
    evenly over its replicas; None without affinity data or a next layer."""
    affinity = instance.get("affinity")
    if not affinity or layer + 1 >= len(solution["slots"]):
        return None
    G, per = instance["gpus"], instance["slots_per_gpu"]

    def spread(slots: list[int]) -> dict[int, list[tuple[int, float]]]:
        where: dict[int, list[int]] = defaultdict(list)
        for s, e in enumerate(slots):
            if e >= 0:
                where[e].append(s // per)
        return {e: [(g, 1.0 / len(gs)) for g in gs] for e, gs in where.items()}

    here, there = spread(solution["slots"][layer]), spread(solution["slots"][layer + 1])
    flow = [[0.0] * G for _ in range(G)]
    for e, row in enumerate(affinity[layer]):
        for f, tokens in enumerate(row):
            if tokens:
                for g, a in here.get(e, []):
                    for h, b in there.get(f, []):
                        flow[g][h] += tokens * a * b
    return flow


#: % off the layer mean at which the load colours saturate (at least)
SATURATION = 20.0


def draw_expert_placement(fig: Any, instance: dict, solution: dict) -> None:
    """Three panels: each GPU's load per layer as % off the layer's mean (diverging colours, white
    at the mean); the busiest layer's experts stacked on their GPUs; the GPU-to-GPU traffic from
    that layer to the next."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.ticker import MaxNLocator

    loads = expert_gpu_loads(instance, solution)
    L, G = len(loads), instance["gpus"]
    dev = [[100.0 * (x / (sum(row) / G) - 1) if sum(row) else 0.0 for x in row] for row in loads]
    # the colours saturate at +-SATURATION % or the largest deviation, whichever is larger, so that
    # a few percent of imbalance stays pale instead of filling the scale
    spread = max(SATURATION, max(abs(v) for row in dev for v in row))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1.0, 1.0]})
    ax = axes[0]
    im = ax.imshow(
        dev,
        aspect="auto",
        cmap="RdBu_r",
        interpolation="nearest",
        norm=TwoSlopeNorm(0.0, -spread, spread),
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("GPU")
    ax.set_ylabel("layer")
    worst_dev = max(max(row) for row in dev)
    ax.set_title(f"GPU load vs the layer's mean (busiest GPU +{worst_dev:.1f} %)", fontsize=9)
    fig.colorbar(im, ax=ax, label="% above (red) / below (blue) the mean")
    worst = max(range(L), key=lambda l: max(dev[l]))
    _draw_expert_map(axes[1], instance, solution, worst)
    flow = gpu_traffic(instance, solution, worst)
    ax = axes[2]
    if flow is None:
        ax.axis("off")
        ax.text(0.5, 0.5, "no affinity data:\nno traffic to show", ha="center", va="center")
        return
    total = sum(map(sum, flow)) or 1.0
    im = ax.imshow(
        [[100 * x / total for x in row] for row in flow], cmap="Greys", interpolation="nearest"
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"GPU at layer {worst + 1}")
    ax.set_ylabel(f"GPU at layer {worst}")
    local = sum(flow[g][g] for g in range(G)) / total
    ax.set_title(
        f"tokens from layer {worst} to {worst + 1}: {100 * local:.0f} % stay on their GPU",
        fontsize=9,
    )
    fig.colorbar(im, ax=ax, label="% of the tokens")


def _draw_expert_map(ax: Any, instance: dict, solution: dict, layer: int) -> None:
    """The experts of one layer stacked on their GPUs (height: the load each replica serves)."""
    import matplotlib as mpl
    from matplotlib.ticker import MaxNLocator

    G, per = instance["gpus"], instance["slots_per_gpu"]
    slots = solution["slots"][layer]
    load = instance["load"][layer]
    replicas: dict[int, int] = defaultdict(int)
    for e in slots:
        replicas[e] += 1

    cmap = mpl.colormaps["tab20"]
    base = [0.0] * G
    label = G * per <= 48
    for s, e in enumerate(slots):
        if e < 0:
            continue
        g = s // per
        h = load[e] / replicas[e]
        ax.bar(g, h, bottom=base[g], color=cmap(e % 20), edgecolor="white", linewidth=0.5)
        if label and h > 0:
            ax.text(
                g,
                base[g] + h / 2,
                f"e{e}" + ("*" if replicas[e] > 1 else ""),
                ha="center",
                va="center",
                fontsize=7,
            )
        base[g] += h
    mean = sum(load) / G
    ax.axhline(mean, color="black", linestyle="--", linewidth=0.8)
    ax.annotate(
        f"mean {mean:.0f}",
        (1.0, mean),
        xycoords=("axes fraction", "data"),
        xytext=(2, 0),
        textcoords="offset points",
        va="center",
        fontsize=7,
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("GPU")
    ax.set_ylabel("tokens served")
    note = " (* replicated)" if any(c > 1 for e, c in replicas.items() if e >= 0) else ""
    ax.set_title(f"layer {layer} (most imbalanced): experts on each GPU{note}", fontsize=9)


# -- gpu selection -----------------------------------------------------------------------------------


def draw_gpu_selection(fig: Any, instance: dict, solution: dict) -> None:
    """The GPU mix: how many of each type (light bar) and how busy they are (dark bar), with cost;
    beside it, which type serves each (input, output) bucket of the workload."""
    from matplotlib.ticker import MaxNLocator

    types = instance["gpu_types"]
    names = [g["name"] for g in types]
    price = {g["name"]: g.get("cost_per_hour", 0) for g in types}
    counts = solution.get("counts", {})
    busy = _gpu_busy(instance, solution)
    with_map = bool(solution.get("assignment")) and "workload" in instance
    axes = fig.subplots(1, 2) if with_map else [fig.add_subplot(1, 1, 1)]
    ax = axes[0]
    values = [counts.get(n, 0) for n in names]
    ax.bar(names, values, color="#cfe0f3", edgecolor=NEUTRAL, label="GPUs rented")
    ax.bar(
        names,
        [busy.get(n, 0.0) for n in names],
        width=0.5,
        color=NEUTRAL,
        label="GPUs' worth of work served",
    )
    for k, (n, c) in enumerate(zip(names, values)):
        text = f"{c} x ${price[n]:g}/h\n= ${c * price[n]:.2f}/h" if c else "none"
        ax.text(k, c, text, ha="center", va="bottom", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(values + [1]) * 1.3 + 0.5)
    total = sum(counts.get(n, 0) * price.get(n, 0) for n in names)
    ax.set_ylabel("GPUs")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"GPU mix: {sum(values)} GPUs, ${total:.2f} per hour", fontsize=9)
    if with_map:
        _draw_bucket_map(axes[1], instance, solution, [n for n in names if counts.get(n)])


def _draw_bucket_map(ax: Any, instance: dict, solution: dict, used: list[str]) -> None:
    """The workload's (input, output) buckets as cells, each split left to right by the GPU types
    serving its slices (widths: slice counts); the text is the bucket's share of the requests."""
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    dist = instance["workload"]["distribution"]
    rows, cols = len(dist), len(dist[0])
    per: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in solution["assignment"]:
        per[(a["bucket"][0], a["bucket"][1])][a["gpu_type"]] += 1
    palette = mpl.colormaps["Set2"].colors
    colour = {n: palette[k % len(palette)] for k, n in enumerate(used)}
    for (i, j), by_type in per.items():
        total, left = sum(by_type.values()), j - 0.5
        for name in used:
            width = by_type.get(name, 0) / total
            if width:
                ax.add_patch(
                    Rectangle(
                        (left, i - 0.5),
                        width,
                        1,
                        facecolor=colour[name],
                        edgecolor="white",
                        linewidth=0.8,
                    )
                )
                left += width
        ax.text(j, i, f"{100 * dist[i][j]:.1f}%", ha="center", va="center", fontsize=7)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("output length bucket")
    ax.set_ylabel("input length bucket")
    ax.set_title("who serves each bucket (width: its slices; text: share of requests)", fontsize=9)
    handles = [_patch(colour[n], n) for n in used]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _gpu_busy(instance: dict, solution: dict) -> dict[str, float]:
    """Per GPU type: the sum over its slices of rate / throughput (GPUs' worth of work)."""
    if not solution.get("assignment") or "workload" not in instance:
        return {}
    dist = instance["workload"]["distribution"]
    rate = instance["workload"]["request_rate"]
    sf = instance.get("slice_factor", 4)
    tput = {g["name"]: g["throughput"] for g in instance["gpu_types"]}
    busy: dict[str, float] = defaultdict(float)
    for a in solution.get("assignment", []):
        i, j = a["bucket"]
        t = tput.get(a["gpu_type"])
        if t and t[i][j] > 0:
            busy[a["gpu_type"]] += rate * dist[i][j] / sf / t[i][j]
    return busy


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
            stage = int(label.rsplit("/", 1)[1]) if label else 0
            ax.add_patch(_rect((c, y), STAGES[stage % len(STAGES)] if label else "white"))
            if label:
                ax.text(c + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, ii)
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([c + 0.5 for c in range(ii)])
    ax.set_xticklabels([str(c) for c in range(ii)])
    ax.set_yticks([y + 0.5 for y in range(len(rows))])
    ax.set_yticklabels([f"{u}[{k}]" if units[u] > 1 else u for u, k in rows], fontsize=8)
    ax.set_xlabel("cycle mod II")
    title = f"modulo reservation table, II = {ii} (cells: op/stage, coloured by stage)"
    if over:
        title += f"; over capacity: {', '.join(over[:4])}"
    ax.set_title(title, fontsize=9)


#: cell colours of the pipeline stages 0, 1, 2, ... (then again)
STAGES = ("#cfe0f3", "#f9d9b4", "#d4ecd0", "#e8d5ef")


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
