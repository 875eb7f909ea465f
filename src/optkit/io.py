"""Instance and result files: JSON or YAML in, validated objects out; atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from optkit.errors import InputError
from optkit.problem import Problem
from optkit.result import Result


def read_data(path: str | os.PathLike) -> Any:
    """Parse a JSON or YAML file; errors name the file and the position."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read: {e}") from None
    if not text.strip():
        raise InputError(f"{p}: the file is empty")
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"{p}: malformed YAML: {' '.join(str(e).split())}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{p}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except ValueError as e:
        raise InputError(f"{p}: {e}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in instance files")


def load(path: str | os.PathLike) -> Problem:
    """Load and validate an instance file of any problem kind (named by its `"problem"` key)."""
    data = read_data(path)
    if isinstance(data, dict) and "name" not in data:
        data = {**data, "name": Path(path).stem}
    return Problem.from_dict(data, source=str(path))


def dump(problem: Problem, path: str | os.PathLike) -> None:
    """Write an instance as JSON (or YAML for a .yaml/.yml path), atomically."""
    data = problem.to_dict()
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        write_text(path, yaml.safe_dump(data, sort_keys=False))
    else:
        write_text(path, json.dumps(data, separators=(", ", ": ")) + "\n")


def load_result(path: str | os.PathLike) -> Result:
    data = read_data(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: a result must be a JSON object")
    try:
        return Result.from_dict(data)
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(f"{path}: not a result file: {e}") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file and rename, so that a reader never sees half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.chmod(
            tmp, 0o666 & ~_umask()
        )  # mkstemp makes it private; a written file gets the usual mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
