"""The one entry point that runs any solver on any problem and returns a checked `Result`.

A solver is a function `fn(problem, options: SolveOptions) -> Outcome`. It may be wrong; the
facade is not: it runs the problem's own checker on whatever comes back, recomputes the
objective, keeps a bound only when the solver proved one, and derives status and gap here.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing as mp
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from optkit.errors import InputError, OptkitError
from optkit.problem import Problem
from optkit.process import die_with_parent
from optkit.registry import SolverSpec, get_solver, require
from optkit.result import Result, Status, Termination, relative_gap, same_objective

#: callback(solution, objective) called by solvers for every improving solution they find
Callback = Callable[[dict, Any], None]


class TimeUp(Exception):
    """The time limit ran out in the middle of a solver's work (see `SolveOptions.check_clock`)."""


@dataclass
class SolveOptions:
    """The common knobs every solver honours, plus its own `params`."""

    time_limit: float | None = None
    threads: int = 1
    seed: int = 0
    initial_solution: dict | None = None
    params: dict[str, Any] = field(default_factory=dict)
    callback: Callback | None = None
    started: float = field(default_factory=time.monotonic)
    #: the last solution reported through `report`, kept for interruptions and the wall clock
    incumbent: tuple[dict, Any] | None = field(default=None, repr=False)

    def remaining(self, default: float = float("inf")) -> float:
        """Seconds left of the time limit (never negative); `default` when there is no limit."""
        if self.time_limit is None:
            return default
        return max(0.0, self.time_limit - (time.monotonic() - self.started))

    def expired(self) -> bool:
        return self.time_limit is not None and self.remaining() <= 0.0

    def check_clock(self) -> None:
        """Raise `TimeUp` once the time limit is spent. Solvers call it between phases and inside
        long model-building loops; the facade then returns the best solution they reported."""
        if self.time_limit is not None and self.remaining() <= 0.0:
            raise TimeUp

    def report(self, solution: dict, objective: Any = None) -> None:
        """Called by a solver with each improving solution."""
        self.incumbent = (solution, objective)
        if self.callback is not None:
            self.callback(solution, objective)


@dataclass
class Outcome:
    """What a solver returns. Only claims; the facade verifies them."""

    solution: dict | None = None
    termination: Termination = Termination.COMPLETED
    proven_optimal: bool = False
    proven_infeasible: bool = False
    bound: Any = None  # a bound the solver proved, or None
    objective: Any = (
        None  # the objective the solver believes its solution has (compared, not trusted)
    )
    message: str | None = None
    stats: dict = field(default_factory=dict)


def solve(
    problem: Problem,
    solver: str | None = None,
    *,
    time_limit: float | None = None,
    threads: int = 1,
    seed: int = 0,
    initial_solution: dict | None = None,
    callback: Callback | None = None,
    hard_limit: bool = False,
    **params: Any,
) -> Result:
    """Solve `problem` with the named solver (the problem's default if None).

    `hard_limit=True` runs the solver in a child process and kills it at `time_limit` seconds of
    wall clock, returning the best solution it had reported by then. The clock starts once the
    solver's libraries are imported (a one-time cost per process). Unknown `params` raise
    `InputError`; a solver that cannot run here raises `SolverUnavailable`.

    An `initial_solution` must be feasible. The answer is never worse than it: when the solver's
    solution is worse (a solver that takes no warm start may find one), the initial solution is
    returned, and the message says so. A solver that finds nothing stays `unknown`.
    """
    if not isinstance(problem, Problem):
        raise InputError(f"solve() expects a Problem, got {type(problem).__name__}")
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"time_limit must be positive, got {time_limit}")
    if not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    spec = get_solver(problem.kind, solver)
    require(spec)
    _import_libraries(spec)
    with _collector_skips_older_objects():
        opts = SolveOptions(
            time_limit=_window(problem, time_limit),
            threads=threads,
            seed=seed,
            initial_solution=initial_solution,
            params=spec.resolve_params(params),
            callback=callback,
        )
        if opts.initial_solution is not None and not problem.check(opts.initial_solution).feasible:
            raise InputError("initial_solution: not a feasible solution of this instance")

        if hard_limit and time_limit is not None:
            outcome = _run_with_wall_clock(spec, problem, opts)
        else:
            outcome = _run(spec, problem, opts)
        result = _result(spec, problem, opts, outcome, time_limit)
        if opts.initial_solution is not None:
            result = _no_worse_than_start(spec, problem, opts.initial_solution, result)
        # the whole call from the solver's clock on: the checks of the start and the answer included
        return replace(result, runtime_s=round(time.monotonic() - opts.started, 6))


