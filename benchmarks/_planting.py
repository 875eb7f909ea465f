"""Replace one function of an optkit module by an edited copy of its source, in this process only.

Shared by benchmarks/planted_bugs.py (hand-written bugs) and benchmarks/mutation.py (generated
mutants): `plant("optkit.problems.tardiness:Tardiness.evaluate", old, new)` recompiles the method with
the one occurrence of `old` replaced by `new`, in the module's namespace, and installs it (methods,
properties and cached properties alike). Run pytest in the same process afterwards.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from functools import cached_property
from typing import Any


def locate(target: str) -> tuple[Any, Any, str, Any]:
    """(module, owner, attribute name, function) of 'module:Qual.name'."""
    module_name, qualname = target.split(":")
    module = importlib.import_module(module_name)
    owner: Any = module
    parts = qualname.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    name = parts[-1]
    obj = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    if isinstance(obj, cached_property):
        func = obj.func
    elif isinstance(obj, property):
        func = obj.fget
    elif isinstance(obj, (staticmethod, classmethod)):
        func = obj.__func__
    else:
        func = obj
    return module, owner, name, func


def source(target: str) -> str:
    """The dedented source of the target, decorators included."""
    return textwrap.dedent(inspect.getsource(locate(target)[3]))


def install(target: str, new_source: str) -> None:
    """Compile `new_source` (a whole def, as `source` returns it) and put it in the target's place."""
    module, owner, name, _ = locate(target)
    namespace: dict[str, Any] = {}
    exec(compile(new_source, f"<planted {target}>", "exec"), module.__dict__, namespace)
    replacement = namespace[name]
    if isinstance(replacement, cached_property):
        replacement.__set_name__(owner, name)
    setattr(owner, name, replacement)


def plant(target: str, old: str, new: str) -> None:
    """Replace the single occurrence of `old` in the target's source by `new` and install it."""
    text = source(target)
    if text.count(old) != 1:
        raise ValueError(f"{target}: {old!r} occurs {text.count(old)} times, not once")
    install(target, text.replace(old, new))
