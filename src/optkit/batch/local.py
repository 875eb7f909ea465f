"""The local executor: a pool of `jobs` worker processes, each running one task at a time.

Workers live for many tasks (so a task costs a pipe round trip, not a process start), but each is
watched on its own: a worker that dies (a solver that exits, segfaults or is OOM-killed) or that
runs past its task's hard limit (time limit + grace) is killed, its task recorded as `error` with
the reason, and a fresh worker takes its place. The parent is single-threaded, so forking a
replacement is safe.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from optkit.batch.tasks import Task
from optkit.batch.worker import describe_exit, error_line, mp_context, now_iso, worker_main

TICK_S = 0.25


@dataclass
class _Slot:
    proc: Any = None
    conn: Any = None
    task: Task | None = None
    started: float = 0.0
    started_at: str = ""
    deadline: float | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()


class LocalExecutor:
    def __init__(
        self,
        jobs: int = 1,
        grace: float = 5.0,
        memory_limit_mb: int | None = None,
        hard_limit: float | None = None,
    ):
        self.jobs = max(1, jobs)
        self.grace = grace
        self.memory_limit_mb = memory_limit_mb
        self.hard_limit = hard_limit  # for tasks without a time limit
        self._ctx = mp_context()
        self._slots = [_Slot() for _ in range(self.jobs)]

    def _limit(self, task: Task) -> float | None:
        if task.time_limit is not None:
            return task.time_limit + self.grace
        return self.hard_limit

    def _start(self, slot: _Slot) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main, args=(child, self.memory_limit_mb), daemon=True
        )
        proc.start()
        child.close()
        slot.proc, slot.conn = proc, parent

    def _stop(self, slot: _Slot, kill: bool = True) -> None:
        if slot.proc is not None:
            if kill and slot.proc.is_alive():
                slot.proc.kill()
            slot.proc.join(2.0)
        if slot.conn is not None:
            slot.conn.close()
        slot.proc = slot.conn = None

    def _fail(self, slot: _Slot, reason: str) -> dict:
        task = slot.task
        assert task is not None
        self._stop(slot)
        slot.task = None
        return error_line(task, reason, time.monotonic() - slot.started, slot.started_at)

    def run(self, tasks: list[Task]) -> Iterator[dict | None]:
        """Yield each task's line as it finishes, and None every tick (for progress displays)."""
        queue = deque(tasks)
        try:
            while queue or any(s.task is not None for s in self._slots):
                for slot in self._slots:
                    while slot.task is None and queue:
                        task = queue.popleft()
                        if not slot.alive():
                            self._stop(slot)
                            self._start(slot)
                        try:
                            slot.conn.send(task)
                        except (OSError, ValueError):  # the idle worker died: start another, retry
                            self._stop(slot)
                            queue.appendleft(task)
                            continue
                        slot.task, slot.started, slot.started_at = task, time.monotonic(), now_iso()
                        limit = self._limit(task)
                        slot.deadline = None if limit is None else slot.started + limit
                busy = [s for s in self._slots if s.task is not None]
                if not busy:
                    continue
                now = time.monotonic()
                timeout = min(
                    [TICK_S] + [max(0.0, s.deadline - now) for s in busy if s.deadline is not None]
                )
                ready = set(wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout))
                for slot in busy:
                    if slot.conn in ready or slot.proc.sentinel in ready:
                        line = None
                        try:
                            if slot.conn.poll():
                                line = slot.conn.recv()
                        except (EOFError, OSError):
                            line = None
                        if line is not None:
                            slot.task = None
                            yield line
                        elif not slot.proc.is_alive():
                            slot.proc.join(1.0)
                            yield self._fail(slot, describe_exit(slot.proc.exitcode))
                    elif slot.deadline is not None and time.monotonic() >= slot.deadline:
                        limit = self._limit(slot.task)
                        yield self._fail(
                            slot,
                            f"killed at the hard limit of {limit:g} s "
                            f"(time limit + {self.grace:g} s grace)",
                        )
                yield None
        finally:
            self.close()

    def close(self) -> None:
        for slot in self._slots:
            if slot.conn is not None and slot.task is None and slot.alive():
                try:
                    slot.conn.send(None)
                except (OSError, ValueError):
                    pass
                slot.proc.join(0.5)
            self._stop(slot)
            slot.task = None
