"""Every problem's checker against a reference written here from the rules alone.

The checker is what makes every answer trustworthy, so it gets its own oracle: for each problem a
short, independent re-statement of the rules (no call into the problem module beyond building the
instance), compared on instances drawn *around a solution* so that every limit sits at its
boundary (one below, at, one above): an off-by-one, a flipped comparison or a dropped rule changes
the verdict, the number of violations of that rule, the objective or a metric. The examples scale
with the hypothesis profile (tests/conftest.py). benchmarks/planted_bugs.py and
benchmarks/mutation.py measure how many planted bugs and mutants these tests catch.
"""

from __future__ import annotations

import collections
import math
import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optkit.problems.expert_placement import ExpertPlacement
from optkit.problems.gpu_selection import GpuSelection
from optkit.problems.pod_packing import PodPacking
from optkit.problems.software_pipelining import SoftwarePipelining
from optkit.problems.tardiness import Tardiness

#: the profile's examples (100 in "ci", 1000 in "nightly"), named here so that every checker test
#: follows the profile
CHECKER = settings(max_examples=settings().max_examples)


# -- software pipelining ---------------------------------------------------------------------------

SP_RULES = {
    "dependence": r"^dependence ",
    "same_group": r"^edge .* needs one warp group",
    "unit": r"^unit '",
    "variable_latency": r"^variable-latency op",
    "producer_exclusive": r"^op '.*' is on the producer group",
    "too_long": r"^op '.*' keeps group",
    "group_clash": r"^warp group \d+ runs",
    "registers": r"^warp group \d+ holds",
    "horizon": r"^schedule length",
}


def _classify(messages, rules):
    """Count of the checker's messages per rule (each message matches exactly one rule)."""
    counts = collections.Counter()
    for m in messages:
        hits = [name for name, pattern in rules.items() if re.search(pattern, m)]
        assert len(hits) == 1, (m, hits)
        counts[hits[0]] += 1
    return counts


def _sp_uses(op):
    reservation = op["reservation"] or {op["unit"]: list(range(op["cycles"]))}
    return [(u, off) for u, offs in reservation.items() for off in offs]


def _sp_issue(op):
    return op["cycles"] if op["issue_cycles"] is None else op["issue_cycles"]


