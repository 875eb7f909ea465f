"""Solver families, one subpackage each; modules register solvers with `optkit.registry.register`.

The package is also callable, so that `optkit.solvers("tardiness")` (the spec's API) lists the
names of the solvers that can run here, while `optkit.solvers.cpsat` stays the CP-SAT family.
"""

import sys
import types


class _Catalogue(types.ModuleType):
    def __call__(self, problem: str | None = None, available_only: bool = True) -> list[str]:
        """Names of the solvers of `problem` (all problems if None) that can run here."""
        from optkit.registry import solver_specs

        return [s.name for s in solver_specs(problem) if s.available or not available_only]


sys.modules[__name__].__class__ = _Catalogue
