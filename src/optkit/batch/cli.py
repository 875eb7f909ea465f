"""`optkit batch` and `optkit report`, added to the main app by `register(app)` (see optkit/cli.py)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

err = Console(stderr=True, soft_wrap=True)


def _stdout() -> Console:
    """Standard output, wide enough for the summary table also when it is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def batch(
    paths: list[str] = typer.Argument(
        ..., help="instance files, folders (searched recursively) or globs"
    ),
    solver: list[str] = typer.Option(
        [],
        "--solver",
        "-s",
        help="solver names, comma-separated or repeated (default: each problem's)",
    ),
    time_limit: float | None = typer.Option(None, "--time-limit", "-t", help="seconds per task"),
    threads: int = typer.Option(
        1, "--threads", help="threads per task (Ray: CPUs reserved per task)"
    ),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="tasks at a time (local executor)"),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (default: start a local one)"
    ),
    output: str = typer.Option(
        "results.jsonl", "-o", "--output", help="JSON Lines results file (appended)"
    ),
    force: bool = typer.Option(
        False, "--force", help="run pairs again even if the results file has them"
    ),
    retry_errors: bool = typer.Option(
        False, "--retry-errors", help="run again the pairs whose line is an error"
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="KEY=VALUE for every solver that takes KEY, or SOLVER.KEY=VALUE"
    ),
    grace: float = typer.Option(
        5.0, "--grace", help="seconds past the time limit before a task is killed"
    ),
    hard_limit: float | None = typer.Option(
        None,
        "--hard-limit",
        help="kill a task after this many seconds when there is no --time-limit",
    ),
    memory_limit: int | None = typer.Option(
        None, "--memory-limit", help="address-space cap per task, MiB"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
) -> None:
    """Solve many instances with one or more solvers; one JSON line per (instance, solver), resumable.

    Exits 0 when no task of the batch ended in error, 3 otherwise (an unreadable instance file
    is an error line per solver).
    """
    from optkit.batch.runner import run_batch
    from optkit.batch.summary import HEADER, summarize
    from optkit.cli import parse_params

    solvers = [s.strip() for item in solver for s in item.split(",") if s.strip()] or None
    display = _Display(quiet)
    run = run_batch(
        paths,
        solvers,
        output=output,
        time_limit=time_limit,
        threads=threads,
        seed=seed,
        params=parse_params(param),
        jobs=jobs,
        executor=executor,
        address=address,
        force=force,
        retry_errors=retry_errors,
        grace=grace,
        memory_limit_mb=memory_limit,
        hard_limit=hard_limit,
        on_start=display.start,
        on_line=display.line,
        on_tick=display.tick,
    )
    display.stop()
    table = Table(*HEADER, title=f"{output}")
    summaries = summarize(run.lines())
    for s in summaries:
        table.add_row(*s.row())
    _stdout().print(table)
    done = len(run.new_lines)
    err.print(
        f"optkit batch: {done} task(s) run, {run.failures} error(s), {run.already_done} already in "
        f"{output}"
        + (
            f", {len(run.todo) - done} not run (interrupted; run again to resume)"
            if run.interrupted
            else ""
        ),
        highlight=False,
    )
    if run.interrupted:
        raise typer.Exit(130)
    errors = sum(s.errors for s in summaries)
    if errors:
        err.print(
            f"optkit batch: {errors} task(s) of this batch ended in error (exit 3; "
            f"--retry-errors runs them again)",
            highlight=False,
        )
        raise typer.Exit(3)


class _Display:
    """A rich progress bar on a terminal (counts, failures, ETA); a line every 10 s otherwise."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress = None
        self.total = self.done = self.failed = 0
        self._last = 0.0
        self._last_print = time.monotonic()

    def start(self, run) -> None:
        for note in run.notes:
            err.print(f"optkit batch: {note}", highlight=False)
        self.total = len(run.todo)
        if run.already_done:
            err.print(
                f"optkit batch: {run.already_done} of {len(run.tasks)} task(s) already in {run.output}, "
                f"skipped (--force to redo)",
                highlight=False,
            )
        if self.quiet or not self.total:
            return
        if err.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
                auto_refresh=False,
            )
            self.progress.start()
            self.task_id = self.progress.add_task("batch", total=self.total, failed=0)

    def line(self, d: dict) -> None:
        self.done += 1
        if d.get("status") == "error":
            self.failed += 1
            if not self.quiet:
                err.print(
                    f"optkit batch: error: {d.get('instance_path')} with {d.get('solver')}: "
                    f"{d.get('message')}",
                    highlight=False,
                    markup=False,
                )
        if self.progress is not None:
            self.progress.update(self.task_id, completed=self.done, failed=self.failed)
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if self.progress is not None:
            if now - self._last >= 0.1:
                self.progress.refresh()
                self._last = now
        elif not self.quiet and self.total and now - self._last_print >= 10.0:
            self._last_print = now
            err.print(
                f"optkit batch: {self.done}/{self.total} done, {self.failed} failed",
                highlight=False,
            )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.refresh()
            self.progress.stop()
            self.progress = None


def report(
    results: Path = typer.Argument(..., help="results file written by `optkit batch`"),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="folder (default: RESULTS-report/)"
    ),
    plots: bool = typer.Option(
        True, "--plots/--no-plots", help="draw plots (needs matplotlib: optkit[plot])"
    ),
) -> None:
    """Markdown and HTML tables and plots (performance profile, gap over time, one solution per problem)."""
    from optkit.batch.report import make_report

    folder = output or results.with_name(results.stem + "-report")
    written = make_report(results, folder, plots=plots)
    for path in written:
        err.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
    app.command("report")(report)
