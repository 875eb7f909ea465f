"""RAY: `optkit batch --executor ray` on a real local Ray cluster.

Starts ONE local cluster (`ray.init(num_cpus=2)`, about 7 s) shared by the tests of this module.
Skipped when ray is not installed (`pip install 'optkit[ray]'`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import _batch_solvers
import optkit
from optkit.batch import read_lines, run_batch, validate_line
from optkit.problems.tardiness import generate

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster():
    """The one local Ray cluster of this test run; its workers also load the test solvers."""
    if ray.is_initialized():
        ray.shutdown()
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={
            "env_vars": {
                "OPTKIT_BATCH_PRELOAD": "_batch_solvers_autoload",
                "PYTHONPATH": pythonpath,
            }
        },
    )
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_batch_streams_results_and_isolates_crashes(tmp_path: Path, ray_cluster):
    folder = tmp_path / "inst"
    for seed in range(3):
        optkit.dump(generate(seed=seed, n=6), folder / f"t{seed}.json")
    out = tmp_path / "r.jsonl"
    with _batch_solvers.installed():
        run = run_batch(
            [str(folder)],
            ["edd", "dp", "test-exit", "test-sleep"],
            output=out,
            executor="ray",
            # the hard limit (time limit + grace) covers a worker's start and imports: generous, so
            # that a loaded machine cannot kill edd or dp; test-sleep ignores any limit
            time_limit=2.0,
            grace=1.0,
        )
    assert not run.interrupted and len(run.new_lines) == 12
    lines, bad = read_lines(out)
    assert not bad and len(lines) == 12
    for d in lines:
        assert validate_line(d) == [], d
    status = {(Path(d["instance_path"]).stem, d["solver"]): d for d in lines}
    for stem in ("t0", "t1", "t2"):
        assert status[(stem, "dp")]["status"] == "optimal"
        assert status[(stem, "edd")]["status"] == "feasible"
        assert "exited with code 7" in status[(stem, "test-exit")]["message"]
        assert "hard limit" in status[(stem, "test-sleep")]["message"]
    assert ray.is_initialized()  # a cluster the caller started is left running
    again = run_batch([str(folder)], ["edd", "dp"], output=out, executor="ray")
    assert again.already_done == 6 and not again.new_lines
