"""Mutation testing of the problem checkers: how many small edits of a checker the tests notice.

For each problem, every function the checker runs (`evaluate` and the helpers it calls, listed in
TARGETS) is parsed, and each mutation point gives one mutant: an arithmetic operator swapped
(+ -, * /, // %), a comparison flipped (< <=, > >=, == !=, in / not in, is / is not), an integer
constant moved by one either way, `and` / `or` swapped, a `not` dropped, an `if` condition negated,
`min` / `max` swapped. Text inside f-strings (the violation messages) is left alone.

Each mutant is installed in a worker process (benchmarks._planting) and the problem's checker tests
run against it (`benchmarks._planting.checker_tests`: the tests of tests/test_checkers.py and
tests/test_checker_boundaries.py whose name holds the problem, the hand-built ones first, stopping at
the first failure; hypothesis profile "planted": 100 examples, no database, no shrinking). Each
worker first runs them on the checker as it is: they must pass, and that run's time, times
TIMEOUT_FACTOR (at least --timeout seconds), is the limit per mutant. A mutant is killed when a test
fails or it runs past the limit (an endless loop, as mutmut counts it); it survives otherwise.
Results: the kill rate per problem in docs/benchmarks.md (section "checkers-mutation") and every
survivor in benchmarks/results/mutation_survivors.txt.

mutmut 3.8.1 was not used: it mutates whole files (the generators, importers and renderers beside
the checkers) and first maps the whole test suite to functions, hours on this shared machine; a
per-function runner is a page of code.

    python -m benchmarks.mutation [--problem NAME] [--jobs 1] [--timeout 10] [--no-doc]
"""

from __future__ import annotations

import argparse
import ast
import multiprocessing as mp
import os
import queue as queue_module
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

from benchmarks._common import ROOT, machine, write_section

P = "optkit.problems"
TARGETS: dict[str, list[str]] = {
    "tardiness": [
        f"{P}.tardiness:Tardiness.{f}" for f in ("evaluate", "completion_times", "w", "r")
    ],
    "pod_packing": [
        f"{P}.pod_packing:{f}"
        for f in (
            "Toleration.tolerates",
            "Requirement.matches",
            "PodPacking.resources",
            "PodPacking.request",
            "PodPacking.capacity",
            "PodPacking.priorities",
            "PodPacking.current",
            "PodPacking._static_ok",
            "PodPacking.may_stay",
            "PodPacking.allowed",
            "PodPacking.priority_level",
            "PodPacking.objective_terms",
            "PodPacking.objective_of",
            "PodPacking.placement_of",
            "PodPacking.evaluate",
            "PodPacking._metrics",
        )
    ]
    + [
        f"{P}.pod_objective:{f}"
        for f in ("objective", "prefix_sums", "terms_of", "_levels_at_or_above", "Term.value")
    ],
    "expert_placement": [
        f"{P}.expert_placement:ExpertPlacement.{f}"
        for f in (
            "load_array",
            "affinity_array",
            "node_of_gpu",
            "num_nodes",
            "link_costs",
            "weight",
            "replica_matrix",
            "_gpu_loads",
            "_traffic",
            "objective_of",
            "_objective",
            "evaluate",
        )
    ],
    "gpu_selection": [f"{P}.gpu_selection:exact", f"{P}.gpu_selection:first_fit_decreasing"]
    + [
        f"{P}.gpu_selection:GpuSelection.{f}"
        for f in (
            "buckets",
            "slice_rate",
            "loads",
            "costs",
            "can_serve",
            "exact_cost",
            "single_type_count",
            "single_type_baseline",
            "evaluate",
        )
    ],
    "software_pipelining": [
        f"{P}.software_pipelining:SoftwarePipelining.{f}"
        for f in (
            "arcs",
            "value_arcs",
            "uses",
            "issue",
            "handoff",
            "default_horizon",
            "horizon_for",
            "res_mii",
            "recurrence_ok",
            "rec_mii",
            "zero_distance_cycle",
            "violations",
            "occupancy",
            "lifetime",
            "register_use",
            "evaluate",
        )
    ],
}

#: a mutant is killed by timeout when its tests run this many times as long as on the checker as it
#: is (and at least --timeout seconds): the limit of an endless loop, as mutmut's
TIMEOUT_FACTOR = 3

_SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
_SWAP_BIN.update({ast.FloorDiv: ast.Mod, ast.Mod: ast.FloorDiv})
_SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
_SWAP_CMP.update({ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In})
_SWAP_CMP.update({ast.Is: ast.IsNot, ast.IsNot: ast.Is})


