"""Misbehaving solvers for the batch crash-isolation tests. Registered only by `installed()` (a context
manager used in a fixture) and removed again afterwards, so no other test ever sees them."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from optkit.registry import _SOLVERS, register
from optkit.solve import Outcome

KIND = "tardiness"


def _raise(problem, opts):
    raise RuntimeError("boom from test-raise")


def _sleep(problem, opts):
    time.sleep(600)  # ignores its time limit
    return Outcome()


def _exit(problem, opts):
    os._exit(7)


def _kill(problem, opts):
    os.kill(os.getpid(), signal.SIGKILL)


def _oom(problem, opts):
    return Outcome(solution={"sequence": list(bytearray(1 << 46))})  # 64 TiB: MemoryError


def _slow(problem, opts):
    if problem.name and problem.name == os.environ.get("OPTKIT_TEST_HANG_ON"):
        while True:  # never returns: the batch can only be killed here
            time.sleep(1)
    time.sleep(0.3)
    return Outcome(solution={"sequence": list(range(problem.n))})


def _ok(problem, opts):
    return Outcome(solution={"sequence": list(range(problem.n))})


SOLVERS = {
    "test-raise": _raise,
    "test-sleep": _sleep,
    "test-exit": _exit,
    "test-kill": _kill,
    "test-oom": _oom,
    "test-slow": _slow,
    "test-ok": _ok,
}


@contextlib.contextmanager
def installed():
    for name, fn in SOLVERS.items():
        register(name, KIND)(fn)
    try:
        yield list(SOLVERS)
    finally:
        for name in SOLVERS:
            _SOLVERS.pop((KIND, name), None)
