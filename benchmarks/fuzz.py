"""Fuzzing: mutated instances of the five problems through loading, solving and checking.

    .venv/bin/python -m benchmarks.fuzz [--n 10000] [--seed 0] [--time-limit 0.1] [--write]

Each case takes a small generated instance, applies 1-3 random mutations to its JSON (a number
replaced by an extreme value, a wrong type, a list emptied, shortened or grown, a key dropped or
an unknown key added), writes it to a file and then does what a user would: `optkit.load`, and
for what loads, `optkit.solve` with a random solver of the problem at `--time-limit`. Counted:

- tracebacks: any exception other than `InputError` from loading or solving, and `error`
  results that carry a solver's traceback;
- late: runs whose `runtime_s` exceeds the time limit + 1 s;
- rejected: results the checker rejected (a solution it finds infeasible, a wrong objective or
  a bound its own solution beats).

The target (issue 26) is 0 of each. `--write` replaces the section "fuzz" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optkit
from benchmarks._common import machine, markdown_table, write_section
from optkit.errors import InputError
from optkit.registry import generators, solver_specs

#: small instances of each problem: (generator options), so that a solve takes milliseconds
BASES: dict[str, list[dict]] = {
    "tardiness": [dict(n=4), dict(n=9), dict(n=25)],
    "pod-packing": [dict(nodes=2, pods_per_node=3), dict(nodes=4, pods_per_node=4, priorities=2)],
    "expert-placement": [dict(shape="tiny"), dict(shape="tiny", comm_weight=0.5, nodes=2)],
    "gpu-selection": [dict(slice_factor=2), dict(slice_factor=3, packing="per_instance")],
    "software-pipelining": [dict(n=5), dict(n=8, warp_groups=2)],
}

EXTREMES: list[Any] = [
    0,
    -1,
    1,
    2,
    0.5,
    -0.0,
    1e-300,
    2**31 - 1,
    2**31,
    2**53,
    2**53 + 1,
    2**63,
    2**70,
    10**400,
    1e308,
    -(2**63),
    "7",
    None,
    True,
    [],
    {},
    [1, 2],
]


def base_instances(seed: int) -> dict[str, list[dict]]:
    """The JSON data of the base instances (generated with `seed`)."""
    gens = generators()
    out: dict[str, list[dict]] = {}
    for problem, options in BASES.items():
        out[problem] = []
        for opts in options:
            try:
                out[problem].append(gens[problem](seed=seed, **opts).to_dict())
            except TypeError:  # an option this generator does not take
                out[problem].append(gens[problem](seed=seed).to_dict())
    return out


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to every value inside `data` (dict keys and list indices)."""
    found = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found += _paths(v, (*prefix, i))
    return found


def _get(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def mutate(data: dict, rng: random.Random) -> dict:
    """`data` with one random mutation (a deep copy; `problem` itself is mutated rarely)."""
    data = json.loads(json.dumps(data))
    paths = [p for p in _paths(data) if p and p[0] != "problem"]
    if rng.random() < 0.02:
        paths = [("problem",)]
    path = rng.choice(paths)
    value = _get(data, path)
    kind = rng.random()
    if isinstance(value, list) and value and kind < 0.3:
        choice = rng.randrange(3)
        if choice == 0:
            value.clear()
        elif choice == 1:
            del value[rng.randrange(len(value)) :]
        else:
            value.append(json.loads(json.dumps(rng.choice(value))))
    elif isinstance(value, dict) and kind < 0.3:
        if value and rng.random() < 0.5:
            del value[rng.choice(list(value))]
        else:
            value["unknown_key"] = 1
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and kind < 0.75:
        factor = rng.choice([0, 2, 10, 1000, 10**6, 10**9, 2**40, -1])
        _set(data, path, value * factor)
    else:
        _set(data, path, json.loads(json.dumps(rng.choice(EXTREMES))))
    return data


def dump_json(data: Any) -> str:
    """JSON text, with the integer literals Python's json writes for huge ints (10**400 too)."""
    return json.dumps(data)


def run_case(path: Path, solver: str, time_limit: float) -> str:
    """'input error', 'ok', or what went wrong: 'traceback: ...', 'late: ...', 'rejected: ...'."""
    try:
        problem = optkit.load(path)
    except InputError:
        return "input error"
    except Exception as e:  # noqa: BLE001 - this is what the fuzz looks for
        return f"traceback: load: {type(e).__name__}: {e}"[:300]
    if solver not in {s.name for s in solver_specs(problem.kind)}:
        solver = solver_specs(problem.kind)[0].name
    try:
        result = optkit.solve(problem, solver, time_limit=time_limit)
    except InputError:
        return "input error"
    except Exception as e:  # noqa: BLE001
        return f"traceback: solve {solver}: {type(e).__name__}: {e}"[:300]
    if result.runtime_s > time_limit + 1.0:
        return f"late: {solver} {result.runtime_s:.2f} s"
    message = result.message or ""
    if result.status.value == "error":
        if "traceback" in result.stats:
            return f"traceback: {solver}: {message}"[:300]
        if "checker" in message or "claimed" in message:
            return f"rejected: {solver}: {message}"[:300]
    return "ok"


def fuzz(n: int, seed: int, time_limit: float, folder: Path, log: bool = True) -> Counter:
    rng = random.Random(seed)
    bases = base_instances(seed)
    names = {p: [s.name for s in solver_specs(p) if s.available] for p in bases}
    outcomes: Counter = Counter()
    failures: list[str] = []
    for i in range(n):
        problem = list(bases)[i % len(bases)]
        data = rng.choice(bases[problem])
        for _ in range(rng.choice([1, 1, 2, 3])):
            data = mutate(data, rng)
        path = folder / f"case{i}.json"
        path.write_text(dump_json(data))
        what = run_case(path, rng.choice(names[problem]), time_limit)
        outcomes[(problem, what.split(":")[0])] += 1
        if what not in ("ok", "input error"):
            failures.append(f"case {i} ({problem}): {what}")
            if log:
                print(failures[-1], flush=True)
                print("   ", dump_json(data)[:400], flush=True)
        path.unlink()
        if log and (i + 1) % 500 == 0:
            print(f"{i + 1} cases: {dict(Counter(k[1] for k in outcomes.elements()))}", flush=True)
    return outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=0.1)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = fuzz(args.n, args.seed, args.time_limit, Path(tmp))
    wall = time.monotonic() - t0
    kinds = ["ok", "input error", "traceback", "late", "rejected"]
    rows = [[problem] + [outcomes[(problem, k)] for k in kinds] for problem in BASES]
    rows.append(["all"] + [sum(outcomes[(p, k)] for p in BASES) for k in kinds])
    table = markdown_table(["problem", *kinds], rows)
    print(table)
    print(f"{args.n} cases in {wall:.0f} s")
    if args.write:
        write_section(
            "fuzz",
            f"""## Fuzz

{args.n} mutated instances (seed {args.seed}), a random solver each at a
{args.time_limit:g} s time limit: `ok` (loaded and solved, the answer checked), `input error`
(refused when loading: an `InputError` naming the file and the field), `traceback` (any other
exception, or a solver's exception turned into an `error` result), `late` (runtime past the
limit + 1 s), `rejected` (an answer the checker rejected). Target: 0 in the last three columns.

```
.venv/bin/python -m benchmarks.fuzz --n {args.n} --seed {args.seed} --time-limit {args.time_limit:g} --write
```

{table}

{wall:.0f} s in all. Machine: {machine()}, shared with other jobs while it ran.
""",
        )


if __name__ == "__main__":
    main()