def _sp_reference(data, ii, start, group):
    """Every rule of a modulo schedule, from the instance dict alone: (objective or None, count of
    violations per rule, metrics). `group` is None without warp groups."""
    ops, edges, units, wg = data["ops"], data["edges"], data["units"], data["warp_groups"]
    at = {op["name"]: k for k, op in enumerate(ops)}
    n = len(ops)
    g = group or [0] * n
    bad = collections.Counter()
    for e in edges:
        u, v = at[e["from"]], at[e["to"]]
        extra = wg["handoff"] if wg and g[u] != g[v] else 0
        if start[v] + e["distance"] * ii < start[u] + e["latency"] + extra:
            bad["dependence"] += 1
        if wg and e["same_group"] and g[u] != g[v]:
            bad["same_group"] += 1
    use = collections.Counter()
    for v, op in enumerate(ops):
        for u, off in _sp_uses(op):
            use[(u, (start[v] + off) % ii)] += 1
    bad["unit"] += sum(1 for (u, _), c in use.items() if c > units[u])
    peak = None
    if wg:
        for v, op in enumerate(ops):
            if op["variable_latency"] and g[v] != wg["producer"]:
                bad["variable_latency"] += 1
            if wg["producer_exclusive"] and not op["variable_latency"] and g[v] == wg["producer"]:
                bad["producer_exclusive"] += 1
        busy = collections.defaultdict(list)
        for v, op in enumerate(ops):
            end = start[v] + _sp_issue(op)
            for e in edges:
                w = at[e["to"]]
                if at[e["from"]] == v and e["blocking"] and g[w] == g[v]:
                    end = max(end, start[w] + e["distance"] * ii)
            if end - start[v] > ii:
                bad["too_long"] += 1
                continue
            for t in range(start[v], end):
                busy[(g[v], t % ii)].append(v)
        bad["group_clash"] += sum(1 for who in busy.values() if len(who) > 1)
        live = [[0] * ii for _ in range(wg["count"])]
        for v, op in enumerate(ops):
            end = start[v] + op["cycles"]
            for e in edges:
                if at[e["from"]] == v and e["carries_value"]:
                    end = max(end, start[at[e["to"]]] + e["distance"] * ii)
            for t in range(start[v], end):
                live[g[v]][t % ii] += op["regs"]
        peak = [max(row) for row in live]
        bad["registers"] += sum(1 for k in range(wg["count"]) if peak[k] > wg["reg_limit"][k])
    length = max(s + op["cycles"] for s, op in zip(start, ops))
    horizon = data["horizon"]
    if horizon is None:
        lmax = max([e["latency"] for e in edges] + [0]) + (wg["handoff"] if wg else 0)
        horizon = (n - 1) * (lmax + ii - 1) + max(op["cycles"] for op in ops)
    if length > horizon:
        bad["horizon"] += 1
    metrics = {"ii": ii, "schedule_length": length, "stages": max(s // ii for s in start) + 1}
    metrics.update(_sp_mii(data))
    if wg:
        metrics["peak_registers"] = peak
        metrics["groups_used"] = len(set(g))
    bad = +bad
    return (None if bad else [ii, length]), bad, metrics


def _sp_mii(data):
    """ResMII, RecMII (None: a zero-distance cycle of positive latency) and MII, by definition."""
    ops, edges, units, wg = data["ops"], data["edges"], data["units"], data["warp_groups"]
    load = collections.Counter(u for op in ops for u, _ in _sp_uses(op))
    res = max([1] + [-(-c // units[u]) for u, c in load.items() if units[u]])
    if wg:
        res = max(res, -(-sum(_sp_issue(op) for op in ops) // wg["count"]))
        res = max(res, sum(_sp_issue(op) for op in ops if op["variable_latency"]))
    at = {op["name"]: k for k, op in enumerate(ops)}
    n = len(ops)

    def positive_cycle(ii):  # Floyd-Warshall on the longest paths, weights latency - ii * distance
        NEG = -(10**9)
        d = [[NEG] * n for _ in range(n)]
        for e in edges:
            u, v = at[e["from"]], at[e["to"]]
            d[u][v] = max(d[u][v], e["latency"] - ii * e["distance"])
        for k in range(n):
            for i in range(n):
                for j in range(n):
                    if d[i][k] > NEG and d[k][j] > NEG:
                        d[i][j] = max(d[i][j], d[i][k] + d[k][j])
        return any(d[i][i] > 0 for i in range(n))

    top = sum(e["latency"] for e in edges) + 1
    if positive_cycle(top):
        rec = None
    else:
        rec = next(ii for ii in range(1, top + 1) if not positive_cycle(ii))
    return {"res_mii": res, "rec_mii": rec, "mii": None if rec is None else max(res, rec)}


@st.composite
def sp_cases(draw):
    """A schedule first, then an instance built around it with every limit at its boundary (one
    below, at, or one above): latencies, unit capacities, register limits and the horizon, so that
    an off-by-one anywhere in a rule changes the verdict. Distances up to 3, modulo wrap-around
    (starts beyond the II), self-loops, blocking and value edges, warp groups with handoff."""
    n = draw(st.sampled_from([1, 2, 3, 3, 4, 5]))
    unit_names = ["A", "B"][: draw(st.integers(1, 2))]
    ii = draw(st.integers(1, 5))
    start = draw(st.lists(st.integers(0, 12), min_size=n, max_size=n))
    ops = []
    for k in range(n):
        cycles = draw(st.integers(1, 3))
        unit = draw(st.sampled_from(unit_names))
        reservation = None
        if draw(st.integers(0, 3)) == 0:
            reservation = {
                u: sorted(draw(st.sets(st.integers(0, 3), max_size=3))) for u in unit_names
            }
        ops.append(
            {
                "name": f"o{k}",
                "unit": unit,
                "cycles": cycles,
                "regs": draw(st.integers(0, 3)),
                "variable_latency": draw(st.integers(0, 4)) == 0,
                "issue_cycles": draw(st.none() | st.integers(0, cycles + 1)),
                "reservation": reservation,
            }
        )
    wg = None
    group = None
    if draw(st.integers(0, 3)):
        count = draw(st.sampled_from([1, 2, 2, 3]))
        wg = {
            "count": count,
            "reg_limit": [0] * count,
            "producer": draw(st.integers(0, count - 1)),
            "handoff": draw(st.sampled_from([0, 1, 1, 2])),
            "producer_exclusive": draw(st.booleans()),
        }
        group = [draw(st.integers(0, count - 1)) for _ in range(n)]
        if count > 1 and n > 1 and len(set(group)) == 1:  # two groups at least, so that edges cross
            group[-1] = (group[-1] + 1) % count
    g = group or [0] * n
    edges = []
    for _ in range(draw(st.integers(0, 6)) if n > 1 else draw(st.integers(0, 2))):
        u, v = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        across = [w for w in range(n) if g[w] != g[u]]
        if across and draw(st.booleans()):  # an edge between two warp groups (handoff)
            v = draw(st.sampled_from(across))
        d = draw(st.sampled_from([0, 1, 2, 2, 3]))
        extra = wg["handoff"] if wg and g[u] != g[v] else 0
        lat = start[v] + d * ii - start[u] - extra + draw(st.sampled_from([-1, 0, 0, 1]))
        while lat < 0:  # the consumer is too early for any latency: a later iteration's
            d += 1  # consumer, still at the boundary
            lat += ii
        edges.append(
            {
                "from": f"o{u}",
                "to": f"o{v}",
                "latency": lat,
                "distance": d,
                "blocking": draw(st.booleans()),
                "carries_value": draw(st.booleans()),
                "same_group": draw(st.booleans()),
            }
        )
    data = {"units": {u: 1 for u in unit_names}, "ops": ops, "edges": edges, "warp_groups": wg}
    data["horizon"] = None
    # capacities and limits at the boundary of what the schedule uses
    use = collections.Counter()
    for v, op in enumerate(ops):
        for u, off in _sp_uses(op):
            use[(u, (start[v] + off) % ii)] += 1
    for u in unit_names:
        top = max([c for (w, _), c in use.items() if w == u] + [0])
        data["units"][u] = max(0, top + draw(st.sampled_from([-1, 0, 0, 1])))
    if wg:
        _, _, m = _sp_reference(data, ii, start, group)
        wg["reg_limit"] = [
            max(0, p + draw(st.sampled_from([-1, 0, 0, 1]))) for p in m["peak_registers"]
        ]
    if draw(st.booleans()):
        length = max(s + op["cycles"] for s, op in zip(start, ops))
        data["horizon"] = max(1, length + draw(st.sampled_from([-1, 0, 1])))
    return data, ii, start, group


def _sp_solution(ii, start, group):
    sol = {"ii": ii, "start": {f"o{k}": s for k, s in enumerate(start)}}
    if group is not None:
        sol["warp_group"] = {f"o{k}": x for k, x in enumerate(group)}
    return sol


@pytest.mark.slow
@CHECKER
@given(sp_cases())
def test_software_pipelining_checker_matches_the_rules(case):
    data, ii, start, group = case
    problem = SoftwarePipelining.model_validate({"problem": "software-pipelining", **data})
    report = problem.check(_sp_solution(ii, start, group))
    objective, bad, metrics = _sp_reference(data, ii, start, group)
    assert _classify(report.violations, SP_RULES) == bad
    assert report.feasible == (not bad)
    assert report.objective == objective
    for key, value in metrics.items():
        assert report.metrics[key] == value, key


# -- tardiness -------------------------------------------------------------------------------------


def _tardiness_reference(data, sequence):
    """(objective or None, metrics): jobs in `sequence` order, each starting at the later of its
    release and the previous completion."""
    p, d = data["processing_times"], data["due_dates"]
    n = len(p)
    w = data.get("weights") or [1] * n
    r = data.get("release_dates") or [0] * n
    if len(sequence) != n or set(sequence) != set(range(n)):
        return None, None
    t, tardiness, completion = 0, [0] * n, [0] * n
    for j in sequence:
        t = max(t, r[j]) + p[j]
        completion[j] = t
        tardiness[j] = t - d[j] if t > d[j] else 0
    objective = sum(wj * tj for wj, tj in zip(w, tardiness))
    return objective, {
        "total_weighted_tardiness": objective,
        "total_tardiness": sum(tardiness),
        "tardy_jobs": len([x for x in tardiness if x != 0]),
        "max_tardiness": max(tardiness),
        "makespan": max(completion),
    }


@st.composite
def tardiness_cases(draw):
    """A sequence first; due dates at the job's completion, one before or one after (a job
    finishing exactly at its due date is on time); release dates that sometimes open gaps."""
    n = draw(st.integers(1, 7))
    p = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    release = draw(st.none() | st.lists(st.integers(0, 20), min_size=n, max_size=n))
    weights = draw(st.none() | st.lists(st.integers(0, 5), min_size=n, max_size=n))
    sequence = draw(st.permutations(range(n)))
    t, due = 0, [0] * n
    for j in sequence:
        t = max(t, (release or [0] * n)[j]) + p[j]
        due[j] = max(0, t + draw(st.sampled_from([-3, -1, 0, 0, 1])))
    data = {"processing_times": p, "due_dates": due, "weights": weights, "release_dates": release}
    kind = draw(st.sampled_from(["ok", "ok", "ok", "repeat", "drop", "out_of_range", "extra"]))
    sequence = list(sequence)
    if kind == "repeat" and n > 1:
        sequence[draw(st.integers(0, n - 1))] = sequence[draw(st.integers(0, n - 1))]
    elif kind == "drop":
        sequence.pop(draw(st.integers(0, n - 1)))
    elif kind == "out_of_range":
        sequence[draw(st.integers(0, n - 1))] = n + draw(st.integers(0, 2))
    elif kind == "extra":
        sequence.append(draw(st.integers(0, n)))
    return data, sequence


@pytest.mark.slow
@CHECKER
@given(tardiness_cases())
def test_tardiness_checker_matches_the_rules(case):
    data, sequence = case
    problem = Tardiness.model_validate({"problem": "tardiness", **data})
    report = problem.check({"sequence": sequence})
    objective, metrics = _tardiness_reference(data, sequence)
    assert report.feasible == (objective is not None)
    assert report.objective == objective
    if metrics is not None:
        assert report.metrics == metrics
    else:
        n = len(data["processing_times"])
        missing = sorted(set(range(n)) - set(sequence))
        repeated = sorted({j for j in sequence if sequence.count(j) > 1})
        beyond = sorted({j for j in sequence if j >= n})
        assert report.violations == (
            f"sequence is not a permutation of 0..{n - 1} (missing {missing[:5]}, "
            f"repeated {repeated[:5]}, out of range {beyond[:5]})",
        )


def test_tardiness_helpers_agree_with_the_checker():
    problem = Tardiness(
        processing_times=[3, 2, 4], due_dates=[3, 4, 6], weights=[2, 1, 3], release_dates=[1, 0, 0]
    )
    # 1 runs 0-2 (on time), 0 runs 2-5 (2 late, w 2), 2 runs 5-9 (3 late, w 3): 4 + 9
    assert problem.completion_times([1, 0, 2]) == [5, 2, 9]
    assert problem.total_weighted_tardiness([1, 0, 2]) == 13
    assert problem.check({"sequence": [1, 0, 2]}).objective == 13
    # 0 waits for its release at 1: runs 1-4
    assert problem.completion_times([0, 1, 2]) == [4, 6, 10]


# -- gpu selection ---------------------------------------------------------------------------------

GPU_RULES = {
    "unknown_count": r"^counts: unknown GPU type",
    "max_count": r"exceed its max_count",
    "outside": r"is outside the",
    "no_traffic": r"carries no traffic",
    "slice_range": r": slice \d+ >= slice_factor",
    "twice": r"is assigned twice",
    "unknown_type": r"^assignment\.\d+: unknown GPU type",
    "throughput_0": r"has throughput 0",
    "no_instance": r"needs the instance",
    "no_such_instance": r"does not exist",
    "unassigned": r"slice\(s\) unassigned",
    "pooled_over": r"^type '.*': load .* exceeds",
    "instance_over": r"^instance \d+ of '.*': load .* > 1",
}


def _q(x):
    """The decimal a number is written as, as a fraction."""
    return Fraction(x) if isinstance(x, int) else Fraction(str(x))


def _gpu_loads(data):
    """(buckets with traffic, load[t][bucket] of one slice where type t serves it)."""
    dist, rate, sf = (
        data["workload"]["distribution"],
        data["workload"]["request_rate"],
        data["slice_factor"],
    )
    buckets = [
        (i, j)
        for i in range(len(dist))
        for j in range(len(dist[0]))
        if _q(rate) > 0 and _q(dist[i][j]) > 0
    ]
    loads = []
    for gpu in data["gpu_types"]:
        row = {}
        for i, j in buckets:
            tput = _q(gpu["throughput"][i][j])
            if tput > 0:
                row[(i, j)] = _q(dist[i][j]) * _q(rate) / sf / tput
        loads.append(row)
    return buckets, loads


def _first_fit_decreasing(items):
    bins = []
    for x in sorted(items, reverse=True):
        for k, room in enumerate(bins):
            if x <= room:
                bins[k] -= x
                break
        else:
            bins.append(1 - x)
    return len(bins)


def _gpu_baseline(data, buckets, loads):
    best = None
    for t, gpu in enumerate(data["gpu_types"]):
        row, cap = loads[t], gpu["max_count"]
        pooled = data["packing"] == "pooled"
        if any(b not in row or cap == 0 or (not pooled and row[b] > 1) for b in buckets):
            continue
        slices = [row[b] for b in buckets for _ in range(data["slice_factor"])]
        count = math.ceil(sum(slices, Fraction(0))) if pooled else _first_fit_decreasing(slices)
        if cap is not None and count > cap:
            continue
        cost = _q(gpu["cost_per_hour"]) * count
        if best is None or cost < best[2]:
            best = (gpu["name"], count, cost)
    return best


def _gpu_reference(data, solution):
    names = [g["name"] for g in data["gpu_types"]]
    rows, cols = len(data["workload"]["distribution"]), len(data["workload"]["distribution"][0])
    sf, pooled = data["slice_factor"], data["packing"] == "pooled"
    buckets, loads = _gpu_loads(data)
    bad = collections.Counter()
    counts = dict.fromkeys(names, 0)
    for name, c in solution["counts"].items():
        if name not in counts:
            bad["unknown_count"] += 1
            continue
        counts[name] = c
        cap = data["gpu_types"][names.index(name)]["max_count"]
        if cap is not None and c > cap:
            bad["max_count"] += 1
    seen, per_type, per_instance = set(), collections.Counter(), collections.Counter()
    for a in solution["assignment"]:
        b = tuple(a["bucket"])
        if b[0] >= rows or b[1] >= cols:
            bad["outside"] += 1
        elif b not in buckets:
            bad["no_traffic"] += 1
        elif a["slice"] >= sf:
            bad["slice_range"] += 1
        elif (b, a["slice"]) in seen:
            bad["twice"] += 1
        else:
            seen.add((b, a["slice"]))
            if a["gpu_type"] not in counts:
                bad["unknown_type"] += 1
                continue
            t = names.index(a["gpu_type"])
            if b not in loads[t]:
                bad["throughput_0"] += 1
                continue
            per_type[t] += loads[t][b]
            instance = a.get("instance")
            if instance is None:
                bad["no_instance"] += 0 if pooled else 1
            elif instance >= counts[a["gpu_type"]]:
                bad["no_such_instance"] += 1
            else:
                per_instance[(t, instance)] += loads[t][b]
    if len(seen) < len(buckets) * sf:
        bad["unassigned"] += 1
    if pooled:
        bad["pooled_over"] += sum(1 for t, x in per_type.items() if x > counts[names[t]])
    else:
        bad["instance_over"] += sum(1 for x in per_instance.values() if x > 1)
    bad = +bad
    if bad:
        return None, bad, None
    cost = sum((_q(g["cost_per_hour"]) * counts[g["name"]] for g in data["gpu_types"]), Fraction(0))
    metrics = {
        "cost_per_hour": float(cost),
        "instances": counts,
        "mix": "+".join(n for n in names if counts[n] > 0) or "none",
        "slices": len(seen),
        "load_per_type": {
            names[t]: round(float(per_type[t]), 6) for t in range(len(names)) if counts[names[t]]
        },
    }
    if pooled:
        metrics["load_per_instance"] = {
            n: [round(float(per_type[t] / counts[n]), 6)] * counts[n]
            for t, n in enumerate(names)
            if counts[n]
        }
    else:
        metrics["load_per_instance"] = {
            n: [round(float(per_instance[(t, i)]), 6) for i in range(counts[n])]
            for t, n in enumerate(names)
            if counts[n]
        }
    base = _gpu_baseline(data, buckets, loads)
    if base is None:
        metrics["single_type_baseline"] = metrics["savings_vs_single_type"] = None
    else:
        metrics["single_type_baseline"] = {
            "gpu_type": base[0],
            "count": base[1],
            "cost_per_hour": float(base[2]),
        }
        metrics["savings_vs_single_type"] = round(float(1 - cost / base[2]), 6) if base[2] else 0.0
    return float(cost), bad, metrics


@st.composite
def gpu_cases(draw):
    """Slices assigned first; throughputs often a whole multiple of a slice's rate, so that loads add
    up to exactly 1 or exactly the count; counts and caps at the boundary; then one of the ways a
    solution goes wrong (or none)."""
    rows, cols = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    cells = rows * cols
    units = [0] * cells  # the distribution in twentieths
    for _ in range(20):
        units[draw(st.integers(0, cells - 1))] += 1
    dist = [[units[i * cols + j] / 20 for j in range(cols)] for i in range(rows)]
    rate = draw(st.sampled_from([1, 2, 3, 0.3, 1.5, 1, 2, 0]))
    sf = draw(st.integers(1, 3))
    packing = draw(st.sampled_from(["pooled", "per_instance"]))
    n_types = draw(st.integers(1, 3))
    types = []
    for t in range(n_types):
        table = []
        for i in range(rows):
            row = []
            for j in range(cols):
                slice_rate = _q(dist[i][j]) * _q(rate) / sf
                if slice_rate > 0 and draw(st.booleans()):
                    row.append(float(slice_rate * draw(st.integers(1, 4))))
                else:
                    row.append(draw(st.sampled_from([0, 0.1, 0.3, 1, 2])))
            table.append(row)
        types.append(
            {
                "name": f"G{t}",
                "cost_per_hour": draw(st.sampled_from([1, 2.5, 0.1, 3])),
                "max_count": None,
                "throughput": table,
            }
        )
    data = {
        "gpu_types": types,
        "workload": {"distribution": dist, "request_rate": rate},
        "slice_factor": sf,
        "packing": packing,
    }
    buckets, loads = _gpu_loads(data)
    assignment, per_type, top = [], collections.Counter(), collections.Counter()
    filled: dict = {}
    for b in buckets:
        for s in range(sf):
            serving = [t for t in range(n_types) if b in loads[t]] or list(range(n_types))
            t = draw(st.sampled_from(serving))
            if packing == "per_instance" and draw(st.booleans()):  # first fit: full instances
                fill = [
                    sum(x for (u, i), x in filled.items() if u == t and i == k) for k in range(3)
                ]
                load = loads[t].get(b, 0)
                instance = next((k for k in range(3) if fill[k] + load <= 1), 2)
            else:
                instance = draw(st.integers(0, 2))
            filled[(t, instance)] = filled.get((t, instance), 0) + loads[t].get(b, 0)
            assignment.append(
                {"bucket": list(b), "slice": s, "gpu_type": f"G{t}", "instance": instance}
            )
            per_type[t] += loads[t].get(b, 0)
            top[t] = max(top[t], instance + 1)
    counts = {}
    for t in range(n_types):
        need = math.ceil(per_type[t]) if packing == "pooled" else top[t]
        counts[f"G{t}"] = max(0, need + draw(st.sampled_from([-1, 0, 0, 1])))
        if draw(st.booleans()):
            types[t]["max_count"] = max(0, counts[f"G{t}"] + draw(st.sampled_from([-1, 0, 1])))
    flaw = draw(
        st.sampled_from(
            ["none"] * 3
            + ["twice"]
            + [
                "drop",
                "twice",
                "outside",
                "no_traffic",
                "slice",
                "type",
                "count_type",
                "no_instance",
            ]
        )
    )
    if assignment and flaw in (
        "drop",
        "twice",
        "outside",
        "no_traffic",
        "slice",
        "type",
        "no_instance",
    ):
        k = draw(st.integers(0, len(assignment) - 1))
        a = dict(assignment[k])
        if flaw == "drop":
            assignment.pop(k)
        elif flaw == "twice":
            assignment.append(a)
        elif flaw == "outside":
            assignment[k] = {**a, "bucket": [a["bucket"][0] + draw(st.integers(0, 1)) * rows, cols]}
        elif flaw == "slice":
            assignment[k] = {**a, "slice": sf + draw(st.integers(0, 1))}
        elif flaw == "type":
            assignment[k] = {**a, "gpu_type": "nope"}
        elif flaw == "no_instance":
            assignment[k] = {key: v for key, v in a.items() if key != "instance"}
    if flaw == "no_traffic":
        empty = [[i, j] for i in range(rows) for j in range(cols) if (i, j) not in buckets]
        if empty:
            assignment.append(
                {"bucket": draw(st.sampled_from(empty)), "slice": 0, "gpu_type": "G0"}
            )
    if flaw == "count_type":
        counts["nope"] = 1
    return data, {"counts": counts, "assignment": assignment}


@pytest.mark.slow
@CHECKER
@given(gpu_cases())
def test_gpu_selection_checker_matches_the_rules(case):
    data, solution = case
    problem = GpuSelection.model_validate({"problem": "gpu-selection", **data})
    report = problem.check(solution)
    objective, bad, metrics = _gpu_reference(data, solution)
    assert _classify(report.violations, GPU_RULES) == bad
    assert report.feasible == (not bad)
    assert report.objective == objective
    if metrics is not None:
        assert report.metrics == metrics


def test_gpu_selection_pooled_load_exactly_the_count_is_feasible():
    """Ten slices of 0.1 req/s on a type serving 0.5 req/s: load exactly 2 (floats sum 0.1 ten
    times to 0.9999999999999999); 2 instances suffice, 1 does not."""
    data = {
        "gpu_types": [{"name": "G", "cost_per_hour": 1, "throughput": [[0.5]]}],
        "workload": {"distribution": [[1]], "request_rate": 1},
        "slice_factor": 10,
        "packing": "pooled",
    }
    problem = GpuSelection.model_validate({"problem": "gpu-selection", **data})
    slices = [{"bucket": [0, 0], "slice": s, "gpu_type": "G"} for s in range(10)]
    assert problem.check({"counts": {"G": 2}, "assignment": slices}).feasible
    assert not problem.check({"counts": {"G": 1}, "assignment": slices}).feasible


# -- expert placement ------------------------------------------------------------------------------


def _ep_reference(data, slots):
    """(objective or None, {"layers"|"row"|"ids": count, "same_gpu": replicas, "missing": pairs},
    metrics) by the definitions, in fractions."""
    load, G, S = data["load"], data["gpus"], data["slots_per_gpu"]
    L, E = len(load), len(load[0])
    bad = collections.Counter()
    if len(slots) != L:
        return None, collections.Counter(layers=1), None
    for row in slots:
        if len(row) != G * S:
            bad["row"] += 1
        elif any(e < -1 or e >= E for e in row):
            bad["ids"] += 1
    if bad:
        return None, bad, None
    # copies[l][e][g]: replicas of e on GPU g in layer l
    copies = [[[0] * G for _ in range(E)] for _ in range(L)]
    for l, row in enumerate(slots):
        for s, e in enumerate(row):
            if e >= 0:
                copies[l][e][s // S] += 1
    same = sum(max(0, c - 1) for layer in copies for per in layer for c in per)
    missing = sum(1 for layer in copies for per in layer if sum(per) == 0)
    if same:
        bad["same_gpu"] = same
    if missing:
        bad["missing"] = missing
    if bad:
        return None, bad, {"same_gpu_replicas": same}
    replicas = [[sum(per) for per in layer] for layer in copies]
    gpu_load = [
        [
            sum(Fraction(load[l][e]) * copies[l][e][g] / replicas[l][e] for e in range(E))
            for g in range(G)
        ]
        for l in range(L)
    ]
    layer_max = [max(row) for row in gpu_load]
    mean = [Fraction(sum(load[l])) / G for l in range(L)]
    cross_gpu, cross_node, total = _ep_traffic(data, copies)
    c_in, c_out = (
        (data.get("link_cost") or {}).get("intra_node", 1),
        (data.get("link_cost") or {}).get("inter_node", 1),
    )
    cost = _q(c_in) * (cross_gpu - cross_node) + _q(c_out) * cross_node
    weight = _q(data.get("comm_weight") or 0)
    objective = round(float(sum(layer_max) + weight * cost), 6)
    per_layer = [float(m / x) if x > 0 else 1.0 for m, x in zip(mean, layer_max)]
    metrics = {
        "balancedness": float(sum(mean) / sum(layer_max)) if sum(layer_max) > 0 else 1.0,
        "balancedness_min": min(per_layer),
        "balancedness_per_layer": [round(b, 6) for b in per_layer],
        "max_gpu_load": float(max(layer_max)),
        "sum_max_gpu_load": float(sum(layer_max)),
        "cross_gpu_traffic": float(cross_gpu),
        "cross_node_traffic": float(cross_node),
        "comm_cost": float(cost),
        "local_share": float(1 - cross_gpu / total) if total > 0 else 1.0,
        "replicas": sum(map(sum, replicas)),
        "empty_slots": L * G * S - sum(map(sum, replicas)),
        "same_gpu_replicas": 0,
    }
    return objective, bad, metrics


def _ep_traffic(data, copies):
    """Tokens of expert e (layer l) routed to f (layer l+1) are spread evenly over e's GPUs and
    f's GPUs; a token stays on its GPU (node) for the overlap of the two spreads."""
    affinity, G = data.get("affinity"), data["gpus"]
    node = data.get("gpu_node") or [0] * G
    nodes = max(node) + 1
    cross_gpu = cross_node = total = Fraction(0)
    if not affinity:
        return cross_gpu, cross_node, total
    for l, a in enumerate(affinity):
        if sum(map(sum, a)) == 0:
            continue
        here, there = copies[l], copies[l + 1]

        def spread(per):  # share of an expert's tokens on each GPU (one per GPU holding it)
            held = [1 if c > 0 else 0 for c in per]
            return [Fraction(h, max(1, sum(held))) for h in held]

        for e, row in enumerate(a):
            for f, tokens in enumerate(row):
                x, y = spread(here[e]), spread(there[f])
                stay_gpu = sum(min(p, q) for p, q in zip(x, y))
                if nodes == 1:
                    stay_node = Fraction(1)
                else:
                    stay_node = sum(
                        min(
                            sum(p for p, k in zip(x, node) if k == n),
                            sum(q for q, k in zip(y, node) if k == n),
                        )
                        for n in range(nodes)
                    )
                cross_gpu += _q(tokens) * (1 - min(stay_gpu, 1))
                cross_node += _q(tokens) * (1 - min(stay_node, 1))
        total += sum(_q(x) for row in a for x in row)
    return cross_gpu, min(cross_node, cross_gpu), total


@st.composite
def ep_cases(draw):
    """A placement first (each expert once, replicas on top, GPUs filled to their last slot), then
    one of the ways it goes wrong: two replicas of one expert on one GPU, an expert left out, an id
    out of range, a short row, a layer missing."""
    G, S = draw(st.sampled_from([1, 2, 2, 3, 3])), draw(st.sampled_from([1, 2, 2, 3]))
    E = draw(st.integers(1, G * S))
    L = draw(st.sampled_from([1, 2, 2, 3, 3]))
    load = [[draw(st.integers(0, 9)) for _ in range(E)] for _ in range(L)]
    data = {"gpus": G, "slots_per_gpu": S, "load": load}
    if L > 1 and draw(st.integers(0, 3)):
        data["affinity"] = [
            [[draw(st.integers(0, 5)) for _ in range(E)] for _ in range(E)] for _ in range(L - 1)
        ]
        data["comm_weight"] = draw(st.sampled_from([0, 0.5, 1, 2]))
        if draw(st.booleans()):
            data["link_cost"] = {"intra_node": draw(st.sampled_from([0, 1, 2])), "inter_node": 3}
        if G > 1 and draw(st.booleans()):
            data["gpu_node"] = [0] + [draw(st.integers(0, 1)) for _ in range(G - 1)]
            if 1 not in data["gpu_node"]:
                data["gpu_node"][-1] = 1
    slots = []
    for _ in range(L):
        row = [-1] * (G * S)
        free = {g: list(range(g * S, g * S + S)) for g in range(G)}
        order = draw(st.permutations(range(E)))
        for k, e in enumerate(order):  # each expert once, spread over the GPUs
            g = k % G
            row[free[g].pop(0)] = e
        for g in range(G):  # replicas into the remaining slots, never twice on one GPU
            for s in free[g]:
                options = [e for e in range(E) if e not in row[g * S : g * S + S]]
                if options and draw(st.booleans()):
                    row[s] = draw(st.sampled_from(options))
        slots.append(row)
    flaw = draw(
        st.sampled_from(["none"] * 4 + ["same_gpu"] * 2 + ["missing", "ids", "row", "layers"])
    )
    l = draw(st.integers(0, L - 1))
    if flaw == "same_gpu" and S > 1:
        g = draw(st.integers(0, G - 1))
        slots[l][g * S + 1] = slots[l][g * S]
    elif flaw == "missing":
        e = draw(st.integers(0, E - 1))
        slots[l] = [-1 if x == e else x for x in slots[l]]
    elif flaw == "ids":
        slots[l][draw(st.integers(0, G * S - 1))] = draw(st.sampled_from([E, E + 1, -2]))
    elif flaw == "row":
        slots[l] = slots[l][:-1]
    elif flaw == "layers":
        slots = slots[:-1] if L > 1 else slots + slots
    return data, slots


@pytest.mark.slow
@CHECKER
@given(ep_cases())
def test_expert_placement_checker_matches_the_rules(case):
    data, slots = case
    problem = ExpertPlacement.model_validate({"problem": "expert-placement", **data})
    report = problem.check({"slots": slots})
    objective, bad, metrics = _ep_reference(data, slots)
    text = " | ".join(report.violations)
    found = collections.Counter()
    for key, pattern in {
        "layers": r"layers, the instance has",
        "row": r"entries, expected",
        "ids": r"expert ids must be in",
        "same_gpu": r"(\d+) replica\(s\) share a GPU",
        "missing": r"(\d+) \(layer, expert\) pair\(s\) have no replica",
    }.items():
        for m in re.finditer(pattern, text):
            found[key] += int(m.group(1)) if m.groups() else 1
    assert found == bad
    assert report.feasible == (not bad)
    if objective is None:
        assert report.objective is None
        if metrics:
            assert report.metrics == metrics
        return
    assert report.objective == pytest.approx(objective, rel=1e-9, abs=1e-9)
    assert report.metrics.keys() == metrics.keys()
    for key, value in metrics.items():
        assert report.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    assert problem.objective_of(slots) == report.objective


# -- pod packing -----------------------------------------------------------------------------------

POD_RULES = {
    "unknown_pods": r"^assignment names unknown pods",
    "missing_pods": r"^assignment misses pods",
    "unknown_nodes": r"^assignment names unknown nodes",
    "not_movable": r"is not movable",
    "not_allowed": r"may not run on node",
    "capacity": r"requested \d+ > capacity",
}


def _tolerates(tol, taint):
    if tol.get("effect") and tol["effect"] != taint["effect"]:
        return False
    if not tol.get("key"):
        return tol.get("operator", "Equal") == "Exists"
    if tol["key"] != taint["key"]:
        return False
    return tol.get("operator", "Equal") == "Exists" or tol.get("value", "") == taint.get(
        "value", ""
    )


def _requirement_holds(req, labels):
    key, op, values = req["key"], req["operator"], req.get("values", [])
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op == "In":
        return labels.get(key) in values and key in labels
    return labels.get(key) not in values or key not in labels  # NotIn


def _schedulable(pod, node):
    """May the pod newly start on the node (cordon, selector, affinity, taints)?"""
    labels = node.get("labels", {})
    if node.get("unschedulable"):
        return False
    if any(labels.get(k) != v for k, v in pod.get("node_selector", {}).items()):
        return False
    terms = pod.get("node_affinity")
    if terms is not None and not any(all(_requirement_holds(r, labels) for r in t) for t in terms):
        return False
    return all(
        any(_tolerates(t, taint) for t in pod.get("tolerations", []))
        for taint in node.get("taints", [])
        if taint["effect"] != "PreferNoSchedule"
    )


def _may_be_on(pod, node):
    if not pod.get("movable", True):
        return pod.get("node") == node["name"]
    if _schedulable(pod, node):
        return True
    return pod.get("node") == node["name"] and all(
        any(_tolerates(t, taint) for t in pod.get("tolerations", []))
        for taint in node.get("taints", [])
        if taint["effect"] == "NoExecute"
    )


def _pod_reference(data, assignment):
    nodes, pods = data["nodes"], data["pods"]
    by_node = {n["name"]: n for n in nodes}
    names = [p["name"] for p in pods]
    bad = collections.Counter()
    if set(assignment) - set(names):
        bad["unknown_pods"] += 1
    if set(names) - set(assignment):
        bad["missing_pods"] += 1
    if {v for v in assignment.values() if v is not None} - set(by_node):
        bad["unknown_nodes"] += 1
    if bad:
        return None, bad, None
    for pod in pods:
        at = assignment[pod["name"]]
        if not pod.get("movable", True) and at != pod.get("node"):
            bad["not_movable"] += 1
        elif at is not None and not _may_be_on(pod, by_node[at]):
            bad["not_allowed"] += 1
    resources = list(
        dict.fromkeys(
            [r for n in nodes for r in n.get("capacity", {})]
            + [r for p in pods for r in p.get("requests", {})]
        )
    )

    def need(pod, r):
        return 1 if r == "pods" else pod.get("requests", {}).get(r, 0)

    def cap(node, r):
        c = node.get("capacity", {})
        return None if r == "pods" and r not in c else c.get(r, 0)

    used = {n["name"]: collections.Counter() for n in nodes}
    for pod in pods:
        if assignment[pod["name"]] is not None:
            for r in resources:
                used[assignment[pod["name"]]][r] += need(pod, r)
    for node in nodes:
        for r in resources:
            if cap(node, r) is not None and used[node["name"]][r] > cap(node, r):
                bad["capacity"] += 1
    tiers = sorted({p.get("priority", 0) for p in pods}, reverse=True)
    placed = {str(t): 0 for t in tiers}
    pending = {str(t): 0 for t in tiers}
    evictions = moves = 0
    for pod in pods:
        at, now = assignment[pod["name"]], pod.get("node")
        (placed if at is not None else pending)[str(pod.get("priority", 0))] += 1
        evictions += now is not None and at is None
        moves += now is not None and at is not None and at != now
    util = {}
    for r in resources:
        caps = [cap(n, r) for n in nodes]
        if None not in caps and sum(caps) > 0:
            util[r] = round(sum(used[n["name"]][r] for n in nodes) / sum(caps), 6)
    metrics = {
        "placed": sum(placed.values()),
        "pending": sum(pending.values()),
        "placed_by_priority": placed,
        "pending_by_priority": pending,
        "evictions": evictions,
        "moves": moves,
        "utilisation": util,
    }
    if data.get("objective", "per-tier") == "per-tier":
        # per priority from the highest: pods placed at >= p (negated), then their disruption
        # (an eviction costs 1, a move 2)
        objective = []
        for tier in tiers:
            objective.append(-sum(placed[str(t)] for t in tiers if t >= tier))
            objective.append(
                sum(
                    (1 if at is None else 2)
                    for pod in pods
                    if pod.get("priority", 0) >= tier
                    and pod.get("node") is not None
                    and (at := assignment[pod["name"]]) != pod.get("node")
                )
            )
    else:  # placement-first: placed at >= p per priority, then evictions, then moves
        objective = [-sum(placed[str(t)] for t in tiers if t >= tier) for tier in tiers]
        objective += [evictions, moves]
    bad = +bad
    metrics["objective"] = objective  # of the placement, feasible or not
    return (None if bad else objective), bad, metrics


@st.composite
def pod_cases(draw):
    """An assignment first; then capacities at the boundary of what it uses (one short, exact, one
    spare), taints, tolerations, selectors and affinity terms drawn from one small vocabulary so
    that they often meet; pinned pods, cordoned nodes, a resource no node has."""
    n_nodes, n_pods = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    keys = st.sampled_from(["gpu", "spot"])
    taint = st.fixed_dictionaries(
        {
            "key": keys,
            "value": st.sampled_from(["", "1"]),
            "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"]),
        }
    )
    toleration = st.fixed_dictionaries(
        {},
        optional={
            "key": st.sampled_from(["gpu", "spot", ""]),
            "operator": st.sampled_from(["Equal", "Exists"]),
            "value": st.sampled_from(["", "1"]),
            "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule", ""]),
        },
    )
    requirement = st.fixed_dictionaries(
        {
            "key": st.sampled_from(["zone", "disk"]),
            "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
            "values": st.lists(st.sampled_from(["a", "b"]), max_size=2),
        }
    )
    nodes = []
    for j in range(n_nodes):
        node = {"name": f"n{j}", "capacity": {}}
        node["labels"] = draw(
            st.dictionaries(st.sampled_from(["zone", "disk"]), st.sampled_from(["a", "b"]))
        )
        node["taints"] = draw(st.lists(taint, max_size=2))
        node["unschedulable"] = draw(st.integers(0, 5)) == 0
        nodes.append(node)
    pods = []
    for i in range(n_pods):
        pod = {"name": f"p{i}", "priority": draw(st.sampled_from([0, 5, 10]))}
        pod["requests"] = draw(
            st.dictionaries(st.sampled_from(["cpu", "memory", "gpu"]), st.integers(0, 4))
        )
        if draw(st.booleans()):
            pod["node"] = f"n{draw(st.integers(0, n_nodes - 1))}"
            pod["movable"] = draw(st.integers(0, 3)) > 0
        if draw(st.integers(0, 2)) == 0:
            pod["node_selector"] = draw(
                st.dictionaries(st.sampled_from(["zone", "disk"]), st.sampled_from(["a", "b"]))
            )
        if draw(st.integers(0, 2)) == 0:
            pod["node_affinity"] = draw(
                st.lists(st.lists(requirement, min_size=1, max_size=2), min_size=1, max_size=2)
            )
        pod["tolerations"] = draw(st.lists(toleration, max_size=1))
        for _ in range(draw(st.integers(0, 2))):  # tolerations one edit away from a taint
            taints = [t for n in nodes for t in n["taints"]]
            if taints:
                tol = {**draw(st.sampled_from(taints)), "operator": "Equal"}
                edit = draw(st.sampled_from(["none", "effect", "value", "exists", "any_key"]))
                if edit == "effect":
                    tol["effect"] = draw(st.sampled_from(["NoSchedule", "NoExecute", ""]))
                elif edit == "value":
                    tol["value"] = "1" if tol["value"] == "" else ""
                elif edit == "exists":
                    tol = {"key": tol["key"], "operator": "Exists", "effect": tol["effect"]}
                elif edit == "any_key":
                    tol = {"operator": draw(st.sampled_from(["Exists", "Equal"]))}
                pod["tolerations"].append(tol)
        pods.append(pod)
    choices = [None] + [n["name"] for n in nodes]
    assignment = {}
    for p in pods:  # mostly where the rules allow it, so that whole solutions are often feasible
        allowed = [None] + [n["name"] for n in nodes if _may_be_on(p, n)]
        if not p.get("movable", True):
            assignment[p["name"]] = p["node"]
        else:
            assignment[p["name"]] = draw(
                st.sampled_from(allowed if draw(st.integers(0, 3)) else choices)
            )
    if draw(st.booleans()):  # a pinned pod moved (or evicted) anyway
        pinned = [p for p in pods if not p.get("movable", True)]
        if pinned:
            assignment[draw(st.sampled_from(pinned))["name"]] = draw(st.sampled_from(choices))
    for node in nodes:  # capacities around the assignment's use; "gpu" stays at 0 on most nodes
        for r in ["cpu", "memory"] + (["pods"] if draw(st.booleans()) else []):
            use = sum(
                (1 if r == "pods" else p["requests"].get(r, 0))
                for p in pods
                if assignment[p["name"]] == node["name"]
            )
            node["capacity"][r] = max(0, use + draw(st.sampled_from([-1, 0, 0, 0, 1, 3])))
    flaw = draw(st.sampled_from(["none"] * 6 + ["unknown_pod", "missing_pod", "unknown_node"]))
    if flaw == "unknown_pod":
        assignment["ghost"] = None
    elif flaw == "missing_pod":
        assignment.pop(draw(st.sampled_from(sorted(assignment))))
    elif flaw == "unknown_node":
        assignment[draw(st.sampled_from(sorted(assignment)))] = "nowhere"
    order = draw(st.sampled_from([None, "per-tier", "placement-first"]))
    data = {"nodes": nodes, "pods": pods} | ({} if order is None else {"objective": order})
    return data, assignment


@pytest.mark.slow
@CHECKER
@given(pod_cases())
def test_pod_packing_checker_matches_the_rules(case):
    data, assignment = case
    problem = PodPacking.model_validate({"problem": "pod-packing", **data})
    report = problem.check({"assignment": assignment})
    objective, bad, metrics = _pod_reference(data, assignment)
    assert _classify(report.violations, POD_RULES) == bad
    assert report.feasible == (not bad)
    assert report.objective == objective
    # every (pod, node) pair, wherever the pod was put: the rule of eligibility on its own
    for i, pod in enumerate(data["pods"]):
        for j, node in enumerate(data["nodes"]):
            assert problem.allowed(i, j) == _may_be_on(pod, node), (pod, node)
    if metrics is not None:
        placement_objective = metrics.pop("objective")
        assert report.metrics == metrics
        where = problem.placement_of({"assignment": assignment})
        assert problem.objective_of(where) == placement_objective


@pytest.mark.parametrize(
    "affinity, cross, share",
    [
        ([[0, 0], [0, 0]], 0.0, 1.0),  # no tokens at all: nothing crosses, everything is local
        ([[0, 1], [0, 0]], 1.0, 0.0),  # one token, and it crosses GPUs and nodes
        ([[0, 1], [1, 0]], 2.0, 0.0),
    ],
)
def test_expert_placement_traffic_of_a_handful_of_tokens(affinity, cross, share):
    """Two GPUs on two nodes, one expert each: tokens from expert 0 to expert 1 cross both."""
    p = ExpertPlacement(
        gpus=2,
        slots_per_gpu=1,
        load=[[1, 1], [1, 1]],
        affinity=[affinity],
        gpu_node=[0, 1],
        link_cost={"intra_node": 1, "inter_node": 10},
        comm_weight=1,
    )
    m = p.check({"slots": [[0, 1], [0, 1]]}).metrics
    assert (m["cross_gpu_traffic"], m["cross_node_traffic"]) == (cross, cross)
    assert m["comm_cost"] == 10 * cross and m["local_share"] == share