@contextlib.contextmanager
def _collector_skips_older_objects() -> Iterator[None]:
    """Python's full garbage collections leave out the objects that exist before the solve (the
    instance above all) until it ends (`gc.freeze`). Each full collection scans every object
    alive: at 5,000 nodes x 40,000 pods one took 0.11-0.18 s, in the middle of a 1 s window.
    Nothing is done when objects are frozen already (by an outer solve, or by the application,
    whose frozen objects stay frozen)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _window(problem: Problem, time_limit: float | None) -> float | None:
    """The solver's time limit: the caller's less the time the answer's checks will take (at most
    half of it), so that the whole call keeps the caller's limit."""
    if time_limit is None:
        return None
    return time_limit - min(problem.answer_seconds(), 0.5 * time_limit)


#: modules a solver's first call imports, beyond its `requires` (ortools pulls in pandas)
_LIBRARIES = {"ortools": ("ortools.sat.python.cp_model",), "pulp": ("pulp", "highspy")}
_SCIPY = ("scipy.optimize", "scipy.sparse")


def _libraries(spec: SolverSpec) -> list[str]:
    """The modules `spec`'s first call imports: by what it requires, by family and problem (the
    local searches of placement and packing use SciPy, and so do pod packing's CP-SAT starts;
    pipelining finds cycles with networkx)."""
    modules = [m for name in spec.requires for m in _LIBRARIES.get(name, (name,))]
    if (
        spec.family == "minmax"
        or (spec.family == "heuristics" and spec.problem in ("expert-placement", "pod-packing"))
        or (spec.family == "cpsat" and spec.problem == "pod-packing")
    ):
        modules += _SCIPY
    if spec.family == "portfolio":  # the solvers it calls
        modules += _LIBRARIES["ortools"]
    if spec.problem == "software-pipelining":
        modules.append("networkx")
    return modules


def _import_libraries(spec: SolverSpec) -> None:
    """Import the solver's libraries before its clock starts: a one-time cost per process (CP-SAT's
    Python module takes about a second, pandas included), which is not the solver's work. Only
    what the solver uses: a batch worker's hard limit counts this time."""
    for module in _libraries(spec):
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the solver reports what is missing itself


def _no_worse_than_start(
    spec: SolverSpec, problem: Problem, initial: dict, result: Result
) -> Result:
    """`result`, or the initial solution in its place when that is better; notes on warm start."""
    notes = [result.message] if result.message else []
    if not spec.warm_start:
        notes.append(
            f"warning: solver '{spec.name}' takes no warm start; the initial solution was "
            f"only compared with its answer"
        )
    start = problem.check(initial)
    worse = result.status == Status.FEASIBLE and problem.better(start.objective, result.objective)
    if not worse:
        return replace(result, message="; ".join(notes) or None)
    notes.append("the initial solution is returned: the solver's answer was worse")
    optimal = result.bound is not None and same_objective(start.objective, result.bound)
    return replace(
        result,
        status=Status.OPTIMAL if optimal else Status.FEASIBLE,
        objective=start.objective,
        gap=relative_gap(start.objective, result.bound),
        solution=initial,
        metrics=start.metrics,
        message="; ".join(notes),
    )


def _run(spec: SolverSpec, problem: Problem, opts: SolveOptions) -> Outcome:
    try:
        outcome = spec.fn(problem, opts)
    except OptkitError:
        raise
    except KeyboardInterrupt:
        return _fallback(opts, Termination.INTERRUPTED, "interrupted")
    except TimeUp:
        return _fallback(
            opts, Termination.TIME_LIMIT, "time limit reached before the solver finished"
        )
    except Exception as e:  # a solver bug must become a readable error result, not a crash
        return Outcome(
            termination=Termination.ERROR,
            message=f"{type(e).__name__}: {e}",
            stats={"traceback": traceback.format_exc(limit=5)},
        )
    if not isinstance(outcome, Outcome):
        return Outcome(
            termination=Termination.ERROR, message=f"solver returned {type(outcome).__name__}"
        )
    return outcome


