"""Discrete min-max violation local search on CuPy, or NumPy without a GPU."""
