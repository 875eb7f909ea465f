"""The planner against an adversarial cluster and solver, on the in-memory API.

Every scenario ends with `assert_safe`: an eviction only of a pod whose departure the accepted
plan needs, in the plan's order, none after a stop; no eviction at all for a plan that was
rejected or invalidated; pins (if any) only to nodes that exist and take pods. Scripted solvers
answer in a few milliseconds; the planner trusts nothing they say but the assignment.
"""

from types import SimpleNamespace

import pytest

from optkit.errors import OptkitError
from optkit.k8s.api import ApiError
from optkit.k8s.extender import Metrics, PinStore
from optkit.k8s.fake import FakeCluster
from optkit.k8s.planner import Controller, Planner, PlannerConfig
from optkit.result import Status, Termination


def cluster(pairs=False):
    """n1, n2 (2 CPUs) each run one low pod of 1 CPU; a high pod of 1.5 CPUs fits nowhere.
    `pairs`: two high pods, and two 1-CPU nodes n3, n4 for the low pods to go to; else n3
    (2 CPUs) runs pod c of 1 CPU."""
    c = FakeCluster()
    c.add_node("n1", cpu="2")
    c.add_node("n2", cpu="2")
    c.add_replicaset("a", 1, nodes=["n1"], cpu="1")
    c.add_replicaset("b", 1, nodes=["n2"], cpu="1")
    if pairs:
        c.add_node("n3", cpu="1")
        c.add_node("n4", cpu="1")
        c.add_replicaset("high", 2, cpu="1500m", priority=1000)
    else:
        c.add_node("n3", cpu="2")
        c.add_replicaset("c", 1, nodes=["n3"], cpu="1")
        c.add_replicaset("high", 1, cpu="1500m", priority=1000)
    c.settle()
    return c


def pod_of(problem, owner, i=0):
    return sorted(p.name for p in problem.pods if p.name.startswith(f"default/{owner}-"))[i]


def answer(assignment, status=Status.FEASIBLE):
    """A solver result; its objective is nonsense on purpose (the planner uses the checker's)."""
    return SimpleNamespace(
        status=status,
        solution={"assignment": assignment} if assignment is not None else None,
        objective=[10**9],
        termination=Termination.COMPLETED,
        message=None,
    )


def scripted(moves):
    """A solver that returns the current placement changed by `moves(problem) -> {pod: node}`."""
    calls = []

    def solve(problem, solver, **kw):
        calls.append(kw)
        where = {p.name: p.node for p in problem.pods}
        where.update(moves(problem))
        return answer(where)

    solve.calls = calls
    return solve


def good_plan(problem):
    """The one-eviction plan: a moves to n3, high takes n1."""
    return {pod_of(problem, "a"): "n3", pod_of(problem, "high"): "n1"}


def pairs_plan(problem):
    """The two-eviction plan: a to n3, b to n4, the high pods on n1 and n2."""
    return {
        pod_of(problem, "a"): "n3",
        pod_of(problem, "b"): "n4",
        pod_of(problem, "high", 0): "n1",
        pod_of(problem, "high", 1): "n2",
    }


def make(c, solve=None, **config):
    cfg = PlannerConfig(
        window=5,
        solver="kube-default",
        params={"preemption": True},
        debounce=0,
        cooldown=0,
        max_delay=0,
        retry_backoff=0,
        pin_check_s=0,
        **config,
    )
    return Planner(
        c, cfg, PinStore(), Metrics(), solve=solve or scripted(good_plan), sleep=lambda s: None
    )


def attempted(c):
    """Pods the planner tried to evict, in order, retries of one pod counted once."""
    out = []
    for op, arg in c.calls:
        if op == "evict" and (not out or out[-1] != arg):
            out.append(arg)
    return out


def assert_safe(c, planner, plan):
    tried = attempted(c)
    if plan.status in ("rejected", "invalidated", "dry-run"):
        assert tried == [], (plan.status, plan.reason)
        assert planner.pins.current() is None
    else:
        order = [a.pod for a in plan.evictions]
        assert tried == order[: len(tried)], (tried, order)  # the plan's order, none after a stop
        needed = {k for k, info in plan.snapshot.pods.items() if info.node is not None}
        needed = {k for k in needed if plan.assignment.get(k) != plan.snapshot.pods[k].node}
        assert set(tried) <= needed
    pins = planner.pins.current()
    if pins is not None:
        nodes = set(pins.by_name.values()) | {
            n for counts in pins.by_owner.values() for n, k in counts.items() if k > 0
        }
        for n in nodes:
            assert n in c.nodes and not c.nodes[n]["spec"].get("unschedulable"), n
    if plan.status == "aborted":
        assert pins is None
        assert (
            sum(
                v
                for (name, _), v in planner.metrics._values.items()
                if name == "optkit_k8s_plans_aborted_total"
            )
            >= 1
        )


