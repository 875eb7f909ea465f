"""Overhead per task of `optkit batch`: N tiny tardiness instances x the `edd` rule (a solve of
~0.1 ms), local executor and a local Ray cluster.

    .venv/bin/python -m benchmarks.batch_overhead [--n 1000] [--jobs 2] [--no-ray] [--write]

Overhead per task = (wall time of the batch x workers - sum of the solves' runtime_s) / N, i.e. the
worker time each task costs beyond its solve (loading, checking, pipes, writing the line).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optkit
from benchmarks._common import machine, markdown_table, write_section
from optkit.batch import run_batch
from optkit.problems.tardiness import generate


def measure(folder: Path, out: Path, executor: str, jobs: int) -> dict:
    t0 = time.monotonic()
    run = run_batch([str(folder)], ["edd"], output=out, executor=executor, jobs=jobs)
    wall = time.monotonic() - t0
    solve = sum(d["runtime_s"] for d in run.new_lines)
    n = len(run.new_lines)
    workers = jobs if executor == "local" else 2
    return {
        "executor": executor,
        "tasks": n,
        "errors": run.failures,
        "wall": wall,
        "solve": solve,
        "per_task_ms": 1000 * (wall * workers - solve) / n,
        "throughput": n / wall,
        "workers": workers,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "inst"
        for seed in range(args.n):
            optkit.dump(generate(seed=seed, n=10), folder / f"t{seed:05d}.json")
        results = [measure(folder, Path(tmp) / "local.jsonl", "local", args.jobs)]
        if not args.no_ray:
            import ray

            t0 = time.monotonic()
            ray.init(
                num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
            )
            start = time.monotonic() - t0
            try:
                r = measure(folder, Path(tmp) / "ray.jsonl", "ray", 2)
                r["note"] = f"ray.init {start:.1f} s not included"
                results.append(r)
            finally:
                ray.shutdown()
    for r in results:
        rows.append(
            [
                r["executor"],
                r["workers"],
                r["tasks"],
                r["errors"],
                f"{r['wall']:.1f}",
                f"{1000 * r['solve'] / r['tasks']:.2f}",
                f"{r['per_task_ms']:.1f}",
                f"{r['throughput']:.0f}",
                r.get("note", ""),
            ]
        )
        print(rows[-1])
    table = markdown_table(
        [
            "executor",
            "workers",
            "tasks",
            "errors",
            "wall s",
            "solve ms/task",
            "overhead ms/task",
            "tasks/s",
            "note",
        ],
        rows,
    )
    text = (
        f"## batch: executor overhead\n\n{args.n} tiny tardiness instances (n = 10 jobs) x `edd`; "
        f"overhead per task = (wall x workers - sum of solve times) / tasks; target <= 50 ms.\n"
        f"Machine: {machine()}, shared with other jobs (timings are noisy).\n\n{table}\n\n"
        f"Command: `.venv/bin/python -m benchmarks.batch_overhead --n {args.n} --jobs {args.jobs}"
        f"{' --no-ray' if args.no_ray else ''} --write`\n"
    )
    if args.write:
        write_section("batch", text)
    print(text)


if __name__ == "__main__":
    main()
