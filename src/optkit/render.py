"""`optkit render`: a solution shown to a person, as text tables and (with `--png`) as a picture.

The text is the solution itself, recomputed from the instance: the job sequence with start,
completion, due date and tardiness; the pod-to-node table with what changed; the expert slot map and
per-GPU loads; the GPU counts with their cost and the slices each type serves; the modulo schedule of
a loop. The objective is labelled with the result's `objective_terms` when it carries them, else with
the names each problem gives its objective's parts (`objective_labels`).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optkit.errors import OptkitError
from optkit.problem import Problem

#: a wider table is cut to this many columns (slot maps, per-GPU loads)
MAX_COLUMNS = 32


# -- small text helpers ---------------------------------------------------------------------------


def text_table(header: list[str], rows: list[list[Any]], right: set[int] | None = None) -> str:
    """Columns padded to their widest cell; columns in `right` (default: all but the first) right-aligned."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    right = set(range(1, len(header))) if right is None else right
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"
    return str(x)


def cpu_text(millicores: int) -> str:
    """Kubernetes style: 1500 -> '1.5', 250 -> '250m'."""
    return f"{millicores / 1000:g}" if millicores % 100 == 0 else f"{millicores}m"


def bytes_text(n: int) -> str:
    """Binary units as Kubernetes prints them: 536870912 -> '512Mi'."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def request_text(resource: str, amount: int | None) -> str:
    if amount is None:
        return "-"
    if resource == "cpu":
        return cpu_text(amount)
    if resource == "memory" or resource.endswith("storage"):
        return bytes_text(amount)
    return str(amount)


# -- objective labels -----------------------------------------------------------------------------


def objective_labels(problem: Problem, objective: Any) -> list[str]:
    """Names of the objective's parts (one for a number), as each problem defines its objective."""
    kind = problem.kind
    if kind == "pod-packing" and isinstance(objective, list):
        tiers = [f"-(pods placed with priority >= {p})" for p in problem.priorities]
        return [*tiers, "evictions", "moves"]
    if kind == "software-pipelining" and isinstance(objective, list):
        return ["initiation interval (II)", "schedule length"][: len(objective)]
    if isinstance(objective, list):
        return [f"term {k}" for k in range(len(objective))]
    return [OBJECTIVES.get(kind, "objective")]


#: what each problem's objective is, in words (all are minimised; lists compare left to right)
OBJECTIVES = {
    "tardiness": "total weighted tardiness",
    "pod-packing": "lexicographic: minus the pods placed with priority >= p, for each priority p "
    "of the instance from the highest down, then evictions, then moves",
    "expert-placement": "sum over layers of the busiest GPU's load + comm_weight x comm cost",
    "gpu-selection": "cost per hour",
    "software-pipelining": "lexicographic: initiation interval (II), then schedule length",
}


def labelled_objective(problem: Problem, result: dict) -> list[str]:
    """Lines 'name: value' for the result's objective; `objective_terms` wins over the fallback."""
    objective = result.get("objective")
    if objective is None:
        return ["objective: none"]
    terms = result.get("objective_terms")
    pairs: list[tuple[str, Any]] = []
    if isinstance(terms, dict):
        pairs = list(terms.items())
    elif isinstance(terms, list) and terms:
        values = objective if isinstance(objective, list) else [objective]
        for k, term in enumerate(terms):
            if isinstance(term, dict):
                pairs.append(
                    (str(term.get("name", f"term {k}")), term.get("value", _at(values, k)))
                )
            else:
                pairs.append((str(term), _at(values, k)))
    if not pairs:
        values = objective if isinstance(objective, list) else [objective]
        pairs = list(zip(objective_labels(problem, objective), values))
    head = "objective (lexicographic, compared left to right):" if len(pairs) > 1 else "objective:"
    return [head, *(f"  {name}: {_objective_text(value)}" for name, value in pairs)]


def objective_line(instance: dict, result: dict) -> str:
    """The labelled objective on one line ('name: value; ...'), for picture titles; the bare value
    when the instance does not validate."""
    try:
        problem = Problem.from_dict(instance)
    except OptkitError:
        return f"objective {result.get('objective')}"
    return "; ".join(line.strip() for line in labelled_objective(problem, result)[1:])


def _objective_text(value: Any) -> str:
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _at(values: list, k: int) -> Any:
    return values[k] if k < len(values) else None


# -- per problem ----------------------------------------------------------------------------------


