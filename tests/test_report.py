"""`optkit report`: tables and plots from a small results file; pictures of each problem's solution."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import optkit
from optkit.batch import run_batch
from optkit.batch.pictures import PICTURES
from optkit.batch.report import performance_profile, primal_gap
from optkit.cli import main
from optkit.problems.tardiness import generate


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "inst"
    for seed in range(3):
        optkit.dump(generate(seed=seed, n=6), folder / f"t{seed}.json")
    out = tmp_path / "r.jsonl"
    run_batch([str(folder)], ["edd", "dp", "wspt"], output=out, jobs=1)
    return out


@pytest.mark.slow
def test_report_files(tmp_path: Path, results: Path, capsys):
    target = tmp_path / "rep"
    assert main(["report", str(results), "-o", str(target)]) == 0
    for name in (
        "report.md",
        "report.html",
        "profile_tardiness.png",
        "gap_tardiness.png",
        "solution_tardiness.png",
    ):
        assert (target / name).stat().st_size > 0, name
    md = (target / "report.md").read_text()
    assert "| tardiness | dp | 3 | 3 | 3 |" in md and "![" in md
    assert "<table>" in (target / "report.html").read_text()


def test_report_without_matplotlib(tmp_path: Path, results: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["report", str(results), "-o", str(tmp_path / "a")]) == 3
    assert "pip install 'optkit[plot]'" in capsys.readouterr().err
    assert main(["report", str(results), "-o", str(tmp_path / "b"), "--no-plots"]) == 0
    assert (tmp_path / "b" / "report.md").exists()


def test_report_bad_file_exits_2(tmp_path: Path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["report", str(tmp_path / "empty.jsonl")]) == 2
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2


def test_profile_and_gap_math():
    ratios = performance_profile({"a": {"i": 1.0, "j": float("inf")}, "b": {"i": 2.0, "j": 3.0}})
    assert ratios == {"a": [1.0, float("inf")], "b": [1.0, 2.0]}
    assert primal_gap(10, 10) == 0 and primal_gap(None, 10) == 1 and primal_gap(20, 10) == 0.5


def test_pictures_of_every_problem_from_dicts():
    """Each picture draws from the spec's instance and solution formats alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = {
        "tardiness": ({"processing_times": [2, 3], "due_dates": [2, 3]}, {"sequence": [1, 0]}),
        "pod-packing": (
            {
                "nodes": [{"name": "n1", "capacity": {"cpu": 1000, "memory": 100}}],
                "pods": [
                    {"name": "a", "requests": {"cpu": 500, "memory": 10}, "priority": 1},
                    {"name": "b", "requests": {"cpu": 900, "memory": 10}, "priority": 0},
                ],
            },
            {"assignment": {"a": "n1", "b": None}},
        ),
        "expert-placement": (
            {"gpus": 2, "slots_per_gpu": 2, "load": [[4.0, 2.0, 1.0], [1.0, 1.0, 1.0]]},
            {"slots": [[0, 1, 0, 2], [0, 1, 2, 0]]},
        ),
        "gpu-selection": (
            {
                "gpu_types": [
                    {"name": "A10G", "cost_per_hour": 1.0},
                    {"name": "H100", "cost_per_hour": 4.0},
                ]
            },
            {"counts": {"A10G": 2, "H100": 1}},
        ),
        "software-pipelining": (
            {
                "units": {"tc": 1, "mem": 2},
                "ops": [
                    {"name": "ld", "unit": "mem", "cycles": 2},
                    {"name": "mma", "unit": "tc", "cycles": 1},
                ],
            },
            {"ii": 2, "start": {"ld": 0, "mma": 2}},
        ),
    }
    # what each picture must show of its solution, worked out by hand
    shows = {
        # job 1 runs 0-3 (due 3), job 0 runs 3-5 (due 2): tardiness 3
        "tardiness": ["total weighted tardiness 3"],
        # both pods start pending; the solution places a and leaves b pending
        "pod-packing": ["before: 2 pod(s) pending", "after: 1 pod(s) pending"],
        # layer 0: expert 0 has two replicas: GPU loads 2 + 2 = 4 and 2 + 1 = 3, max/mean 4/3.5
        "expert-placement": ["busiest GPU +14.3 %", "layer 0 (most imbalanced)"],
        "gpu-selection": ["3 GPUs, $6.00 per hour", "$2.00/h", "$4.00/h"],
        # ld uses mem in cycles 0, 1 (stage 0); mma at 2 is cycle 0 of stage 1
        "software-pipelining": ["II = 2", "ld/0", "mma/1"],
    }
    assert set(cases) == set(PICTURES) == set(shows)
    for kind, (instance, solution) in cases.items():
        fig = plt.figure()
        PICTURES[kind](fig, instance, solution)
        text = " | ".join(
            [ax.get_title() for ax in fig.axes]
            + [t.get_text() for ax in fig.axes for t in ax.texts]
        )
        for needle in shows[kind]:
            assert needle in text, (kind, needle, text)
        assert "over capacity" not in text, kind
        plt.close(fig)


def _browser() -> str | None:
    """Debian's chromium, or another Chromium-based browser on the PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.slow
def test_report_html_has_no_markdown_and_embeds_its_images(tmp_path: Path, results: Path):
    target = tmp_path / "rep"
    assert main(["report", str(results), "-o", str(target)]) == 0
    page = (target / "report.html").read_text()
    assert "`" not in page and "<code>optima.json</code>" in page
    assert page.count('src="data:image/png;base64,') == 3
    assert "![" not in page and "| ---" not in page
    assert "Objective (minimised): total weighted tardiness." in page


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None, reason="no chromium on the PATH (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path, results: Path):
    """The page as a browser builds it has the tables and images, and its screenshot shows the
    pictures' colours (the images were decoded and painted, not just referenced)."""
    import matplotlib.image

    from optkit.batch.pictures import LATE, ON_TIME

    target = tmp_path / "rep"
    assert main(["report", str(results), "-o", str(target)]) == 0
    url = (target / "report.html").resolve().as_uri()
    flags = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert dom.count("<table") == 2  # the summary and the objectives per instance
    assert dom.count("<img") == 3 and dom.count('src="data:image/png') == 3
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, "--window-size=1200,2600", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = matplotlib.image.imread(shot)[:, :, :3]
    for colour in (ON_TIME, LATE):  # the Gantt chart's bars are on the screen
        rgb = [int(colour[k : k + 2], 16) / 255 for k in (1, 3, 5)]
        near = (abs(pixels - rgb) < 0.03).all(axis=2).sum()
        assert near > 500, colour
