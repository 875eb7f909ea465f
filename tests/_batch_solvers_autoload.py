"""Importing this registers the misbehaving test solvers (for worker processes that are not forked
from the test process: a subprocess CLI, Ray workers). Named by OPTKIT_BATCH_PRELOAD in those tests only."""

import _batch_solvers

_INSTALLED = _batch_solvers.installed()  # kept alive: collecting it would unregister the solvers
_INSTALLED.__enter__()
