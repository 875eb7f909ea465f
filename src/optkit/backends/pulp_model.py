"""What every PuLP model shares (the mip family, and the FIR showcase's LP): the backend (HiGHS
or CBC), its knobs, and an honest status.

PuLP's HiGHS wrapper says "Optimal" when it stops at a time limit with an incumbent; this module
reads HiGHS's own model status and dual bound instead, and CBC's `sol_status`.
"""

from __future__ import annotations

import math
from typing import Any

import pulp

from optkit.errors import InputError, SolverUnavailable
from optkit.result import Termination
from optkit.solve import SolveOptions, TimeUp

BACKENDS = ("highs", "cbc")


def backend_solver(
    opts: SolveOptions,
    *,
    mip: bool = True,
    warm_start: bool = False,
    gap_rel: float = 0.0,
    gap_abs: float = 1e-6,
) -> Any:
    """A configured PuLP solver for `opts.params['backend']` (default 'highs').

    The gap tolerances default to (almost) zero: HiGHS's own default stops 0.01 % short and calls
    that optimal. A model whose objective takes values on a grid may pass `gap_abs` below the grid step.
    """
    backend = opts.params.get("backend", "highs")
    if backend not in BACKENDS:
        raise InputError(
            f"parameter 'backend': expected one of {', '.join(BACKENDS)}, got {backend!r}"
        )
    limit = opts.remaining() if opts.time_limit is not None else None  # reset at the hand-over
    log = bool(opts.params.get("log", False))
    if backend == "highs":
        if not pulp.HiGHS(msg=False).available():
            raise SolverUnavailable(
                "PuLP's HiGHS backend needs highspy (pip install 'highspy>=1.11,<1.15')"
            )
        extra = {"random_seed": opts.seed}
        return _ClockedHiGHS(
            opts,
            mip=mip,
            msg=log,
            timeLimit=limit,
            threads=opts.threads,
            gapRel=gap_rel,
            gapAbs=gap_abs,
            **extra,
        )
    try:  # PuLP 3.3 deprecates its bundled CBC; the cbcbox wheel (pulp[cbc]) ships the binary
        import cbcbox
    except ImportError:
        raise SolverUnavailable(
            "backend=cbc needs the CBC binary: pip install 'pulp[cbc]'"
        ) from None
    return _ClockedCBC(
        opts,
        mip=mip,
        msg=log,
        threads=opts.threads,
        warmStart=warm_start,
        gapRel=gap_rel,
        gapAbs=gap_abs,
        path=cbcbox.cbc_bin_path(),
        options=[f"randomSeed {opts.seed + 1}"],
    )


def ensure_time_to_hand_over(opts: SolveOptions, build_s: float, per_build: float = 1.0) -> None:
    """Raise `TimeUp` unless the time left covers handing the model to the solver.

    PuLP passes a model on in Python, one column and row at a time, at about the pace at which
    it was built: a model that took `build_s` seconds to build needs about as long again before
    the solver's own clock starts (`per_build` times as long where a model measured slower: pod
    packing's). When that is not left, the caller's start is the answer.
    """
    if opts.time_limit is not None and opts.remaining() < per_build * build_s:
        raise TimeUp


class _ClockedHiGHS(pulp.HiGHS):
    """PuLP's HiGHS, with the time limit set from the clock just before HiGHS runs.

    PuLP hands the model to HiGHS one column and one row at a time, in Python, before HiGHS's own
    clock starts; on large models that takes seconds. Setting the limit after the hand-over keeps
    the whole solve, model building included, within the caller's time limit.
    """

    def __init__(self, opts: SolveOptions, **kwargs: Any):
        super().__init__(**kwargs)
        self._opts = opts

    def callSolver(self, lp: pulp.LpProblem) -> None:
        if self._opts.time_limit is not None:
            lp.solverModel.setOptionValue("time_limit", time_left_for_solver(self._opts))
        super().callSolver(lp)


