"""The catalogues: solvers by (problem, name), instance generators by problem, importers by format.

Solver modules live in `optkit.backends.<family>.<problem>` and register themselves with
`@register(...)` when imported. They must keep heavy or optional imports (ortools, pulp, cupy)
inside their functions, so that discovering every solver is cheap and a missing extra only
matters when that solver is asked for.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from optkit.errors import InputError, SolverUnavailable


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver and what it can do."""

    name: str
    problem: str
    fn: Callable
    family: str
    exact: bool = False  # can prove optimality
    bounds: bool = False  # reports proven bounds
    warm_start: bool = False  # uses `initial_solution`
    deterministic: bool = True  # same seed and threads -> same answer
    requires: tuple[str, ...] = ()  # importable modules it needs
    versions: tuple[str, ...] = ()  # distributions named in `solver_version`
    params: dict[str, Any] = field(default_factory=dict)  # extra parameters and their defaults
    extra: str | None = None  # pip extra that provides `requires`
    default: bool = False  # the problem's default solver
    why_default: str = ""  # why it is the default (shown by `optkit solvers`)
    doc: str = ""

    def unavailable_reason(self) -> str | None:
        """None if the solver can run here, else why not and how to fix it."""
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                hint = f"pip install 'optkit[{self.extra}]'" if self.extra else f"pip install {mod}"
                return f"needs the Python module '{mod}' ({hint})"
        return None

    @property
    def available(self) -> bool:
        return self.unavailable_reason() is None

    def version(self) -> str:
        parts = []
        for dist in self.versions or ("optkit",):
            try:
                parts.append(f"{dist} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                parts.append(f"{dist} (not installed)")
        return ", ".join(parts)

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with `given`; unknown keys and values of the wrong type are InputErrors."""
        unknown = set(given) - set(self.params)
        if unknown:
            allowed = ", ".join(sorted(self.params)) or "none"
            raise InputError(
                f"solver '{self.name}' for {self.problem}: unknown parameter(s) "
                f"{', '.join(sorted(unknown))} (allowed: {allowed})"
            )
        out = dict(self.params)
        for key, value in given.items():
            out[key] = _coerce(self.name, key, value, self.params[key])
        return out


def _coerce(solver: str, key: str, value: Any, default: Any) -> Any:
    if (
        default is None
        or isinstance(value, type(default))
        and not (isinstance(value, bool) and not isinstance(default, bool))
    ):
        return value
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind in (int, float, str):
            return kind(value)
    except (TypeError, ValueError):
        pass
    raise InputError(
        f"parameter '{key}' of solver '{solver}': expected {kind.__name__}, got {value!r}"
    )


_SOLVERS: dict[tuple[str, str], SolverSpec] = {}
_GENERATORS: dict[str, Callable] = {}
_GENERATOR_OPTIONS: dict[str, dict[str, GeneratorOption]] = {}
_IMPORTERS: dict[str, Callable] = {}
_DISCOVERED = False


def register(name: str, problem: str, **caps: Any) -> Callable[[Callable], Callable]:
    """Decorator: register `fn(problem, options) -> Outcome` as solver `name` of `problem`."""

    def deco(fn: Callable) -> Callable:
        family = fn.__module__.split(".")[2] if fn.__module__.startswith("optkit.backends.") else ""
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _SOLVERS[(problem, name)] = SolverSpec(name, problem, fn, family, doc=doc, **caps)
        return fn

    return deco


@dataclass(frozen=True)
class GeneratorOption:
    """What `optkit generate PROBLEM --help-options` says of one generator option."""

    help: str
    unit: str = ""
    choices: tuple[str, ...] = ()


def generator(
    problem: str, options: dict[str, GeneratorOption] | None = None
) -> Callable[[Callable], Callable]:
    """Decorator: `fn(seed: int, **options) -> Problem` generates instances of `problem`.

    Options are keyword arguments with annotations and defaults; the CLI exposes them as flags.
    `options` describes them (a sentence, the unit, the choices) for `--help-options`.
    """

    def deco(fn: Callable) -> Callable:
        _GENERATORS[problem] = fn
        _GENERATOR_OPTIONS[problem] = dict(options or {})
        return fn

    return deco


def generator_help(problem: str) -> list[str]:
    """One line per option of `problem`'s generator: flag, default, unit, choices and meaning."""
    import inspect
    import json
    import textwrap

    fn = generators()[problem]
    described = _GENERATOR_OPTIONS.get(problem, {})
    lines = []
    for name, prm in inspect.signature(fn).parameters.items():
        info = described.get(name, GeneratorOption(""))
        facts = [f"default {json.dumps(prm.default)}"]
        if info.unit:
            facts.append(f"unit: {info.unit}")
        if info.choices:
            facts.append(f"one of {', '.join(info.choices)}")
        flag = "--" + name.replace("_", "-")
        text = textwrap.fill(info.help, 96, initial_indent="    ", subsequent_indent="    ")
        lines.append(f"{flag}  ({'; '.join(facts)})" + (f"\n{text}" if info.help else ""))
    return lines


def importer(fmt: str) -> Callable[[Callable], Callable]:
    """Decorator: `fn(source: Path) -> Iterable[Problem]` reads a standard benchmark format."""

    def deco(fn: Callable) -> Callable:
        _IMPORTERS[fmt] = fn
        return fn

    return deco


def discover() -> None:
    """Import every problem module and every solver module once, which registers them.

    Solver modules are the public modules of the family packages (`optkit.backends.<family>.<x>`);
    the modules directly under `optkit.backends` are shared helpers and are imported only by the
    solvers that use them.
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    packages = [importlib.import_module("optkit.problems")]
    backends = importlib.import_module("optkit.backends")
    for family in pkgutil.iter_modules(backends.__path__, "optkit.backends."):
        if family.ispkg:
            packages.append(importlib.import_module(family.name))
    for pkg in packages:
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(info.name)


def solver_specs(problem: str | None = None) -> list[SolverSpec]:
    discover()
    specs = [s for (p, _), s in _SOLVERS.items() if problem is None or p == problem]
    return sorted(specs, key=lambda s: (s.problem, s.family, s.name))


def get_solver(problem: str, name: str | None) -> SolverSpec:
    """The solver `name` of `problem` (its default if None), or an InputError naming the choices."""
    specs = solver_specs(problem)
    if not specs:
        raise InputError(f"no solvers registered for problem '{problem}'")
    if name is None:
        defaults = [s for s in specs if s.default] or specs
        return defaults[0]
    for s in specs:
        if s.name == name:
            return s
    raise InputError(
        f"unknown solver '{name}' for {problem} (one of {', '.join(s.name for s in specs)})"
    )


def require(spec: SolverSpec) -> None:
    reason = spec.unavailable_reason()
    if reason:
        raise SolverUnavailable(f"solver '{spec.name}' cannot run here: {reason}")


def generators() -> dict[str, Callable]:
    discover()
    return dict(_GENERATORS)


def importers() -> dict[str, Callable]:
    discover()
    return dict(_IMPORTERS)
