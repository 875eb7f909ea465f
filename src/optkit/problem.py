"""The problem base: validated, immutable instance data plus an independent solution checker.

A problem knows nothing about solvers. Each problem module in `optkit.problems` subclasses
`Problem`, sets `kind` (the `"problem"` value of its instance files) and `Solution` (a pydantic
model of its solution object), and implements `evaluate`, which recomputes feasibility, objective
and metrics from the solution alone. Subclasses register themselves by being defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from optkit.errors import InputError

#: largest magnitude of an integer field: 2**53, exact in a float64 (so HiGHS computes with it
#: exactly) and far from int64's limit. Problems bound sums (their objectives) on top of this.
MAX_INT = 2**53
#: largest magnitude of a number field that may be fractional (finite floats only)
MAX_NUMBER = 1e15

# Field types shared by the problems: JSON integers stay integers (no "5" -> 5, no 5.0 -> 5),
# and every number is finite and within the bounds above.
Int = Annotated[StrictInt, Field(ge=-MAX_INT, le=MAX_INT)]
NonNegInt = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
PosInt = Annotated[StrictInt, Field(gt=0, le=MAX_INT)]
Number = Annotated[
    StrictInt | StrictFloat, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False)
]
NonNegNumber = Annotated[StrictInt | StrictFloat, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)]
PosNumber = Annotated[StrictInt | StrictFloat, Field(gt=0, le=MAX_NUMBER, allow_inf_nan=False)]


def bounded(ge: float | None = None, le: float | None = None, integer: bool = True) -> Any:
    """A field type: a strict integer (or any finite number) within [ge, le]."""
    base = StrictInt if integer else StrictInt | StrictFloat
    return Annotated[base, Field(ge=ge, le=le, allow_inf_nan=False)]


_KINDS: dict[str, type[Problem]] = {}


class Model(BaseModel):
    """Frozen pydantic model that rejects unknown keys: the base of instance parts and solutions."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class CheckReport:
    """What the checker found: feasibility, the objective it recomputed, KPIs, and why not feasible."""

    feasible: bool
    objective: Any = None
    metrics: dict = field(default_factory=dict)
    violations: tuple[str, ...] = ()

    @classmethod
    def infeasible(cls, *violations: str, metrics: dict | None = None) -> CheckReport:
        return cls(False, None, metrics or {}, tuple(violations))


class Problem(Model):
    """Base of every problem kind. Instances are immutable once validated."""

    kind: ClassVar[str] = ""
    Solution: ClassVar[type[Model]]
    #: "min" or "max"; objectives may be numbers or lists compared lexicographically.
    sense: ClassVar[Literal["min", "max"]] = "min"

    problem: str
    name: str | None = None
    #: the proven optimal objective where a benchmark publishes it (batch reports show gaps to it)
    known_optimum: Number | tuple[Number, ...] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            _KINDS[cls.kind] = cls

    def model_post_init(self, __context: Any) -> None:
        if self.problem != self.kind:
            raise ValueError(f"problem: expected '{self.kind}', got '{self.problem}'")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "<data>") -> Problem:
        """Validate `data` into an instance; errors become `InputError` naming source and field."""
        if not isinstance(data, dict):
            raise InputError(
                f"{source}: an instance must be a JSON object, got {type(data).__name__}"
            )
        if cls is Problem:
            kind = data.get("problem")
            if kind is None:
                raise InputError(f"{source}: field 'problem' is missing (one of {sorted(kinds())})")
            if not isinstance(kind, str):
                raise InputError(
                    f"{source}: field 'problem': expected a string (one of {sorted(kinds())}), "
                    f"got {type(kind).__name__}"
                )
            cls = problem_class(kind, source)
        else:
            data = {"problem": cls.kind, **data}
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise InputError(f"{source}: {format_validation_error(e)}") from None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Problem:
        """A copy with `update` applied, validated like a fresh instance; cached derived data
        (`functools.cached_property`) is recomputed, never carried over from the original."""
        return type(self).model_validate({**self.model_dump(), **(update or {})})

    @property
    def label(self) -> str:
        return self.name or self.kind

    # -- checking -----------------------------------------------------------------------------
    def parse_solution(self, solution: Any) -> Model | None:
        """The solution as this problem's `Solution` model, or None if its shape is wrong."""
        if isinstance(solution, self.Solution):
            return solution
        try:
            return self.Solution.model_validate(solution)
        except ValidationError:
            return None

    def check(self, solution: Any) -> CheckReport:
        """Recompute feasibility, objective and metrics of `solution`, trusting nothing a solver said."""
        parsed = self.parse_solution(solution)
        if parsed is None:
            try:
                self.Solution.model_validate(solution)
            except ValidationError as e:
                return CheckReport.infeasible(f"malformed solution: {format_validation_error(e)}")
        return self.evaluate(parsed)

    def evaluate(self, solution: Model) -> CheckReport:  # pragma: no cover - abstract
        raise NotImplementedError

    def answer_seconds(self) -> float:
        """An estimate of the seconds the facade's handling of an answer takes (`check` above all).
        The solver's window is the time limit less this, so that the limit holds for the whole call;
        negligible by default."""
        return 0.0

    def render(self, solution: Any) -> str:
        """A text picture of a solution for people; problems with a natural one override this."""
        report = self.check(solution)
        lines = [
            f"{self.label}: "
            + (f"objective {report.objective}" if report.feasible else "INFEASIBLE")
        ]
        lines += [f"  {v}" for v in report.violations]
        lines += [f"  {k}: {v}" for k, v in report.metrics.items()]
        return "\n".join(lines)

    def better(self, a: Any, b: Any) -> bool:
        """True if objective `a` is strictly better than `b` (lists compare lexicographically)."""
        if b is None:
            return a is not None
        if a is None:
            return False
        return a < b if self.sense == "min" else a > b


def kinds() -> dict[str, type[Problem]]:
    """All problem kinds, importing the problem modules on first use."""
    from optkit.registry import discover

    discover()
    return dict(_KINDS)


def problem_class(kind: str, source: str = "<data>") -> type[Problem]:
    known = kinds()
    if kind not in known:
        raise InputError(
            f"{source}: field 'problem': unknown kind '{kind}' (one of {sorted(known)})"
        )
    return known[kind]


def format_validation_error(e: ValidationError, limit: int = 3) -> str:
    """One line: 'field a.b.3: message; ...' for the first few errors."""
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"] if x not in ("function-after", "function-before"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"field '{loc}': {msg}" if loc else msg)
    more = len(e.errors()) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
