"""Instance and result files: JSON or YAML in, validated objects out; atomic writes.

What a file may hold is bounded before any validation sees it: nesting at most `MAX_DEPTH` deep,
and YAML aliases may not expand the document beyond its own size plus `ALIAS_BUDGET` nodes (an
"alias bomb" of a few hundred bytes otherwise stands for billions of values).
"""

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
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InputError(f"{p}: malformed YAML: {' '.join(str(e).split())}") from None
        except RecursionError:
            raise InputError(f"{p}: nested more than {MAX_DEPTH} levels deep") from None
    else:
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            raise InputError(
                f"{p}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
            ) from None
        except RecursionError:
            raise InputError(f"{p}: nested more than {MAX_DEPTH} levels deep") from None
        except ValueError as e:
            raise InputError(f"{p}: {e}") from None
    check_size(data, budget=len(text) + ALIAS_BUDGET, source=str(p))
    return data


#: deepest nesting of lists and objects an input file may have
MAX_DEPTH = 64
#: values YAML aliases may add beyond one per character of the file
ALIAS_BUDGET = 10_000


def check_size(data: Any, budget: int, source: str) -> None:
    """InputError if `data` nests deeper than `MAX_DEPTH` or holds more than `budget` values.

    Values are counted as expanded (a YAML alias counts its target again each time), so that a
    small file whose aliases stand for a huge tree is refused before anything walks that tree.
    """
    stack = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{source}: nested more than {MAX_DEPTH} levels deep")
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            count += len(children)
            if count > budget:
                raise InputError(
                    f"{source}: holds more values than its size allows "
                    f"(YAML aliases expanding beyond {budget} values?)"
                )
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


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


def check_output_path(path: str | os.PathLike) -> None:
    """InputError, naming the path, if a file cannot be written at `path` (checked before work)."""
    p = Path(path)
    if str(path).endswith(("/", os.sep)) or p.is_dir():
        raise InputError(f"-o {path}: is a folder; give a file name (e.g. {p / 'result.json'})")
    parent = next((d for d in (p.parent, *p.parent.parents) if d.exists()), Path("."))
    if not parent.is_dir():
        raise InputError(f"-o {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"-o {path}: no permission to write in {parent}")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file and rename, so that a reader never sees half a file.

    Any failure to write (a folder in the way, no permission, a full disk) is an InputError
    naming the path.
    """
    try:
        _write_atomically(Path(path), text)
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from None


def _write_atomically(p: Path, text: str) -> None:
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
