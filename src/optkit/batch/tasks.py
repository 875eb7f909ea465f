"""Batch tasks: instance paths (files, folders, globs) x solvers, one `Task` per pair.

The parent reads each instance file once, only to learn its kind and name and to pair it with
solvers; the full validation happens in the worker, so that a bad instance becomes one `error`
line and not the end of the batch. A file the parent cannot read at all (malformed, no
`"problem"`, an unknown kind) becomes tasks too, each carrying its error, so that it gets one
`error` line per solver and counts in the summary.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optkit.errors import InputError, OptkitError
from optkit.io import read_data

INSTANCE_SUFFIXES = (".json", ".yaml", ".yml")
#: files in instance folders that are not instances
NOT_INSTANCES = ("optima.json",)


@dataclass(frozen=True)
class Task:
    """One (instance, solver) pair and how to run it."""

    instance_path: str  # as the user gave it (normalised)
    key_path: str  # absolute path: the resume key with `solver`
    problem: str
    instance: str
    solver: str
    time_limit: float | None = None
    threads: int = 1
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    known_optimum: Any = None
    #: the instance data itself, for executors whose workers may not see the file (Ray)
    data: dict | None = None
    #: why the instance file is unusable, when the parent already knows: the task's error line
    error: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.key_path, self.solver)


def has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def expand_paths(paths: list[str]) -> list[Path]:
    """Instance files named by files, folders (searched recursively) and globs, in order, once each."""
    found: list[Path] = []
    for raw in paths:
        if has_magic(raw):
            matches = sorted(glob.glob(raw, recursive=True))
            if not matches:
                raise InputError(f"{raw}: the pattern matches no file")
            for m in matches:
                p = Path(m)
                found.extend(_walk(p) if p.is_dir() else [p])
            continue
        p = Path(raw)
        if p.is_dir():
            found.extend(_walk(p))
        elif p.exists():
            found.append(p)
        else:
            raise InputError(f"{raw}: no such file or folder")
    seen: set[Path] = set()
    out = []
    for p in found:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            out.append(Path(os.path.normpath(p)))
    return out


def _walk(folder: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name in NOT_INSTANCES:
                continue
            if name.lower().endswith(INSTANCE_SUFFIXES):
                files.append(Path(dirpath) / name)
    return files


_OPTIMA_CACHE: dict[Path, dict] = {}


def known_optimum(path: Path, name: str) -> Any:
    """The optimum recorded for this instance in an `optima.json` beside it ({file stem: value}), or None."""
    folder = path.resolve().parent
    if folder not in _OPTIMA_CACHE:
        table: dict = {}
        f = folder / "optima.json"
        if f.is_file():
            try:
                loaded = json.loads(f.read_text())
                table = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                table = {}
        _OPTIMA_CACHE[folder] = table
    table = _OPTIMA_CACHE[folder]
    return table.get(path.stem, table.get(name))


def _read_instance(path: Path) -> tuple[Any, str | None]:
    """The file's data, or None and why it is no instance the batch can run."""
    from optkit.registry import solver_specs

    try:
        data = read_data(path)
    except OptkitError as e:
        return None, str(e)
    if not isinstance(data, dict) or "problem" not in data:
        return None, f"{path}: not an instance file (no 'problem' key)"
    kind = data["problem"]
    if not isinstance(kind, str) or not solver_specs(kind):
        return None, f"{path}: field 'problem': no solvers for problem {kind!r}"
    return data, None


def _unreadable(
    path: Path, solver: str, error: str, time_limit: float | None, threads: int, seed: int
) -> Task:
    """The task of an instance file that cannot be run: its line is the error."""
    return Task(
        instance_path=str(path),
        key_path=str(path.resolve()),
        problem="unknown",
        instance=path.stem,
        solver=solver,
        time_limit=time_limit,
        threads=threads,
        seed=seed,
        error=error,
    )


def _first_known(from_optima_file: Any, data: dict) -> Any:
    """The optimum of `optima.json`, else the one the instance file carries (or None)."""
    return from_optima_file if from_optima_file is not None else data.get("known_optimum")


def split_params(params: dict[str, Any], solver_names: list[str]) -> tuple[dict, dict[str, dict]]:
    """`--param k=v` for every solver that declares k; `--param solver.k=v` for that solver only."""
    common: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        head, dot, rest = key.partition(".")
        if dot and head in solver_names:
            scoped.setdefault(head, {})[rest] = value
        else:
            common[key] = value
    return common, scoped


def make_tasks(
    paths: list[str],
    solvers: list[str] | None,
    *,
    time_limit: float | None = None,
    threads: int = 1,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    with_data: bool = False,
) -> tuple[list[Task], list[str]]:
    """All (instance, solver) tasks of a batch, and notes about what was skipped and why."""
    from optkit.registry import get_solver, solver_specs

    files = expand_paths(paths)
    if not files:
        raise InputError(f"{' '.join(paths)}: no instance files (*.json, *.yaml) found")
    params = params or {}
    all_names = {s.name for s in solver_specs()}
    for solver in solvers or []:
        if solver not in all_names:
            raise InputError(
                f"--solver: unknown solver '{solver}' (known: {', '.join(sorted(all_names))})"
            )
    common, scoped = split_params(params, list(solvers or []) + [s.name for s in solver_specs()])
    used_keys: set[str] = set()
    tasks: list[Task] = []
    notes: list[str] = []
    skipped_pairs: dict[tuple[str, str], int] = {}
    unavailable: dict[str, str] = {}
    for path in files:
        data, error = _read_instance(path)
        if error is not None:
            for solver in solvers or ["default"]:
                tasks.append(_unreadable(path, solver, error, time_limit, threads, seed))
            continue
        kind = data["problem"]
        specs = solver_specs(kind)
        name = data.get("name") if isinstance(data.get("name"), str) else path.stem
        wanted = solvers or [get_solver(kind, None).name]
        for solver in wanted:
            spec = next((s for s in specs if s.name == solver), None)
            if spec is None:
                skipped_pairs[(solver, kind)] = skipped_pairs.get((solver, kind), 0) + 1
                continue
            why = spec.unavailable_reason()
            if why:
                unavailable[f"{solver} ({kind})"] = why
                continue
            mine = {k: v for k, v in common.items() if k in spec.params}
            mine.update(scoped.get(solver, {}))
            used_keys.update(mine)
            used_keys.update(f"{solver}.{k}" for k in scoped.get(solver, {}))
            spec.resolve_params(mine)  # a wrong type or unknown key is a usage error, now
            tasks.append(
                Task(
                    instance_path=str(path),
                    key_path=str(path.resolve()),
                    problem=kind,
                    instance=name,
                    solver=solver,
                    time_limit=time_limit,
                    threads=threads,
                    seed=seed,
                    params=mine,
                    known_optimum=_first_known(known_optimum(path, name), data),
                    data=data if with_data else None,
                )
            )
    for (solver, kind), count in sorted(skipped_pairs.items()):
        notes.append(f"solver '{solver}' does not serve {kind}: skipped on {count} instance(s)")
    for label, why in sorted(unavailable.items()):
        notes.append(f"solver {label} cannot run here, skipped: {why}")
    unused = sorted(set(common) - used_keys)
    if unused and tasks:
        raise InputError(f"--param {', '.join(unused)}: no solver of this batch takes it")
    return tasks, notes