# -- the baseline ------------------------------------------------------------------------------


def test_01_scripted_plan_is_carried_out():
    c = cluster()
    planner = make(c)
    plan = planner.plan_and_act()
    assert plan.status == "applied", plan.reason
    assert attempted(c) == [pod_of(plan.problem, "a")]
    assert plan.objective != [10**9]  # the checker's objective, not the solver's claim
    assert_safe(c, planner, plan)


def test_02_real_solver_through_the_controller():
    c = cluster()
    planner = make(c, solve=None)
    planner._solve = None
    controller = Controller(planner)
    plan = None
    for _ in range(5):
        plan = controller.step(0.01) or plan
        if plan:
            break
    assert plan is not None and plan.status == "applied", plan and plan.reason
    assert_safe(c, planner, plan)


# -- PodDisruptionBudget races -----------------------------------------------------------------


def test_03_pdb_created_after_the_plan_invalidates_it():
    c = cluster()
    planner = make(c)
    plan = planner.plan()
    c.add_pdb("a", {"app": "a"}, min_available=1)
    plan = planner.act(plan)
    assert plan.status == "invalidated"
    assert_safe(c, planner, plan)


def test_04_pdb_turns_to_zero_at_the_eviction():
    c = cluster()
    c.add_pdb("a", {"app": "a"}, max_unavailable=1)
    planner = make(c)
    c.fail("evict", 429)  # the budget was spent by someone else in between
    plan = planner.plan_and_act()
    assert plan.status == "failed" and "429" in plan.reason
    assert planner.pins.current() is None and len(attempted(c)) == 1
    assert_safe(c, planner, plan)


def test_05_two_pdbs_on_a_pod_freeze_it():
    c = cluster()
    c.add_pdb("a1", {"app": "a"}, max_unavailable=1)
    c.add_pdb("a2", {"app": "a"}, max_unavailable=1)
    planner = make(c)
    plan = planner.plan_and_act()  # the scripted answer moves a frozen pod: rejected
    assert plan.status == "rejected", plan.reason
    assert_safe(c, planner, plan)


def test_06_pdb_created_between_two_evictions_stops_the_rest():
    c = cluster(pairs=True)
    planner = make(c, solve=scripted(pairs_plan))
    real = c.evict

    def evict(namespace, name, uid=None):
        real(namespace, name, uid)
        if not c.pdbs:
            c.add_pdb("b", {"app": "b"}, min_available=1)

    c.evict = evict
    plan = planner.plan_and_act()
    assert plan.status == "partial" and len(plan.evicted) == 1 and "429" in plan.reason
    assert_safe(c, planner, plan)


def test_07_pdb_allowing_one_when_the_plan_needs_two():
    c = cluster(pairs=True)
    c.add_pdb("ab", {"tier": "low"}, max_unavailable=1)
    for key, pod in list(c.pods.items()):  # a and b share the label the PDB selects
        if key[1][:2] in ("a-", "b-"):
            pod = {
                **pod,
                "metadata": {
                    **pod["metadata"],
                    "labels": {**pod["metadata"]["labels"], "tier": "low"},
                },
            }
            c.replace_pod(pod)
    planner = make(c, solve=scripted(pairs_plan), budget_retries=0)
    plan = planner.plan_and_act()
    assert plan.status == "rejected" and "PodDisruptionBudget" in plan.reason
    assert_safe(c, planner, plan)


# -- stale snapshots ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        "moved pod deleted",
        "moved pod replaced (new uid)",
        "moved pod bound elsewhere by hand",
        "target node cordoned",
        "target node tainted",
        "target node shrunk",
        "intruder takes the room",
        "pending pod bound by the scheduler",
    ],
)
def test_08_to_15_plan_on_a_stale_snapshot_is_invalidated(change):
    c = cluster()
    planner = make(c)
    plan = planner.plan()
    assert plan.status == "planned"
    a = pod_of(plan.problem, "a").split("/")[1]
    if change == "moved pod deleted":
        c.delete_pod("default", a)
    elif change == "moved pod replaced (new uid)":
        pod = c.pods[("default", a)]
        c.delete_pod("default", a)
        c.create_pod({**pod, "spec": {**pod["spec"], "nodeName": None}}, node="n1")
    elif change == "moved pod bound elsewhere by hand":
        pod = c.pods[("default", a)]
        c.delete_pod("default", a)
        c.create_pod({**pod, "spec": {**pod["spec"], "nodeName": None}}, node="n2")
    elif change == "target node cordoned":
        c.cordon("n3")
    elif change == "target node tainted":
        c.nodes["n1"]["spec"]["taints"] = [{"key": "x", "effect": "NoSchedule"}]
    elif change == "target node shrunk":
        c.nodes["n1"]["status"]["allocatable"]["cpu"] = "1"
    elif change == "intruder takes the room":
        c.add_pod("intruder", node="n3", cpu="900m", owner=("ReplicaSet", "intruder"))
    else:
        c.add_node("n9", cpu="2")
        c.schedule()
    plan = planner.act(plan)
    assert plan.status == "invalidated", (change, plan.status, plan.reason)
    assert_safe(c, planner, plan)


