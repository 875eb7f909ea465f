"""Do solvers keep their time limit? Every problem x solver on large generated instances.

    .venv/bin/python -m benchmarks.time_limits [--limits 1,5] [--problems P,...] [--solvers S,...]
        [--modes soft,hard] [--write]

Each run is `optkit solve INSTANCE -s SOLVER -t LIMIT --json` (plus `--hard-limit` in mode hard)
in a fresh process, so that a solver that hangs is cut off by the benchmark (at 3 x limit + 60 s,
loading included) and recorded as such. The figure is `runtime_s` of the result: the time inside
`optkit.solve`, model building included. Targets (issue 26): soft runtime <= 1.1 x limit + 0.1 s,
hard runtime <= limit + 0.3 s. Runs are cached in benchmarks/results/time_limits.json (a rerun of
some problems or solvers replaces their rows); `--write` writes the table of every cached row to
the section "time limits" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import optkit
from benchmarks._common import ROOT, machine, markdown_table, section_rows, write_section
from optkit.registry import generators, solver_specs


def _long_op_loop(seed: int = 1) -> optkit.Problem:
    """A generated loop of 40 ops with one op of the longest allowed duration (65,536 cycles)."""
    from optkit.problems.software_pipelining import MAX_CYCLES

    base = generators()["software-pipelining"](seed=seed, n=40).to_dict()
    base["ops"][0] = {**base["ops"][0], "cycles": MAX_CYCLES}
    base["ops"][0].pop("reservation", None)
    base["ops"][0].pop("issue_cycles", None)
    base["name"] = "long-op-40"
    return optkit.problem.Problem.from_dict(base)


def _gen(problem: str, name: str, **options: object) -> Callable[[], optkit.Problem]:
    def build() -> optkit.Problem:
        p = generators()[problem](seed=1, **options)
        return p.model_copy(update={"name": name})

    return build


#: the large instances of each problem (those of issue 26 among them)
INSTANCES: dict[str, list[Callable[[], optkit.Problem]]] = {
    "tardiness": [
        _gen("tardiness", "n100", n=100),
        _gen("tardiness", "n500", n=500),
    ],
    "expert-placement": [
        _gen("expert-placement", "mixtral-32gpus", shape="mixtral", gpus=32, nodes=4),
        _gen(
            "expert-placement",
            "8L-120E-16G",
            shape="qwen-moe",
            layers=8,
            experts=120,
            gpus=16,
            nodes=2,
        ),
        _gen("expert-placement", "deepseek-v3-4L", shape="deepseek-v3", layers=4),
    ],
    "gpu-selection": [
        _gen("gpu-selection", "sf64-pooled", slice_factor=64, request_rate=400.0),
        _gen(
            "gpu-selection",
            "sf64-per-instance",
            slice_factor=64,
            request_rate=400.0,
            packing="per_instance",
        ),
    ],
    "software-pipelining": [
        _gen("software-pipelining", "n120", n=120, recurrences=6),
        _long_op_loop,
    ],
    "pod-packing": [
        _gen("pod-packing", "80x10", nodes=80, pods_per_node=10, priorities=3),
        _gen("pod-packing", "200x4", nodes=200, pods_per_node=4, priorities=2),
        _gen("pod-packing", "5000x8", nodes=5000, pods_per_node=8, priorities=4, util=1.0),
    ],
}


def run_one(path: Path, solver: str, limit: float, hard: bool) -> dict:
    cmd = [sys.executable, "-m", "optkit", "solve", str(path), "-s", solver, "-t", str(limit)]
    cmd += ["--json"] + (["--hard-limit"] if hard else [])
    cap = 3 * limit + 60
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return {"runtime": None, "status": f"hung (cut off at {cap:g} s)"}
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"runtime": None, "status": f"exit {proc.returncode}: {tail[:80]}"}
    return {"runtime": result["runtime_s"], "status": result["status"]}


CACHE = ROOT / "benchmarks" / "results" / "time_limits.json"


def load_cache() -> dict:
    return json.loads(CACHE.read_text()) if CACHE.exists() else {}


def save_cache(cache: dict) -> None:
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True))


def within(runtime: float | None, limit: float, hard: bool) -> bool:
    if runtime is None:
        return False
    return runtime <= (limit + 0.3 if hard else 1.1 * limit + 0.1)


def row(key: str, runs: dict) -> tuple[list, bool]:
    """The table row of one (problem, solver, limit, kind) and whether it meets the target."""
    problem, solver, limit_s, mode = key.split("|")
    limit, hard = float(limit_s), mode == "hard"
    worst, worst_of, notes = -1.0, "", []
    for name, r in runs.items():
        runtime = r["runtime"]
        if runtime is None:
            notes.append(f"{name}: {r['status']}")
            worst, worst_of = float("inf"), name
        elif runtime > worst:
            worst, worst_of = runtime, name
        if r["status"] in ("error", "unknown"):
            notes.append(f"{name}: {r['status']}")
    ok = within(None if worst == float("inf") else worst, limit, hard)
    shown = "hang" if worst == float("inf") else f"{worst:.2f}"
    cells = [problem, solver, f"{limit:g}", mode, shown, worst_of, "yes" if ok else "**no**"]
    return cells + ["; ".join(dict.fromkeys(notes))], ok


def measure(problems: list[str], only: set[str], limits: list[float], modes: list[str]) -> None:
    """Run the combinations asked for and store them in the cache as each finishes."""
    cache = load_cache()
    with tempfile.TemporaryDirectory() as tmp:
        for problem in problems:
            paths = []
            for build in INSTANCES[problem]:
                p = build()
                paths.append((p.name, Path(tmp) / f"{problem}-{p.name}.json"))
                optkit.dump(p, paths[-1][1])
            for spec in solver_specs(problem):
                if only and spec.name not in only:
                    continue
                for limit in limits:
                    for mode in modes:
                        runs = {}
                        for name, path in paths:
                            runs[name] = run_one(path, spec.name, limit, mode == "hard")
                            print(problem, spec.name, limit, mode, name, runs[name], flush=True)
                        cache[f"{problem}|{spec.name}|{limit:g}|{mode}"] = runs
                        save_cache(cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limits", default="1,5")
    ap.add_argument("--problems", default=",".join(INSTANCES))
    ap.add_argument("--solvers", default="")
    ap.add_argument("--modes", default="soft,hard")
    ap.add_argument("--no-run", action="store_true", help="only write the cached rows")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if not args.no_run:
        measure(
            args.problems.split(","),
            set(filter(None, args.solvers.split(","))),
            [float(x) for x in args.limits.split(",")],
            args.modes.split(","),
        )
    header = ["problem", "solver", "limit (s)", "limit kind", "largest runtime (s)", "on"]
    header += ["within target", "notes"]
    cache = load_cache()
    rows = [row(key, runs)[0] for key, runs in cache.items()]
    # the rows of the previous write that this (local) cache does not hold
    for old in section_rows("time limits", "problem"):
        key = "|".join(old[h] for h in header[:4])
        if key not in cache:
            rows.append([old[h] for h in header])
    rows.sort(key=lambda cells: "|".join(cells[:4]))  # the order of the cache keys
    misses = sum(cells[6] != "yes" for cells in rows)
    table = markdown_table(header, rows)
    print(table)
    print(f"{misses} of {len(rows)} (problem, solver, limit, kind) outside the target")
    if args.write:
        instances = "; ".join(
            f"{problem}: " + ", ".join(build().name for build in builds)
            for problem, builds in INSTANCES.items()
        )
        write_section(
            "time limits",
            f"""## Time limits

Largest `runtime_s` (the time inside `optkit.solve`, model building included) over the instances
of each problem, per solver, time limit and kind of limit (`soft`: the solver's own clock; `hard`:
`--hard-limit`, the solver in a child process killed at the limit). Target: soft <= 1.1 x limit +
0.1 s, hard <= limit + 0.3 s. Instances (generated, seed 1): {instances}.
Solver errors and `unknown` answers are listed in the notes (an error within the time is still
within the target). {misses} of {len(rows)} rows outside the target. Rows that the local cache
(benchmarks/results, not in git) does not hold are carried over from the previous write.

```
.venv/bin/python -m benchmarks.time_limits --limits 1,5 --modes soft,hard --write
```

{table}

Machine: {machine()}, shared with other jobs while it ran (timings are noisy).
""",
        )


if __name__ == "__main__":
    main()
