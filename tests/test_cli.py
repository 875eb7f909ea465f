"""The command line: exit codes, one-line errors naming file and field, nothing half-written."""

from __future__ import annotations

import json

import pytest

from optkit.cli import main

GOOD = {
    "problem": "tardiness",
    "name": "cli",
    "processing_times": [3, 2, 4],
    "due_dates": [3, 2, 9],
    "weights": [1, 2, 1],
}


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    "content,expected",
    [
        ("{not json", "malformed JSON at line 1"),
        ("", "the file is empty"),
        ("[1, 2]", "must be a JSON object"),
        ({**GOOD, "processing_times": [3, "2", 4]}, "field 'processing_times.1'"),
        ({**GOOD, "processing_times": [3, 2.5, 4]}, "field 'processing_times.1'"),
        ({**GOOD, "due_dates": [3, -2, 9]}, "field 'due_dates.1'"),
        ({**GOOD, "colour": "red"}, "field 'colour': unknown key"),
        (
            {**GOOD, "processing_times": [], "due_dates": [], "weights": []},
            "field 'processing_times'",
        ),
        ({**GOOD, "due_dates": [3]}, "field 'due_dates'"),
        ({**GOOD, "problem": "knapsack"}, "field 'problem': unknown kind"),
        ({"processing_times": [1]}, "field 'problem' is missing"),
    ],
)
def test_bad_instance_exits_2_with_file_and_field(tmp_path, capsys, content, expected):
    path = write(tmp_path, "bad.json", content)
    out = tmp_path / "result.json"
    assert main(["solve", str(path), "--solver", "edd", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, "one line"
    assert str(path) in err and expected in err
    assert not out.exists(), "nothing half-written"


def test_bad_yaml_and_missing_file(tmp_path, capsys):
    assert main(["solve", str(write(tmp_path, "bad.yaml", "a: [1, 2"))]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, capsys):
    path = write(tmp_path, "ok.json", GOOD)
    assert main(["solve", str(path), "--solver", "nope"]) == 2
    assert "unknown solver 'nope'" in capsys.readouterr().err
    assert main(["solve", str(path), "--solver", "edd", "--param", "k"]) == 2
    assert main(["solve", str(path), "--solver", "edd", "--param", "k=1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["solve"]) == 2
    assert main(["generate", "tardiness", "-o", str(tmp_path / "g.json"), "--bogus", "1"]) == 2


def test_solve_write_and_check_round_trip(tmp_path, capsys):
    path = write(
        tmp_path,
        "ok.yaml",
        "problem: tardiness\nprocessing_times: [3, 2, 4]\n"
        "due_dates: [3, 2, 9]\nweights: [1, 2, 1]\n",
    )
    out = tmp_path / "r.json"
    assert main(["solve", str(path), "--solver", "dp", "--json", "-o", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed == saved and saved["status"] == "optimal" and saved["objective"] == 2
    assert saved["instance"] == "ok" and saved["solver_version"].startswith("numpy")
    assert main(["check", str(path), str(out)]) == 0
    saved["objective"] = 1
    lie = write(tmp_path, "lie.json", saved)
    assert main(["check", str(path), str(lie)]) == 1
    saved["objective"], saved["solution"] = 2, {"sequence": [0, 0, 1]}
    assert main(["check", str(path), str(write(tmp_path, "bad_sol.json", saved))]) == 1
    assert main(["check", str(path), str(write(tmp_path, "junk.json", {"x": 1}))]) == 2


def test_solver_error_exits_3(tmp_path, capsys):
    released = {**GOOD, "processing_times": [1, 2], "due_dates": [1, 1], "release_dates": [0, 3]}
    released.pop("weights", None)
    assert main(["solve", str(write(tmp_path, "rel.json", released)), "--solver", "dp"]) == 3
    assert "release dates" in capsys.readouterr().out


def test_generate_and_import(tmp_path, shared_benchmarks):
    gen = tmp_path / "g.json"
    assert (
        main(["generate", "tardiness", "--seed", "4", "-o", str(gen), "--n", "12", "--tf", "0.4"])
        == 0
    )
    data = json.loads(gen.read_text())
    assert len(data["processing_times"]) == 12
    assert (
        main(
            [
                "import",
                "orlib-wt",
                str(shared_benchmarks / "tardiness/weighted/wt40.txt"),
                "-o",
                str(tmp_path / "wt40"),
            ]
        )
        == 0
    )
    files = sorted((tmp_path / "wt40").glob("*.json"))
    assert len(files) == 125 and files[0].name == "wt40_001.json"


def test_solvers_table_lists_availability(capsys):
    assert main(["solvers", "tardiness"]) == 0
    out = capsys.readouterr().out
    assert "cpsat" in out and "dp" in out and "available" in out
    assert main(["solvers", "knapsack"]) == 2


# -- issue 26: exit codes and clean errors ------------------------------------------------------


@pytest.fixture
def nothing_solver():
    """A tardiness solver that finds nothing in its time (status unknown) and takes no warm start."""
    from optkit.registry import _SOLVERS, register
    from optkit.result import Termination
    from optkit.solve import Outcome

    register("test-nothing", "tardiness")(lambda p, o: Outcome(termination=Termination.TIME_LIMIT))
    yield "test-nothing"
    _SOLVERS.pop(("tardiness", "test-nothing"), None)


def test_status_unknown_exits_4(tmp_path, capsys, nothing_solver):
    path = write(tmp_path, "ok.json", GOOD)
    assert main(["solve", str(path), "--solver", nothing_solver, "-t", "1"]) == 4
    assert "unknown" in capsys.readouterr().out


def test_initial_for_solver_without_warm_start_warns_and_is_kept(tmp_path, capsys, nothing_solver):
    from optkit.registry import _SOLVERS, register
    from optkit.solve import Outcome

    path = write(tmp_path, "ok.json", GOOD)
    start = tmp_path / "start.json"
    assert main(["solve", str(path), "--solver", "spt", "--json", "-o", str(start)]) == 0
    capsys.readouterr()
    args = ["solve", str(path), "--initial", str(start), "--json"]
    # a solver without warm start whose answer (objective 18) is worse than the start (2)
    register("test-worse", "tardiness")(lambda p, o: Outcome(solution={"sequence": [2, 0, 1]}))
    try:
        assert main([*args, "--solver", "test-worse"]) == 0
    finally:
        _SOLVERS.pop(("tardiness", "test-worse"), None)
    kept = json.loads(capsys.readouterr().out)
    assert kept["objective"] == 2 == json.loads(start.read_text())["objective"]
    assert kept["solution"] == json.loads(start.read_text())["solution"]
    assert (
        "takes no warm start" in kept["message"]
        and "initial solution is returned" in (kept["message"])
    )
    # nothing found: still unknown (exit 4), with the warning
    assert main([*args, "--solver", nothing_solver]) == 4
    assert "takes no warm start" in json.loads(capsys.readouterr().out)["message"]
    # a solver that does better keeps its own answer, with the warning
    assert main([*args, "--solver", "dp"]) == 0
    better = json.loads(capsys.readouterr().out)
    assert better["status"] == "optimal" and "takes no warm start" in better["message"]


@pytest.mark.parametrize("target", ["{tmp}/out/", "{tmp}", "{tmp}/afile/r.json"])
def test_output_path_errors_exit_2_naming_it(tmp_path, capsys, target):
    path = write(tmp_path, "ok.json", GOOD)
    (tmp_path / "afile").write_text("x")
    target = target.replace("{tmp}", str(tmp_path))
    assert main(["solve", str(path), "--solver", "edd", "-o", target]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and target.rstrip("/") in err
    assert main(["generate", "tardiness", "-o", target]) == 2


def test_write_failure_after_solving_exits_2(tmp_path, capsys, monkeypatch):
    import optkit.io

    def refuse(p, text):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(optkit.io, "_write_atomically", refuse)
    target = tmp_path / "r.json"
    assert (
        main(["solve", str(write(tmp_path, "ok.json", GOOD)), "-s", "edd", "-o", str(target)]) == 2
    )
    assert f"{target}: cannot write: Permission denied" in capsys.readouterr().err


def _nested(depth: int) -> str:
    return '{"problem": "tardiness", "x": ' + "[" * depth + "]" * depth + "}"


ALIAS_BOMB = "problem: tardiness\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("list.json", {**GOOD, "problem": ["tardiness"]}, "field 'problem': expected a string"),
        ("dict.json", {**GOOD, "problem": {"a": 1}}, "field 'problem': expected a string"),
        ("deep.json", _nested(20_000), "nested more than"),
        ("deep100.json", _nested(100), "nested more than"),
        ("deep.yaml", "problem: tardiness\nx: " + "[" * 20_000 + "]" * 20_000, "nested more"),
        ("bomb.yaml", ALIAS_BOMB, "YAML aliases"),
    ],
)
def test_hostile_files_exit_2(tmp_path, capsys, name, content, expected):
    # the message names the guard that stopped the file (nesting depth, alias budget) before
    # any expansion; how fast that is lives in no test (it failed a 5 s bound under load 5)
    path = write(tmp_path, name, content)
    assert main(["solve", str(path), "--solver", "edd"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(path) in err and expected in err, err


def test_solvers_table_says_why_the_default(capsys):
    assert main(["solvers", "tardiness"]) == 0
    out = capsys.readouterr().out
    assert "auto *" in out and "tardiness: auto, dynasearch" in out