# -- a node deleted at each step -----------------------------------------------------------------


def test_16_node_deleted_before_the_snapshot():
    c = cluster()
    c.delete_node("n3")
    planner = make(c, solve=None)
    planner._solve = None
    plan = planner.plan_and_act()
    assert plan.status in ("applied", "rejected"), plan.reason
    assert "n3" not in str(plan.to_dict()["actions"])
    assert_safe(c, planner, plan)


def test_17_node_deleted_between_snapshot_and_solve():
    c = cluster()
    planner = make(c)
    snap = planner.snapshot()
    c.delete_node("n3")
    plan = planner.act(planner.plan(snap))
    assert plan.status == "invalidated"
    assert_safe(c, planner, plan)


def test_18_node_deleted_after_the_recheck_before_the_first_eviction():
    c = cluster()
    planner = make(c)
    real = planner.recheck

    def recheck(plan):
        why = real(plan)
        c.delete_node("n3")  # the moved pod's target
        return why

    planner.recheck = recheck
    plan = planner.plan_and_act()
    assert plan.status == "aborted" and "n3 is gone" in plan.reason
    assert attempted(c) == [] and planner.pins.current() is None
    assert planner.metrics.get("optkit_k8s_plans_aborted_total", reason="node_gone") == 1
    assert_safe(c, planner, plan)


def test_19_node_deleted_between_two_evictions():
    c = cluster(pairs=True)
    planner = make(c, solve=scripted(pairs_plan))
    real = c.evict

    def evict(namespace, name, uid=None):
        real(namespace, name, uid)
        if "n4" in c.nodes:
            c.delete_node("n4")  # b's target

    c.evict = evict
    plan = planner.plan_and_act()
    assert plan.status == "aborted" and len(attempted(c)) == 1
    assert planner.pins.current() is None
    assert_safe(c, planner, plan)


def test_20_node_being_freed_deleted_before_its_eviction():
    c = cluster(pairs=True)
    planner = make(c, solve=scripted(pairs_plan))
    real = c.evict

    def evict(namespace, name, uid=None):
        real(namespace, name, uid)
        if "n2" in c.nodes:
            c.delete_node("n2")  # the second eviction's source

    c.evict = evict
    plan = planner.plan_and_act()
    assert plan.status == "aborted" and "n2 is gone" in plan.reason
    assert_safe(c, planner, plan)


def test_21_node_cordoned_between_two_evictions():
    c = cluster(pairs=True)
    planner = make(c, solve=scripted(pairs_plan))
    real = c.evict

    def evict(namespace, name, uid=None):
        real(namespace, name, uid)
        c.cordon("n4")

    c.evict = evict
    plan = planner.plan_and_act()
    assert plan.status == "aborted" and "changed" in plan.reason
    assert planner.metrics.get("optkit_k8s_plans_aborted_total", reason="node_changed") == 1
    assert_safe(c, planner, plan)


def test_22_pinned_node_deleted_after_all_evictions():
    c = cluster()
    planner = make(c)
    controller = Controller(planner)
    plan = planner.plan_and_act()
    assert plan.status == "applied" and planner.pins.current() is not None
    c.delete_node("n1")  # where the high pod is pinned
    controller.step(0.01)
    assert planner.pins.current() is None
    assert planner.metrics.get("optkit_k8s_plans_aborted_total", reason="node_gone") == 1
    assert_safe(c, planner, plan)


# -- API errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault, times, status",
    [
        (429, 1, "failed"),
        (409, 1, "failed"),
        (404, 1, "applied"),
        (500, 1, "applied"),
        (500, 9, "failed"),
    ],
)
def test_23_to_27_eviction_api_errors(fault, times, status):
    c = cluster()
    planner = make(c)
    c.fail("evict", fault, times=times)
    plan = planner.plan_and_act()
    assert plan.status == status, plan.reason
    if status == "failed":
        assert planner.pins.current() is None
    assert_safe(c, planner, plan)


