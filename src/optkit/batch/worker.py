"""Running one task, in whatever process an executor gives it, and turning every failure into a line."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from datetime import datetime, timezone
from typing import Any

from optkit.batch.tasks import Task
from optkit.errors import OptkitError
from optkit.process import die_with_parent
from optkit.result import Result, Status, Termination

HOST = socket.gethostname()
#: trajectories longer than this are thinned (first and last points kept)
MAX_TRAJECTORY = 200
#: comma-separated modules each worker imports before its first task (e.g. extra solver registrations)
PRELOAD_ENV = "OPTKIT_BATCH_PRELOAD"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def solver_version(task: Task) -> str:
    try:
        from optkit.registry import get_solver

        return get_solver(task.problem, task.solver).version()
    except Exception:  # noqa: BLE001 - a version string is not worth failing an error line for
        return "unknown"


def error_line(
    task: Task,
    message: str,
    runtime_s: float = 0.0,
    started_at: str | None = None,
    host: str | None = None,
) -> dict:
    """A complete results line for a task that produced no result of its own."""
    result = Result(
        problem=task.problem,
        instance=task.instance,
        solver=task.solver,
        solver_version=solver_version(task),
        status=Status.ERROR,
        termination=Termination.ERROR,
        runtime_s=round(max(0.0, runtime_s), 6),
        time_limit_s=task.time_limit,
        threads=task.threads,
        seed=task.seed,
        params=dict(task.params),
        message=message,
    )
    return _with_batch_keys(result.to_dict(), task, started_at or now_iso(), host or HOST, None)


def _with_batch_keys(
    d: dict, task: Task, started_at: str, host: str, trajectory: list | None
) -> dict:
    d["instance_path"] = task.instance_path
    d["host"] = host
    d["started_at"] = started_at
    if task.known_optimum is not None:
        d["known_optimum"] = task.known_optimum
    if trajectory is not None:
        d["trajectory"] = _thin(trajectory)
    return d


def _thin(points: list) -> list:
    if len(points) <= MAX_TRAJECTORY:
        return points
    step = (len(points) - 1) / (MAX_TRAJECTORY - 1)
    return [points[round(i * step)] for i in range(MAX_TRAJECTORY)]


def run_task(task: Task) -> dict:
    """Load the instance, solve it, and return its results line. Never raises for a solver's fault."""
    from optkit.io import load
    from optkit.problem import Problem
    from optkit.solve import solve

    started_at = now_iso()
    t0 = time.monotonic()
    if task.error is not None:
        return error_line(task, task.error, 0.0, started_at)
    try:
        if task.data is not None:
            problem = Problem.from_dict(task.data, source=task.instance_path)
            if problem.name is None:
                problem = problem.model_copy(update={"name": task.instance})
        else:
            problem = load(task.instance_path)
    except OptkitError as e:
        return error_line(task, str(e), time.monotonic() - t0, started_at)

    trajectory: list = []

    def on_solution(solution: dict, objective: Any) -> None:
        trajectory.append([round(time.monotonic() - t0, 4), objective])

    try:
        result = solve(
            problem,
            task.solver,
            time_limit=task.time_limit,
            threads=task.threads,
            seed=task.seed,
            callback=on_solution,
            **task.params,
        )
    except OptkitError as e:
        return error_line(task, str(e), time.monotonic() - t0, started_at)
    except Exception as e:  # noqa: BLE001 - e.g. a MemoryError outside the solver itself
        return error_line(task, f"{type(e).__name__}: {e}", time.monotonic() - t0, started_at)
    if result.objective is not None:
        final = [round(result.runtime_s, 4), result.objective]
        if not trajectory or trajectory[-1][1] != result.objective:
            trajectory.append(final)
    return _with_batch_keys(result.to_dict(), task, started_at, HOST, trajectory)


# -- worker processes --------------------------------------------------------------------------


def worker_setup(memory_limit_mb: int | None = None) -> None:
    """In a fresh worker: die with the parent, leave Ctrl-C to it, cap the memory, import the
    preloads."""
    die_with_parent()
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (never in our workers)
        pass
    if memory_limit_mb:
        try:
            import resource

            limit = int(memory_limit_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass
    import_preloads()


def import_preloads() -> None:
    """Import the modules named in $OPTKIT_BATCH_PRELOAD (comma-separated), e.g. your own solvers."""
    for name in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
        importlib.import_module(name.strip())


def worker_main(conn: Any, memory_limit_mb: int | None) -> None:
    """A pool worker: receive a task, send back its line, until told to stop."""
    worker_setup(memory_limit_mb)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            line = run_task(task)
        except BaseException as e:  # noqa: BLE001 - the parent must get a line for every task
            line = error_line(task, f"{type(e).__name__}: {e}")
        try:
            conn.send(line)
        except (OSError, ValueError):
            return


def mp_context() -> Any:
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def describe_exit(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is None:
        return "the solver process vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = (
            " (out of memory? the kernel's OOM killer sends SIGKILL)"
            if -exitcode == signal.SIGKILL
            else ""
        )
        return f"the solver process was killed by {name}{hint}"
    return f"the solver process exited with code {exitcode}"


def run_isolated(task: Task, hard_limit: float | None, memory_limit_mb: int | None = None) -> dict:
    """Run one task in a child process of its own; kill it at `hard_limit` seconds. For Ray workers."""
    ctx = mp_context()
    parent, child = ctx.Pipe(duplex=False)
    started_at = now_iso()
    t0 = time.monotonic()
    proc = ctx.Process(target=_isolated_child, args=(task, child, memory_limit_mb), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(hard_limit):
            try:
                return parent.recv()
            except (EOFError, OSError):
                proc.join(1.0)
                return error_line(
                    task, describe_exit(proc.exitcode), time.monotonic() - t0, started_at
                )
        return error_line(
            task,
            f"killed at the hard limit of {hard_limit:g} s (time limit + grace)",
            time.monotonic() - t0,
            started_at,
        )
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(1.0)
        parent.close()


def _isolated_child(task: Task, conn: Any, memory_limit_mb: int | None) -> None:
    worker_setup(memory_limit_mb)
    try:
        line = run_task(task)
    except BaseException as e:  # noqa: BLE001
        line = error_line(task, f"{type(e).__name__}: {e}")
    conn.send(line)
    conn.close()