def _result(
    spec: SolverSpec, problem: Problem, opts: SolveOptions, out: Outcome, time_limit: float | None
) -> Result:
    """The checked result of `out` under the caller's `time_limit` (its `runtime_s` is set by the
    caller)."""
    base = dict(
        problem=problem.kind,
        instance=problem.name,
        solver=spec.name,
        solver_version=spec.version(),
        objective_terms=getattr(problem, "objective_names", None),
        runtime_s=0.0,
        time_limit_s=time_limit,
        threads=opts.threads,
        seed=opts.seed,
        params=dict(opts.params),
        stats=out.stats,
    )
    if out.termination == Termination.ERROR and out.solution is None:
        return Result(
            status=Status.ERROR, termination=Termination.ERROR, message=out.message, **base
        )
    if out.solution is None:
        if out.proven_infeasible:
            return Result(
                status=Status.INFEASIBLE, termination=out.termination, message=out.message, **base
            )
        return Result(
            status=Status.UNKNOWN,
            termination=out.termination,
            message=out.message,
            bound=out.bound,
            **base,
        )

    report = problem.check(out.solution)
    if not report.feasible:
        why = "; ".join(report.violations[:3])
        return Result(
            status=Status.ERROR,
            termination=Termination.ERROR,
            solution=out.solution,
            metrics=report.metrics,
            message=f"solver '{spec.name}' returned a solution the checker rejects: {why}",
            **base,
        )
    if out.objective is not None and not same_objective(out.objective, report.objective):
        return Result(
            status=Status.ERROR,
            termination=Termination.ERROR,
            solution=out.solution,
            objective=report.objective,
            metrics=report.metrics,
            message=f"solver '{spec.name}' claimed objective {out.objective}, "
            f"the checker computed {report.objective}",
            **base,
        )
    bound = out.bound
    optimal = out.proven_optimal
    if (
        bound is not None
        and problem.better(report.objective, bound)
        and not same_objective(report.objective, bound)
    ):
        return Result(
            status=Status.ERROR,
            termination=Termination.ERROR,
            solution=out.solution,
            objective=report.objective,
            metrics=report.metrics,
            message=f"solver '{spec.name}' claimed bound {bound}, beaten by its own solution "
            f"{report.objective}",
            **base,
        )
    if optimal and bound is None:
        bound = report.objective
    return Result(
        status=Status.OPTIMAL if optimal else Status.FEASIBLE,
        termination=out.termination,
        objective=report.objective,
        bound=bound,
        gap=relative_gap(report.objective, bound),
        solution=out.solution,
        metrics=report.metrics,
        message=out.message,
        **base,
    )


# -- hard wall clock -------------------------------------------------------------------------------


def _fallback(opts: SolveOptions, termination: Termination, why: str) -> Outcome:
    """The best solution reported before the solver was stopped, if any."""
    if opts.incumbent is None:
        return Outcome(termination=termination, message=why)
    solution, objective = opts.incumbent
    return Outcome(
        solution=solution,
        objective=objective,
        termination=termination,
        message=f"{why}; best reported solution returned",
    )


def _child(spec: SolverSpec, problem: Problem, opts: SolveOptions, conn: Any) -> None:
    die_with_parent()
    opts.callback = lambda sol, obj: conn.send(("incumbent", sol, obj))
    try:
        conn.send(("done", _run(spec, problem, opts)))
    except BaseException as e:  # noqa: BLE001 - the parent must hear about any failure
        conn.send(
            ("done", Outcome(termination=Termination.ERROR, message=f"{type(e).__name__}: {e}"))
        )
    finally:
        conn.close()


def _run_with_wall_clock(spec: SolverSpec, problem: Problem, opts: SolveOptions) -> Outcome:
    """Run the solver in a child process; kill it when the wall clock reaches the time limit."""
    assert opts.time_limit is not None
    deadline = opts.started + opts.time_limit
    # The child aims to finish a little early so that its own best answer, bound included, arrives.
    margin = min(0.25, 0.2 * opts.time_limit)
    child_opts = SolveOptions(
        time_limit=max(1e-3, opts.time_limit - margin),
        threads=opts.threads,
        seed=opts.seed,
        initial_solution=opts.initial_solution,
        params=opts.params,
    )
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, problem, child_opts, child_conn), daemon=True)
    proc.start()
    child_conn.close()
    outcome: Outcome | None = None
    interrupted = False
    try:
        while outcome is None:
            left = deadline - time.monotonic()
            if left <= 0 or not parent_conn.poll(left):
                break
            try:
                msg = parent_conn.recv()
            except EOFError:
                break
            if msg[0] == "incumbent":
                opts.report(msg[1], msg[2])
            else:
                outcome = msg[1]
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(1.0)
        parent_conn.close()
    if interrupted:
        return _fallback(opts, Termination.INTERRUPTED, "interrupted")
    if outcome is not None:
        return outcome
    if proc.exitcode not in (None, 0, -9) and time.monotonic() < deadline:
        return Outcome(
            termination=Termination.ERROR,
            message=f"solver process died with exit code {proc.exitcode}",
        )
    return _fallback(opts, Termination.TIME_LIMIT, "killed at the wall-clock limit")
