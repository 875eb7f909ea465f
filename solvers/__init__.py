"""Solver families, one subpackage each; modules register solvers with `optkit.registry.register`."""
