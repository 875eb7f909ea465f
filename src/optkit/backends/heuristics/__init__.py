"""Dispatch rules, constructive heuristics and local search (pure Python / NumPy)."""
