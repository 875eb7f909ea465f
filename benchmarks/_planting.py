"""Replace one function of an optkit module by an edited copy of its source, in this process only.

Shared by benchmarks/planted_bugs.py (hand-written bugs) and benchmarks/mutation.py (generated
mutants): `plant("optkit.problems.tardiness:Tardiness.evaluate", old, new)` recompiles the method with
the one occurrence of `old` replaced by `new`, in the module's namespace, and installs it (methods,
properties and cached properties alike). Run pytest in the same process afterwards.
"""

from __future__ import annotations

import functools
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


#: the test modules (in tests/) that hold the checker tests; a test belongs to a problem when its
#: name holds the problem's name
TEST_MODULES = ("test_checkers", "test_checker_boundaries")


def checker_tests(problem: str) -> list[Any]:
    """The problem's checker tests as calls without arguments, the quick ones first.

    Every test function of TEST_MODULES whose name holds `problem`; a parametrized test gives one
    call per parameter set. The hand-built tests come before the hypothesis tests, so that a mutant
    that a hand-built test kills dies before the long random search. Call with tests/ on sys.path
    and tests/conftest.py imported (it loads the hypothesis profile).
    """
    import itertools

    quick, searched = [], []
    for module_name in TEST_MODULES:
        module = importlib.import_module(module_name)
        for name in sorted(dir(module)):
            test = getattr(module, name)
            if not (name.startswith("test_") and problem in name and callable(test)):
                continue
            calls = []
            grids = [
                _parameter_sets(m)
                for m in getattr(test, "pytestmark", [])
                if m.name == "parametrize"
            ]
            for combo in itertools.product(*grids):
                kwargs = {k: v for part in combo for k, v in part.items()}
                calls.append(functools.partial(test, **kwargs))
            hypothesis = getattr(test, "is_hypothesis_test", False)
            (searched if hypothesis else quick).extend(calls)
    return quick + searched


def _parameter_sets(mark: Any) -> list[dict[str, Any]]:
    """The keyword arguments of each parameter set of one `pytest.mark.parametrize`."""
    names, values = mark.args[0], mark.args[1]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    out = []
    for v in values:
        if hasattr(v, "marks"):  # pytest.param(...): its values are a tuple, one per name
            v = v.values
        elif len(names) == 1:
            v = (v,)
        out.append(dict(zip(names, v, strict=True)))
    return out
