"""Solver families, one subpackage each (`heuristics`, `cpsat`, `mip`, `dp`, `minmax`).

Each module `optkit.backends.<family>.<problem>` registers its solvers with
`optkit.registry.register`; `optkit.solvers(problem)` lists them by name.
"""
