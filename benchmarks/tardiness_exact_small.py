"""Do the exact tardiness solvers (mip, cpsat) prove small generated instances quickly?

    .venv/bin/python -m benchmarks.tardiness_exact_small [--n 10,11,12] [--seeds 5]
        [--solvers mip,cpsat,mip:formulation=positional] [--time-limit 10]

Each instance is `optkit generate tardiness --n N --seed S`; its optimum comes from `dp` (which
proves these in milliseconds), and each solver runs in this process with one thread
(`solver:key=value` passes a parameter; several are separated by `;`). Prints a
markdown table (seconds to the proof, with the CPU seconds of this process beside them) for
docs/notes/tardiness_exact_small.md.
"""

from __future__ import annotations

import argparse
import time

import optkit
from benchmarks._common import markdown_table
from optkit.problems.tardiness import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="10,11,12")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--solvers", default="mip,cpsat")
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args()
    solvers = args.solvers.split(",")
    rows = []
    for n in (int(x) for x in args.n.split(",")):
        for seed in range(args.seeds):
            problem = generate(seed=seed, n=n)
            optimum = optkit.solve(problem, "dp", time_limit=60).objective
            cells = [n, seed, optimum]
            for solver in solvers:
                name, _, given = solver.partition(":")
                params = dict(kv.split("=", 1) for kv in given.split(";") if kv)
                cpu = time.process_time()
                res = optkit.solve(problem, name, time_limit=args.time_limit, **params)
                cpu = time.process_time() - cpu
                if res.objective is not None and res.objective < optimum:
                    raise SystemExit(f"{solver} beat dp's optimum on n={n} seed={seed}: a bug")
                if res.status.value == "optimal":
                    cells.append(f"{res.runtime_s:.2f} ({cpu:.2f})")
                else:
                    cells.append(f"not proven: {res.objective} / bound {res.bound}")
            rows.append(cells)
            print(*cells, flush=True)
    header = ["n", "seed", "optimum"] + [f"{s}: s to proof (CPU s)" for s in solvers]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
