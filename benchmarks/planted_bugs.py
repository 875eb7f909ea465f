"""Plant one bug per rule of each checker and count how often the default tests catch it.

Each bug is an edit of one line of a checker (or a helper it calls), installed by
`benchmarks._planting` in a fresh process, which then runs the problem's checker tests
(`benchmarks._planting.checker_tests`: the tests of `tests/test_checkers.py` and
`tests/test_checker_boundaries.py` whose name holds the problem) once per run with
the hypothesis profile "planted": the "ci" example budget, no example database and no shrinking, so
that every run is a new random search and no run replays another's failure. A bug is caught in a
run when a test fails. Results go to docs/benchmarks.md, section "checkers".

    python -m benchmarks.planted_bugs [--runs 20] [--only NAME] [--no-doc]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue as queue_module
import sys
import time

from benchmarks._common import ROOT, machine, write_section

SP = "optkit.problems.software_pipelining:SoftwarePipelining"
TD = "optkit.problems.tardiness:Tardiness"
PP = "optkit.problems.pod_packing"
EP = "optkit.problems.expert_placement:ExpertPlacement"
GS = "optkit.problems.gpu_selection:GpuSelection"

#: name -> (problem, rule, target, old text, new text)
BUGS: dict[str, tuple[str, str, str, str, str]] = {
    "sp-distance-2-as-3": (
        "software_pipelining",
        "dependence distance",
        f"{SP}.violations",
        "if start[v] + d * ii <",
        "if start[v] + (3 if d == 2 else d) * ii <",
    ),
    "sp-handoff-ignored": (
        "software_pipelining",
        "handoff across groups",
        f"{SP}.violations",
        "extra = wg.handoff",
        "extra = 0",
    ),
    "sp-no-modulo-wrap": (
        "software_pipelining",
        "modulo resources",
        f"{SP}.violations",
        "key = (u, (start[v] + off) % ii)",
        "key = (u, start[v] + off)",
    ),
    "sp-register-lifetime-no-distance": (
        "software_pipelining",
        "register lifetime",
        f"{SP}.lifetime",
        "end = max(end, start[w] + d * ii)",
        "end = max(end, start[w])",
    ),
    "sp-register-limit-off-by-one": (
        "software_pipelining",
        "register limit",
        f"{SP}.violations",
        "if live[g][r] > wg.reg_limit[g]:",
        "if live[g][r] > wg.reg_limit[g] + 1:",
    ),
    "sp-blocking-wait-ignored": (
        "software_pipelining",
        "group occupancy",
        f"{SP}.occupancy",
        "if u == v and blocking and",
        "if u == v and False and",
    ),
    "td-release-ignored": (
        "tardiness",
        "release dates",
        f"{TD}.completion_times",
        "t = max(t, r[j]) + p[j]",
        "t = t + p[j]",
    ),
    "td-due-date-counts-as-late": (
        "tardiness",
        "on time at the due date",
        f"{TD}.evaluate",
        "tard = [max(0, cj - d)",
        "tard = [max(0, cj - d + 1)",
    ),
    "pp-capacity-tie-rejected": (
        "pod_packing",
        "capacity",
        f"{PP}:PodPacking.evaluate",
        "if c is not None and q > c:",
        "if c is not None and q >= c:",
    ),
    "pp-toleration-effect-ignored": (
        "pod_packing",
        "taints and tolerations",
        f"{PP}:Toleration.tolerates",
        "if self.effect and self.effect != taint.effect:",
        "if False:",
    ),
    "pp-tiers-not-cumulative": (
        "pod_packing",
        "priority tiers",
        "optkit.problems.pod_objective:prefix_sums",
        "out.append([a + placed[k], b + evicted[k], c + moved[k]])",
        "out.append([placed[k], evicted[k], moved[k]])",
    ),
    "ep-same-gpu-replicas-allowed": (
        "expert_placement",
        "replicas on distinct GPUs",
        f"{EP}.evaluate",
        "dup = int(np.maximum(X - 1, 0).sum())",
        "dup = 0",
    ),
    "ep-load-not-split": (
        "expert_placement",
        "load split over replicas",
        f"{EP}._gpu_loads",
        "share = np.divide(self.load_array, r,",
        "share = np.divide(self.load_array, 1 + 0 * r,",
    ),
    "gs-full-load-rejected": (
        "gpu_selection",
        "instance load <= 1",
        f"{GS}.evaluate",
        "if load > 1:",
        "if load >= 1:",
    ),
    "gs-duplicate-slice-accepted": (
        "gpu_selection",
        "each slice once",
        f"{GS}.evaluate",
        "if (b, a.slice) in seen:",
        "if False:",
    ),
    "gs-max-count-off-by-one": (
        "gpu_selection",
        "max_count",
        f"{GS}.evaluate",
        "if cap is not None and c > cap:",
        "if cap is not None and c > cap + 1:",
    ),
}


def _runs(name: str, runs: int, queue) -> None:
    """In a fresh process: plant the bug, then run the problem's checker tests `runs` times."""
    os.environ["HYPOTHESIS_PROFILE"] = "planted"
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (registers and loads the hypothesis profiles)
    from benchmarks._planting import checker_tests, plant

    tests = checker_tests(BUGS[name][0])
    plant(*BUGS[name][2:])
    caught, by = 0, set()
    for _ in range(runs):
        for test in tests:
            try:
                test()
            except Exception:  # noqa: BLE001 - a failing test is a catch
                caught += 1
                by.add(getattr(test, "func", test).__name__)
                break
    queue.put((caught, sorted(by)))


def run(name: str, runs: int) -> tuple[int, list[str]]:
    """How many of `runs` independent runs catch the bug, and the tests that caught it first
    (one process per bug, the bug planted before the tests run; the hand-built tests run first;
    each run is a new random search: no example database)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_runs, args=(name, runs, queue), daemon=True)
    proc.start()
    while True:
        try:
            caught, by = queue.get(timeout=1)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise SystemExit(f"{name}: the process died (exit code {proc.exitcode})") from None
    proc.join()
    return caught, by


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", action="append", help="bug name (repeatable)")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args(argv)
    names = args.only or list(BUGS)
    rows = []
    load_before = os.getloadavg()[0]
    for name in names:
        started = time.monotonic()
        caught, by = run(name, args.runs)
        seconds = time.monotonic() - started
        problem, rule = BUGS[name][:2]
        rows.append((name, problem, rule, caught, by))
        print(f"{name:36} {caught:3}/{args.runs}  {seconds:6.1f} s  {', '.join(by)}", flush=True)
    if not args.no_doc:
        lines = [
            "### Planted bugs",
            "",
            "One bug per rule, planted as a one-line edit of the checker; each run is a new random",
            "search of the problem's checker tests (`tests/test_checkers.py`, the hypothesis tests,",
            "and `tests/test_checker_boundaries.py`, hand-built, run first) with the hypothesis",
            f"profile `planted` (100 examples per test, no example database). {args.runs} runs per",
            "bug; *first caught by*: the tests that failed first in some run.",
            "",
            "| bug | problem | rule | caught | first caught by |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{n}` | {p} | {r} | {c}/{args.runs} | {', '.join(f'`{t}`' for t in by)} |"
            for n, p, r, c, by in rows
        ]
        lines += [
            "",
            f"Command: `python -m benchmarks.planted_bugs --runs {args.runs}`; {machine()}, "
            f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        ]
        write_section("checkers-planted", "\n".join(lines))
    return 0 if all(row[3] == args.runs for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
