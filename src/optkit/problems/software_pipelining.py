"""Software pipelining (modulo scheduling) with optional warp specialization, as in Twill.

One iteration of a loop body is a set of operations (ops) on functional units, linked by
dependence edges with a latency and an iteration distance. A modulo schedule starts iteration
`i` of op `v` at `start[v] + i * ii`; the initiation interval `ii` is the throughput. With
`warp_groups`, each op is also assigned to a warp group (warp specialization): asynchronous
variable-latency ops go to the producer group, each group executes one op at a time, blocking
edges keep the waiting group busy, values handed between groups cost `handoff` cycles, and the
registers live in a group at any cycle stay within its limit.

The module also renders a schedule: a table (`schedule_table`), the modulo reservation table
(`reservation_table`), Triton-style loop attributes (`triton_attributes`) and a text
prologue / kernel / epilogue listing (`listing`); `render` joins them, and
`python -m optkit.problems.software_pipelining render INSTANCE RESULT.json` prints them.
"""

from __future__ import annotations

import random
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Field, StrictBool, model_validator

from optkit.errors import InputError
from optkit.problem import CheckReport, Model, NonNegInt, PosInt, Problem, bounded
from optkit.registry import GeneratorOption as Opt
from optkit.registry import generator

# Input ranges (docs/software_pipelining.md): schedules, reservation tables and CP-SAT domains stay
# small enough for every solver, and ii x stages fits any integer type.
MAX_CYCLES = 65_536
MAX_DISTANCE = 1024
MAX_CAPACITY = 1024
MAX_REGS = 65_536
MAX_HORIZON = 1 << 24
Cycles = bounded(0, MAX_CYCLES)

# -- data model ------------------------------------------------------------------------------------


class Op(Model):
    """An operation of the loop body."""

    name: str = Field(min_length=1)
    unit: str
    cycles: bounded(1, MAX_CYCLES)
    #: registers (per thread of its warp group) its result holds while live
    regs: bounded(0, MAX_REGS) = 0
    #: asynchronous op of unpredictable latency (a TMA load): must run on the producer warp group
    variable_latency: StrictBool = False
    #: cycles the op keeps its warp group busy (default `cycles`: a synchronous op; 0 for an async issue)
    issue_cycles: Cycles | None = None
    #: reservation table: unit -> cycle offsets (from the op's start) in which it uses one unit of
    #: that resource; default {unit: [0, ..., cycles - 1]}
    reservation: dict[str, tuple[Cycles, ...]] | None = None


