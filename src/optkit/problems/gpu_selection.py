"""Cost-aware GPU selection for LLM serving (Mélange, Griggs et al. 2024, and beyond it).

GPU types are bins with an hourly cost, an optional `max_count`, and a throughput table: for each
request-size bucket (input bucket i, output bucket j), the highest request rate one GPU of the type
sustains within the latency SLO (0 = it cannot serve that bucket). The workload is a distribution
over the buckets times a total request rate; the traffic of every bucket with a positive share is
cut into `slice_factor` equal slices. A slice of bucket b put on type t costs that type a *load*
(a fraction of one GPU) of

    load(t, b) = share(b) * request_rate / slice_factor / throughput(t, b).

Packing:
- `pooled` (Mélange's ILP): all slices given to a type share its instances; the type needs
  `count >= sum of the loads of its slices` instances.
- `per_instance`: every slice goes to one concrete instance of its type, whose load must stay
  `<= 1` (what a router that pins request streams to replicas has to do).

Objective: total cost per hour, `sum(cost_per_hour * count)`, minimised.

Arithmetic: every number of an instance is read as the decimal it is written as (`0.1` is 1/10,
not the binary float nearest to it), and the checker compares loads and computes the cost in
exact rational arithmetic, so "load <= 1" has no tolerance and a cost like `2 * 1.01 + 3.67` is
exactly `5.69`. Solvers that compute in floating point are judged by this checker.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictFloat, StrictInt, model_validator

from optkit.problem import CheckReport, Model, NonNegInt, NonNegNumber, Problem, bounded
from optkit.registry import GeneratorOption as Opt
from optkit.registry import generator, importer

# Input ranges (docs/gpu_selection.md): counts and costs every solver handles exactly, and a
# number of slices (buckets x slice_factor) that a solution can list.
MAX_SLICE_FACTOR = 64
MAX_COUNT = 1_000_000
MAX_COST_PER_HOUR = 1e6
MAX_RATE = 1e13
#: instances of one type that serving one whole bucket may take (rate x share / throughput)
MAX_INSTANCES_PER_BUCKET = 1_000_000
PosNumber = Annotated[
    StrictInt | StrictFloat, Field(gt=0, le=MAX_COST_PER_HOUR, allow_inf_nan=False)
]
Rate = bounded(0, MAX_RATE, integer=False)
Bucket = tuple[int, int]

#: how far the shares of the distribution may sum from 1
DISTRIBUTION_TOLERANCE = 1e-6


def exact(x: float | Fraction) -> Fraction:
    """The decimal a number is written as, exactly: exact(0.1) == Fraction(1, 10)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    return Fraction(repr(float(x)))


class GpuType(Model):
    """One GPU type: hourly cost, optional cap on instances, and req/s per bucket."""

    name: str = Field(min_length=1)
    cost_per_hour: PosNumber
    max_count: bounded(0, MAX_COUNT) | None = None
    throughput: tuple[tuple[Rate, ...], ...] = Field(min_length=1)


class Workload(Model):
    """Share of the requests in each (input bucket, output bucket), and the total rate in req/s."""

    distribution: tuple[tuple[NonNegNumber, ...], ...] = Field(min_length=1)
    request_rate: Rate


class SliceAssignment(Model):
    bucket: tuple[NonNegInt, NonNegInt]
    slice: NonNegInt
    gpu_type: str
    #: the concrete instance (0-based, per type); required for `per_instance`, optional for `pooled`
    instance: NonNegInt | None = None


class GpuSelectionSolution(Model):
    counts: dict[str, NonNegInt]
    assignment: tuple[SliceAssignment, ...] = ()