#: (function, mutation, source line) -> why the mutant cannot change what the checker reports
_T0 = "t, completion = 0, [0] * self.n"
_CAP20 = "return CheckReport.infeasible(*violations[:20], metrics=metrics)"
_CAP5 = "return CheckReport.infeasible(*bad[:5])"
_DUP = "l, e, g = (int(v) for v in np.argwhere(X > 1)[0])"
_SPLIT = "share = np.divide(self.load_array, r, out=np.zeros_like(self.load_array), where=r > 0)"
_EMPTY_ROW = "X = np.zeros((L, E + 1, G), dtype=int)  # row E collects the empty slots (-1)"
_EMPTY_AT = "np.add.at(X[l], (np.where(arr[l] < 0, E, arr[l]), gpu), 1)"
_MESSAGE = "only the example the message names changes"
_NO_GROUPS = "group: list[int | None] = [0] * self.n"
_UNREAD = "without warp groups `group` is never read (violations gets [None] * n)"
_HI = "hi = max(1, sum(lat for _, _, lat, _, _ in self.arcs))"
_HI_WHY = "the bisection runs only when II 1 fails, so a cycle has latency >= 2 and the sum is >= 2"
_DIST = "dist = [0] * n  # longest path from a virtual source to every node"
_SHIFT = "a common shift of every distance changes no comparison w > dist[v]"
_COMP = "if len(comp) > 1 and any("
_SINGLE = "a one-op component qualifies only by a self-loop, which returned earlier"
EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "Tardiness.completion_times",
        "0 -> -1",
        _T0,
    ): "max(t, r_j) with r_j >= 0; entries overwritten",
    ("Tardiness.completion_times", "0 -> 1", _T0): "the initial entries are all overwritten",
    (
        "Tardiness.r",
        "0 -> -1",
        "return self.release_dates if self.release_dates is not None else (0,) * self.n",
    ): "max(t, -1) = t for t >= 0",
    ("PodPacking.evaluate", "20 -> 21", _CAP20): "how many messages are shown (cosmetic)",
    ("PodPacking.evaluate", "20 -> 19", _CAP20): "how many messages are shown (cosmetic)",
    ("ExpertPlacement.evaluate", "5 -> 6", _CAP5): "how many messages are shown (cosmetic)",
    ("ExpertPlacement.evaluate", "5 -> 4", _CAP5): "how many messages are shown (cosmetic)",
    ("ExpertPlacement.evaluate", "0 -> -1", _DUP): _MESSAGE,
    ("ExpertPlacement.evaluate", "Gt -> GtE", _DUP): _MESSAGE,
    ("ExpertPlacement.evaluate", "1 -> 0", _DUP): _MESSAGE,
    ("ExpertPlacement.evaluate", "0 -> -1", "l, e = (int(v) for v in missing[0])"): _MESSAGE,
    (
        "ExpertPlacement._gpu_loads",
        "Gt -> GtE",
        _SPLIT,
    ): "r >= 1: missing experts are rejected first",
    ("ExpertPlacement._gpu_loads", "0 -> -1", _SPLIT): "r >= 1: missing experts are rejected first",
    ("ExpertPlacement.replica_matrix", "1 -> 2", _EMPTY_ROW): "the extra row is sliced off",
    ("ExpertPlacement.replica_matrix", "0 -> -1", _EMPTY_AT): "index -1 is row E, the same row",
    ("ExpertPlacement._traffic", "0 -> -1", "if tot == 0:"): "a pair without tokens adds 0",
    ("ExpertPlacement._traffic", "1 -> 0", "if N == 1:"): "one node: the general sum is 1 too",
    (
        "ExpertPlacement.affinity_array",
        "2 -> 1",
        "if self.affinity is None or self.num_layers < 2:",
    ): "one layer: no pair of consecutive layers, the traffic loop is empty, the same metrics",
    ("_levels_at_or_above", "0 -> 1", "n = 0"): (
        "every threshold is one of the levels, so the highest level always counts"
    ),
    ("SoftwarePipelining.evaluate", "0 -> 1", _NO_GROUPS): _UNREAD,
    ("SoftwarePipelining.evaluate", "0 -> -1", _NO_GROUPS): _UNREAD,
    ("SoftwarePipelining.register_use", "0 -> -1", "g = group[v] if wg else 0"): (
        "without warp groups there is one row: index -1 is row 0"
    ),
    ("SoftwarePipelining.rec_mii", "1 -> 0", "lo = 1  # infeasible"): (
        "II 0 is infeasible too (a positive cycle exists): the bisection of a monotone test "
        "ends at the same least feasible II"
    ),
    ("SoftwarePipelining.rec_mii", "1 -> 2", _HI): _HI_WHY,
    ("SoftwarePipelining.rec_mii", "1 -> 0", _HI): _HI_WHY,
    ("SoftwarePipelining.recurrence_ok", "0 -> 1", _DIST): _SHIFT,
    ("SoftwarePipelining.recurrence_ok", "0 -> -1", _DIST): _SHIFT,
    ("SoftwarePipelining.recurrence_ok", "1 -> 2", "for _ in range(n + 1):"): (
        "more rounds than needed: without a positive cycle nothing changes after round n - 1"
    ),
    ("SoftwarePipelining.recurrence_ok", "1 -> 0", "for _ in range(n + 1):"): (
        "n rounds suffice: longest paths have n - 1 arcs, round n sees no change"
    ),
    ("SoftwarePipelining.zero_distance_cycle", "1 -> 0", _COMP): _SINGLE,
    ("SoftwarePipelining.zero_distance_cycle", "Gt -> GtE", _COMP): _SINGLE,
}


