"""Benchmark every tardiness solver on the public sets with known optima.

    .venv/bin/python -m benchmarks.tardiness                       # everything, 1 s per instance
    .venv/bin/python -m benchmarks.tardiness --sets wt40,sdt100 --solvers mdd,dynasearch --limit 10
    .venv/bin/python -m benchmarks.tardiness --write               # table of all cached runs -> docs
    .venv/bin/python -m benchmarks.tardiness --proof --sets wt40,wt50,wt100 --time-limit 60 --write

Sets: wt40, wt50, wt100, wt150, wt200, wt250 (OR-Library / Tanaka et al., weighted, 125 instances
each) and sdt100, sdt200, sdt500 (unweighted, 200 each), from `../shared/benchmarks/tardiness`.
Each (solver, set) run is cached as JSON in `--cache` (default benchmarks/results/tardiness) with
the command that made it, so that long runs can be made separately and the table written once.

`--proof` runs the exact `dp` solver (SSDP) instead, each instance in a fresh process so that its
peak resident memory can be read, and writes its own table (proven within 1 / 10 / 60 s, mean
time to proof, peak memory, disagreements with the shipped optima) to a section of its own.

Gap (both families of sets): mean over the instances with a non-zero optimum of
100 (H - OPT) / OPT, the definition of the 2025 EDDC/MDDC paper; instances with optimum 0 count
only in "solved". Solved: objective == optimum. Proven: status `optimal` (exact solvers only).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from benchmarks._common import (
    ROOT,
    SHARED,
    machine,
    markdown_table,
    section_commands,
    section_rows,
    section_text,
    write_section,
)

SETS = ["wt40", "wt50", "wt100", "wt150", "wt200", "wt250", "sdt100", "sdt200", "sdt500"]
#: the exact subset DP is only run where n is at most this
DP_MAX_N = 20
CACHE = ROOT / "benchmarks" / "results" / "tardiness"
#: published gaps (%) of the 2025 paper on sdt100 / sdt200
PAPER = {"edd": (59.57, 62.98), "mdd": (1.81, 2.07), "mddc": (1.52, 2.00)}


def load_set(name: str):
    """[(instance, optimum)] of a benchmark set."""
    from optkit.problems.tardiness import read_optima, read_orlib, read_sdt

    if name.startswith("wt"):
        folder = SHARED / "tardiness" / "weighted"
        return list(zip(read_orlib(folder / f"{name}.txt"), read_optima(folder / f"{name}.opt")))
    return list(read_sdt(SHARED / "tardiness" / "unweighted" / f"{name}.jsonl"))


def gap_pct(value: float, optimum: float) -> float | None:
    return None if optimum == 0 else 100.0 * (value - optimum) / optimum


def run(set_name: str, solver: str, data, time_limit: float, seed: int) -> dict:
    import optkit

    rows = []
    for problem, optimum in data:
        cpu = time.process_time()
        res = optkit.solve(problem, solver, time_limit=time_limit, threads=1, seed=seed)
        rows.append(
            {
                "instance": problem.name,
                "optimum": optimum,
                "objective": res.objective,
                "status": res.status.value,
                "runtime_s": res.runtime_s,
                "cpu_s": time.process_time() - cpu,
                "message": res.message,
            }
        )
    return summarise(rows) | {"rows": rows}


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["objective"] is not None]
    gaps = [g for r in ok if (g := gap_pct(r["objective"], r["optimum"])) is not None]
    return {
        "instances": len(rows),
        "no_solution": len(rows) - len(ok),
        "gap_pct": statistics.fmean(gaps) if gaps else None,
        "max_gap_pct": max(gaps) if gaps else None,
        "solved": sum(r["objective"] == r["optimum"] for r in ok),
        "proven": sum(r["status"] == "optimal" for r in ok),
        "below_optimum": sum(r["objective"] < r["optimum"] for r in ok),
        "mean_time_s": statistics.fmean(r["runtime_s"] for r in rows) if rows else 0.0,
        "mean_cpu_s": statistics.fmean(r["cpu_s"] for r in rows) if rows else 0.0,
    }


def cache_path(cache: Path, set_name: str, solver: str, limit: int, time_limit: float) -> Path:
    return cache / (
        f"{set_name}__{solver}"
        + (f"__first{limit}" if limit else "")
        + (f"__{time_limit:g}s" if time_limit != 1.0 else "")
        + ".json"
    )


def paper_edd(set_name: str) -> float:
    """EDD with ties by index (a stable sort on due dates), as the 2025 paper seems to use."""
    gaps = []
    for problem, optimum in load_set(set_name):
        seq = sorted(range(problem.n), key=lambda j: (problem.due_dates[j], j))
        if (g := gap_pct(problem.total_weighted_tardiness(seq), optimum)) is not None:
            gaps.append(g)
    return statistics.fmean(gaps)


def summary_table(runs: list[dict]) -> str:
    """Solver x set: 'gap (solved/instances)', one column per set, time limit in the solver cell."""
    sets = [x for x in SETS if any(r["set"] == x for r in runs)]
    keys = sorted(
        {(r["solver"], r["time_limit_s"]) for r in runs},
        key=lambda k: (k[0] in ("cpsat", "mip", "dp", "dynasearch"), k[0], k[1]),
    )
    body = []
    for solver, limit in keys:
        row = [solver if limit == 1.0 else f"{solver} ({limit:g} s)"]
        for x in sets:
            r = next(
                (
                    r
                    for r in runs
                    if r["set"] == x and r["solver"] == solver and r["time_limit_s"] == limit
                ),
                None,
            )
            if r is None:
                row.append("")
                continue
            missing = r.get("no_solution", r.get("errors", 0))
            gap = "-" if missing or r["gap_pct"] is None else f"{r['gap_pct']:.3f}"
            row.append(f"{gap} ({r['solved']}/{r['instances']})")
        body.append(row)
    return markdown_table(["solver"] + sets, body)


def carried_runs(cached: list[dict]) -> list[dict]:
    """The runs of the section's previous write that `cached` does not hold (the cache is local),
    read back from its detail table."""

    def num(cell: str) -> float | None:
        return None if cell == "-" else float(cell)

    have = {(r["set"], r["solver"], r["time_limit_s"]) for r in cached}
    runs = []
    for row in section_rows("tardiness", "set"):
        key = (row["set"], row["solver"], float(row["time limit s"]))
        if key in have:
            continue
        run = {
            "set": key[0],
            "solver": key[1],
            "time_limit_s": key[2],
            "instances": int(row["instances"]),
            "gap_pct": num(row["mean gap %"]),
            "max_gap_pct": num(row["max gap %"]),
            "solved": int(row["solved"]),
            "proven": int(row["proven"]),
            "no_solution": int(row["no solution"]),
            "mean_time_s": float(row["mean time s"]),
        }
        if row["mean CPU s"] != "-":
            run["mean_cpu_s"] = float(row["mean CPU s"])
        runs.append(run | {"carried": True})
    return runs


def carried_line(run: dict, prefix: str, fresh: str) -> str:
    """`fresh`, or for a carried run the previous write's line that starts with `prefix` and names
    the same time limit (its numbers were rounded from the full precision, the table's were not)."""
    if not run.get("carried"):
        return fresh
    limit = f"within {run['time_limit_s']:g} s"
    old = [
        line
        for line in section_text("tardiness").splitlines()
        if line.startswith(prefix) and (limit in line or "within" not in line)
    ]
    return old[0] if old else fresh


def table(cache: Path) -> str:
    cached = [json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))]
    runs = cached + carried_runs(cached)
    if not runs:
        return "No cached runs."
    order = {s: i for i, s in enumerate(SETS)}
    runs.sort(key=lambda r: (order.get(r["set"], 99), r["solver"], r["time_limit_s"]))
    header = [
        "set",
        "solver",
        "instances",
        "mean gap %",
        "max gap %",
        "solved",
        "proven",
        "no solution",
        "mean time s",
        "mean CPU s",
        "time limit s",
    ]
    body = []
    for r in runs:
        missing = r.get("no_solution", r.get("errors", 0))
        if missing:  # gaps over the instances with a solution only
            r["gap_pct"] = r["max_gap_pct"] = None

        def fmt(x):
            return "-" if x is None else f"{x:.3f}"

        body.append(
            [
                r["set"],
                r["solver"],
                r["instances"],
                fmt(r["gap_pct"]),
                fmt(r["max_gap_pct"]),
                r["solved"],
                r["proven"],
                missing,
                f"{r['mean_time_s']:.3f}",
                f"{r['mean_cpu_s']:.3f}" if "mean_cpu_s" in r else "-",
                r["time_limit_s"],
            ]
        )
    # the commands of the carried rows are the previous write's
    commands = sorted({r["command"] for r in cached} | set(section_commands("tardiness")))
    lines = [
        "## Single-machine tardiness",
        "",
        "Gap: mean over the instances with a non-zero optimum of 100 (H - OPT) / OPT (the 2025",
        "EDDC/MDDC paper's definition, used for the weighted wt sets too); solved: objective equal",
        "to the known optimum (instances with optimum 0 included); proven: status `optimal`.",
        "Optima: wt40-wt250 from Tanaka et al. (the `.opt` files), sdt from Shang, T'Kindt and",
        f"Della Croce. `dp` runs only where n <= {DP_MAX_N} (none of these sets). One thread, seed 0,",
        "wall-clock time limits. Timings were taken on a shared 2-core machine with other jobs",
        "running; the load varied between runs (2 to 7 runnable processes), so a timed solver got",
        'anything from a third of a core to a whole one. "mean CPU s" is the CPU time the',
        "benchmark process got per instance (threads of CP-SAT/HiGHS included), recorded for the",
        "later runs only (`-`: not recorded, taken at the highest load): compare it with the wall time.",
        "Rows that a write's local cache (benchmarks/results, not in git) does not hold are carried",
        "over from the previous write.",
        "",
        "Summary: mean gap % (instances solved to optimality / instances run); `-` where some",
        "instance got no solution. Details below.",
        "",
        summary_table(runs),
        "",
        markdown_table(header, body),
        "",
    ]
    targets = []
    for r in runs:
        if r["solver"] == "dynasearch" and r["instances"] == 125:
            cpu = f", {r['mean_cpu_s']:.2f} s of CPU" if "mean_cpu_s" in r else ""
            within = f"within {r['time_limit_s']:g} s of wall clock each{cpu}"
            prefix = f"- dynasearch on {r['set']}:"
            if r["set"] == "wt100":
                fresh = f"{prefix} optimum on {r['solved']}/125 instances (target >= 124) {within}"
                targets.append(carried_line(r, prefix, fresh))
            if r["set"] in ("wt150", "wt200", "wt250"):
                fresh = f"{prefix} mean gap {r['gap_pct']:.4f} % (target <= 0.01 %) {within}"
                targets.append(carried_line(r, prefix, fresh))
    if targets:
        lines += ["Local search targets of issue 2:", ""] + targets + [""]
    checks = [
        r
        for r in runs
        if r["set"] in ("sdt100", "sdt200") and r["solver"] in PAPER and r["instances"] == 200
    ]
    if checks:
        lines += ["Paper check (2025 EDDC/MDDC paper, sdt100 / sdt200):", ""]
        for r in checks:
            pub = PAPER[r["solver"]][0 if r["set"] == "sdt100" else 1]
            prefix = f"- {r['solver']} on {r['set']}:"
            fresh = (
                f"{prefix} {r['gap_pct']:.2f} % here, {pub:.2f} % published "
                f"(difference {r['gap_pct'] - pub:+.2f} points)"
            )
            lines.append(carried_line(r, prefix, fresh))
        for s in ("sdt100", "sdt200"):
            if any(r["set"] == s and r["solver"] == "edd" for r in checks):
                pub = PAPER["edd"][0 if s == "sdt100" else 1]
                lines.append(
                    f"- edd with ties by index instead of by processing time, on {s}: "
                    f"{paper_edd(s):.2f} % here, {pub:.2f} % published"
                )
        lines.append("")
    lines += [f"Machine: {machine()}. Made by:", ""] + [f"    {c}" for c in commands]
    return "\n".join(lines)


