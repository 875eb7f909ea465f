"""Solvers that combine other solvers of a problem, each called through the `optkit.solve` facade."""