@dataclass
class Mutant:
    problem: str
    target: str
    index: int  # the index-th mutation point of the target
    line: int  # in the module's file
    what: str
    source: str

    @property
    def function(self) -> str:
        return self.target.split(":")[1]

    @property
    def code(self) -> str:
        """The mutated line as it reads in the module, stripped."""
        import linecache

        from benchmarks._planting import locate

        return linecache.getline(locate(self.target)[0].__file__, self.line).strip()

    @property
    def equivalent(self) -> str | None:
        return EQUIVALENT.get((self.function, self.what, self.code))


def _points(tree: ast.AST) -> Iterator[tuple[ast.AST, str, object]]:
    """(node, description, how) for every mutation point, in a fixed order; f-strings skipped."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _SWAP_BIN:
            new = _SWAP_BIN[type(node.op)]
            yield node, f"{type(node.op).__name__} -> {new.__name__}", ("op", new)
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in _SWAP_CMP:
                    new = _SWAP_CMP[type(op)]
                    yield node, f"{type(op).__name__} -> {new.__name__}", ("cmp", k, new)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            for delta in (1, -1):
                yield node, f"{node.value} -> {node.value + delta}", ("const", delta)
        elif isinstance(node, ast.BoolOp):
            new = ast.Or if isinstance(node.op, ast.And) else ast.And
            yield node, f"{type(node.op).__name__} -> {new.__name__}", ("bool", new)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "not x -> x", ("not",)
        elif isinstance(node, (ast.If, ast.While)) and not isinstance(node.test, ast.Constant):
            yield node, "if c -> if not c", ("negate",)
        elif isinstance(node, ast.Name) and node.id in ("min", "max"):
            new = "max" if node.id == "min" else "min"
            yield node, f"{node.id} -> {new}", ("name", new)


def _apply(node: ast.AST, how: tuple) -> None:
    kind = how[0]
    if kind in ("op", "bool"):
        node.op = how[1]()
    elif kind == "cmp":
        node.ops[how[1]] = how[2]()
    elif kind == "const":
        node.value = node.value + how[1]
    elif kind == "not":
        node.__class__, node.operand = _Same, node.operand  # replaced below by its operand
    elif kind == "negate":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    elif kind == "name":
        node.id = how[1]


class _Same(ast.AST):
    """Marker: a `not x` whose `not` was dropped (unwrapped by _Unwrap)."""


class _Unwrap(ast.NodeTransformer):
    def visit(self, node):
        node = self.generic_visit(node)
        return node.operand if isinstance(node, _Same) else node


def mutants(problem: str) -> list[Mutant]:
    from benchmarks._planting import locate, source

    out = []
    for target in TARGETS[problem]:
        text = source(target)
        first_line = locate(target)[3].__code__.co_firstlineno  # decorators included, as in text
        count = sum(1 for _ in _points(ast.parse(text)))
        for k in range(count):
            tree = ast.parse(text)
            node, what, how = list(_points(tree))[k]
            line = first_line + getattr(node, "lineno", 1) - 1
            _apply(node, how)
            tree = ast.fix_missing_locations(_Unwrap().visit(tree))
            out.append(Mutant(problem, target, k, line, what, ast.unparse(tree)))
    return out


# -- worker ----------------------------------------------------------------------------------------


class _Timeout(BaseException):
    """Raised by the timer in the test: a BaseException, so that hypothesis does not take it for a
    failure of the example and replay that example (which would loop again, with no timer left)."""


def _alarm(signum, frame):
    raise _Timeout()


def _run_tests(tests: list, seconds: float | None) -> str:
    """Run the tests in turn, stopping at the first failure: 'survived' or 'killed (why)'."""
    try:
        if seconds is not None:
            signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)  # again every second till cleared
        for test in tests:
            test()
        return "survived"
    except _Timeout:
        return "killed (timeout)"
    except BaseException as e:  # noqa: BLE001 - any failure of a test kills the mutant
        return f"killed ({type(e).__name__})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _worker(problem: str, batch: list[Mutant], timeout: float, queue) -> None:
    """Run the problem's checker tests against each mutant in turn, in this one process.

    First against the checker as it is: every test must pass, and that run's time sets the
    per-mutant timeout (TIMEOUT_FACTOR times it, at least `timeout` seconds)."""
    os.environ["HYPOTHESIS_PROFILE"] = "planted"
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (registers and loads the hypothesis profiles)
    from benchmarks._planting import checker_tests, install, locate

    tests = checker_tests(problem)
    started = time.monotonic()
    baseline = _run_tests(tests, None)
    if baseline != "survived":
        queue.put(("baseline", baseline))
        return
    limit = max(timeout, TIMEOUT_FACTOR * (time.monotonic() - started))
    signal.signal(signal.SIGALRM, _alarm)
    for m in batch:
        _, owner, name, _ = locate(m.target)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        try:
            install(m.target, m.source)
            verdict = _run_tests(tests, limit)
        finally:
            setattr(owner, name, original)
        queue.put((m.target, m.index, verdict))
    queue.put(None)


def run(problem: str, timeout: float, jobs: int) -> list[tuple[Mutant, str]]:
    todo = mutants(problem)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(problem, todo[k::jobs], timeout, queue), daemon=True)
        for k in range(jobs)
    ]
    for p in procs:
        p.start()
    by_key = {(m.target, m.index): m for m in todo}
    results, done = [], 0
    while done < jobs:
        try:
            item = queue.get(timeout=1)
        except queue_module.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise SystemExit(f"{problem}: a worker died (see its traceback above)") from None
            continue
        if item is None:
            done += 1
            continue
        if item[0] == "baseline":
            raise SystemExit(f"{problem}: the tests fail on the checker as it is: {item[1]}")
        results.append((by_key[item[:2]], item[2]))
    for p in procs:
        p.join()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", action="append", choices=list(TARGETS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10.0, help="least seconds per mutant")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args(argv)
    rows, survivors, equivalents = [], [], []
    load_before = os.getloadavg()[0]
    for problem in args.problem or list(TARGETS):
        started = time.monotonic()
        results = run(problem, args.timeout, args.jobs)
        seconds = time.monotonic() - started
        killed = sum(1 for _, v in results if v.startswith("killed"))
        timeouts = sum(1 for _, v in results if v == "killed (timeout)")
        alive = sorted(
            (m for m, v in results if v == "survived"), key=lambda m: (m.target, m.index)
        )
        equivalent = [m for m in alive if m.equivalent]
        counted = len(results) - len(equivalent)
        rate = killed / counted if counted else 1.0
        rows.append((problem, len(results), killed, timeouts, len(equivalent), rate, seconds))
        print(
            f"{problem:20} {killed}/{counted} killed ({rate:.1%}), "
            f"{len(equivalent)} equivalent, {timeouts} timeouts, {seconds:.0f} s",
            flush=True,
        )
        for m in alive:
            (equivalents if m.equivalent else survivors).append(m)
    out = ROOT / "benchmarks" / "results" / "mutation_survivors.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        "# survivors not explained\n"
        + "".join(
            f"{m.problem}\t{m.function}\tline {m.line}\t{m.what}\t{m.code}\n" for m in survivors
        )
        + "# equivalent survivors, with the reason\n"
        + "".join(
            f"{m.problem}\t{m.function}\tline {m.line}\t{m.what}\t{m.code}\t{m.equivalent}\n"
            for m in equivalents
        )
    )
    if not args.no_doc:
        lines = [
            "### Mutation testing",
            "",
            "Kill rate = killed / (mutants - equivalent); the equivalent mutants are listed below with",
            "the reason (`EQUIVALENT` in `benchmarks/mutation.py`).",
            "",
            "| problem | mutants | killed | of them by timeout | equivalent | not killed | kill rate | seconds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p} | {n} | {k} | {t} | {e} | {n - k - e} | {r:.1%} | {s:.0f} |"
            for p, n, k, t, e, r, s in rows
        ]
        command = " ".join(
            ["python -m benchmarks.mutation"]
            + [f"--problem {p}" for p in args.problem or []]
            + [f"--jobs {args.jobs}", f"--timeout {args.timeout:g}"]
        )
        lines += [
            "",
            f"Command: `{command}`; {machine()}, shared with other work (load average "
            f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end). A mutant that "
            f"runs {TIMEOUT_FACTOR} times as long as the tests on the checker as it is (at least "
            f"{args.timeout:g} s) counts as killed (an endless loop).",
            "",
            "*Not killed*" + ("" if survivors else ": none."),
        ]
        lines += [""] * bool(survivors) + [
            f"- {m.problem} `{m.function}` line {m.line}: {m.what} in `{m.code}`" for m in survivors
        ]
        lines += ["", "*Equivalent (cannot change what the checker reports), with the reason*", ""]
        lines += [
            f"- {m.problem} `{m.function}` line {m.line}: {m.what} in `{m.code}`: {m.equivalent}"
            for m in equivalents
        ]
        write_section("checkers-mutation", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
