"""`run_batch`: expand the paths into tasks, skip the ones already done, run the rest, append lines."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.batch.records import ResultsWriter, done_keys, latest, read_lines, resolve_instance
from optkit.batch.tasks import Task, make_tasks
from optkit.errors import InputError
from optkit.io import check_output_path

EXECUTORS = ("local", "ray")


@dataclass
class BatchRun:
    """What a batch did."""

    output: Path
    tasks: list[Task] = field(default_factory=list)  # every pair of the batch
    todo: list[Task] = field(default_factory=list)  # the pairs run this time
    already_done: int = 0
    notes: list[str] = field(default_factory=list)
    new_lines: list[dict] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failures(self) -> int:
        return sum(d.get("status") == "error" for d in self.new_lines)

    def lines(self) -> list[dict]:
        """The latest line of every pair of this batch, from the results file (resumed ones included)."""
        keys = {t.key for t in self.tasks}
        records, _ = read_lines(self.output)
        return [
            d
            for d in latest(records)
            if (resolve_instance(d["instance_path"]), d["solver"]) in keys
        ]


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def plan_batch(
    paths: list[str],
    solvers: list[str] | None = None,
    *,
    output: str | os.PathLike,
    time_limit: float | None = None,
    threads: int = 1,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    jobs: int = 1,
    executor: str = "local",
    force: bool = False,
    retry_errors: bool = False,
) -> BatchRun:
    """The tasks of a batch and which of them still have to run; nothing is run."""
    if executor not in EXECUTORS:
        raise InputError(f"--executor: '{executor}' is not one of {', '.join(EXECUTORS)}")
    if time_limit is not None and not time_limit > 0:
        raise InputError(f"--time-limit: must be positive, got {time_limit}")
    if threads < 1 or jobs < 1:
        raise InputError("--threads and --jobs must be at least 1")
    from optkit.batch.worker import import_preloads

    import_preloads()
    out = Path(output)
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        raise InputError(
            f"-o {output}: is a folder; give the results file (e.g. {out / 'results.jsonl'})"
        )
    check_output_path(out)
    tasks, notes = make_tasks(
        paths,
        solvers,
        time_limit=time_limit,
        threads=threads,
        seed=seed,
        params=params,
        with_data=executor == "ray",
    )
    if not tasks:
        raise InputError(
            "nothing to run: " + ("; ".join(notes) if notes else "no (instance, solver) pairs")
        )
    run = BatchRun(output=out, tasks=tasks, notes=notes)
    records, bad = read_lines(out)
    if bad:
        run.notes.append(
            f"{out}: ignored {len(bad)} unreadable line(s) (e.g. line {bad[0]}), "
            f"their tasks run again"
        )
    done = set() if force else done_keys(records, retry_errors=retry_errors)
    run.todo = [t for t in tasks if t.key not in done]
    run.already_done = len(tasks) - len(run.todo)
    if executor == "local" and jobs * threads > available_cpus():
        run.notes.append(
            f"warning: --jobs {jobs} x --threads {threads} = {jobs * threads} exceeds the "
            f"{available_cpus()} cores here; solves will compete for CPU and time limits will "
            f"buy less search"
        )
    return run


def run_batch(
    paths: list[str],
    solvers: list[str] | None = None,
    *,
    output: str | os.PathLike,
    time_limit: float | None = None,
    threads: int = 1,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    jobs: int = 1,
    executor: str = "local",
    address: str | None = None,
    force: bool = False,
    retry_errors: bool = False,
    grace: float = 5.0,
    memory_limit_mb: int | None = None,
    hard_limit: float | None = None,
    on_start: Callable[[BatchRun], None] | None = None,
    on_line: Callable[[dict], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> BatchRun:
    """Run every (instance, solver) pair not yet in `output`, appending one line per finished task.

    `on_start(run)` is called once the tasks are known, `on_line(line)` after each line is written,
    `on_tick()` a few times a second. Ctrl-C stops the batch; what finished is in the file.
    """
    run = plan_batch(
        paths,
        solvers,
        output=output,
        time_limit=time_limit,
        threads=threads,
        seed=seed,
        params=params,
        jobs=jobs,
        executor=executor,
        force=force,
        retry_errors=retry_errors,
    )
    if executor == "ray":
        from optkit.batch.ray_executor import RayExecutor

        runner: Any = RayExecutor(
            address=address, grace=grace, memory_limit_mb=memory_limit_mb, hard_limit=hard_limit
        )
        if run.todo:
            runner.connect()
            cpus = runner.cpus()
            if cpus and threads > cpus:
                run.notes.append(
                    f"warning: --threads {threads} exceeds the {cpus} CPUs of the Ray cluster; "
                    f"no task can be scheduled"
                )
    else:
        from optkit.batch.local import LocalExecutor

        runner = LocalExecutor(
            jobs=min(jobs, max(1, len(run.todo))),
            grace=grace,
            memory_limit_mb=memory_limit_mb,
            hard_limit=hard_limit,
        )
    if on_start:
        on_start(run)
    if not run.todo:
        if executor == "ray":
            runner.close()
        return run
    stream = runner.run(run.todo)
    try:
        with ResultsWriter(run.output) as writer:
            for line in stream:
                if line is not None:
                    writer.write(line)
                    run.new_lines.append(line)
                    if on_line:
                        on_line(line)
                elif on_tick:
                    on_tick()
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        stream.close()
    return run