class Edge(Model):
    """Dependence: start[to] + distance * ii >= start[from] + latency (+ handoff across groups)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True
    )

    from_: str = Field(alias="from")
    to: str
    latency: Cycles
    distance: bounded(0, MAX_DISTANCE) = 0
    #: the consumer waits on the result: with both ops in one warp group, that group is busy
    #: from the producer's start until the consumer's start
    blocking: StrictBool = False
    #: the edge passes the producer's result (keeps its registers live until the consumer starts);
    #: false for ordering-only dependences such as a buffer slot becoming free
    carries_value: StrictBool = True
    #: both ops must run in the same warp group (the consumer updates the producer's registers in
    #: place, e.g. an accumulator); ignored without warp groups
    same_group: StrictBool = False


class WarpGroups(Model):
    count: bounded(1, MAX_CAPACITY)
    #: register limit (per thread) of each group
    reg_limit: tuple[bounded(0, MAX_REGS), ...]
    #: the group that runs variable-latency ops
    producer: NonNegInt = 0
    #: extra latency on a dependence whose two ops are in different groups
    handoff: Cycles = 0
    #: only variable-latency ops may run on the producer group (FA3/FA4's load warp group)
    producer_exclusive: StrictBool = False


class SoftwarePipeliningSolution(Model):
    ii: PosInt
    start: dict[str, NonNegInt]
    warp_group: dict[str, NonNegInt] = Field(default_factory=dict)


class SoftwarePipelining(Problem):
    """Modulo scheduling of one loop body, optionally jointly with warp specialization."""

    kind = "software-pipelining"
    Solution = SoftwarePipeliningSolution

    problem: str = "software-pipelining"
    units: dict[str, bounded(0, MAX_CAPACITY)]
    ops: tuple[Op, ...] = Field(min_length=1)
    edges: tuple[Edge, ...] = ()
    warp_groups: WarpGroups | None = None
    #: upper limit on the schedule length (default: `default_horizon(ii)`, see the docs)
    horizon: bounded(1, MAX_HORIZON) | None = None
    #: free-form description (where the numbers come from)
    description: str | None = None
    #: known answer, informational only (e.g. {"ii": 2, "schedule_length": 4})
    expected: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SoftwarePipelining:
        if not self.units:
            raise ValueError("field 'units': at least one unit is needed")
        names: dict[str, int] = {}
        for i, op in enumerate(self.ops):
            if op.name in names:
                raise ValueError(f"field 'ops.{i}.name': duplicate op name '{op.name}'")
            names[op.name] = i
            if op.unit not in self.units:
                raise ValueError(
                    f"field 'ops.{i}.unit': unknown unit '{op.unit}' (units: {sorted(self.units)})"
                )
            for unit in op.reservation or {}:
                if unit not in self.units:
                    raise ValueError(f"field 'ops.{i}.reservation': unknown unit '{unit}'")
        for i, e in enumerate(self.edges):
            for key, name in (("from", e.from_), ("to", e.to)):
                if name not in names:
                    raise ValueError(f"field 'edges.{i}.{key}': unknown op '{name}'")
        wg = self.warp_groups
        if wg is not None:
            if len(wg.reg_limit) != wg.count:
                raise ValueError(
                    f"field 'warp_groups.reg_limit': has {len(wg.reg_limit)} entries, count is {wg.count}"
                )
            if wg.producer >= wg.count:
                raise ValueError(
                    f"field 'warp_groups.producer': {wg.producer} is not a group (count {wg.count})"
                )
        return self

    # -- derived data -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.ops)

    @cached_property
    def index(self) -> dict[str, int]:
        return {op.name: i for i, op in enumerate(self.ops)}

    @cached_property
    def arcs(self) -> list[tuple[int, int, int, int, bool]]:
        """Edges as (from index, to index, latency, distance, blocking)."""
        ix = self.index
        return [(ix[e.from_], ix[e.to], e.latency, e.distance, e.blocking) for e in self.edges]

    @cached_property
    def value_arcs(self) -> list[tuple[int, int, int]]:
        """Edges that keep the producer's registers live: (from, to, distance)."""
        ix = self.index
        return [(ix[e.from_], ix[e.to], e.distance) for e in self.edges if e.carries_value]

    @cached_property
    def uses(self) -> list[list[tuple[str, int]]]:
        """Per op, its reservation as (unit, offset) pairs (one pair per unit used per cycle)."""
        out = []
        for op in self.ops:
            if op.reservation is None:
                out.append([(op.unit, t) for t in range(op.cycles)])
            else:
                out.append([(u, t) for u, offs in op.reservation.items() for t in offs])
        return out

    def issue(self, v: int) -> int:
        op = self.ops[v]
        return op.cycles if op.issue_cycles is None else op.issue_cycles

    @property
    def handoff(self) -> int:
        return self.warp_groups.handoff if self.warp_groups else 0

    def default_horizon(self, ii: int) -> int:
        """(n - 1) * (Lmax + ii - 1) + max cycles, Lmax = largest latency plus handoff.

        Without warp groups every feasible modulo schedule can be compressed into this length
        (shift the ops after any larger gap between consecutive starts down by multiples of ii),
        so the limit loses nothing; with warp groups it is part of the problem definition.
        """
        lmax = max([lat for _, _, lat, _, _ in self.arcs] + [0]) + self.handoff
        return (self.n - 1) * (lmax + ii - 1) + max(op.cycles for op in self.ops)

    def horizon_for(self, ii: int) -> int:
        return self.horizon if self.horizon is not None else self.default_horizon(ii)

    # -- lower bounds --------------------------------------------------------------------------------
    def res_mii(self) -> int:
        """Resource-constrained minimum II: per unit, uses / capacity; with warp groups also the
        group issue cycles over the number of groups, and the producer's own issue cycles."""
        load: dict[str, int] = {u: 0 for u in self.units}
        for uses in self.uses:
            for u, _ in uses:
                load[u] += 1
        best = 1
        for u, total in load.items():
            if total and self.units[u]:
                best = max(best, -(-total // self.units[u]))
        if self.warp_groups:
            total_issue = sum(self.issue(v) for v in range(self.n))
            best = max(best, -(-total_issue // self.warp_groups.count))
            best = max(
                best, sum(self.issue(v) for v, op in enumerate(self.ops) if op.variable_latency)
            )
        return best

    def recurrence_ok(self, ii: int) -> bool:
        """True if no dependence cycle has latency > ii * distance (no positive cycle)."""
        n = self.n
        dist = [0] * n  # longest path from a virtual source to every node
        for _ in range(n + 1):
            changed = False
            for u, v, lat, d, _ in self.arcs:
                w = dist[u] + lat - ii * d
                if w > dist[v]:
                    dist[v] = w
                    changed = True
            if not changed:
                return True
        return False

    def rec_mii(self) -> int | None:
        """Recurrence-constrained minimum II, or None if a zero-distance cycle has positive latency."""
        if self.zero_distance_cycle() is not None:
            return None
        hi = max(1, sum(lat for _, _, lat, _, _ in self.arcs))
        if self.recurrence_ok(1):
            return 1
        lo = 1  # infeasible
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.recurrence_ok(mid):
                hi = mid
            else:
                lo = mid
        return hi

    def mii(self) -> int | None:
        rec = self.rec_mii()
        return None if rec is None else max(self.res_mii(), rec)

    def zero_distance_cycle(self) -> list[str] | None:
        """Ops of a dependence cycle of distance 0 and positive latency, or None."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(range(self.n))
        for u, v, lat, d, _ in self.arcs:
            if d == 0:
                if u == v and lat > 0:
                    return [self.ops[u].name]
                g.add_edge(u, v)
        for comp in nx.strongly_connected_components(g):
            if len(comp) > 1 and any(
                u in comp and v in comp and d == 0 and lat > 0 for u, v, lat, d, _ in self.arcs
            ):
                return [self.ops[i].name for i in sorted(comp)]
        return None

    def infeasibility_reason(self) -> str | None:
        """Why no modulo schedule exists, for the cases decided without search; else None."""
        cyc = self.zero_distance_cycle()
        if cyc is not None:
            return (
                f"dependence cycle through {', '.join(cyc)} has total distance 0 and positive "
                f"latency: an op would have to start after itself"
            )
        for v, op in enumerate(self.ops):
            per_offset: dict[tuple[str, int], int] = {}
            for u, off in self.uses[v]:
                if self.units[u] == 0:
                    return f"op '{op.name}' uses unit '{u}', which has capacity 0"
                per_offset[(u, off)] = per_offset.get((u, off), 0) + 1
            for (u, off), cnt in per_offset.items():
                if cnt > self.units[u]:
                    return f"op '{op.name}' uses unit '{u}' {cnt} times at offset {off}, capacity {self.units[u]}"
        wg = self.warp_groups
        if wg is not None:
            if (
                wg.producer_exclusive
                and wg.count == 1
                and any(not op.variable_latency for op in self.ops)
            ):
                return "the only warp group is an exclusive producer, but some ops are not variable-latency"
            top = max(
                wg.reg_limit
                if not wg.producer_exclusive or wg.count == 1
                else [r for g, r in enumerate(wg.reg_limit) if g != wg.producer]
            )
            for op in self.ops:
                if op.regs > top:
                    return (
                        f"op '{op.name}' needs {op.regs} registers, above every warp group's "
                        f"limit (largest {top})"
                    )
                if op.variable_latency and op.regs > wg.reg_limit[wg.producer]:
                    return (
                        f"variable-latency op '{op.name}' must run on the producer group "
                        f"{wg.producer}, whose limit {wg.reg_limit[wg.producer]} is below its "
                        f"{op.regs} registers"
                    )
        return None

    def default_ii_max(self) -> int:
        """An II at which a sequential schedule of one iteration fits (without warp groups)."""
        total = sum(len(u) for u in self.uses) + sum(lat for _, _, lat, _, _ in self.arcs)
        total += self.handoff * len(self.arcs) + sum(self.issue(v) for v in range(self.n))
        return max(self.mii() or 1, total + 1)

    def length_lower_bound(self) -> int:
        """A schedule length no schedule beats at any II: longest zero-distance path plus cycles."""
        est = [0] * self.n
        for _ in range(self.n):
            changed = False
            for u, v, lat, d, _ in self.arcs:
                if d == 0 and est[u] + lat > est[v]:
                    est[v] = est[u] + lat
                    changed = True
            if not changed:
                break
        return max(est[v] + op.cycles for v, op in enumerate(self.ops))

    # -- checking ------------------------------------------------------------------------------------
    def violations(
        self, ii: int, start: list[int], group: list[int | None], limit: int = 10
    ) -> list[str]:
        """Every violated constraint of a schedule (groups may be None = not yet assigned: the
        group constraints then only involve assigned ops). Used by the checker and the heuristic."""
        out: list[str] = []
        names = [op.name for op in self.ops]
        wg = self.warp_groups
        n = self.n
        # dependences
        for u, v, lat, d, _ in self.arcs:
            extra = 0
            if (
                wg is not None
                and group[u] is not None
                and group[v] is not None
                and group[u] != group[v]
            ):
                extra = wg.handoff
            if start[v] + d * ii < start[u] + lat + extra:
                out.append(
                    f"dependence {names[u]} -> {names[v]}: start {start[v]} + {d}*{ii} < "
                    f"{start[u]} + latency {lat}" + (f" + handoff {extra}" if extra else "")
                )
        if wg is not None:
            for e in self.edges:
                u, v = self.index[e.from_], self.index[e.to]
                if (
                    e.same_group
                    and group[u] is not None
                    and group[v] is not None
                    and group[u] != group[v]
                ):
                    out.append(
                        f"edge {names[u]} -> {names[v]} needs one warp group, got {group[u]} and {group[v]}"
                    )
        # modulo resources
        use: dict[tuple[str, int], int] = {}
        for v in range(n):
            for u, off in self.uses[v]:
                key = (u, (start[v] + off) % ii)
                use[key] = use.get(key, 0) + 1
        for (u, r), cnt in sorted(use.items()):
            if cnt > self.units[u]:
                out.append(
                    f"unit '{u}' used {cnt} times in cycle {r} of the II (capacity {self.units[u]})"
                )
        if wg is not None:
            for v, op in enumerate(self.ops):
                if op.variable_latency and group[v] is not None and group[v] != wg.producer:
                    out.append(
                        f"variable-latency op '{op.name}' is on group {group[v]}, not the producer {wg.producer}"
                    )
                if (
                    wg.producer_exclusive
                    and not op.variable_latency
                    and group[v] is not None
                    and group[v] == wg.producer
                ):
                    out.append(
                        f"op '{op.name}' is on the producer group {wg.producer}, which runs only "
                        f"variable-latency ops (producer_exclusive)"
                    )
            # group occupancy: one op at a time per group, blocking waits included
            busy: dict[tuple[int, int], list[str]] = {}
            for v in range(n):
                g = group[v]
                if g is None:
                    continue
                a, b = self.occupancy(v, ii, start, group)
                if b - a > ii:
                    out.append(
                        f"op '{names[v]}' keeps group {g} busy {b - a} cycles, more than the II {ii}"
                    )
                    continue
                for t in range(a, b):
                    busy.setdefault((g, t % ii), []).append(names[v])
            for (g, r), who in sorted(busy.items()):
                if len(who) > 1:
                    out.append(
                        f"warp group {g} runs {', '.join(who)} at once in cycle {r} of the II"
                    )
            # registers
            live = self.register_use(ii, start, group)
            for g in range(wg.count):
                for r in range(ii):
                    if live[g][r] > wg.reg_limit[g]:
                        out.append(
                            f"warp group {g} holds {live[g][r]} registers in cycle {r} of the II "
                            f"(limit {wg.reg_limit[g]})"
                        )
                        break
        return out[:limit] if limit else out

    def occupancy(
        self, v: int, ii: int, start: list[int], group: list[int | None]
    ) -> tuple[int, int]:
        """[begin, end) during which op v keeps its warp group busy (issue plus blocking waits)."""
        end = start[v] + self.issue(v)
        for u, w, _, d, blocking in self.arcs:
            if u == v and blocking and group[w] is not None and group[w] == group[v]:
                end = max(end, start[w] + d * ii)
        return start[v], max(end, start[v])

    def lifetime(self, v: int, ii: int, start: list[int]) -> tuple[int, int]:
        """[begin, end) during which op v's result holds its registers: from its start to the
        later of its own end and the start of its last consumer (in absolute cycles)."""
        end = start[v] + self.ops[v].cycles
        for u, w, d in self.value_arcs:
            if u == v:
                end = max(end, start[w] + d * ii)
        return start[v], end

    def register_use(self, ii: int, start: list[int], group: list[int | None]) -> list[list[int]]:
        """Registers live per warp group per cycle of the II (overlapping iterations counted)."""
        wg = self.warp_groups
        live = [[0] * ii for _ in range(wg.count if wg else 1)]
        for v, op in enumerate(self.ops):
            g = group[v] if wg else 0
            if g is None or not op.regs:
                continue
            a, b = self.lifetime(v, ii, start)
            length = b - a
            q, rem = divmod(length, ii)
            for r in range(ii):
                live[g][r] += op.regs * (q + (1 if (r - a) % ii < rem else 0))
        return live

    def render(self, solution: Any) -> str:
        """Schedule table, modulo reservation table, Triton attributes and the loop listing."""
        from optkit.problems.software_pipelining_output import render

        return render(self, solution)

    def evaluate(self, solution: SoftwarePipeliningSolution) -> CheckReport:
        ii = solution.ii
        names = [op.name for op in self.ops]
        missing = [x for x in names if x not in solution.start]
        unknown = [x for x in solution.start if x not in self.index]
        if missing or unknown:
            return CheckReport.infeasible(
                f"start must give every op exactly once (missing {missing[:5]}, "
                f"unknown {unknown[:5]})"
            )
        start = [solution.start[x] for x in names]
        wg = self.warp_groups
        if wg is None:
            if solution.warp_group:
                return CheckReport.infeasible(
                    "warp_group given but the instance has no warp_groups"
                )
            group: list[int | None] = [0] * self.n
        else:
            missing = [x for x in names if x not in solution.warp_group]
            unknown = [x for x in solution.warp_group if x not in self.index]
            if missing or unknown:
                return CheckReport.infeasible(
                    f"warp_group must give every op exactly once (missing "
                    f"{missing[:5]}, unknown {unknown[:5]})"
                )
            group = [solution.warp_group[x] for x in names]
            bad = [x for x, g in zip(names, group) if g >= wg.count]
            if bad:
                return CheckReport.infeasible(
                    f"warp_group of {bad[:5]} is not below count {wg.count}"
                )
        length = max(s + op.cycles for s, op in zip(start, self.ops))
        res_mii, rec_mii = self.res_mii(), self.rec_mii()
        metrics: dict[str, Any] = {
            "ii": ii,
            "schedule_length": length,
            "stages": max(s // ii for s in start) + 1,
            "res_mii": res_mii,
            "rec_mii": rec_mii,
            "mii": None if rec_mii is None else max(res_mii, rec_mii),
        }
        if wg is not None:
            live = self.register_use(ii, start, group)
            metrics["peak_registers"] = [max(row) for row in live]
            metrics["groups_used"] = len(set(group))
        violations = self.violations(ii, start, group if wg else [None] * self.n, limit=0)
        horizon = self.horizon_for(ii)
        if length > horizon:
            violations.append(f"schedule length {length} exceeds the horizon {horizon}")
        if violations:
            return CheckReport.infeasible(*violations, metrics=metrics)
        return CheckReport(True, [ii, length], metrics)

    def solution_from(self, ii: int, start: list[int], group: list[int] | None = None) -> dict:
        """A solution dict from per-op lists, starts shifted so that the earliest is 0 (every modulo
        constraint is invariant under a common shift)."""
        shift = min(start) if start else 0
        out = {"ii": ii, "start": {op.name: int(s - shift) for op, s in zip(self.ops, start)}}
        if self.warp_groups is not None:
            out["warp_group"] = {op.name: int(g) for op, g in zip(self.ops, group or [0] * self.n)}
        return out


# -- rendering -----------------------------------------------------------------------------------------


GENERATOR_OPTIONS = {
    "seed": Opt("Random seed: each seed gives another loop body."),
    "n": Opt("Operations in the loop body.", unit="ops"),
    "units": Opt("Functional units (each of capacity 1 or 2).", unit="units"),
    "max_cycles": Opt("Longest time an op holds its unit.", unit="cycles"),
    "max_latency": Opt("Largest latency of a dependence edge.", unit="cycles"),
    "recurrences": Opt(
        "Loop-carried edges (distance 1-2) that bound the II from below.", unit="edges"
    ),
    "warp_groups": Opt(
        "Warp groups for warp specialisation (0: none; group 0 is the producer).", unit="groups"
    ),
    "reg_limit": Opt(
        "Registers each consumer warp group may hold live (the producer gets half).",
        unit="registers",
    ),
}


@generator("software-pipelining", GENERATOR_OPTIONS)
def generate(
    seed: int = 0,
    n: int = 8,
    units: int = 3,
    max_cycles: int = 2,
    max_latency: int = 3,
    recurrences: int = 2,
    warp_groups: int = 0,
    reg_limit: int = 64,
) -> SoftwarePipelining:
    """A random loop body: `n` ops on `units` units (capacities 1-2; one op in five also uses a
    second unit one cycle in: a reservation table), a forward DAG of dependences (latency
    0..max_latency, distance 0) plus `recurrences` short loop-carried edges (from an op to itself
    or to one of the two ops before it, distance 1-2). With `warp_groups` > 0: that many groups (group 0 the producer), registers per
    op, one variable-latency load per 4 ops, some blocking edges."""
    if (
        n < 1
        or units < 1
        or max_cycles < 1
        or max_latency < 0
        or recurrences < 0
        or warp_groups < 0
    ):
        raise InputError(
            "generate software-pipelining: need n, units, max_cycles >= 1 and non-negative others"
        )
    rng = random.Random(seed)
    unit_names = [f"U{k}" for k in range(units)]
    caps = {u: rng.choice([1, 1, 2]) for u in unit_names}
    ops = []
    for i in range(n):
        op: dict[str, Any] = {
            "name": f"op{i}",
            "unit": rng.choice(unit_names),
            "cycles": rng.randint(1, max_cycles),
        }
        if (
            units > 1 and rng.random() < 0.2
        ):  # a complex reservation table: a second unit a cycle later
            other = rng.choice([u for u in unit_names if u != op["unit"]])
            op["reservation"] = {op["unit"]: list(range(op["cycles"])), other: [1]}
        if warp_groups:
            op["regs"] = rng.choice([0, 8, 16, 32])
            if i % 4 == 0:
                op["variable_latency"] = True
                op["regs"] = 0
                op["issue_cycles"] = 1
        ops.append(op)
    edges = []
    for j in range(1, n):
        for i in rng.sample(range(j), k=min(j, rng.randint(1, 2))):
            edges.append(
                {
                    "from": f"op{i}",
                    "to": f"op{j}",
                    "latency": rng.randint(0, max_latency),
                    "distance": 0,
                    "blocking": bool(warp_groups) and rng.random() < 0.2,
                }
            )
    for _ in range(recurrences):
        i = rng.randrange(n)
        j = min(n - 1, i + rng.randint(0, 2))  # a short recurrence (self-loop or a near successor)
        edges.append(
            {
                "from": f"op{j}",
                "to": f"op{i}",
                "latency": rng.randint(1, max_latency + 1),
                "distance": rng.randint(1, 2),
            }
        )
    data: dict[str, Any] = {
        "name": f"gen_sp_n{n}_s{seed}",
        "units": caps,
        "ops": ops,
        "edges": edges,
    }
    if warp_groups:
        data["warp_groups"] = {
            "count": warp_groups,
            "reg_limit": [reg_limit // 2] + [reg_limit] * (warp_groups - 1),
            "producer": 0,
            "handoff": 1,
        }
    return SoftwarePipelining(**data)
