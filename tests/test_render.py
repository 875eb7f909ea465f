"""`optkit render`: the solution itself as text for every problem, labelled objectives, `--png`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import optkit
from optkit.cli import main
from optkit.problems.pod_packing import PodPacking
from optkit.problems.tardiness import Tardiness
from optkit.render import labelled_objective, pod_changes, render_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUITE = Path(__file__).resolve().parent.parent / "instances"


def _solve_and_render(
    tmp_path: Path, instance: Path, capsys, solver: str | None = None, png: bool = False
) -> str:
    result = tmp_path / "r.json"
    args = ["solve", str(instance), "-o", str(result), "--json", "-t", "10"]
    assert main(args + (["-s", solver] if solver else [])) in (0, 1)
    capsys.readouterr()
    picture = ["--png", str(tmp_path / "s.png")] if png else []
    assert main(["render", str(instance), str(result), *picture]) == 0
    if png:
        assert (tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
    return capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(
    "instance",
    [
        "tardiness/suite/tardiness_n6.json",
        "pod-packing/suite/tiny_priorities.json",
        "expert-placement/suite/tiny_nodes.json",
        "gpu-selection/suite/melange_sf2_pooled.json",
        "software-pipelining/suite/twill_fig1.json",
    ],
)
def test_render_png_for_every_problem(tmp_path: Path, capsys, instance: str):
    text = _solve_and_render(tmp_path, SUITE / instance, capsys, png=True)
    assert "objective" in text


def test_tardiness_prints_the_sequence_with_completion_and_tardiness(tmp_path: Path, capsys):
    inst = Tardiness(
        name="three", processing_times=[3, 2, 4], due_dates=[3, 2, 5], weights=[1, 2, 1]
    )
    optkit.dump(inst, tmp_path / "t.json")
    text = _solve_and_render(tmp_path, tmp_path / "t.json", capsys, solver="dp")
    assert "total weighted tardiness:" in text
    # every job appears once in the table, and its row's completion - due = its tardiness
    lines = text.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("---"))) + 1 :]
    rows = [line.split() for line in table if line.strip()]
    assert sorted(int(r[1]) for r in rows) == [0, 1, 2]
    for r in rows:
        job, completion, due = int(r[1]), int(r[4]), int(r[5])
        assert due == inst.due_dates[job]
        tardiness = int(r[6]) if len(r) > 6 and max(0, completion - due) else 0
        assert tardiness == max(0, completion - due)


def test_pod_packing_table_marks_moves_evictions_and_pending(tmp_path: Path, capsys):
    inst = PodPacking(
        nodes=[
            {"name": "n1", "capacity": {"cpu": 1000}},
            {"name": "n2", "capacity": {"cpu": 1000}},
        ],
        pods=[
            {"name": "low", "requests": {"cpu": 600}, "priority": 0, "node": "n1"},
            {"name": "mid", "requests": {"cpu": 500}, "priority": 1, "node": "n2"},
            {"name": "high", "requests": {"cpu": 900}, "priority": 2},
            {"name": "big", "requests": {"cpu": 2000}, "priority": 0},
        ],
    )
    solution = {"assignment": {"low": None, "mid": "n1", "high": "n2", "big": None}}
    changes = {p.name: c for p, _, _, c in pod_changes(inst, solution)}
    assert changes == {"low": "evicted", "mid": "moved", "high": "placed", "big": "pending"}
    optkit.dump(inst, tmp_path / "p.json")
    result = {
        "problem": "pod-packing",
        "instance": None,
        "solver": "by hand",
        "solver_version": "0",
        "status": "feasible",
        "termination": "completed",
        "objective": inst.check(solution).objective,
        "solution": solution,
    }
    (tmp_path / "r.json").write_text(json.dumps(result))
    assert main(["render", str(tmp_path / "p.json"), str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    for word in ("before", "after", "change", "pending pods:", "big (priority 0)"):
        assert word in text
    assert "-(pods placed with priority >= 2)" in text and "evictions:" in text


def test_expert_placement_prints_slot_map_and_loads(tmp_path: Path, capsys):
    text = _solve_and_render(
        tmp_path, SUITE / "expert-placement" / "suite" / "tiny_chain.json", capsys
    )
    assert "slot map" in text and "GPU 0" in text and "max/mean" in text
    assert "traffic between consecutive layers" in text


def test_gpu_selection_prints_counts_cost_and_assignment(tmp_path: Path, capsys):
    instance = SUITE / "gpu-selection" / "suite" / "short_r24_sf4_pooled_max3.json"
    text = _solve_and_render(tmp_path, instance, capsys)
    assert "cost per hour:" in text and "total" in text and "assignment of workload slices" in text


def test_software_pipelining_prints_the_reservation_table(tmp_path: Path, capsys):
    text = _solve_and_render(
        tmp_path, SUITE / "software-pipelining" / "suite" / "twill_fig1.json", capsys, solver="ims"
    )
    assert "modulo reservation table" in text and "initiation interval (II):" in text


def test_objective_terms_of_the_result_win_over_the_fallback_names():
    inst = Tardiness(processing_times=[1], due_dates=[0])
    by_list = {"objective": 1, "objective_terms": ["weighted lateness"]}
    assert labelled_objective(inst, by_list) == ["objective:", "  weighted lateness: 1"]
    by_dicts = {"objective": [3, 4], "objective_terms": [{"name": "a", "value": 3}, {"name": "b"}]}
    assert labelled_objective(inst, by_dicts)[1:] == ["  a: 3", "  b: 4"]
    assert labelled_objective(inst, {"objective": 1})[1] == "  total weighted tardiness: 1"


def test_infeasible_solution_is_said_so():
    inst = Tardiness(processing_times=[1, 1], due_dates=[0, 0])
    text = render_text(inst, {"solution": {"sequence": [0, 0]}, "objective": 0})
    assert "INFEASIBLE" in text and "permutation" in text


@pytest.mark.parametrize("flag", ["--png"])
def test_render_png_of_a_result_without_solution_exits_1(tmp_path: Path, capsys, flag):
    inst = Tardiness(processing_times=[1], due_dates=[0])
    optkit.dump(inst, tmp_path / "t.json")
    result = {
        "problem": "tardiness",
        "instance": None,
        "solver": "x",
        "solver_version": "0",
        "status": "unknown",
        "termination": "time_limit",
    }
    (tmp_path / "r.json").write_text(json.dumps(result))
    code = main(["render", str(tmp_path / "t.json"), str(tmp_path / "r.json"), flag, "x.png"])
    assert code == 1 and not (tmp_path / "x.png").exists()


# -- what a first try shows: generator options, seeds, the default instances ---------------------


@pytest.mark.parametrize(
    "problem",
    ["tardiness", "pod-packing", "expert-placement", "gpu-selection", "software-pipelining"],
)
def test_help_options_give_a_sentence_for_every_option(problem, capsys):
    assert main(["generate", problem, "--help-options"]) == 0
    text = capsys.readouterr().out
    flags = [line for line in text.splitlines() if line.startswith("--")]
    helps = [line for line in text.splitlines() if line.startswith("    ")]
    assert flags and len(helps) >= len(flags)  # each flag has at least one line of help
    assert all("default" in line for line in flags)


def test_help_options_name_units_and_choices(capsys):
    main(["generate", "tardiness", "--help-options"])
    text = capsys.readouterr().out
    assert "--tf  (default 0.6; unit: fraction of P)" in text and "Tardiness factor" in text
    main(["generate", "expert-placement", "--help-options"])
    assert "one of mixtral, deepseek-v3, qwen-moe, tiny" in capsys.readouterr().out


@pytest.mark.parametrize(
    "problem",
    ["tardiness", "pod-packing", "expert-placement", "gpu-selection", "software-pipelining"],
)
def test_the_seed_changes_the_generated_instance(problem, tmp_path: Path, capsys):
    options = {"expert-placement": ["--layers", "2"]}.get(problem, [])
    texts = []
    for seed in ("1", "2"):
        out = tmp_path / f"{seed}.json"
        assert main(["generate", problem, "--seed", seed, "-o", str(out), *options]) == 0
        texts.append(json.loads(out.read_text()))
    assert texts[0] != texts[1]


def test_default_expert_placement_instance_separates_the_solvers():
    """The first demo: on the default instance EPLB and the default solver disagree."""
    from optkit.problems.expert_placement import generate

    problem = generate()
    objectives = {s: optkit.solve(problem, s).objective for s in ("eplb", "greedy-affinity")}
    assert problem.weight > 0 and objectives["greedy-affinity"] < objectives["eplb"]


def test_shipped_eplb_example_reproduces_eplbs_readme_with_the_default_call():
    problem = optkit.load(SUITE / "expert-placement" / "eplb_readme_example.json")
    result = optkit.solve(problem, "eplb")  # no num_groups: the instance's 4 groups
    assert result.stats["policy"] == "hierarchical"
    assert result.solution["slots"] == [
        [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
        [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ]  # EPLB's README output
    assert [round(b, 3) for b in result.metrics["balancedness_per_layer"]] == [0.828, 0.805]


def test_orlib_import_carries_the_optima_of_the_opt_file(tmp_path: Path, capsys):
    from optkit.batch import run_batch

    # two 2-job instances: p, w, d; optima by hand (job 1 first: 2*1 + 1*4 = 6) and 0
    (tmp_path / "wt2.txt").write_text("2 3 1 2 1 2\n1 1 1 1 5 5\n")
    (tmp_path / "wt2.opt").write_text("6\n0\n")
    assert main(["import", "orlib-wt", str(tmp_path / "wt2.txt"), "-o", str(tmp_path / "i")]) == 0
    files = sorted((tmp_path / "i").glob("*.json"))
    assert [json.loads(f.read_text())["known_optimum"] for f in files] == [6, 0]
    out = tmp_path / "r.jsonl"
    run_batch([str(tmp_path / "i")], ["dp"], output=out, jobs=1)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((d["known_optimum"], d["objective"]) for d in lines) == [(0, 0), (6, 6)]
    (tmp_path / "wt2.opt").write_text("6\n")
    assert main(["import", "orlib-wt", str(tmp_path / "wt2.txt"), "-o", str(tmp_path / "j")]) == 2
    assert "wt2.opt: 1 optima for the 2 instances" in capsys.readouterr().err


def test_shipped_cluster_dump_is_a_fragmented_cluster_and_its_script_remakes_it():
    import importlib.util

    from optkit.k8s.snapshot import build_snapshot, split_list

    dump = SUITE / "k8s" / "fragmented_cluster.json"
    data = json.loads(dump.read_text())
    spec = importlib.util.spec_from_file_location("make_dump", SUITE / "k8s" / "make_dump.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.cluster_dump() == data
    snapshot = build_snapshot(*split_list([data]), name="fragmented_cluster")
    instance = PodPacking.from_dict(snapshot.instance)
    assert len(instance.nodes) == 4 and len(snapshot.pending_unschedulable()) == 2
    # the two 3-CPU pods fit on no node as it is: every node has 2 CPUs free
    assert instance.evaluate_current().metrics["pending_by_priority"] == {"1000": 2, "10": 0}
