"""Redraw the solution pictures of the problem pages (docs/<problem>.md, "What a solution looks
like"): each one is a shipped instance solved with `optkit solve` and drawn by `optkit render --png`.

Run from the repository root: `python docs/pictures/make.py` (about a minute; the solvers run with
one thread and a fixed seed, so a rerun draws the same pictures unless a time limit cuts a search).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from optkit.cli import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

#: picture -> (instance: a shipped file or `optkit generate` arguments, solver, time limit in s)
PICTURES: dict[str, tuple[str | list[str], str, int]] = {
    "tardiness.png": (["tardiness", "--n", "100", "--seed", "1"], "dynasearch", 5),
    "pod_packing.png": (
        ["pod-packing", "--nodes", "6", "--priorities", "3", "--util", "1.1", "--seed", "0"],
        "cpsat",
        20,
    ),
    "expert_placement.png": ("instances/expert-placement/mixtral_4gpu_s0.json", "dp", 20),
    "gpu_selection.png": (
        "instances/gpu-selection/melange-example/melange_example_sf4.json",
        "mip",
        20,
    ),
    "software_pipelining.png": ("instances/software-pipelining/fa3_hopper.json", "cpsat", 20),
}


def _run(args: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the JSON and tables; the picture is the point
        code = main(args)
    if code != 0:
        raise SystemExit(f"optkit {' '.join(args)}: exit {code}")


def make(names: list[str] | None = None) -> list[Path]:
    """Solve and render each picture (all by default); return the files written."""
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (instance, solver, limit) in PICTURES.items():
            if names and name not in names:
                continue
            if isinstance(instance, list):
                path = str(Path(tmp) / f"{name}.instance.json")
                _run(["generate", *instance[:1], "-o", path, *instance[1:]])
            else:
                path = str(ROOT / instance)
            result = str(Path(tmp) / f"{name}.result.json")
            _run(["solve", path, "-s", solver, "-t", str(limit), "--json", "-o", result])
            _run(["render", path, result, "--png", str(HERE / name)])
            written.append(HERE / name)
    return written


if __name__ == "__main__":
    import sys

    for path in make(sys.argv[1:] or None):
        print(f"wrote {path.relative_to(ROOT)}")
