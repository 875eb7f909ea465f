"""Exact dynamic programs for small instances."""
