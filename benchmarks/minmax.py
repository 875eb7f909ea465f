"""Benchmarks of the min-max violation family (section "minmax" of docs/benchmarks.md).

    .venv/bin/python -m benchmarks.minmax            # full run (about 8 minutes), writes the section
    .venv/bin/python -m benchmarks.minmax --quick    # small and short, prints only
    .venv/bin/python -m benchmarks.minmax --backend cupy --only large   # the GPU comparison run

Parts: `fir` (fixed-point FIR design: minmax vs CP-SAT vs MIP at equal time, against the LP lower
bound), `large` (engine throughput on a planted 10,000 x 5,000 sparse instance and a dense
2,000 x 1,000 one), `ep` (expert placement: minmax vs the registered heuristics and exact
solvers, gap to the best proven bound), `pods` (pod packing at growing scale).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from benchmarks._common import machine, markdown_table, write_section

PARTS = ("fir", "large", "ep", "pods")


def _fmt(x, digits=6):
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "none found"
        return f"{x:.{digits}g}"
    return str(x)


# -- FIR -------------------------------------------------------------------------------------------


def bench_fir(quick: bool, time_limit: float, backend: str) -> str:
    from optkit.backends.minmax import fir

    specs = [
        fir.FirSpec(taps=31, bits=8),
        fir.FirSpec(taps=61, bits=10),
        fir.FirSpec(taps=101, bits=12),
    ]
    if quick:
        specs = specs[:1]
    rows = []
    for spec in specs:
        base = fir.design_rounded(spec)
        designs = [
            base,
            fir.design_minmax(spec, time_limit, seed=0, backend=backend),
            fir.design_cpsat(spec, time_limit, seed=0, threads=1),
            fir.design_mip(spec, time_limit, seed=0, threads=1),
        ]
        best = min(d.max_deviation for d in designs if math.isfinite(d.max_deviation))
        for d in designs:
            dev = d.max_deviation
            rows.append(
                [
                    spec.label,
                    d.method,
                    _fmt(dev),
                    _fmt(dev / base.bound) if math.isfinite(dev) else "-",
                    _fmt(dev / best, 4) if math.isfinite(dev) else "-",
                    d.status,
                    f"{d.runtime_s:.1f}",
                ]
            )
            print(rows[-1], flush=True)
        rows.append(
            [spec.label, "LP lower bound (unquantised)", _fmt(base.bound), "1", "-", "proven", "-"]
        )
    table = markdown_table(
        ["filter", "method", "max deviation", "/ LP bound", "/ best here", "status", "s"], rows
    )
    return (
        f"### Fixed-point FIR low-pass design ({time_limit:g} s each, 1 thread)\n\n"
        "Minimise the worst weighted deviation from the ideal response over the design grid "
        "(16 points per tap; taps on a 2^-b grid, each within 16 steps of the rounded LP optimum). "
        "`rounded LP` is the naive baseline and the start of `minmax`; CP-SAT is hinted with it. "
        "`/ LP bound` is the ratio to the unquantised minimax optimum, a proven lower bound.\n\n"
        + table
    )


# -- large instance --------------------------------------------------------------------------------


def planted(m: int, n: int, density: float | None, seed: int = 0):
    import scipy.sparse as sp

    from optkit.backends.minmax.engine import MinMaxModel

    rng = np.random.default_rng(seed)
    if density is None:
        A = rng.normal(size=(m, n))
    else:
        A = sp.random(m, n, density=density, random_state=seed, format="csr")
        A.data = rng.normal(size=A.nnz)
    x = rng.integers(-2, 3, n)
    r = A @ x
    half = 0.25 if density is not None else 0.25 * math.sqrt(n)
    return MinMaxModel(A, r - half, r + half, [range(-2, 3)] * n)


def bench_large(quick: bool, time_limit: float, backend: str) -> str:
    from optkit.backends.minmax.engine import MinMaxParams, evaluate, solve

    cases = [
        ("sparse 10,000 x 5,000 (0.2 % dense)", 10_000, 5_000, 0.002),
        ("dense 2,000 x 1,000", 2_000, 1_000, None),
    ]
    if quick:
        cases = [("sparse 2,000 x 1,000 (1 % dense)", 2_000, 1_000, 0.01)]
    rows = []
    for label, m, n, dens in cases:
        t0 = time.monotonic()
        model = planted(m, n, dens)
        built = time.monotonic() - t0
        start = evaluate(model, model.default_start())[0]
        res = solve(
            model, MinMaxParams(backend=backend, seed=0, time_limit=time_limit, max_stall=10**9)
        )
        per_it = 1000 * res.runtime_s / max(1, res.iterations + res.rounds)
        rows.append(
            [
                label,
                res.device,
                f"{built:.1f}",
                _fmt(start, 4),
                _fmt(res.max_violation, 4),
                res.iterations,
                res.rounds,
                f"{per_it:.1f}",
                f"{res.screened / res.runtime_s:,.0f}",
                f"{100 * res.pruned / max(1, res.screened):.0f} %",
                f"{res.evaluated / res.runtime_s:,.0f}",
            ]
        )
        print(rows[-1], flush=True)
    table = markdown_table(
        [
            "instance",
            "backend",
            "build s",
            "start max viol.",
            f"max viol. at {time_limit:g} s",
            "moves applied",
            "perturbations",
            "ms / step",
            "moves screened / s",
            "pruned",
            "moves evaluated exactly / s",
        ],
        rows,
    )
    return (
        f"### Engine throughput on planted instances ({time_limit:g} s)\n\n"
        "Rows lower <= Ax <= upper around a planted x in {-2..2}^n (so the optimum is 0), start x = 0. "
        "Only the NumPy backend was run: **no GPU was lent to this task, so the CuPy speed-up was not "
        "measured**; rerun with `--backend cupy --only large` on a GPU machine to fill that column.\n\n"
        + table
    )


# -- expert placement ------------------------------------------------------------------------------


def _bench_problem(problems, solvers, time_limit, kind_label, numeric=True):
    import optkit

    rows = []
    for problem in problems:
        results = {}
        for s in solvers:
            try:
                results[s] = optkit.solve(
                    problem, s, time_limit=time_limit, threads=1, seed=0, hard_limit=True
                )
            except Exception as e:  # noqa: BLE001 - a benchmark row, not a crash
                print(f"{problem.name} {s}: {e}")
        bounds = [r.bound for r in results.values() if r.bound is not None]
        optimal = [r.objective for r in results.values() if r.status.value == "optimal"]
        best_bound = (max(bounds) if numeric else None) if bounds else None
        for s, r in results.items():
            gap = "-"
            if numeric and r.objective is not None:
                ref = optimal[0] if optimal else best_bound
                if ref is not None:
                    gap = f"{100 * (r.objective - ref) / max(abs(r.objective), 1e-9):.2f} %"
            obj = r.objective if r.objective is not None else "none found"
            rows.append(
                [
                    problem.name,
                    s,
                    _fmt(obj, 8) if numeric else str(obj),
                    r.status.value,
                    _fmt(r.bound, 8) if numeric else ("-" if r.bound is None else str(r.bound)),
                    gap if numeric else ("optimal known" if optimal else "-"),
                    f"{r.runtime_s:.1f}",
                ]
            )
            print(rows[-1], flush=True)
    return rows


def bench_ep(quick: bool, time_limit: float, backend: str) -> str:
    from benchmarks._common import SHARED
    from optkit.problems import expert_placement as ep
    from optkit.registry import solver_specs

    problems = []
    path = SHARED / "expert_placement" / "eplb_readme_example.json"
    if path.exists():
        problems.append(ep.read_eplb_example(path)[0])
    problems += [
        ep.generate(seed=0, shape="qwen-moe", layers=2),
        ep.generate(seed=0, shape="mixtral", layers=8, comm_weight=0.1),
    ]
    if not quick:
        problems.append(ep.generate(seed=0, shape="deepseek-v3", layers=4))
    solvers = [s.name for s in solver_specs("expert-placement") if s.available]
    rows = _bench_problem(problems[: 2 if quick else None], solvers, time_limit, "ep")
    table = markdown_table(
        ["instance", "solver", "objective", "status", "bound", "gap to optimum / best bound", "s"],
        rows,
    )
    return (
        f"### Expert placement ({time_limit:g} s each, 1 thread)\n\n"
        "Objective: sum over layers of the busiest GPU's load (+ comm_weight x traffic cost). The gap is "
        "to a proven optimum where a solver proved one, else to the best proven bound of any solver "
        "(`minmax`'s bound is the sum over layers of the mean GPU load). Every run is killed at the "
        "wall-clock limit (`hard_limit=True`), model building included.\n\n" + table
    )


def bench_pods(quick: bool, time_limit: float, backend: str) -> str:
    from optkit.problems import pod_packing as pp
    from optkit.registry import solver_specs

    sizes = [(8, 6, 2, 1.0), (32, 10, 3, 1.0), (100, 20, 3, 0.98)]
    if quick:
        sizes = sizes[:1]
    problems = [
        pp.generate(seed=1, nodes=n, pods_per_node=k, priorities=pr, util=u)
        for n, k, pr, u in sizes
    ]
    solvers = [s.name for s in solver_specs("pod-packing") if s.available]
    rows = _bench_problem(problems, solvers, time_limit, "pods", numeric=False)
    table = markdown_table(
        ["instance", "solver", "objective", "status", "bound", "optimum", "s"], rows
    )
    return (
        f"### Pod packing ({time_limit:g} s each, 1 thread)\n\n"
        "Objective (lexicographic, minimise): -(pods placed at priority >= p) for each priority p from the "
        'highest, then evictions, then moves. Generated with the "Priority Matters" generator '
        "(`optkit generate pod-packing`).\n\n" + table
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="small instances, short limits, print only"
    )
    ap.add_argument(
        "--time-limit", type=float, default=None, help="seconds per run (default 10, quick 2)"
    )
    ap.add_argument("--backend", default="numpy", choices=("auto", "numpy", "cupy"))
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    ap.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}")
    T = args.time_limit or (2.0 if args.quick else 10.0)
    t_large = T if args.quick else 3 * T
    out = []
    start = time.monotonic()
    bench = {
        "fir": lambda: bench_fir(args.quick, T, args.backend),
        "large": lambda: bench_large(args.quick, t_large, args.backend),
        "ep": lambda: bench_ep(args.quick, T, args.backend),
        "pods": lambda: bench_pods(args.quick, T, args.backend),
    }
    for part in parts:
        out.append(bench[part]())
    cmd = (
        "python -m benchmarks.minmax"
        + (" --quick" if args.quick else "")
        + (f" --time-limit {args.time_limit:g}" if args.time_limit else "")
        + (f" --backend {args.backend}" if args.backend != "numpy" else "")
        + ("" if set(parts) == set(PARTS) else f" --only {','.join(parts)}")
    )
    md = (
        f"## minmax: discrete min-max violation local search\n\n"
        f"Command: `{cmd}` ({time.monotonic() - start:.0f} s in all). Machine: {machine()}, a shared "
        f"machine (about 9 agents on 2 cores), so times are indicative; NumPy backend, no GPU.\n\n"
        + "\n\n".join(out)
    )
    print(md)
    if not args.no_write and not args.quick and set(parts) == set(PARTS):
        write_section("minmax", md)
        print("wrote the 'minmax' section of docs/benchmarks.md")


if __name__ == "__main__":
    main()