def text_tardiness(problem: Any, solution: dict) -> str:
    """The sequence: one row per job in run order, with start, completion, due date and tardiness."""
    p, d, w, r = problem.processing_times, problem.due_dates, problem.w, problem.r
    completion = problem.completion_times(solution["sequence"])
    header = ["pos", "job", "start", "p", "completion", "due", "tardiness"]
    if problem.release_dates is not None:
        header.insert(2, "release")
    if problem.weighted:
        header += ["weight", "w x T"]
    rows, late = [], 0
    for pos, j in enumerate(solution["sequence"]):
        c = completion[j]
        t = max(0, c - d[j])
        late += t > 0
        row: list[Any] = [pos, j, c - p[j], p[j], c, d[j], t if t else ""]
        if problem.release_dates is not None:
            row.insert(2, r[j])
        if problem.weighted:
            row += [w[j], w[j] * t if t else ""]
        rows.append(row)
    return f"{late} of {problem.n} jobs tardy\n" + text_table(header, rows)


def pod_changes(problem: Any, solution: dict) -> list[tuple[Any, str | None, str | None, str]]:
    """Per pod: (pod, node before, node after, change) with change one of
    'stays', 'moved', 'evicted', 'placed', 'pending'."""
    after = solution["assignment"]
    out = []
    for pod in problem.pods:
        before, now = pod.node, after.get(pod.name)
        if before is None:
            change = "placed" if now is not None else "pending"
        elif now is None:
            change = "evicted"
        else:
            change = "stays" if now == before else "moved"
        out.append((pod, before, now, change))
    return out


def text_pod_packing(problem: Any, solution: dict) -> str:
    """Pod-to-node table (changes first), per-node requests against capacity, and the pending pods."""
    changes = pod_changes(problem, solution)
    order = {"evicted": 0, "moved": 1, "placed": 2, "pending": 3, "stays": 4}
    requested = [r for r in problem.resources if any(r in p.requests for p in problem.pods)]
    resources = sorted(requested, key=lambda r: (r != "cpu", r != "memory", r))
    rows = [
        [
            pod.name,
            pod.priority,
            *(request_text(r, pod.requests.get(r)) for r in resources),
            before or "",
            now or "",
            change,
        ]
        for pod, before, now, change in sorted(
            changes, key=lambda c: (order[c[3]], -c[0].priority, c[0].name)
        )
    ]
    count = defaultdict(int)
    for *_, change in changes:
        count[change] += 1
    summary = ", ".join(f"{count[k]} {k}" for k in order if count[k])
    pods = text_table(
        ["pod", "priority", *resources, "before", "after", "change"],
        rows,
        right={1, *range(2, 2 + len(resources))},
    )
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    npods: dict[str, int] = defaultdict(int)
    for pod, _, now, _ in changes:
        if now is not None:
            npods[now] += 1
            for r, q in pod.requests.items():
                used[now][r] += q
    node_rows = [
        [
            node.name,
            npods[node.name],
            *(
                f"{request_text(r, used[node.name][r])} / {request_text(r, node.capacity.get(r))}"
                for r in resources
            ),
        ]
        for node in problem.nodes
    ]
    nodes = text_table(["node", "pods", *(f"{r} used / capacity" for r in resources)], node_rows)
    pending = [
        f"  {pod.name} (priority {pod.priority})" for pod, _, now, _ in changes if now is None
    ]
    parts = [f"pods: {summary}", pods, "nodes after:\n" + nodes]
    parts.append("pending pods:\n" + "\n".join(pending) if pending else "pending pods: none")
    return "\n\n".join(parts)


def text_expert_placement(problem: Any, solution: dict) -> str:
    """Per layer: which expert sits in each slot, grouped by GPU, and the load each GPU serves."""
    slots = solution["slots"]
    loads = problem.gpu_loads(slots)
    G, S = problem.gpus, problem.slots_per_gpu
    parts = []
    if G * S <= 4 * MAX_COLUMNS:
        gpus = range(min(G, MAX_COLUMNS))
        rows = [
            [l]
            + [" ".join("." if e < 0 else str(e) for e in row[g * S : (g + 1) * S]) for g in gpus]
            for l, row in enumerate(slots)
        ]
        parts.append(
            f"slot map: experts in each GPU's {S} slot(s), per layer ('.' = empty slot)\n"
            + text_table(["layer", *(f"GPU {g}" for g in gpus)], rows)
        )
    else:
        parts.append(f"slot map: {G} GPUs x {S} slots per layer: too wide for text, see --png")
    shown = min(G, MAX_COLUMNS if G <= MAX_COLUMNS else 0)
    header = ["layer", *(f"GPU {g}" for g in range(shown)), "mean", "max", "max/mean"]
    rows = []
    for l, row in enumerate(loads):
        mean = float(row.mean())
        rows.append(
            [
                l,
                *(f"{x:.0f}" for x in row[:shown]),
                f"{mean:.1f}",
                f"{row.max():.0f}",
                f"{row.max() / mean:.3f}" if mean else "-",
            ]
        )
    parts.append("load served by each GPU, per layer\n" + text_table(header, rows))
    if problem.affinity is not None:
        tr = problem.traffic(slots)
        parts.append(
            f"traffic between consecutive layers: {tr['cross_gpu_traffic']:.0f} token hops cross "
            f"GPUs ({100 * (1 - tr['local_share']):.1f} %), {tr['cross_node_traffic']:.0f} cross "
            f"nodes; comm cost {tr['comm_cost']:.1f} (weight {problem.weight:g})"
        )
    return "\n\n".join(parts)


