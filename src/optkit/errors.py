"""Errors a caller can act on, each mapped to one CLI exit code (see the spec)."""


class OptkitError(Exception):
    """Base of every error optkit raises on purpose."""

    exit_code = 3


class InputError(OptkitError, ValueError):
    """Bad input: an instance, a result file, a parameter or a usage error (exit 2).

    The message names the file and the field so that the user can fix it.
    """

    exit_code = 2


class SolverUnavailable(OptkitError):
    """The solver exists but cannot run here, e.g. an optional extra is missing (exit 3)."""

    exit_code = 3


class SolverError(OptkitError):
    """The solver failed or returned something the checker rejects (exit 3)."""

    exit_code = 3
