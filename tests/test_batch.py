"""`optkit batch`: task discovery, the results file (schema, resume after a kill), crash isolation, CLI.

The misbehaving solvers (raise, sleep past the limit, exit, SIGKILL, MemoryError) come from
tests/_batch_solvers.py and are registered only for the duration of the `bad_solvers` fixture.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import _batch_solvers
import optkit
from optkit.batch import plan_batch, read_lines, run_batch, validate_line
from optkit.batch.records import ResultsWriter, latest
from optkit.batch.tasks import expand_paths
from optkit.cli import main
from optkit.problems.tardiness import generate
from optkit.registry import _SOLVERS, register

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def bad_solvers():
    with _batch_solvers.installed() as names:
        yield names


@pytest.fixture
def instances(tmp_path: Path) -> Path:
    folder = tmp_path / "inst"
    for seed in range(4):
        optkit.dump(generate(seed=seed, n=6), folder / f"t{seed}.json")
    return folder


def _by(lines, key="solver"):
    return {d[key]: d for d in lines}


# -- tasks --------------------------------------------------------------------------------------


def test_paths_files_folders_globs(tmp_path: Path, instances: Path):
    (instances / "optima.json").write_text("{}")
    (instances / "sub").mkdir()
    optkit.dump(generate(seed=9, n=5), instances / "sub" / "deep.json")
    (instances / "notes.txt").write_text("not an instance")
    files = expand_paths(
        [str(instances), str(instances / "t1.json"), str(tmp_path / "inst" / "t*.json")]
    )
    names = [p.name for p in files]
    assert sorted(names) == [
        "deep.json",
        "t0.json",
        "t1.json",
        "t2.json",
        "t3.json",
    ]  # once each, no optima.json
    with pytest.raises(optkit.InputError, match="no such file"):
        expand_paths([str(tmp_path / "missing.json")])
    with pytest.raises(optkit.InputError, match="matches no file"):
        expand_paths([str(tmp_path / "*.nothing")])


def test_default_solver_notes_and_known_optima(tmp_path: Path, instances: Path):
    (instances / "stray.json").write_text('{"hello": 1}')
    (instances / "optima.json").write_text(json.dumps({"t0": 123}))
    register("only-other", "other-kind")(lambda p, o: None)
    try:
        run = plan_batch([str(instances)], None, output=tmp_path / "r.jsonl")
        default = optkit.registry.get_solver("tardiness", None).name
        assert {t.solver for t in run.tasks if t.error is None} == {default}
        stray = [t for t in run.tasks if t.instance_path.endswith("stray.json")]
        assert [(t.solver, t.problem) for t in stray] == [("default", "unknown")]
        assert "not an instance file" in stray[0].error
        assert [t.known_optimum for t in run.tasks if t.instance_path.endswith("t0.json")] == [123]
        run = plan_batch([str(instances)], ["edd", "only-other"], output=tmp_path / "r.jsonl")
        assert {t.solver for t in run.tasks if t.error is None} == {"edd"}
        assert any("'only-other' does not serve tardiness" in n for n in run.notes)
    finally:
        _SOLVERS.pop(("other-kind", "only-other"), None)


def test_oversubscription_warning(tmp_path: Path, instances: Path):
    cores = os.cpu_count() or 1
    run = plan_batch(
        [str(instances)], ["edd"], output=tmp_path / "r.jsonl", jobs=cores + 1, threads=1
    )
    assert any(n.startswith("warning:") and "exceeds" in n for n in run.notes)
    run = plan_batch([str(instances)], ["edd"], output=tmp_path / "r.jsonl", jobs=1, threads=1)
    assert not any(n.startswith("warning:") for n in run.notes)


# -- results file -------------------------------------------------------------------------------


def test_lines_are_valid_results(tmp_path: Path, instances: Path, bad_solvers):
    out = tmp_path / "r.jsonl"
    run = run_batch([str(instances)], ["edd", "dp", "test-raise"], output=out, time_limit=5, jobs=2)
    lines, bad = read_lines(out)
    assert not bad and len(lines) == 12 == len(run.new_lines)
    for d in lines:
        assert validate_line(d) == [], d
        assert d["host"] and d["started_at"].endswith("Z")
        assert Path(d["instance_path"]).exists()
        optkit.Result.from_dict(
            {k: v for k, v in d.items() if k in optkit.Result.__dataclass_fields__}
        )
        if d["status"] == "feasible" or d["status"] == "optimal":
            problem = optkit.load(d["instance_path"])
            assert optkit.check(problem, d["solution"]).objective == d["objective"]
    assert {d["status"] for d in lines if d["solver"] == "dp"} == {"optimal"}
    # each written line is one complete JSON object on one line
    assert all(json.loads(text) for text in out.read_text().splitlines())


def test_validate_line_rejects_bad_lines():
    good = {k: None for k in optkit.Result.__dataclass_fields__}
    good.update(
        problem="tardiness",
        solver="edd",
        solver_version="x",
        status="error",
        termination="error",
        runtime_s=0.1,
        threads=1,
        seed=0,
        metrics={},
        params={},
        stats={},
        message="why",
        instance_path="a.json",
        host="h",
        started_at="t",
    )
    assert validate_line(good) == []
    assert validate_line({**good, "extra": 1})
    assert validate_line({**good, "status": "feasible"})  # no solution
    assert validate_line({**good, "message": None})
    assert validate_line({k: v for k, v in good.items() if k != "host"})
    assert validate_line([1, 2])


def test_resume_after_interruption(tmp_path: Path, instances: Path):
    out = tmp_path / "r.jsonl"
    seen = []

    def stop_after_three(line):
        seen.append(line)
        if len(seen) == 3:
            raise KeyboardInterrupt

    run = run_batch([str(instances)], ["edd", "wspt"], output=out, jobs=1, on_line=stop_after_three)
    assert run.interrupted and len(read_lines(out)[0]) == 3
    with out.open("a") as f:  # a half-written line, as a killed writer leaves it
        f.write('{"problem": "tardiness", "solver": "ed')
    run = run_batch([str(instances)], ["edd", "wspt"], output=out, jobs=2)
    assert run.already_done == 3 and len(run.new_lines) == 5 and not run.interrupted
    lines, bad = read_lines(out)
    assert not bad and len(lines) == 8
    assert len({(d["instance_path"], d["solver"]) for d in lines}) == 8
    again = run_batch([str(instances)], ["edd", "wspt"], output=out)
    assert again.already_done == 8 and not again.new_lines
    forced = run_batch([str(instances)], ["edd"], output=out, force=True)
    assert len(forced.new_lines) == 4
    assert len(read_lines(out)[0]) == 12 and len(latest(read_lines(out)[0])) == 8


@pytest.mark.slow
def test_resume_after_kill_of_the_whole_batch(tmp_path: Path, instances: Path, bad_solvers):
    """A real `optkit batch` process killed with SIGKILL mid-run loses nothing it had finished. In
    the killed run `test-slow` never returns on the last instance, so the kill always lands mid-run."""
    out = tmp_path / "r.jsonl"
    env = {
        **os.environ,
        "OPTKIT_TEST_HANG_ON": optkit.load(instances / "t3.json").name,
        "OPTKIT_BATCH_PRELOAD": "_batch_solvers_autoload",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable,
        "-m",
        "optkit",
        "batch",
        str(instances),
        "-s",
        "test-slow,edd",
        "-j",
        "1",
        "-o",
        str(out),
        "-q",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and len(out.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    first, bad = read_lines(out)
    assert 2 <= len(first) < 8 and not bad
    run = run_batch([str(instances)], ["test-slow", "edd"], output=out, jobs=2)
    assert run.already_done == len(first) and len(run.new_lines) == 8 - len(first)
    lines, _ = read_lines(out)
    assert len(lines) == 8 == len({(d["instance_path"], d["solver"]) for d in lines})


def test_writer_cuts_partial_line(tmp_path: Path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"a": 1}\n{"b": ')
    with ResultsWriter(out) as w:
        w.write({"c": 2})
    assert out.read_text() == '{"a": 1}\n{"c":2}\n'


# -- crash isolation ----------------------------------------------------------------------------


def test_crash_isolation(tmp_path: Path, instances: Path, bad_solvers):
    out = tmp_path / "r.jsonl"
    solvers = ["test-raise", "test-sleep", "test-exit", "test-kill", "test-oom", "test-ok"]
    # the solvers that end by themselves run without a clock (a slow machine changes nothing);
    # the one that ignores its limit is stopped by the hard limit, time_limit + grace
    run = run_batch(
        [str(instances / "t0.json")],
        [s for s in solvers if s != "test-sleep"],
        output=out,
        jobs=2,
    )
    assert not run.interrupted and len(run.new_lines) == 5
    run = run_batch(
        [str(instances / "t0.json")], ["test-sleep"], output=out, time_limit=0.3, grace=0.5, jobs=1
    )
    assert not run.interrupted and len(run.new_lines) == 1
    by = _by(read_lines(out)[0])
    assert set(by) == set(solvers)
    for name in solvers[:-1]:
        assert by[name]["status"] == "error" and by[name]["termination"] == "error", by[name]
        assert validate_line(by[name]) == []
    assert "RuntimeError: boom" in by["test-raise"]["message"]
    assert "hard limit of 0.8 s" in by["test-sleep"]["message"]
    assert "exited with code 7" in by["test-exit"]["message"]
    assert "SIGKILL" in by["test-kill"]["message"]
    assert "MemoryError" in by["test-oom"]["message"]
    assert by["test-ok"]["status"] == "feasible"


def test_batch_goes_on_after_crashes(tmp_path: Path, instances: Path, bad_solvers):
    """Workers that die are replaced: every later task still runs, on every instance."""
    out = tmp_path / "r.jsonl"
    run = run_batch([str(instances)], ["test-exit", "edd"], output=out, jobs=1)
    assert len(run.new_lines) == 8
    assert sorted(d["status"] for d in run.new_lines) == ["error"] * 4 + ["feasible"] * 4


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_batch_and_summary(tmp_path: Path, instances: Path, capsys):
    out = tmp_path / "r.jsonl"
    code = main(
        ["batch", str(instances), "--solver", "edd,dp", "-t", "5", "-j", "2", "-o", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(read_lines(out)[0]) == 8
    assert "dp" in captured.out and "optimal" in captured.out  # the summary table
    assert "8 task(s) run, 0 error(s)" in captured.err
    code = main(["batch", str(instances), "--solver", "edd,dp", "-o", str(out)])
    assert code == 0 and "already in" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere/*.json"], "matches no file"),
        (["{inst}", "--solver", "no-such-solver"], "unknown solver 'no-such-solver'"),
        (["{inst}", "--solver", "edd", "--param", "nope=1"], "--param nope"),
        (["{inst}", "--executor", "slurm"], "--executor"),
        (["{inst}", "--time-limit", "-1"], "--time-limit"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, instances: Path, capsys, args, message):
    args = [a.replace("{inst}", str(instances)) for a in args]
    code = main(["batch", *args, "-o", str(tmp_path / "r.jsonl")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_ray_missing_exits_3(tmp_path: Path, instances: Path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(
        ["batch", str(instances), "-s", "edd", "--executor", "ray", "-o", str(tmp_path / "r.jsonl")]
    )
    assert code == 3
    assert "pip install 'optkit[ray]'" in capsys.readouterr().err


# -- issue 26: errors count, workers die with the batch ----------------------------------------


def test_unreadable_instances_are_error_lines_per_solver(tmp_path: Path, instances: Path, capsys):
    (instances / "broken.json").write_text("{not json")
    (instances / "kind.json").write_text('{"problem": ["tardiness"]}')
    (instances / "bomb.yaml").write_text(
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh"))
    )
    out = tmp_path / "r.jsonl"
    code = main(["batch", str(instances), "-s", "edd,spt", "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 3
    lines, bad = read_lines(out)
    assert not bad and len(lines) == 14
    errors = [d for d in lines if d["status"] == "error"]
    assert sorted((Path(d["instance_path"]).name, d["solver"]) for d in errors) == [
        (name, solver)
        for name in ("bomb.yaml", "broken.json", "kind.json")
        for solver in ("edd", "spt")
    ]
    assert all(validate_line(d) == [] for d in errors)
    assert (
        "malformed JSON" in _by(errors, "instance_path")[str(instances / "broken.json")]["message"]
    )
    assert "6 error(s)" in captured.err and "exit 3" in captured.err


def test_batch_with_an_erroring_task_exits_3(tmp_path: Path, instances: Path, capsys, bad_solvers):
    out = tmp_path / "r.jsonl"
    assert main(["batch", str(instances / "t0.json"), "-s", "test-raise", "-o", str(out)]) == 3
    assert main(["batch", str(instances / "t0.json"), "-s", "edd", "-o", str(out)]) == 0


@pytest.mark.parametrize("target", ["{tmp}/out/", "{tmp}/afile/r.jsonl"])
def test_batch_output_errors_exit_2(tmp_path: Path, instances: Path, capsys, target):
    (tmp_path / "afile").write_text("x")
    target = target.replace("{tmp}", str(tmp_path))
    assert main(["batch", str(instances), "-s", "edd", "-o", target]) == 2
    assert target.rstrip("/") in capsys.readouterr().err


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_the_batch(tmp_path: Path, instances: Path, sig):
    env = {
        **os.environ,
        "OPTKIT_BATCH_PRELOAD": "_batch_solvers_autoload",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    cmd = [sys.executable, "-m", "optkit", "batch", str(instances), "-s", "test-sleep"]
    cmd += ["-j", "2", "-t", "60", "-q", "-o", str(tmp_path / "r.jsonl")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) >= 2
        os.kill(proc.pid, sig)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = [w for w in workers if Path(f"/proc/{w}/stat").exists()]
        zombies = [w for w in alive if Path(f"/proc/{w}/stat").read_text().split(") ")[1][0] == "Z"]
        assert alive == zombies, "workers outlived their batch"
    finally:
        if proc.poll() is None:
            proc.kill()
