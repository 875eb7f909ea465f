"""Single-machine total weighted tardiness, 1 | r_j | sum w_j T_j (release dates and weights optional).

A solution is a job sequence; each job starts as early as its release date and the previous job
allow (a semi-active schedule, which loses nothing for this regular objective).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field, model_validator

from optkit.errors import InputError
from optkit.problem import MAX_INT, CheckReport, Model, NonNegInt, Problem
from optkit.registry import GeneratorOption as Opt
from optkit.registry import generator, importer

#: largest schedule length, max(release_dates) + sum(processing_times): times stay 32-bit integers,
#: which keeps the big-M coefficients of the MIP within what HiGHS solves reliably
MAX_HORIZON = 2**31 - 1


class TardinessSolution(Model):
    sequence: tuple[NonNegInt, ...]


class Tardiness(Problem):
    """n jobs with processing times p_j, due dates d_j, weights w_j (default 1), release dates r_j (default 0)."""

    kind = "tardiness"
    Solution = TardinessSolution

    problem: str = "tardiness"
    processing_times: tuple[NonNegInt, ...] = Field(min_length=1)
    due_dates: tuple[NonNegInt, ...]
    weights: tuple[NonNegInt, ...] | None = None
    release_dates: tuple[NonNegInt, ...] | None = None

    @model_validator(mode="after")
    def _same_lengths(self) -> Tardiness:
        n = len(self.processing_times)
        for field in ("due_dates", "weights", "release_dates"):
            values = getattr(self, field)
            if values is not None and len(values) != n:
                raise ValueError(
                    f"field '{field}': has {len(values)} entries, processing_times has {n}"
                )
        return self

    @model_validator(mode="after")
    def _objective_fits(self) -> Tardiness:
        """Times fit 32 bits, and every solver computes with the worst objective,
        sum w x (max r + sum p), exactly (in a float64 too)."""
        horizon = max(self.r) + sum(self.processing_times)
        if horizon > MAX_HORIZON:
            raise ValueError(
                f"field 'processing_times': max(release_dates) + sum(processing_times) = "
                f"{horizon} exceeds {MAX_HORIZON} (2**31 - 1)"
            )
        worst = sum(self.w) * horizon
        if worst > MAX_INT:
            raise ValueError(
                f"field 'weights': sum(weights) x (max(release_dates) + sum(processing_times)) = "
                f"{worst}, the largest objective a sequence can have, exceeds {MAX_INT} (2**53)"
            )
        return self

    # -- derived data -------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.processing_times)

    @property
    def w(self) -> tuple[int, ...]:
        return self.weights if self.weights is not None else (1,) * self.n

    @property
    def r(self) -> tuple[int, ...]:
        return self.release_dates if self.release_dates is not None else (0,) * self.n

    @property
    def weighted(self) -> bool:
        return self.weights is not None and any(w != 1 for w in self.weights)

    def completion_times(self, sequence: tuple[int, ...] | list[int]) -> list[int]:
        """Completion time of each job (indexed by job) when run in `sequence` order."""
        p, r = self.processing_times, self.r
        t, completion = 0, [0] * self.n
        for j in sequence:
            t = max(t, r[j]) + p[j]
            completion[j] = t
        return completion

    def total_weighted_tardiness(self, sequence: tuple[int, ...] | list[int]) -> int:
        c = self.completion_times(sequence)
        return sum(w * max(0, cj - d) for w, cj, d in zip(self.w, c, self.due_dates))

    # -- checker ------------------------------------------------------------------------------
    def evaluate(self, solution: TardinessSolution) -> CheckReport:
        seq = solution.sequence
        if sorted(seq) != list(range(self.n)):
            missing = sorted(set(range(self.n)) - set(seq))
            dup = sorted({j for j in seq if seq.count(j) > 1})
            extra = sorted(j for j in set(seq) if j >= self.n)
            return CheckReport.infeasible(
                f"sequence is not a permutation of 0..{self.n - 1}"
                f" (missing {missing[:5]}, repeated {dup[:5]}, out of range {extra[:5]})"
            )
        c = self.completion_times(seq)
        tard = [max(0, cj - d) for cj, d in zip(c, self.due_dates)]
        objective = sum(w * t for w, t in zip(self.w, tard))
        return CheckReport(
            True,
            objective,
            {
                "total_weighted_tardiness": objective,
                "total_tardiness": sum(tard),
                "tardy_jobs": sum(t > 0 for t in tard),
                "max_tardiness": max(tard),
                "makespan": max(c),
            },
        )


def dominates(problem: Tardiness, i: int, j: int) -> bool:
    """True if job i may be put before job j in an optimal schedule (a strict, acyclic relation).

    With one release date for all jobs, p_i <= p_j, w_i >= w_j and d_i <= d_j suffice. With several,
    a shorter i moved ahead of j can open idle time before a job released later, so that j ends
    later than i did: p = (1, 2, 1), d = (2, 2, 0), w = (1, 1, 2), r = (0, 0, 2) has its only optimum
    (8) with job 1 before job 0. Then p_i = p_j (and r_i <= r_j) is required: the two jobs trade
    places and nothing else starts later."""
    p, d, w, r = problem.processing_times, problem.due_dates, problem.w, problem.r
    key_i, key_j = (p[i], -w[i], d[i], r[i]), (p[j], -w[j], d[j], r[j])
    if not all(a <= b for a, b in zip(key_i, key_j)):
        return False
    if p[i] != p[j] and len(set(r)) > 1:
        return False
    return key_i != key_j or i < j


# -- instance generator and importers ----------------------------------------------------------


GENERATOR_OPTIONS = {
    "seed": Opt("Random seed: each seed gives another instance."),
    "n": Opt("Number of jobs.", unit="jobs"),
    "tf": Opt(
        "Tardiness factor TF in [0, 1]: the larger, the earlier the due dates and the more "
        "jobs are late (due dates centre on P(1 - TF), P the total processing time).",
        unit="fraction of P",
    ),
    "rdd": Opt(
        "Range of due dates RDD in [0, 1]: the spread of the due dates around P(1 - TF).",
        unit="fraction of P",
    ),
    "weighted": Opt("Draw weights in 1..wmax (false: every weight 1).", choices=("true", "false")),
    "pmax": Opt("Largest processing time (drawn in 1..pmax).", unit="time units"),
    "wmax": Opt("Largest weight (drawn in 1..wmax).", unit="weight"),
}


@generator("tardiness", GENERATOR_OPTIONS)
def generate(
    seed: int = 0,
    n: int = 40,
    tf: float = 0.6,
    rdd: float = 0.6,
    weighted: bool = True,
    pmax: int = 100,
    wmax: int = 10,
) -> Tardiness:
    """Potts and Van Wassenhove: p ~ U[1,pmax], w ~ U[1,wmax], d ~ U[P(1-TF-RDD/2), P(1-TF+RDD/2)]."""
    if n < 1 or pmax < 1 or wmax < 1 or not 0 <= tf <= 1 or not 0 <= rdd <= 1:
        raise InputError("generate tardiness: need n, pmax, wmax >= 1 and 0 <= tf, rdd <= 1")
    rng = random.Random(seed)
    p = [rng.randint(1, pmax) for _ in range(n)]
    w = [rng.randint(1, wmax) for _ in range(n)] if weighted else None
    total = sum(p)
    lo = max(0, round(total * (1 - tf - rdd / 2)))
    hi = max(lo, round(total * (1 - tf + rdd / 2)))
    d = [rng.randint(lo, hi) for _ in range(n)]
    return Tardiness(
        name=f"gen_n{n}_tf{tf}_rdd{rdd}_s{seed}", processing_times=p, due_dates=d, weights=w
    )


def read_orlib(path: Path, n: int | None = None) -> list[Tardiness]:
    """OR-Library weighted tardiness file: per instance n processing times, n weights, n due dates."""
    try:
        numbers = [int(x) for x in Path(path).read_text().split()]
    except ValueError as e:
        raise InputError(f"{path}: not an OR-Library tardiness file: {e}") from None
    if n is None:
        digits = "".join(ch for ch in Path(path).stem if ch.isdigit())
        if not digits:
            raise InputError(f"{path}: cannot infer n from the file name (e.g. wt40.txt); pass n")
        n = int(digits)
    if len(numbers) % (3 * n):
        raise InputError(f"{path}: {len(numbers)} integers is not a multiple of 3n = {3 * n}")
    out = []
    for k in range(len(numbers) // (3 * n)):
        block = numbers[3 * n * k : 3 * n * (k + 1)]
        out.append(
            Tardiness(
                name=f"{Path(path).stem}_{k + 1:03d}",
                processing_times=block[:n],
                weights=block[n : 2 * n],
                due_dates=block[2 * n :],
            )
        )
    return out


def read_optima(path: Path) -> list[int]:
    """One optimal objective per line (the `wtNN.opt` files)."""
    return [int(x) for x in Path(path).read_text().split()]


def read_sdt(path: Path) -> Iterator[tuple[Tardiness, int]]:
    """The sdt*.jsonl sets: one {"name", "p", "d", "optimum"} object a line -> (instance, optimum)."""
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            yield (
                Tardiness(name=row["name"], processing_times=row["p"], due_dates=row["d"]),
                int(row["optimum"]),
            )
        except (json.JSONDecodeError, KeyError, ValueError) as e:
            raise InputError(f"{path}:{lineno}: not an sdt instance line: {e}") from None


@importer("orlib-wt")
def import_orlib(source: Path) -> list[Tardiness]:
    """OR-Library `wtNN.txt`; with `wtNN.opt` beside it, each instance carries its known optimum."""
    instances = read_orlib(source)
    opt = Path(source).with_suffix(".opt")
    if not opt.is_file():
        return instances
    try:
        optima = read_optima(opt)
    except ValueError as e:
        raise InputError(f"{opt}: not an OR-Library optima file: {e}") from None
    if len(optima) != len(instances):
        raise InputError(
            f"{opt}: {len(optima)} optima for the {len(instances)} instances of {source}"
        )
    return [i.model_copy(update={"known_optimum": v}) for i, v in zip(instances, optima)]


@importer("sdt")
def import_sdt(source: Path) -> list[Tardiness]:
    """The sdt*.jsonl sets, each instance with the optimum its line records."""
    return [inst.model_copy(update={"known_optimum": opt}) for inst, opt in read_sdt(source)]
