"""Discrete min-max violation local search on CuPy, or NumPy without a GPU.

Modules: `backend` (CuPy/NumPy selection by an allocation probe), `engine` (the DMMV model and
search), `expert_placement` and `pod_packing` (the registered `minmax` solvers), `fir` (the
fixed-point FIR design showcase with CP-SAT and MIP models of the same problem). See docs/minmax.md.
"""
