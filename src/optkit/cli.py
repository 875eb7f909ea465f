"""The `optkit` command line: solve, check, list solvers, generate and import instances.

Exit codes (spec): 0 success; 1 infeasible instance or failed check; 2 bad input or usage;
3 solver error; 4 no solution within the limit (status `unknown`). Every error is one line on
stderr that names the file and the field.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from optkit.errors import InputError, OptkitError
from optkit.io import check_output_path, dump, load, load_result, write_text
from optkit.result import Result, Status, same_objective

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Placement and scheduling for GPU and Kubernetes infrastructure.",
)
out = Console()
err = Console(stderr=True, soft_wrap=True)


def print_table(table: Table) -> None:
    """Tables go to a terminal at its width, and to a pipe or file unwrapped."""
    if not out.is_terminal:
        out.width = 200
    out.print(table)


#: modules that add their own commands with `register(app)` (batch/report, k8s)
PLUGINS = ("optkit.batch.cli", "optkit.k8s.cli")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict; values are read as JSON when they parse (3, 0.5, true), else strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


class Progress:
    """A line on stderr for solves that take more than a second: elapsed time and the best objective."""

    def __init__(self, label: str, quiet: bool = False):
        self.label, self.quiet = label, quiet
        self.best: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_solution(self, solution: dict, objective: Any) -> None:
        self.best = objective

    def __enter__(self) -> Progress:
        if not self.quiet:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        if self._stop.wait(1.0):
            return
        if err.is_terminal:
            with err.status("") as status:
                while not self._stop.wait(0.2):
                    status.update(self._line(time.monotonic() - start))
        else:
            err.print(self._line(time.monotonic() - start), highlight=False)
            while not self._stop.wait(10.0):
                err.print(self._line(time.monotonic() - start), highlight=False)

    def _line(self, elapsed: float) -> str:
        best = "" if self.best is None else f", best objective {self.best}"
        return f"optkit: {self.label}: {elapsed:.1f} s{best}"

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


def print_result(result: Result) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("instance", result.instance),
        ("solver", f"{result.solver} ({result.solver_version})"),
        ("status", result.status.value),
        ("termination", result.termination.value),
        ("objective", result.objective),
        ("bound", result.bound),
        ("gap", None if result.gap is None else f"{100 * result.gap:.4g} %"),
        ("runtime", f"{result.runtime_s:.3f} s"),
        ("message", result.message),
    ]
    for key, value in rows:
        if value is not None:
            table.add_row(key, str(value))
    for key, value in result.metrics.items():
        table.add_row(
            f"  {key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        )
    print_table(table)


@app.command()
def solve(
    instance: Path = typer.Argument(..., help="instance file (JSON or YAML)"),
    solver: str | None = typer.Option(
        None, "--solver", "-s", help="solver name (default: the problem's)"
    ),
    time_limit: float | None = typer.Option(None, "--time-limit", "-t", help="seconds"),
    threads: int = typer.Option(1, "--threads", help="worker threads"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="solver parameter KEY=VALUE (repeatable)"
    ),
    initial: Path | None = typer.Option(
        None, "--initial", help="result file whose solution warm-starts"
    ),
    hard_limit: bool = typer.Option(
        False, "--hard-limit", help="kill the solver at the time limit"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    output: str | None = typer.Option(None, "-o", "--output", help="write the result JSON here"),
) -> None:
    """Solve an instance; the answer is re-checked by the problem's own checker."""
    from optkit.solve import solve as run_solve

    if output:
        check_output_path(output)
    problem = load(instance)
    initial_solution = load_result(initial).solution if initial else None
    with Progress(
        f"solving {problem.label} with {solver or 'default solver'}", quiet=as_json
    ) as progress:
        result = run_solve(
            problem,
            solver,
            time_limit=time_limit,
            threads=threads,
            seed=seed,
            initial_solution=initial_solution,
            callback=progress.on_solution,
            hard_limit=hard_limit,
            **parse_params(param),
        )
    if as_json:
        print(result.to_json())
    else:
        print_result(result)
    if output:
        write_text(output, result.to_json() + "\n")
    if result.status == Status.INFEASIBLE:
        raise typer.Exit(1)
    if result.status == Status.ERROR:
        raise typer.Exit(3)
    if result.status == Status.UNKNOWN:
        raise typer.Exit(4)


def _instance_and_solution(instance: Path, result_file: Path) -> tuple[Any, Result]:
    """The instance and a result of it that holds a solution (exit 1 if it holds none)."""
    problem = load(instance)
    result = load_result(result_file)
    if result.problem != problem.kind:
        raise InputError(
            f"{result_file}: field 'problem': '{result.problem}' does not match the "
            f"instance's '{problem.kind}'"
        )
    if result.solution is None:
        err.print(f"{result_file}: no solution (status {result.status.value})", highlight=False)
        raise typer.Exit(1)
    return problem, result


