"""The results file: JSON Lines, one complete line per finished task, appended and flushed line by line.

A line is the spec's result (`Result.to_dict()`) plus the keys in `BATCH_KEYS`. A batch killed in
the middle of writing leaves at most one partial last line; readers skip it and the next writer
cuts it off before appending, so a rerun resumes from every line that was complete.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optkit.errors import InputError
from optkit.result import Result, Status, Termination, _json_default, relative_gap

#: keys a batch line has beyond the spec's result, and their types
BATCH_KEYS: dict[str, tuple[type, ...]] = {
    "instance_path": (str,),
    "host": (str,),
    "started_at": (str,),  # ISO 8601, UTC
}
#: optional batch keys
OPTIONAL_BATCH_KEYS: dict[str, tuple[type, ...]] = {
    "known_optimum": (int, float, list),  # from an optima.json beside the instance
    "trajectory": (
        list,
    ),  # [[seconds since start, objective], ...]: improving solutions, then the final one
}
RESULT_KEYS = tuple(Result.__dataclass_fields__)


def dumps(line: dict) -> str:
    return json.dumps(line, default=_json_default, separators=(",", ":"), allow_nan=False)


def validate_line(line: Any) -> list[str]:
    """What is wrong with one results line (empty if nothing): the result schema plus the batch keys."""
    if not isinstance(line, dict):
        return [f"a line must be a JSON object, got {type(line).__name__}"]
    problems = []
    missing = [k for k in (*RESULT_KEYS, *BATCH_KEYS) if k not in line]
    if missing:
        problems.append(f"missing keys {missing}")
    unknown = set(line) - set(RESULT_KEYS) - set(BATCH_KEYS) - set(OPTIONAL_BATCH_KEYS)
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    for key, types in {**BATCH_KEYS, **OPTIONAL_BATCH_KEYS}.items():
        if key in line and line[key] is not None and not isinstance(line[key], types):
            problems.append(f"field '{key}': expected {'/'.join(t.__name__ for t in types)}")
    if problems:
        return problems
    try:
        r = Result.from_dict({k: line[k] for k in RESULT_KEYS})
    except (TypeError, ValueError) as e:
        return [f"not a result: {e}"]
    checks = [
        (isinstance(r.problem, str) and r.problem, "field 'problem': a non-empty string"),
        (isinstance(r.solver, str) and r.solver, "field 'solver': a non-empty string"),
        (isinstance(r.solver_version, str), "field 'solver_version': a string"),
        (r.instance is None or isinstance(r.instance, str), "field 'instance': a string or null"),
        (_num(r.runtime_s) and r.runtime_s >= 0, "field 'runtime_s': a non-negative number"),
        (r.time_limit_s is None or _num(r.time_limit_s), "field 'time_limit_s': a number or null"),
        (isinstance(r.threads, int) and r.threads >= 1, "field 'threads': a positive integer"),
        (isinstance(r.seed, int), "field 'seed': an integer"),
        (
            r.gap is None or (_num(r.gap) and r.gap >= 0),
            "field 'gap': a non-negative number or null",
        ),
        (r.solution is None or isinstance(r.solution, dict), "field 'solution': an object or null"),
        (isinstance(r.metrics, dict), "field 'metrics': an object"),
        (
            isinstance(r.params, dict) and isinstance(r.stats, dict),
            "fields 'params', 'stats': objects",
        ),
        (r.message is None or isinstance(r.message, str), "field 'message': a string or null"),
        (
            not r.status.has_solution or (r.solution is not None and r.objective is not None),
            "status optimal/feasible needs a solution and an objective",
        ),
        (r.status != Status.ERROR or bool(r.message), "status error needs a message"),
        (
            r.status != Status.ERROR or r.termination == Termination.ERROR,
            "status error goes with termination error",
        ),
    ]
    return [msg for ok, msg in checks if not ok]


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def read_lines(path: str | os.PathLike) -> tuple[list[dict], list[int]]:
    """The complete lines of a results file, and the numbers of lines that could not be read."""
    p = Path(path)
    if not p.exists():
        return [], []
    records, bad = [], []
    try:
        f = p.open("r", encoding="utf-8")
    except OSError as e:
        raise InputError(f"{p}: cannot read: {e.strerror or e}") from None
    with f:
        for lineno, text in enumerate(f, 1):
            if not text.strip():
                continue
            if not text.endswith("\n"):  # a partial last line from a killed writer
                bad.append(lineno)
                continue
            try:
                d = json.loads(text)
            except ValueError:
                bad.append(lineno)
                continue
            if isinstance(d, dict) and "solver" in d and "instance_path" in d:
                records.append(d)
            else:
                bad.append(lineno)
    return records, bad


def load_results(path: str | os.PathLike) -> list[dict]:
    """Lines of a results file for `optkit report`; a missing or empty file is an InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such results file")
    records, _ = read_lines(p)
    if not records:
        raise InputError(f"{p}: no result lines (expected JSON Lines written by `optkit batch`)")
    return records


def done_keys(
    records: Iterable[dict], base: Path | None = None, retry_errors: bool = False
) -> set[tuple[str, str]]:
    """(absolute instance path, solver) of the lines that count as done."""
    keys = set()
    for d in records:
        if retry_errors and d.get("status") == Status.ERROR.value:
            continue
        keys.add((resolve_instance(d["instance_path"], base), d["solver"]))
    return keys


def resolve_instance(instance_path: str, base: Path | None = None) -> str:
    p = Path(instance_path)
    if not p.is_absolute() and base is not None and not p.exists() and (base / p).exists():
        p = base / p
    return str(p.resolve())


class ResultsWriter:
    """Appends one complete line per result and flushes it; cuts off a partial last line first."""

    def __init__(self, path: str | os.PathLike, truncate: bool = False):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if truncate:
                self.path.write_text("")
            else:
                _cut_partial_line(self.path)
            self._f = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise InputError(f"{self.path}: cannot write: {e.strerror or e}") from None

    def write(self, line: dict) -> None:
        self._f.write(dumps(line) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cut_partial_line(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        size = f.seek(0, os.SEEK_END)
        pos = size
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            i = block.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
        f.truncate(0)


# -- what the summary and the report compute from lines ------------------------------------------


def line_gap(d: dict) -> float | None:
    """Gap to the known optimum where there is one, else the solver's own proven gap, else None."""
    if d.get("status") not in ("optimal", "feasible"):
        return None
    known = d.get("known_optimum")
    if known is not None:
        return relative_gap(d.get("objective"), known)
    return d.get("gap")


def latest(records: Iterable[dict], base: Path | None = None) -> list[dict]:
    """One line per (instance, solver): the last one written (a `--force` rerun appends newer lines)."""
    by_key: dict[tuple[str, str], dict] = {}
    for d in records:
        by_key[(resolve_instance(d["instance_path"], base), d["solver"])] = d
    return list(by_key.values())