class GpuSelection(Problem):
    """Choose how many GPUs of each type to rent, and which type serves each workload slice."""

    kind = "gpu-selection"
    Solution = GpuSelectionSolution

    problem: str = "gpu-selection"
    gpu_types: tuple[GpuType, ...] = Field(min_length=1)
    workload: Workload
    slice_factor: bounded(1, MAX_SLICE_FACTOR) = 4
    packing: Literal["pooled", "per_instance"] = "pooled"

    @model_validator(mode="after")
    def _consistent(self) -> GpuSelection:
        dist = self.workload.distribution
        rows, cols = len(dist), len(dist[0])
        if cols == 0:
            raise ValueError(
                "field 'workload.distribution.0': a row needs at least one output bucket"
            )
        for i, row in enumerate(dist):
            if len(row) != cols:
                raise ValueError(
                    f"field 'workload.distribution.{i}': has {len(row)} entries, row 0 has {cols}"
                )
        total = sum(exact(x) for row in dist for x in row)
        if abs(total - 1) > exact(DISTRIBUTION_TOLERANCE):
            raise ValueError(
                f"field 'workload.distribution': shares sum to {float(total):.9g}, not 1 "
                f"(tolerance {DISTRIBUTION_TOLERANCE:g})"
            )
        seen: set[str] = set()
        for k, gpu in enumerate(self.gpu_types):
            if gpu.name in seen:
                raise ValueError(f"field 'gpu_types.{k}.name': '{gpu.name}' appears twice")
            seen.add(gpu.name)
            table = gpu.throughput
            if len(table) != rows:
                raise ValueError(
                    f"field 'gpu_types.{k}.throughput': has {len(table)} rows (input buckets), "
                    f"workload.distribution has {rows}"
                )
            for i, row in enumerate(table):
                if len(row) != cols:
                    raise ValueError(
                        f"field 'gpu_types.{k}.throughput.{i}': has {len(row)} entries "
                        f"(output buckets), workload.distribution has {cols}"
                    )
                for j, tput in enumerate(row):
                    rate = exact(dist[i][j]) * exact(self.workload.request_rate)
                    if tput > 0 and rate / exact(tput) > MAX_INSTANCES_PER_BUCKET:
                        raise ValueError(
                            f"field 'gpu_types.{k}.throughput.{i}.{j}': serving the bucket's "
                            f"{float(rate):g} req/s at {tput:g} req/s per GPU takes more than "
                            f"{MAX_INSTANCES_PER_BUCKET} GPUs"
                        )
        return self

    # -- derived data (exact) -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        d = self.workload.distribution
        return len(d), len(d[0])

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.gpu_types]

    @cached_property
    def buckets(self) -> list[Bucket]:
        """Buckets that carry traffic (positive share and rate), row-major: these are sliced."""
        if exact(self.workload.request_rate) == 0:
            return []
        rows, cols = self.shape
        return [
            (i, j)
            for i in range(rows)
            for j in range(cols)
            if exact(self.workload.distribution[i][j]) > 0
        ]

    def slice_rate(self, b: Bucket) -> Fraction:
        """Request rate of one slice of bucket b (req/s), exactly."""
        share = exact(self.workload.distribution[b[0]][b[1]])
        return share * exact(self.workload.request_rate) / self.slice_factor

    @cached_property
    def loads(self) -> list[dict[Bucket, Fraction]]:
        """loads[t][b]: fraction of one GPU of type t that a slice of bucket b takes (absent: 0 throughput)."""
        out = []
        for gpu in self.gpu_types:
            row = {}
            for b in self.buckets:
                tput = exact(gpu.throughput[b[0]][b[1]])
                if tput > 0:
                    row[b] = self.slice_rate(b) / tput
            out.append(row)
        return out

    @cached_property
    def costs(self) -> list[Fraction]:
        return [exact(g.cost_per_hour) for g in self.gpu_types]

    def can_serve(self, t: int, b: Bucket) -> bool:
        """Type t may take a slice of bucket b (per_instance: the slice alone fits on one instance)."""
        load = self.loads[t].get(b)
        if load is None or self.gpu_types[t].max_count == 0:
            return False
        return self.packing == "pooled" or load <= 1

    def infeasibility_reason(self) -> str | None:
        """A short proof that no solution exists, found by inspection, or None (which proves nothing)."""
        T = range(len(self.gpu_types))
        for b in self.buckets:
            if any(self.can_serve(t, b) for t in T):
                continue
            serving = [t for t in T if b in self.loads[t]]
            if not serving:
                why = "no GPU type has a positive throughput for it"
            elif all(self.gpu_types[t].max_count == 0 for t in serving):
                why = "every GPU type that serves it has max_count 0"
            else:
                why = (
                    "on every GPU type that serves it, one slice is more than a whole instance "
                    "(raise slice_factor or use packing 'pooled')"
                )
            share = self.workload.distribution[b[0]][b[1]]
            return f"bucket {list(b)} (share {share}) cannot be served: {why}"
        return None

    def cost_of(self, counts: dict[str, int]) -> float:
        """Cost per hour of `counts`, computed exactly and rounded once to a float."""
        return float(self.exact_cost(counts))

    def exact_cost(self, counts: dict[str, int]) -> Fraction:
        index = {n: t for t, n in enumerate(self.names)}
        return sum((self.costs[index[n]] * c for n, c in counts.items() if n in index), Fraction(0))

    # -- single-type baseline ------------------------------------------------------------------
    def single_type_count(self, t: int) -> int | None:
        """Instances of type t alone that serve everything (None: it cannot, or max_count forbids).

        Pooled: the exact ceiling of the total load. Per instance: first-fit decreasing (a heuristic
        bin count, an upper bound on the optimum for that type).
        """
        loads = self.loads[t]
        if any(not self.can_serve(t, b) for b in self.buckets):
            return None
        if self.packing == "pooled":
            total = sum((loads[b] * self.slice_factor for b in self.buckets), Fraction(0))
            count = math.ceil(total)
        else:
            count = len(
                first_fit_decreasing(
                    [loads[b] for b in self.buckets for _ in range(self.slice_factor)]
                )
            )
        cap = self.gpu_types[t].max_count
        return None if cap is not None and count > cap else count

    @cached_property
    def single_type_baseline(self) -> tuple[int, int, Fraction] | None:
        """(type index, count, exact cost) of the cheapest single-type deployment, or None."""
        best = None
        for t in range(len(self.gpu_types)):
            n = self.single_type_count(t)
            if n is not None:
                cost = self.costs[t] * n
                if best is None or cost < best[2]:
                    best = (t, n, cost)
        return best

    # -- checker -------------------------------------------------------------------------------
    def evaluate(self, solution: GpuSelectionSolution) -> CheckReport:
        index = {n: t for t, n in enumerate(self.names)}
        violations: list[str] = []
        counts = [0] * len(self.gpu_types)
        for name, c in solution.counts.items():
            if name not in index:
                violations.append(f"counts: unknown GPU type '{name}'")
                continue
            t = index[name]
            counts[t] = c
            cap = self.gpu_types[t].max_count
            if cap is not None and c > cap:
                violations.append(f"counts: {c} instances of '{name}' exceed its max_count {cap}")
        rows, cols = self.shape
        wanted = set(self.buckets)
        seen: set[tuple[Bucket, int]] = set()
        per_type: list[Fraction] = [Fraction(0)] * len(self.gpu_types)
        per_instance: dict[tuple[int, int], Fraction] = {}
        for k, a in enumerate(solution.assignment):
            where = f"assignment.{k}"
            b = (a.bucket[0], a.bucket[1])
            if not (b[0] < rows and b[1] < cols):
                violations.append(
                    f"{where}: bucket {list(b)} is outside the {rows}x{cols} distribution"
                )
                continue
            if b not in wanted:
                violations.append(
                    f"{where}: bucket {list(b)} carries no traffic, so it has no slices"
                )
                continue
            if a.slice >= self.slice_factor:
                violations.append(f"{where}: slice {a.slice} >= slice_factor {self.slice_factor}")
                continue
            if (b, a.slice) in seen:
                violations.append(f"{where}: slice {a.slice} of bucket {list(b)} is assigned twice")
                continue
            seen.add((b, a.slice))
            if a.gpu_type not in index:
                violations.append(f"{where}: unknown GPU type '{a.gpu_type}'")
                continue
            t = index[a.gpu_type]
            load = self.loads[t].get(b)
            if load is None:
                violations.append(f"{where}: '{a.gpu_type}' has throughput 0 for bucket {list(b)}")
                continue
            per_type[t] += load
            if a.instance is None:
                if self.packing == "per_instance":
                    violations.append(
                        f"{where}: packing 'per_instance' needs the instance of every slice"
                    )
                continue
            if a.instance >= counts[t]:
                violations.append(
                    f"{where}: instance {a.instance} of '{a.gpu_type}' does not exist "
                    f"(count {counts[t]})"
                )
                continue
            per_instance[(t, a.instance)] = per_instance.get((t, a.instance), Fraction(0)) + load
        missing = len(wanted) * self.slice_factor - len(seen)
        if missing > 0:
            unassigned = [
                (list(b), s)
                for b in self.buckets
                for s in range(self.slice_factor)
                if (b, s) not in seen
            ]
            violations.append(
                f"{missing} slice(s) unassigned, e.g. (bucket, slice) {unassigned[:3]}"
            )
        if self.packing == "pooled":
            for t, load in enumerate(per_type):
                if load > counts[t]:
                    violations.append(
                        f"type '{self.names[t]}': load {float(load):.6g} GPUs exceeds "
                        f"its {counts[t]} instance(s)"
                    )
        else:
            for (t, i), load in sorted(per_instance.items()):
                if load > 1:
                    violations.append(
                        f"instance {i} of '{self.names[t]}': load {float(load):.6g} > 1"
                    )
        if violations:
            return CheckReport.infeasible(*violations)

        named = {self.names[t]: counts[t] for t in range(len(counts))}
        cost = self.exact_cost(named)
        metrics: dict[str, Any] = {
            "cost_per_hour": float(cost),
            "instances": named,
            "mix": "+".join(n for n, c in named.items() if c > 0) or "none",
            "slices": len(seen),
        }
        if self.packing == "pooled":
            metrics["load_per_instance"] = {
                self.names[t]: [round(float(per_type[t] / counts[t]), 6)] * counts[t]
                for t in range(len(counts))
                if counts[t] > 0
            }
        else:
            metrics["load_per_instance"] = {
                self.names[t]: [
                    round(float(per_instance.get((t, i), 0)), 6) for i in range(counts[t])
                ]
                for t in range(len(counts))
                if counts[t] > 0
            }
        metrics["load_per_type"] = {
            self.names[t]: round(float(per_type[t]), 6) for t in range(len(counts)) if counts[t] > 0
        }
        base = self.single_type_baseline
        if base is None:
            metrics["single_type_baseline"] = None
            metrics["savings_vs_single_type"] = None
        else:
            t, n, bcost = base
            metrics["single_type_baseline"] = {
                "gpu_type": self.names[t],
                "count": n,
                "cost_per_hour": float(bcost),
            }
            metrics["savings_vs_single_type"] = (
                round(float(1 - cost / bcost), 6) if bcost > 0 else 0.0
            )
        return CheckReport(True, float(cost), metrics)

    # -- helpers for solvers -------------------------------------------------------------------
    def solution_from_counts(
        self,
        n: dict[tuple[int, Bucket], int],
        instances: dict[tuple[int, Bucket], list[int]] | None = None,
        counts: dict[int, int] | None = None,
    ) -> dict:
        """A solution dict from `n[(t, b)]` = slices of bucket b on type t.

        `instances[(t, b)]` lists the instance of each of those slices (per_instance); without it,
        slices get the instance where their traffic starts when the type's load is laid end to end
        (a routing hint; pooled capacity needs no more). `counts` defaults to the fewest instances
        that the packing allows for that assignment.
        """
        T = len(self.gpu_types)
        assignment = []
        next_slice = {b: 0 for b in self.buckets}
        cum = [Fraction(0)] * T
        if counts is None:
            if instances is None:
                need = [Fraction(0)] * T
                for (t, b), k in n.items():
                    need[t] += self.loads[t][b] * k
                counts = {t: math.ceil(need[t]) for t in range(T)}
            else:
                counts = {t: 0 for t in range(T)}
                for (t, _), insts in instances.items():
                    if insts:
                        counts[t] = max(counts[t], max(insts) + 1)
        for b in self.buckets:
            for t in range(T):
                k = n.get((t, b), 0)
                for s in range(k):
                    if instances is not None:
                        inst = instances[(t, b)][s]
                    else:
                        inst = min(max(counts.get(t, 0) - 1, 0), math.floor(cum[t]))
                        cum[t] += self.loads[t][b]
                    assignment.append(
                        {
                            "bucket": [b[0], b[1]],
                            "slice": next_slice[b],
                            "gpu_type": self.names[t],
                            "instance": inst,
                        }
                    )
                    next_slice[b] += 1
        return {
            "counts": {self.names[t]: int(counts.get(t, 0)) for t in range(T)},
            "assignment": assignment,
        }

    # -- integer data for exact models --------------------------------------------------------------
    def count_upper_bounds(self, ub_cost: Fraction | None = None) -> list[int]:
        """Per type, the most instances an optimal solution can use (costs are positive).

        Pooled: the ceiling of the load of every slice it can serve; per instance: the number of
        slices it can serve (an optimal solution has no empty instance); then max_count, and
        floor(ub_cost / cost) given the cost `ub_cost` of a known solution.
        """
        out = []
        sf = self.slice_factor
        for t in range(len(self.gpu_types)):
            servable = [b for b in self.buckets if self.can_serve(t, b)]
            if self.packing == "pooled":
                u = math.ceil(sum((self.loads[t][b] * sf for b in servable), Fraction(0)))
            else:
                u = sf * len(servable)
            cap = self.gpu_types[t].max_count
            if cap is not None:
                u = min(u, cap)
            if ub_cost is not None:
                u = min(u, math.floor(ub_cost / self.costs[t]))
            out.append(max(0, u))
        return out

    def scaled_loads(
        self, t: int, mode: str = "floor", max_scale: int = 10**6
    ) -> tuple[int, dict[Bucket, int], bool]:
        """(S, {bucket: load x S as an int}, exact) for type t.

        S is the common denominator of the type's loads when that is at most `max_scale` (then the
        integers are the loads exactly); otherwise S = max_scale and each load is rounded down
        (`mode` "floor": a relaxation) or up ("ceil": a restriction), and `exact` is False.
        """
        loads = {b: v for b, v in self.loads[t].items() if self.can_serve(t, b)}
        scale = 1
        for v in loads.values():
            scale = scale * v.denominator // math.gcd(scale, v.denominator)
            if scale > max_scale:
                break
        if scale <= max_scale:
            return scale, {b: int(v * scale) for b, v in loads.items()}, True
        rnd = math.floor if mode == "floor" else math.ceil
        return max_scale, {b: rnd(v * max_scale) for b, v in loads.items()}, False

    def scaled_costs(self, max_scale: int = 10**9) -> tuple[int, list[int], bool]:
        """(C, integer costs x C, exact): C is the common denominator of the costs if <= max_scale."""
        scale = 1
        for c in self.costs:
            scale = scale * c.denominator // math.gcd(scale, c.denominator)
        if scale <= max_scale:
            return scale, [int(c * scale) for c in self.costs], True
        return 10**6, [max(1, round(c * 10**6)) for c in self.costs], False