@app.command()
def check(
    instance: Path = typer.Argument(..., help="instance file"),
    result_file: Path = typer.Argument(
        ..., metavar="RESULT.json", help="result of `optkit solve -o`"
    ),
) -> None:
    """Exit 0 only if the result's solution is feasible and its objective is what the result claims."""
    problem, result = _instance_and_solution(instance, result_file)
    report = problem.check(result.solution)
    if not report.feasible:
        err.print("infeasible: " + "; ".join(report.violations), highlight=False)
        raise typer.Exit(1)
    if not same_objective(report.objective, result.objective):
        err.print(
            f"objective mismatch: result claims {result.objective}, checker computes {report.objective}",
            highlight=False,
        )
        raise typer.Exit(1)
    out.print(f"ok: feasible, objective {report.objective}", highlight=False)


@app.command()
def render(
    instance: Path = typer.Argument(..., help="instance file"),
    result_file: Path = typer.Argument(
        ..., metavar="RESULT.json", help="result of `optkit solve -o`"
    ),
    png: Path | None = typer.Option(None, "--png", help="also draw the solution into this PNG"),
) -> None:
    """Print a solution for people: the sequence, pod-to-node table, slot map or GPU mix it holds."""
    from optkit.render import render_command

    render_command(*_instance_and_solution(instance, result_file), png)


@app.command("solvers")
def list_solvers(problem: str | None = typer.Argument(None, help="problem kind")) -> None:
    """Table of problems x solvers: capabilities, and whether each runs here (or why not)."""
    from optkit.problem import problem_class
    from optkit.registry import solver_specs

    if problem:
        problem_class(problem, "optkit solvers")
    table = Table(
        "problem",
        "solver",
        "family",
        "exact",
        "bounds",
        "warm start",
        "deterministic",
        "available here",
    )
    yes = lambda b: "yes" if b else ""  # noqa: E731
    for s in solver_specs(problem):
        why = s.unavailable_reason()
        table.add_row(
            s.problem,
            s.name + (" *" if s.default else ""),
            s.family,
            yes(s.exact),
            yes(s.bounds),
            yes(s.warm_start),
            yes(s.deterministic),
            "yes" if why is None else f"no: {why}",
        )
    print_table(table)
    out.print("* default solver of the problem", highlight=False)
    for s in solver_specs(problem):
        if s.default and s.why_default:
            out.print(f"  {s.problem}: {s.name}, {s.why_default}", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def generate(
    ctx: typer.Context,
    problem: str = typer.Argument(..., help="problem kind"),
    seed: int = typer.Option(0, "--seed"),
    output: str | None = typer.Option(None, "-o", "--output", help="instance file to write"),
) -> None:
    """Generate an instance; generator options follow as --name value (see `optkit generate PROBLEM --help-options`)."""
    from optkit.registry import generators

    gens = generators()
    if problem not in gens:
        raise InputError(
            f"generate: no generator for '{problem}' (one of {', '.join(sorted(gens))})"
        )
    fn = gens[problem]
    if "--help-options" in ctx.args:
        from optkit.registry import generator_help

        print("\n".join(generator_help(problem)))
        return
    if output is None:
        raise InputError("generate: -o FILE is required")
    check_output_path(output)
    dump(fn(seed=seed, **_generator_options(fn, ctx.args)), output)
    err.print(f"wrote {output}", highlight=False)


def _generator_options(fn: Any, args: list[str]) -> dict[str, Any]:
    params = {n: p for n, p in inspect.signature(fn).parameters.items() if n != "seed"}
    options: dict[str, Any] = {}
    i = 0
    while i < len(args):
        flag = args[i]
        name = flag.removeprefix("--").replace("-", "_")
        if not flag.startswith("--") or name not in params:
            raise InputError(
                f"generate: unknown option {flag!r} (options: "
                f"{', '.join('--' + n.replace('_', '-') for n in params)})"
            )
        if i + 1 >= len(args):
            raise InputError(f"generate: option {flag} needs a value")
        raw, default = args[i + 1], params[name].default
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                options[name] = raw.lower() in ("true", "1", "yes")
            elif default is None or isinstance(default, str):
                options[name] = raw
            else:
                options[name] = type(default)(raw)
        except ValueError:
            raise InputError(
                f"generate: option {flag}: expected {type(default).__name__}, got {raw!r}"
            ) from None
        i += 2
    return options


@app.command("import")
def import_(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="benchmark format"),
    source: Path = typer.Argument(..., help="file in that format"),
    output: Path = typer.Option(..., "-o", "--output", help="directory for the instance files"),
) -> None:
    """Convert a standard benchmark file into one instance file per instance."""
    from optkit.registry import importers

    known = importers()
    if fmt not in known:
        raise InputError(f"import: unknown format '{fmt}' (one of {', '.join(sorted(known))})")
    if not source.exists():
        raise InputError(f"{source}: no such file")
    problems = list(known[fmt](source))
    for p in problems:
        dump(p, output / f"{p.name}.json")
    err.print(f"wrote {len(problems)} instances to {output}", highlight=False)


@functools.cache
def _register_plugins() -> None:
    """Add the plugin commands once per process."""
    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name in (name, name.rsplit(".", 1)[0]):
                continue  # that part of optkit is not there
            raise
        module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns optkit errors into one line and their exit code."""
    _register_plugins()
    try:
        app(args=argv)  # click handles its own usage errors (exit 2)
    except OptkitError as e:
        print(f"optkit: error: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