@pytest.mark.parametrize("fault", [500, 429, 403])
def test_28_to_30_node_recheck_api_error_stops_before_evicting(fault):
    c = cluster()
    planner = make(c)
    c.fail("get_node", fault)
    plan = planner.plan_and_act()
    assert plan.status == "aborted" and "cannot re-check" in plan.reason
    assert attempted(c) == [] and planner.pins.current() is None
    assert_safe(c, planner, plan)


@pytest.mark.parametrize("operation", ["list_nodes", "list_pods", "list_pdbs"])
def test_31_to_33_list_errors_during_the_recheck(operation):
    c = cluster()
    planner = make(c)
    plan = planner.plan()
    c.fail(operation, 500)
    with pytest.raises(ApiError):
        planner.act(plan)
    assert attempted(c) == [] and planner.pins.current() is None
    controller = Controller(planner)  # the controller survives the same error
    c.fail(operation, 500)
    assert controller.step(0.01) is None
    assert attempted(c) == []


# -- solvers that misbehave ----------------------------------------------------------------------


def test_34_solver_that_hangs_and_gives_nothing():
    c = cluster()
    planner = make(
        c,
        solve=lambda *a, **k: SimpleNamespace(
            status=Status.UNKNOWN,
            solution=None,
            objective=None,
            termination=Termination.TIME_LIMIT,
            message="killed at the window",
        ),
    )
    plan = planner.plan_and_act()
    assert plan.status == "rejected" and "no solution within" in plan.reason
    assert_safe(c, planner, plan)


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), OptkitError("solver crashed"), MemoryError()]
)
def test_35_to_37_solver_that_raises(error):
    def solve(*a, **k):
        raise error

    c = cluster()
    planner = make(c, solve=solve)
    plan = planner.plan_and_act()
    assert plan.status == "rejected" and "solver failed" in plan.reason
    assert_safe(c, planner, plan)


@pytest.mark.parametrize(
    "bad",
    [
        lambda p: {pod_of(p, "high"): "n1"},  # overfills n1
        lambda p: {pod_of(p, "high"): "n7"},  # a node that does not exist
        lambda p: {"default/ghost": "n1"},  # a pod that does not exist
    ],
)
def test_38_to_40_infeasible_or_made_up_answers_are_rejected(bad):
    c = cluster()
    planner = make(c, solve=scripted(bad))
    plan = planner.plan_and_act()
    assert plan.status == "rejected", plan.reason
    assert_safe(c, planner, plan)


def test_41_unreadable_answer_is_rejected():
    c = cluster()
    planner = make(c, solve=lambda *a, **k: answer("not an assignment"))
    plan = planner.plan_and_act()
    assert plan.status == "rejected"
    assert_safe(c, planner, plan)


def test_42_gratuitous_moves_are_not_carried_out():
    def wasteful(problem):
        moves = good_plan(problem)
        moves[pod_of(problem, "b")] = "n3"  # b fits where it is: a move the plan does not need
        moves[pod_of(problem, "c")] = None  # and c dropped for nothing
        return moves

    c = cluster()
    planner = make(c, solve=scripted(wasteful))
    plan = planner.plan_and_act()
    assert plan.status == "applied", plan.reason
    assert attempted(c) == [pod_of(plan.problem, "a")]
    assert [a.pod for a in plan.evictions] == [pod_of(plan.problem, "a")]
    assert_safe(c, planner, plan)


def test_43_answer_no_better_than_now_is_rejected():
    c = cluster()
    planner = make(c, solve=scripted(lambda p: {pod_of(p, "a"): "n3"}))  # a move, nothing gained
    plan = planner.plan_and_act()
    assert plan.status == "rejected" and "not better" in plan.reason
    assert_safe(c, planner, plan)


def test_44_acceptance_is_the_checkers_comparison(monkeypatch):
    """Whatever order the checker's objective has, the planner asks `problem.better`: with a
    comparison that calls nothing better, the same good answer is rejected and nothing moves."""
    from optkit.problems.pod_packing import PodPacking

    c = cluster()
    monkeypatch.setattr(PodPacking, "better", lambda self, a, b: False)
    planner = make(c)
    plan = planner.plan_and_act()
    assert plan.status == "rejected" and "not better" in plan.reason
    assert_safe(c, planner, plan)
    monkeypatch.undo()
    plan = make(c).plan_and_act()
    assert plan.status == "applied"
    assert plan.objective == plan.problem.check({"assignment": plan.assignment}).objective