def first_fit_decreasing(loads: list[Fraction]) -> list[list[int]]:
    """Bins of capacity 1 (lists of item indices) packed first-fit in decreasing order of load.

    Exact and fast: the loads are scaled to integers by their common denominator, and an item
    equal to the one before starts its search at the bin that one went to (the bins before it
    had too little room then, and rooms only shrink)."""
    scale = math.lcm(*(x.denominator for x in loads)) if loads else 1
    size = [x.numerator * (scale // x.denominator) for x in loads]
    order = sorted(range(len(loads)), key=lambda k: (-size[k], k))
    bins: list[list[int]] = []
    room: list[int] = []
    first, previous = 0, None
    for k in order:
        s = size[k]
        if s != previous:
            first, previous = 0, s
        for i in range(first, len(room)):
            if s <= room[i]:
                bins[i].append(k)
                room[i] -= s
                first = i
                break
        else:
            bins.append([k])
            room.append(scale - s)
            first = len(room) - 1
    return bins


# -- instance generator ----------------------------------------------------------------------------

WORKLOADS = ("short-context", "long-context", "mixed")


def workload_distribution(
    workload: str, shape: tuple[int, int] = (6, 6), *, seed: int = 0, jitter: float = 0.0
) -> list[list[float]]:
    """Shares over the (input, output) buckets, rounded to 1e-4 and summing to exactly 1.

    short-context (chat, like Mélange's Arena set): most requests in the short input buckets with
    outputs around the 40 % quantile bucket, no input beyond the first two thirds of the buckets; long-context (documents, like its PubMed set): long
    inputs, short outputs; mixed: 80 % short-context + 20 % long-context, as Mélange's mixed set.
    `jitter` > 0 multiplies each weight by a factor drawn from U[1 - jitter, 1 + jitter] (seeded).
    """
    import random

    if workload not in WORKLOADS:
        from optkit.errors import InputError

        raise InputError(f"workload: expected one of {', '.join(WORKLOADS)}, got {workload!r}")
    rows, cols = shape
    si = [i / max(1, rows - 1) for i in range(rows)]
    sj = [j / max(1, cols - 1) for j in range(cols)]
    # chat prompts stay within the first 2/3 of the input range (<= 2048 tokens on the 6 x 6 grid)
    short = [[math.exp(-5 * a - 4 * abs(c - 0.4)) if a <= 2 / 3 else 0.0 for c in sj] for a in si]
    long_ = [[math.exp(-5 * (1 - a) - 4 * c) for c in sj] for a in si]

    def norm(w: list[list[float]]) -> list[list[float]]:
        total = sum(map(sum, w))
        return [[x / total for x in row] for row in w]

    short, long_ = norm(short), norm(long_)
    if workload == "short-context":
        w = short
    elif workload == "long-context":
        w = long_
    else:
        w = [[0.8 * a + 0.2 * b for a, b in zip(r1, r2)] for r1, r2 in zip(short, long_)]
    if jitter > 0:
        rng = random.Random(seed)
        w = [[x * rng.uniform(1 - jitter, 1 + jitter) for x in row] for row in w]
    w = norm(w)
    units = [[round(x * 10000) for x in row] for row in w]
    i, j = max(
        ((i, j) for i in range(rows) for j in range(cols)), key=lambda ij: units[ij[0]][ij[1]]
    )
    units[i][j] += 10000 - sum(map(sum, units))
    return [[u / 10000 for u in row] for row in units]


GENERATOR_OPTIONS = {
    "seed": Opt(
        "Random seed of the workload's jitter: with the default jitter, seed 0 is the canonical "
        "workload and every other seed perturbs it differently."
    ),
    "workload": Opt("Request mix over (input, output) length buckets.", choices=WORKLOADS),
    "request_rate": Opt("Total request rate to serve.", unit="requests/s"),
    "slice_factor": Opt(
        "Each bucket's traffic is cut into this many equal slices, each served by one GPU type.",
        unit="slices per bucket",
    ),
    "packing": Opt(
        "pooled: a type's GPUs share its slices; per_instance: each slice goes to one GPU.",
        choices=("pooled", "per_instance"),
    ),
    "gpus": Opt("GPU types to choose from, comma separated.", unit="type names"),
    "profiles": Opt(
        "Profile set: empty for the shipped roofline profiles, a profile JSON file or a "
        "measurement CSV.",
        unit="path",
    ),
    "slo": Opt(
        "With a CSV: the SLO columns and limits, e.g. ttft_p99_ms=2000,tpot_p99_ms=100.",
        unit="column=limit list",
    ),
    "prices": Opt("Override hourly prices, e.g. L4=0.7,H100=7.5.", unit="$/h per type"),
    "jitter": Opt(
        "Multiply each bucket's share by a factor in [1 - jitter, 1 + jitter] drawn with the seed; "
        "-1: 0 for seed 0 and 0.2 for any other seed.",
        unit="fraction",
    ),
    "max_count": Opt("Cap on the GPUs of every type (-1: no cap).", unit="GPUs"),
}


@generator("gpu-selection", GENERATOR_OPTIONS)
def generate(
    seed: int = 0,
    workload: str = "mixed",
    request_rate: float = 16.0,
    slice_factor: int = 4,
    packing: str = "pooled",
    gpus: str = "L4,A10G,A100-80GB,H100",
    profiles: str = "",
    slo: str = "",
    prices: str = "",
    jitter: float = -1.0,
    max_count: int = -1,
) -> GpuSelection:
    """An instance over a profile set: the shipped roofline set (profiles ""), a profile JSON file, or a
    measurement CSV (then `slo` = "ttft_p99_ms=2000,tpot_p99_ms=100" names the SLO columns and limits;
    see optkit.problems.gpu_profiles). `prices` overrides costs ("L4=0.7,H100=7.5"); `max_count` >= 0
    caps every type; `jitter` perturbs the workload's shares (with `seed`)."""
    from optkit.errors import InputError
    from optkit.problems.gpu_profiles import load_profiles

    if packing not in ("pooled", "per_instance"):
        raise InputError(
            f"generate gpu-selection: packing must be 'pooled' or 'per_instance', got {packing!r}"
        )
    if request_rate < 0 or slice_factor < 1 or not (0 <= jitter < 1 or jitter == -1.0):
        raise InputError(
            "generate gpu-selection: need request_rate >= 0, slice_factor >= 1 and 0 <= jitter < 1 "
            "(or -1: automatic)"
        )
    table = load_profiles(profiles or None, slo=slo, prices=prices)
    if jitter == -1.0:  # automatic: the canonical workload for seed 0, a perturbed one otherwise
        jitter = 0.0 if seed == 0 else 0.2
    wanted = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else list(table)
    if profiles and gpus == "L4,A10G,A100-80GB,H100":
        wanted = [g for g in wanted if g in table] or list(table)
    unknown = [g for g in wanted if g not in table]
    if unknown:
        raise InputError(
            f"generate gpu-selection: unknown GPU type(s) {', '.join(unknown)} "
            f"(profiles have {', '.join(table)})"
        )
    shape = (len(table[wanted[0]]["throughput"]), len(table[wanted[0]]["throughput"][0]))
    dist = workload_distribution(workload, shape, seed=seed, jitter=jitter)
    types = [
        {
            "name": g,
            "cost_per_hour": table[g]["cost_per_hour"],
            "throughput": table[g]["throughput"],
            **({"max_count": max_count} if max_count >= 0 else {}),
        }
        for g in wanted
    ]
    rate = int(request_rate) if float(request_rate).is_integer() else request_rate
    name = f"{workload}_r{rate}_sf{slice_factor}_{packing}" + (f"_s{seed}" if jitter > 0 else "")
    return GpuSelection.from_dict(
        {
            "name": name,
            "gpu_types": types,
            "workload": {"distribution": dist, "request_rate": rate},
            "slice_factor": slice_factor,
            "packing": packing,
        },
        source="generate gpu-selection",
    )


def melange_example(
    slice_factor: int = 4, packing: str = "pooled", path: str | None = None
) -> GpuSelection:
    """Mélange's shipped example (melange/config/example.json) in our schema."""
    import json
    from pathlib import Path

    if path is None:
        data = {
            "gpu_info": {
                "A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
                "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]},
            },
            "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
            "total_request_rate": 30.0,
        }
    else:
        data = json.loads(Path(path).read_text())
    return from_melange(
        data, slice_factor=slice_factor, packing=packing, name=f"melange_example_sf{slice_factor}"
    )


def from_melange(
    data: dict, *, slice_factor: int = 4, packing: str = "pooled", name: str | None = None
) -> GpuSelection:
    """Mélange's input format ({"gpu_info": {name: {"cost", "tputs"}}, "workload_distribution",
    "total_request_rate"}) -> a GpuSelection."""
    from optkit.errors import InputError

    try:
        types = [
            {"name": n, "cost_per_hour": g["cost"], "throughput": g["tputs"]}
            for n, g in data["gpu_info"].items()
        ]
        workload = {
            "distribution": data["workload_distribution"],
            "request_rate": data["total_request_rate"],
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise InputError(
            f"not a Mélange input (gpu_info, workload_distribution, total_request_rate): {e}"
        ) from None
    return GpuSelection.from_dict(
        {
            "name": name,
            "gpu_types": types,
            "workload": workload,
            "slice_factor": slice_factor,
            "packing": packing,
        },
        source="melange input",
    )


@importer("melange")
def import_melange(source: Path) -> list[GpuSelection]:
    """A Mélange input JSON -> instances for slice factors 1, 2, 4, 8 and 16, pooled and per_instance."""
    import json

    from optkit.errors import InputError

    try:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{source}: cannot read a Mélange input: {e}") from None
    stem = Path(source).stem
    return [
        from_melange(data, slice_factor=sf, packing=pk, name=f"{stem}_sf{sf}_{pk}")
        for pk in ("pooled", "per_instance")
        for sf in (1, 2, 4, 8, 16)
    ]