# -- proof of optimality (the exact dp solver) -----------------------------------------------------

PROOF_CACHE = ROOT / "benchmarks" / "results" / "tardiness_proof"
#: proof columns: proven within this many seconds
PROOF_WITHIN = (1.0, 10.0, 60.0)


def _prove_one(problem, time_limit: float, seed: int) -> dict:
    """Runs in a fresh process: load numba and the compiled kernels with a small instance (a
    one-off cost per process, timed apart as `load_s`), then solve with dp and read the
    process's peak resident memory."""
    import resource

    import optkit
    from optkit.problems.tardiness import generate

    load = time.monotonic()
    optkit.solve(generate(seed=0, n=14), "dp", time_limit=60.0, threads=1, seed=seed)
    load = time.monotonic() - load
    cpu = time.process_time()
    res = optkit.solve(problem, "dp", time_limit=time_limit, threads=1, seed=seed)
    cpu = time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "objective": res.objective,
        "bound": res.bound,
        "status": res.status.value,
        "runtime_s": res.runtime_s,
        "cpu_s": cpu,
        "load_s": load,
        "peak_mib": peak_kib / 1024,
        "message": res.message,
        "memorised": res.stats.get("memorised", 0),
        "states": res.stats.get("states", 0),
    }


def prove(data, time_limit: float, seed: int) -> list[dict]:
    """One fresh process per instance (spawned, so that memory readings do not add up)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from optkit.problems.tardiness import generate

    rows = []
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as warm:  # compile (or load) the kernels once
        warm.submit(_prove_one, generate(seed=0, n=20), 60.0, seed).result()
    for problem, optimum in data:
        load = os.getloadavg()[0]
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            row = pool.submit(_prove_one, problem, time_limit, seed).result()
        row |= {"instance": problem.name, "optimum": optimum, "load_avg": load}
        row["disagrees"] = disagrees(row)
        rows.append(row)
        if row["disagrees"]:
            print(f"  DISAGREES {problem.name}: {row}", flush=True)
    return rows


def disagrees(row: dict) -> bool:
    """An answer that contradicts the shipped optimum: a bug somewhere."""
    opt = row["optimum"]
    return (
        row["objective"] is None
        or row["objective"] < opt
        or (row["bound"] is not None and row["bound"] > opt)
        or (row["status"] == "optimal" and row["objective"] != opt)
    )


def proof_summary(rows: list[dict]) -> dict:
    proven = [r for r in rows if r["status"] == "optimal"]
    times = [r["runtime_s"] for r in proven]
    return {
        "instances": len(rows),
        "within": {f"{s:g}": sum(t <= s for t in times) for s in PROOF_WITHIN},
        "proven": len(proven),
        "mean_proof_s": statistics.fmean(times) if times else None,
        "mean_proof_cpu_s": statistics.fmean(r["cpu_s"] for r in proven) if proven else None,
        "max_proof_s": max(times) if times else None,
        "peak_mib": max(r["peak_mib"] for r in rows) if rows else None,
        "mean_load_s": statistics.fmean(r["load_s"] for r in rows) if rows else None,
        "load_avg": [min(r["load_avg"] for r in rows), max(r["load_avg"] for r in rows)]
        if rows
        else None,
        "disagreements": sum(r["disagrees"] for r in rows),
        "unproven": [r["instance"] for r in rows if r["status"] != "optimal"],
    }


def proof_table(cache: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))]
    if not runs:
        return "No cached proof runs."
    order = {s: i for i, s in enumerate(SETS)}
    runs.sort(key=lambda r: (order.get(r["set"], 99), r["instances"], r["time_limit_s"]))
    header = ["set", "instances", "time limit s"]
    header += [f"proven <= {s:g} s" for s in PROOF_WITHIN]
    header += ["mean s to proof", "(CPU s)", "max s to proof", "peak MiB", "disagreements"]
    header += ["load s", "load average"]
    header += ["not proven"]
    body = []
    for r in runs:
        every = r.get("every") or (12 if "--every 12" in r["command"] else 1)
        name = r["set"] + (f" (every {every}th)" if every > 1 else "")
        body.append(
            [name, r["instances"], f"{r['time_limit_s']:g}"]
            + [r["within"][f"{s:g}"] for s in PROOF_WITHIN]
            + [
                "-" if r["mean_proof_s"] is None else f"{r['mean_proof_s']:.2f}",
                "-" if r["mean_proof_cpu_s"] is None else f"{r['mean_proof_cpu_s']:.2f}",
                "-" if r["max_proof_s"] is None else f"{r['max_proof_s']:.2f}",
                f"{r['peak_mib']:.0f}",
                r["disagreements"],
                "-" if r.get("mean_load_s") is None else f"{r['mean_load_s']:.2f}",
                "-" if r.get("load_avg") is None else "{:.1f}-{:.1f}".format(*r["load_avg"]),
                ", ".join(r["unproven"][:8]) + (" ..." if len(r["unproven"]) > 8 else ""),
            ]
        )
    commands = sorted({r["command"] for r in runs})
    lines = [
        "## Single-machine tardiness: proofs of optimality (`dp`, SSDP)",
        "",
        "Each instance is solved by `dp` in a fresh process, one thread, wall-clock time limit;",
        "time to proof: the solver's runtime (upper bound by dynasearch included) when it proved",
        "optimality, and (CPU s) the CPU time the solving process got meanwhile; peak MiB: the",
        "largest resident memory of one such process (Python, NumPy and numba included).",
        "Each process first solves a small instance (n = 14) so that importing numba and loading",
        "the compiled kernels (a one-off cost per process) is not counted in the time to proof;",
        "load s: the mean wall time of that first solve.",
        "Disagreements: a proven objective other than the shipped optimum, an",
        "objective below it or a bound above it (each would be a bug; the count must be 0).",
        "The machine was shared with other jobs (2 cores; load average: the range of the 1-minute",
        "load average during the run), so wall times are inflated against a quiet machine:",
        "compare them with the CPU times.",
        "",
        markdown_table(header, body),
        "",
        f"Machine: {runs[0]['machine']}. Made by:",
        "",
    ] + [f"    {c}" for c in commands]
    return "\n".join(lines)


def main_proof(args, sets: list[str], command: str) -> int:
    cache = PROOF_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    for set_name in [] if (args.write and args.sets is None) else sets:
        data = load_set(set_name)[:: args.every]
        if args.limit:
            data = data[: args.limit]
        t0 = time.monotonic()
        rows = prove(data, args.time_limit, args.seed)
        out = proof_summary(rows) | {
            "set": set_name,
            "every": args.every,
            "time_limit_s": args.time_limit,
            "seed": args.seed,
            "command": command,
            "machine": machine(),
            "rows": rows,
        }
        name = (
            set_name
            + (f"__every{args.every}" if args.every > 1 else "")
            + (f"__first{args.limit}" if args.limit else "")
        )
        (cache / f"{name}__{args.time_limit:g}s.json").write_text(json.dumps(out) + "\n")
        print(
            f"{set_name:7s} proven {out['proven']}/{out['instances']} "
            f"(<= 1/10/60 s: {out['within']['1']}/{out['within']['10']}/{out['within']['60']}) "
            f"mean {out['mean_proof_s'] or 0:.2f} s  peak {out['peak_mib']:.0f} MiB  "
            f"disagreements {out['disagreements']}  ({time.monotonic() - t0:.0f} s)",
            flush=True,
        )
    if args.write:
        write_section("tardiness-proof", proof_table(cache))
        print(f"wrote section 'tardiness-proof' of docs/benchmarks.md from {cache}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sets", default=None, help="comma-separated sets (default: all)")
    ap.add_argument(
        "--solvers", default="", help="comma-separated solvers (default: every tardiness solver)"
    )
    ap.add_argument(
        "--time-limit", type=float, default=1.0, help="seconds per instance (default 1)"
    )
    ap.add_argument("--limit", type=int, default=0, help="only the first N instances of each set")
    ap.add_argument(
        "--every", type=int, default=1, help="--proof: only every K-th instance (a spread sample)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--proof",
        action="store_true",
        help="prove the sets' optima with dp instead (own cache and docs section)",
    )
    ap.add_argument("--cache", type=Path, default=CACHE, help="folder of cached runs")
    ap.add_argument(
        "--write",
        action="store_true",
        help="write the table of all cached runs to docs/benchmarks.md",
    )
    args = ap.parse_args(argv)

    from optkit.registry import solver_specs

    specs = {s.name: s for s in solver_specs("tardiness")}
    solvers = [s for s in args.solvers.split(",") if s] or list(specs)
    sets = [s for s in (args.sets or ",".join(SETS)).split(",") if s]
    bad = [s for s in solvers if s not in specs] + [s for s in sets if s not in SETS]
    if bad:
        print(
            f"unknown solver or set: {', '.join(bad)} (solvers: {', '.join(specs)}; sets: {', '.join(SETS)})",
            file=sys.stderr,
        )
        return 2
    command = ".venv/bin/python -m benchmarks.tardiness " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]) if a != "--write"
    )
    if args.proof:
        return main_proof(args, sets, command.strip())
    args.cache.mkdir(parents=True, exist_ok=True)
    only_write = args.write and args.sets is None and not args.solvers
    for set_name in [] if only_write else sets:
        data = load_set(set_name)
        if args.limit:
            data = data[: args.limit]
        n = data[0][0].n
        for solver in solvers:
            spec = specs[solver]
            if not spec.available:
                print(f"{set_name:7s} {solver:10s} skipped: {spec.unavailable_reason()}")
                continue
            if solver == "dp" and n > DP_MAX_N:
                print(f"{set_name:7s} {solver:10s} skipped: n = {n} > {DP_MAX_N}")
                continue
            t0 = time.monotonic()
            out = run(set_name, solver, data, args.time_limit, args.seed)
            out |= {
                "set": set_name,
                "solver": solver,
                "time_limit_s": args.time_limit,
                "seed": args.seed,
                "command": command.strip(),
                "machine": machine(),
            }
            cache_path(args.cache, set_name, solver, args.limit, args.time_limit).write_text(
                json.dumps(out) + "\n"
            )
            gap = "-" if out["gap_pct"] is None else f"{out['gap_pct']:.3f}"
            print(
                f"{set_name:7s} {solver:10s} gap {gap:>8s} %  solved {out['solved']:3d}/"
                f"{out['instances']}  proven {out['proven']:3d}  no solution {out['no_solution']}  "
                f"mean {out['mean_time_s']:.3f} s  ({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
    if args.write:
        write_section("tardiness", table(args.cache))
        print(f"wrote section 'tardiness' of docs/benchmarks.md from {args.cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
