"""Batch solving (`optkit batch`) and reports (`optkit report`).

    from optkit.batch import run_batch
    run = run_batch(["instances/tardiness"], ["edd", "cpsat"], output="results.jsonl", time_limit=1, jobs=2)

Ray (`executor="ray"`) and matplotlib (reports) are optional extras, imported only when used.
"""

from optkit.batch.records import read_lines, validate_line
from optkit.batch.runner import BatchRun, plan_batch, run_batch
from optkit.batch.tasks import Task, expand_paths, make_tasks

__all__ = [
    "BatchRun",
    "Task",
    "expand_paths",
    "make_tasks",
    "plan_batch",
    "read_lines",
    "run_batch",
    "validate_line",
]
