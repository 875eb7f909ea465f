"""What a software-pipelining solution looks like to a person and to Triton: the schedule table,
the modulo reservation table, the `loop.stage` / `loop.cluster` attributes and the prologue /
kernel / epilogue listing. Kept apart from the problem's data and checker.
"""

from __future__ import annotations

from typing import Any

from optkit.errors import InputError
from optkit.problems.software_pipelining import Op, SoftwarePipelining, SoftwarePipeliningSolution


def _parsed(problem: SoftwarePipelining, solution: Any) -> SoftwarePipeliningSolution:
    sol = problem.parse_solution(solution)
    if sol is None:
        raise InputError("solution: not a software-pipelining solution")
    return sol


def schedule_rows(problem: SoftwarePipelining, solution: Any) -> list[dict]:
    """One row per op, by start: op, unit, start, stage, cycle within the II, warp group."""
    sol = _parsed(problem, solution)
    rows = []
    for op in sorted(problem.ops, key=lambda o: (sol.start[o.name], problem.index[o.name])):
        s = sol.start[op.name]
        rows.append(
            {
                "op": op.name,
                "unit": op.unit,
                "start": s,
                "stage": s // sol.ii,
                "cycle": s % sol.ii,
                "warp_group": sol.warp_group.get(op.name),
            }
        )
    return rows


def schedule_table(problem: SoftwarePipelining, solution: Any) -> str:
    rows = schedule_rows(problem, solution)
    header = ["op", "unit", "start", "stage", "cycle", "warp_group"]
    cells = [[str(r[h]) if r[h] is not None else "-" for h in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def reservation_table(problem: SoftwarePipelining, solution: Any) -> str:
    """Modulo reservation table: a row per cycle of the II, a column per unit, the ops using it
    (with their stage) in that cycle of the steady-state kernel."""
    sol = _parsed(problem, solution)
    units = list(problem.units)
    table = {(u, r): [] for u in units for r in range(sol.ii)}
    for v, op in enumerate(problem.ops):
        s = sol.start[op.name]
        for u, off in problem.uses[v]:
            table[(u, (s + off) % sol.ii)].append(f"{op.name}@{(s + off) // sol.ii}")
    header = ["cycle"] + [f"{u} (cap {problem.units[u]})" for u in units]
    rows = [[str(r)] + [" ".join(table[(u, r)]) or "." for u in units] for r in range(sol.ii)]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def triton_attributes(problem: SoftwarePipelining, solution: Any) -> dict[str, dict[str, int]]:
    """Per op, Triton-style loop scheduling attributes: `loop.stage` (start // ii) and
    `loop.cluster` (rank of its cycle within the II: ops of one cluster issue together, clusters
    in order), plus `ttg.warp_specialize.tag`-like `partition` when warp groups are used."""
    sol = _parsed(problem, solution)
    cycles = sorted({s % sol.ii for s in sol.start.values()})
    rank = {c: i for i, c in enumerate(cycles)}
    out = {}
    for op in problem.ops:
        s = sol.start[op.name]
        attrs = {"loop.stage": s // sol.ii, "loop.cluster": rank[s % sol.ii]}
        if op.name in sol.warp_group:
            attrs["partition"] = sol.warp_group[op.name]
        out[op.name] = attrs
    return out


def listing(problem: SoftwarePipelining, solution: Any) -> str:
    """Prologue, kernel and epilogue of the pipelined loop (N iterations, N >= stages), one line
    per cycle of the II that issues something; `op[i+k]` is op of iteration i + k."""
    sol = _parsed(problem, solution)
    ii = sol.ii
    ops = sorted(problem.ops, key=lambda o: (sol.start[o.name] % ii, problem.index[o.name]))
    stage = {o.name: sol.start[o.name] // ii for o in problem.ops}
    nstages = max(stage.values()) + 1
    group = sol.warp_group

    def tag(o: Op, it: str) -> str:
        g = f" (wg{group[o.name]})" if o.name in group else ""
        return f"{o.name}[{it}]{g}"

    def block(title: str, pick) -> list[str]:
        lines = [title]
        for c in range(ii):
            here = [
                tag(o, it)
                for o in ops
                if sol.start[o.name] % ii == c
                for it in [pick(o)]
                if it is not None
            ]
            if here:
                lines.append(f"  +{c:<4d} " + "  ".join(here))
        return lines

    out = [f"# II = {ii}, {nstages} stage(s); loop of N iterations"]
    for p in range(nstages - 1):
        out += block(
            f"prologue step {p}:",
            lambda o, p=p: str(p - stage[o.name]) if stage[o.name] <= p else None,
        )
    out += block(
        f"kernel (i = 0 .. N-{nstages}):" if nstages > 1 else "kernel (i = 0 .. N-1):",
        lambda o: _offset("i", nstages - 1 - stage[o.name]),
    )
    for e in range(1, nstages):
        out += block(
            f"epilogue step {e}:",
            lambda o, e=e: _offset("N", e - 1 - stage[o.name]) if stage[o.name] >= e else None,
        )
    return "\n".join(out)


def _offset(base: str, k: int) -> str:
    return base if k == 0 else f"{base}{k:+d}"


def render(problem: SoftwarePipelining, solution: Any) -> str:
    """Schedule table, modulo reservation table, Triton attributes and the loop listing."""
    attrs = triton_attributes(problem, solution)
    attr_lines = [
        f"  {name}: " + ", ".join(f"{k} = {v}" for k, v in a.items()) for name, a in attrs.items()
    ]
    report = problem.check(solution)
    head = (
        f"{problem.label}: II {report.metrics.get('ii')}, length {report.metrics.get('schedule_length')}, "
        f"MII {report.metrics.get('mii')} (ResMII {report.metrics.get('res_mii')}, "
        f"RecMII {report.metrics.get('rec_mii')})" + ("" if report.feasible else "  [INFEASIBLE]")
    )
    return "\n\n".join(
        [
            head,
            schedule_table(problem, solution),
            "modulo reservation table:\n" + reservation_table(problem, solution),
            "triton loop attributes:\n" + "\n".join(attr_lines),
            listing(problem, solution),
        ]
    )


# -- generator ----------------------------------------------------------------------------------------
