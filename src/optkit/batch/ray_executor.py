"""The Ray executor: the same tasks on a Ray cluster (extra `ray`), results streamed back as they finish.

Each task reserves `num_cpus = threads`. Inside the Ray worker the task runs in a child process of
its own with the same hard limit as locally, so a solver that hangs, exits or is OOM-killed costs
one `error` line and never the Ray worker. The instance data travels with the task, so workers on
other machines need optkit installed, not the instance files.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from optkit.batch.tasks import Task
from optkit.batch.worker import error_line, run_isolated
from optkit.errors import SolverUnavailable

INSTALL_HINT = "pip install 'optkit[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SolverUnavailable(
            f"--executor ray needs the Python module 'ray' ({INSTALL_HINT})"
        ) from None
    return ray


def _ray_task(task: Task, hard_limit: float | None, memory_limit_mb: int | None) -> dict:
    from optkit.registry import discover

    discover()  # once per Ray worker, before the fork, so that each task's child starts warm
    return run_isolated(task, hard_limit, memory_limit_mb)


class RayExecutor:
    def __init__(
        self,
        address: str | None = None,
        grace: float = 5.0,
        memory_limit_mb: int | None = None,
        hard_limit: float | None = None,
        max_in_flight: int = 2000,
    ):
        self.ray = import_ray()
        self.address = address
        self.grace = grace
        self.memory_limit_mb = memory_limit_mb
        self.hard_limit = hard_limit
        self.max_in_flight = max_in_flight
        self._started_ray = False

    def _limit(self, task: Task) -> float | None:
        return task.time_limit + self.grace if task.time_limit is not None else self.hard_limit

    def connect(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs["include_dashboard"] = False
            ray.init(**kwargs)
            self._started_ray = True

    def cpus(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 0))

    def run(self, tasks: list[Task]) -> Iterator[dict | None]:
        """Yield each task's line as it finishes, and None every tick."""
        ray = self.ray
        self.connect()
        remote = ray.remote(max_retries=0)(_ray_task)
        todo = list(reversed(tasks))
        pending: dict[Any, tuple[Task, float]] = {}
        try:
            while todo or pending:
                while todo and len(pending) < self.max_in_flight:
                    task = todo.pop()
                    ref = remote.options(num_cpus=task.threads).remote(
                        task, self._limit(task), self.memory_limit_mb
                    )
                    pending[ref] = (task, time.monotonic())
                done, _ = ray.wait(list(pending), num_returns=min(len(pending), 64), timeout=0.2)
                for ref in done:
                    task, submitted = pending.pop(ref)
                    try:
                        line = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a dead worker or node is one task's error
                        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                        line = error_line(
                            task,
                            f"Ray task failed: {type(e).__name__}: {first}",
                            time.monotonic() - submitted,
                        )
                    yield line
                yield None
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001
                    pass
            self.close()

    def close(self) -> None:
        if self._started_ray and self.ray.is_initialized():
            self.ray.shutdown()
            self._started_ray = False