def text_gpu_selection(problem: Any, solution: dict) -> str:
    """GPU counts per type with their cost, and which workload slices each type serves."""
    counts = solution["counts"]
    report = problem.check(solution)
    per_type = report.metrics.get("load_per_type", {})
    rows = []
    for g in problem.gpu_types:
        c = counts.get(g.name, 0)
        rows.append(
            [
                g.name,
                c,
                f"{g.cost_per_hour:g}",
                f"{c * g.cost_per_hour:.2f}",
                f"{per_type.get(g.name, 0):.3f}" if c else "",
            ]
        )
    total = sum(counts.get(g.name, 0) * g.cost_per_hour for g in problem.gpu_types)
    rows.append(["total", sum(counts.values()), "", f"{total:.2f}", ""])
    head = text_table(["GPU type", "count", "$/h each", "$/h", "load (GPUs busy)"], rows)
    served: dict[tuple[str, Any], dict[tuple[int, int], int]] = defaultdict(dict)
    for a in solution.get("assignment", []):
        per = served[(a["gpu_type"], a.get("instance"))]
        bucket = (a["bucket"][0], a["bucket"][1])
        per[bucket] = per.get(bucket, 0) + 1
    rows = []
    for (name, inst), per in sorted(served.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        items = [f"({i},{j})x{k}" for (i, j), k in sorted(per.items())]
        more = f" ... (+{len(items) - 10} buckets)" if len(items) > 10 else ""
        rows.append(
            ["pooled" if inst is None else inst, sum(per.values()), " ".join(items[:10]) + more]
        )
        rows[-1].insert(0, name)
    assignment = text_table(
        [
            "GPU type",
            "instance",
            "slices",
            f"(input, output) bucket x slices of {problem.slice_factor}",
        ],
        rows,
        right={2},
    )
    return f"{head}\n\nassignment of workload slices ({problem.packing}):\n{assignment}"


TEXT: dict[str, Callable[[Any, dict], str]] = {
    "tardiness": text_tardiness,
    "pod-packing": text_pod_packing,
    "expert-placement": text_expert_placement,
    "gpu-selection": text_gpu_selection,
}


def render_text(problem: Problem, result: dict) -> str:
    """Header (instance, solver, status, labelled objective) and the solution's own tables."""
    solution = result["solution"]
    report = problem.check(solution)
    head = [
        f"{problem.label}: solved by {result.get('solver')} ({result.get('status')})",
        *labelled_objective(problem, result),
    ]
    if not report.feasible:
        head += ["INFEASIBLE according to the checker:", *(f"  {v}" for v in report.violations)]
        return "\n".join(head)
    body = TEXT.get(problem.kind)
    return (
        "\n".join(head) + "\n\n" + (body(problem, solution) if body else problem.render(solution))
    )


def render_png(problem: Problem, result: dict, target: str | Path) -> Path:
    """Draw the solution with `optkit.batch.pictures` into a PNG file."""
    from optkit.batch.pictures import PICTURES, figure_size
    from optkit.batch.report import import_pyplot

    plt = import_pyplot()
    instance = problem.to_dict()
    fig = plt.figure(
        figsize=figure_size(problem.kind, instance, result["solution"]), layout="constrained"
    )
    try:
        PICTURES[problem.kind](fig, instance, result["solution"])
        fig.suptitle(
            f"{problem.label}: {result.get('solver')} ({result.get('status')})\n"
            + objective_line(instance, result),
            fontsize=10,
        )
        fig.savefig(target, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(target)


def render_command(problem: Problem, result: Any, png: Path | None = None) -> None:
    """What `optkit render` does: print the text, and write the picture when asked."""
    data = result.to_dict()
    print(render_text(problem, data))
    if png is not None:
        render_png(problem, data, png)
        print(f"wrote {png}", file=sys.stderr)