def time_left_for_solver(opts: SolveOptions) -> float:
    """What the solver's own clock may take of the time left: all but a reserve (15 % of the
    limit, at most 0.3 s) for HiGHS' own overrun (0.03-0.15 s past its limit on the wt40 MIPs
    under load) and for reading its solution back and checking it."""
    assert opts.time_limit is not None
    return max(0.0, opts.remaining() - min(0.3, 0.15 * opts.time_limit))


class _ClockedCBC(pulp.COIN_CMD):
    """PuLP's CBC, with the time limit read from the clock when the command line is made.

    PuLP writes the model to an MPS file before it starts CBC, which takes as long as building it
    on large models; PuLP reads `timeLimit` after writing the file, so this property keeps the
    writing within the caller's time limit. (PuLP runs CBC with `timeMode elapsed`: wall clock.)
    """

    def __init__(self, opts: SolveOptions, **kwargs: Any):
        self._opts = opts
        super().__init__(**kwargs)

    @property
    def timeLimit(self) -> float | None:  # noqa: N802 - PuLP's name
        if self._opts.time_limit is None:
            return None
        return max(0.01, time_left_for_solver(self._opts))

    @timeLimit.setter
    def timeLimit(self, value: float | None) -> None:  # noqa: N802
        pass  # PuLP's constructor sets it; the clock decides


class MipAnswer:
    """The truth about a finished PuLP solve."""

    def __init__(self, prob: pulp.LpProblem, solver: Any, status_code: int):
        self.has_solution = False
        self.proven_optimal = False
        self.proven_infeasible = False
        self.bound: float | None = None
        self.termination = Termination.COMPLETED
        self.detail = ""
        if isinstance(solver, pulp.HiGHS):
            self._from_highs(prob)
        else:
            self._from_cbc(prob, status_code)

    def _from_highs(self, prob: pulp.LpProblem) -> None:
        import highspy

        h = prob.solverModel
        status = h.getModelStatus()
        info = h.getInfo()
        S = highspy.HighsModelStatus
        self.detail = h.modelStatusToString(status)
        self.has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        self.proven_optimal = status == S.kOptimal and self.has_solution
        self.proven_infeasible = status == S.kInfeasible
        if status in (S.kTimeLimit, S.kIterationLimit, S.kSolutionLimit, S.kInterrupt):
            self.termination = (
                Termination.TIME_LIMIT if status == S.kTimeLimit else Termination.INTERRUPTED
            )
        elif status not in (S.kOptimal, S.kInfeasible, S.kUnboundedOrInfeasible, S.kUnbounded):
            self.termination = Termination.ERROR
        bound = getattr(info, "mip_dual_bound", None)
        if bound is not None and math.isfinite(bound) and self.termination != Termination.ERROR:
            # PuLP hands HiGHS the negated objective of a maximisation, without its constant term.
            self.bound = (
                -bound if prob.sense == pulp.LpMaximize else bound
            ) + prob.objective.constant
        if self.proven_optimal and self.bound is None:
            self.bound = pulp.value(prob.objective)

    def _from_cbc(self, prob: pulp.LpProblem, status_code: int) -> None:
        sol = prob.sol_status
        self.detail = pulp.LpSolution[sol]
        self.has_solution = sol in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        self.proven_optimal = sol == pulp.LpSolutionOptimal
        self.proven_infeasible = sol == pulp.LpSolutionInfeasible
        if not self.proven_optimal and not self.proven_infeasible:
            self.termination = Termination.TIME_LIMIT
        if self.proven_optimal:
            self.bound = pulp.value(prob.objective)


def solve_problem(
    prob: pulp.LpProblem,
    opts: SolveOptions,
    *,
    warm_start: bool = False,
    gap_rel: float = 0.0,
    gap_abs: float = 1e-6,
) -> MipAnswer:
    """Solve `prob` with the backend chosen in `opts` and report what is really known."""
    solver = backend_solver(opts, warm_start=warm_start, gap_rel=gap_rel, gap_abs=gap_abs)
    code = prob.solve(solver)
    return MipAnswer(prob, solver, code)


def value(var: Any) -> float:
    v = var.value() if hasattr(var, "value") else pulp.value(var)
    return 0.0 if v is None else float(v)
