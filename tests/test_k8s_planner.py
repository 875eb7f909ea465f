"""The controller against the in-memory cluster: trigger, plan, check, evict, pin, re-schedule."""

import time

import pytest

from optkit.k8s.api import ApiError
from optkit.k8s.extender import Extender, ExtenderServer, Metrics, PinStore, http_extender
from optkit.k8s.fake import FakeCluster
from optkit.k8s.planner import Controller, Planner, PlannerConfig
from optkit.registry import SolverSpec, solver_specs
from optkit.result import Termination
from optkit.solve import Outcome

WINDOW = 10.0  # generous (solvers stop early when optimal): the machine is shared; nothing here asserts a time


def solver_choice():
    """cpsat once the pod-packing CP-SAT model exists; until then the registered heuristic."""
    names = {s.name for s in solver_specs("pod-packing")}
    if "cpsat" in names:
        return "cpsat", {}
    return "kube-default", {"preemption": True}


def make_planner(cluster, real_solver=False, **config):
    """A planner on `cluster`; kube-default with preemption (in-process speed) unless
    `real_solver` (CP-SAT, a few seconds a plan here: the slow end-to-end tests)."""
    solver, params = solver_choice() if real_solver else ("kube-default", {"preemption": True})
    cfg = PlannerConfig(
        window=WINDOW,
        solver=solver,
        params=params,
        debounce=0,
        cooldown=0,
        max_delay=0,
        retry_backoff=0,
        **config,
    )
    pins, metrics = PinStore(), Metrics()
    return Planner(cluster, cfg, pins, metrics, sleep=lambda s: None)


def evictions(cluster):
    return [arg for op, arg in cluster.calls if op == "evict"]


def running(cluster, prefix):
    pods = [p for (_, name), p in cluster.pods.items() if name.startswith(prefix)]
    return [
        p["spec"].get("nodeName")
        for p in pods
        if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
    ]


def two_node_cluster(extender=None, **kw):
    """n1, n2 with 2 CPUs; one low pod of 1 CPU on each; a high pod of 1.5 CPU cannot fit anywhere."""
    c = FakeCluster(extender=extender, **kw)
    c.add_node("n1", cpu="2")
    c.add_node("n2", cpu="2")
    c.add_replicaset("low", 2, nodes=["n1", "n2"], cpu="1", priority=0)
    c.add_replicaset("high", 1, cpu="1500m", priority=1000)
    c.settle()
    assert running(c, "high") == []
    return c


@pytest.mark.slow
@pytest.mark.parametrize("cache_capable", [True, False])
def test_fragmented_cluster_every_high_priority_pod_runs(cache_capable):
    pins, metrics = PinStore(), Metrics()
    with ExtenderServer(Extender(pins, metrics), host="127.0.0.1", port=0) as srv:
        c = FakeCluster(extender=http_extender(srv.url), node_cache_capable=cache_capable)
        for n in ("n1", "n2", "n3"):
            c.add_node(n, cpu="4", memory="16Gi")
        # 6 low pods, 2 per node: 2 CPUs free on every node, 6 in all
        c.add_replicaset(
            "batch",
            6,
            nodes=["n1", "n1", "n2", "n2", "n3", "n3"],
            cpu="1",
            memory="1Gi",
            priority=10,
        )
        # two pods of 3 CPUs: fit nowhere until the low pods are packed
        c.add_replicaset("api", 2, cpu="3", memory="2Gi", priority=1000)
        c.settle()
        assert running(c, "api") == []
        planner = make_planner(c, real_solver=True)
        planner.pins, planner.metrics = pins, metrics
        controller = Controller(planner)
        for _ in range(30):
            controller.step(0.05)
            c.settle()
            if len(running(c, "api")) == 2 and pins.current() is None:
                break
        applied = [p for p in controller.plans if p.status == "applied"]
        assert applied, [(p.status, p.reason) for p in controller.plans]
        plan = applied[0]
        assert len(evictions(c)) >= 1
        assert set(plan.evicted) == {a.pod for a in plan.actions if a.source is not None}
        assert sorted(running(c, "api")) == sorted(
            a.target for a in plan.actions if a.pod.startswith("default/api")
        )
        assert len(set(running(c, "api"))) == 2
        assert c.extender_errors == []
        assert metrics.get("optkit_k8s_plans_accepted_total") == 1
        assert metrics.get("optkit_k8s_pods_placed_total") >= 2
        assert metrics.get("optkit_k8s_evictions_total", result="ok") == len(plan.evicted)
        # nothing lower than the plan promised: every low pod the plan kept or moved runs again
        kept = sum(
            1
            for k, info in plan.snapshot.pods.items()
            if k.startswith("default/batch") and plan.assignment.get(k) is not None
        )
        assert len(running(c, "batch")) >= kept
        # pinned re-scheduling: every planned placement was carried out, node by node
        assert pins.current() is None
        planned = {}
        for k, node in plan.assignment.items():
            if k.startswith("default/batch") and node is not None:
                planned[node] = planned.get(node, 0) + 1
        actual = {}
        for node in running(c, "batch"):
            actual[node] = actual.get(node, 0) + 1
        assert all(actual.get(n, 0) >= k for n, k in planned.items()), (planned, actual)


def test_dry_run_changes_nothing():
    c = two_node_cluster()
    planner = make_planner(c, dry_run=True)
    plan = planner.plan_and_act()
    assert plan.status == "dry-run" and plan.actions
    assert evictions(c) == [] and planner.pins.current() is None
    assert any(a.kind == "place" and a.pod.startswith("default/high") for a in plan.actions)
    assert plan.to_dict()["pins"]["by_name"]


def test_nothing_pending_nothing_better():
    c = FakeCluster()
    c.add_node("n1", cpu="2")
    c.add_replicaset("low", 1, nodes=["n1"], cpu="1")
    plan = make_planner(c).plan_and_act()
    assert plan.status == "rejected" and "not better" in plan.reason
    assert evictions(c) == []


def test_overcommitted_cluster_is_left_alone():
    c = two_node_cluster()
    c.add_pod(
        "squatter", node="n1", cpu="3", owner=("ReplicaSet", "sq")
    )  # bound past the scheduler
    plan = make_planner(c).plan_and_act()
    assert plan.status == "rejected" and "breaks the model" in plan.reason
    assert evictions(c) == []


def test_pdb_with_no_allowed_disruption_blocks_the_plan():
    c = two_node_cluster()
    c.add_pdb("low", {"app": "low"}, min_available=2)
    planner = make_planner(c)
    plan = planner.plan_and_act()
    assert plan.status == "rejected", plan.reason
    assert evictions(c) == []
    assert running(c, "high") == []


def test_pdb_429_stops_the_plan_and_drops_pins_to_nodes_not_freed():
    c = two_node_cluster()
    c.add_pdb("low", {"app": "low"}, min_available=1)  # one disruption allowed at planning time
    planner = make_planner(c)
    plan = planner.plan()
    assert plan.status == "planned", plan.reason
    real_evict = c.evict

    def racing_evict(namespace, name, uid=None):
        # just before our eviction, the other low pod turns unready: the PDB now allows nothing
        for (_ns, other), pod in c.pods.items():
            if other.startswith("low-") and other != name:
                pod = {
                    **pod,
                    "status": {
                        **pod["status"],
                        "conditions": [{"type": "Ready", "status": "False"}],
                    },
                }
                c.replace_pod(pod)
        return real_evict(namespace, name, uid)

    c.evict = racing_evict
    plan = planner.act(plan)
    assert plan.status == "failed"
    assert "429" in plan.reason and plan.evicted == [] and plan.not_evicted
    assert planner.pins.current() is None  # the node was not freed: no pod is pinned to it
    assert len(evictions(c)) == 1  # a 429 is not retried
    assert planner.metrics.get("optkit_k8s_evictions_total", result="429") == 1


@pytest.mark.parametrize(
    "change", ["cordon", "scheduled elsewhere", "pod deleted", "new pod takes the room"]
)
def test_plan_invalidated_by_a_changed_cluster(change):
    c = two_node_cluster()
    planner = make_planner(c)
    plan = planner.plan()
    assert plan.status == "planned", plan.reason
    high = next(a for a in plan.actions if a.pod.startswith("default/high"))
    if change == "cordon":
        c.cordon(high.target)
    elif change == "scheduled elsewhere":
        c.add_node("n3", cpu="2")
        c.schedule()
    elif change == "pod deleted":
        moved = next(a for a in plan.actions if a.source is not None)
        c.delete_pod("default", moved.pod.split("/")[1])
    else:
        c.add_pod("intruder", node=high.target, cpu="900m")
    plan = planner.act(plan)
    assert plan.status == "invalidated", plan.reason
    assert evictions(c) == []
    assert planner.pins.current() is None
    assert planner.metrics.get("optkit_k8s_plans_rejected_total", reason="invalidated") == 1


def test_solver_time_out_means_no_action(monkeypatch):
    from optkit import registry

    def sleeper(problem, opts):  # never answers: the window (a hard limit) must end it
        while True:
            time.sleep(1)
        return Outcome(termination=Termination.COMPLETED)

    registry.discover()
    monkeypatch.setitem(
        registry._SOLVERS,
        ("pod-packing", "k8s-test-sleeper"),
        SolverSpec("k8s-test-sleeper", "pod-packing", sleeper, "heuristics"),
    )
    c = two_node_cluster()
    planner = Planner(c, PlannerConfig(window=0.5, solver="k8s-test-sleeper"))
    plan = planner.plan_and_act()
    # the facade hands back the current placement (the warm start) when the solver finds nothing:
    # either way the plan is rejected and nothing is touched
    assert plan.status == "rejected" and plan.actions == [], plan.reason
    assert "0.5 s window" in plan.reason or "not better" in plan.reason
    assert evictions(c) == [] and planner.pins.current() is None


@pytest.mark.parametrize(
    "fault, times, status", [(500, 1, "applied"), (500, 5, "failed"), (409, 1, "failed")]
)
def test_eviction_api_errors(fault, times, status):
    c = two_node_cluster()
    planner = make_planner(c)
    c.fail("evict", fault, times=times)
    plan = planner.plan_and_act()
    assert plan.status == status, plan.reason
    if status == "failed":
        assert str(fault) in plan.reason
        assert planner.pins.current() is None
        assert all(p["metadata"].get("deletionTimestamp") is None for p in c.pods.values())
    else:
        assert plan.evicted and planner.pins.current() is not None


def test_pod_gone_before_its_eviction_counts_as_done():
    c = two_node_cluster()
    planner = make_planner(c)
    real_evict = c.evict

    def gone_first(namespace, name, uid=None):
        c.delete_pod(namespace, name)
        return real_evict(namespace, name, uid)

    c.evict = gone_first
    plan = planner.plan_and_act()
    assert plan.status == "applied" and plan.evicted
    assert planner.metrics.get("optkit_k8s_evictions_total", result="gone") == 1


def test_controller_survives_list_and_watch_errors():
    c = two_node_cluster()
    controller = Controller(make_planner(c))
    c.fail("list_pods", 500)
    assert controller.step(0.01) is None and "500" in controller.last_error
    c.fail("watch_pods", 410)
    controller.step(0.01)
    assert controller.resource_version is None  # relist after 410 Gone
    plan = None
    for _ in range(5):
        plan = controller.step(0.01) or plan
        if plan:
            break
    assert plan is not None and plan.status == "applied"


def test_one_plan_at_a_time_and_pins_expire():
    c = two_node_cluster()
    now = [1000.0]
    planner = make_planner(c, plan_ttl=30)
    planner.pins.clock = lambda: now[0]
    controller = Controller(planner)
    plan = None
    for _ in range(5):
        plan = controller.step(0.01)
        if plan is not None:
            break
    assert plan is not None and plan.status == "applied"
    planner.pins.set(plan.pins)
    plan.pins.expires_at = now[0] + 30
    c.add_replicaset("high2", 1, cpu="1500m", priority=1000)
    c.schedule()  # a new Unschedulable pod: a trigger, but the first plan's pins are live
    controller.step(0.01)
    assert len(controller.plans) == 1 and not controller.due()
    now[0] += 31  # pins expire: the next trigger may plan again
    assert planner.pins.current() is None
    controller.handle_event(
        "MODIFIED", next(p for p in c.pods.values() if p["metadata"]["name"].startswith("high2"))
    )
    assert controller.due()


def test_api_error_type():
    """An API failure reaches the caller as an `ApiError` (an `OptkitError`, CLI exit 3) that keeps
    the HTTP status and the server's message for the planner to act on."""
    from optkit.errors import OptkitError

    c = two_node_cluster()
    namespace, name = next(iter(c.pods))
    c.fail(
        "evict", 429, message="Cannot evict pod as it would violate the pod's disruption budget."
    )
    with pytest.raises(ApiError) as e:
        c.evict(namespace, name)
    assert isinstance(e.value, OptkitError) and e.value.exit_code == 3
    assert e.value.status == 429 and "disruption budget" in e.value.message
    c.evict(namespace, name)  # the injected fault was used up: the next call goes through
    assert (namespace, name) not in c.pods or c.pods[(namespace, name)]["metadata"].get(
        "deletionTimestamp"
    )


@pytest.mark.slow
def test_demo_repack_end_to_end():
    from optkit.k8s.demo import run_demo

    solver, params = solver_choice()
    for cache_capable in (True, False):
        out = run_demo(6, WINDOW, solver, params, cache_capable)
        assert out["plan"] == "applied", out
        assert out["high_running"] == "3/3", out


def test_plan_needing_more_than_a_pdb_allows_is_solved_again_with_the_excess_frozen():
    from types import SimpleNamespace

    import optkit
    from optkit.result import Status

    c = FakeCluster()
    for n, cpu in (("n1", "2"), ("n2", "2"), ("n3", "1"), ("n4", "1")):
        c.add_node(n, cpu=cpu)
    c.add_replicaset("guarded", 2, nodes=["n1", "n2"], cpu="1")
    c.add_replicaset("high", 2, cpu="2", priority=1000)
    c.add_pdb("guarded", {"app": "guarded"}, min_available=1)  # one disruption allowed
    c.settle()
    calls = []

    def solve(problem, solver, **kw):
        calls.append({p.name: p.movable for p in problem.pods})
        guarded = sorted(p.name for p in problem.pods if p.name.startswith("default/guarded"))
        if all(p.movable for p in problem.pods):
            # first answer: both guarded pods to the small nodes, both high pods placed (feasible,
            # better, every move needed, but the PDB allows one disruption)
            where = {p.name: p.node for p in problem.pods}
            high = sorted(p.name for p in problem.pods if p.name.startswith("default/high"))
            g_on = {where[g]: g for g in guarded}
            where[high[0]], where[high[1]] = "n1", "n2"
            where[g_on["n1"]], where[g_on["n2"]] = "n3", "n4"
            sol = {"assignment": where}
            return SimpleNamespace(
                status=Status.FEASIBLE,
                solution=sol,
                objective=problem.check(sol).objective,
                termination=Termination.COMPLETED,
                message=None,
            )
        return optkit.solve(problem, "kube-default", **kw)

    planner = Planner(
        c,
        PlannerConfig(window=WINDOW, solver="kube-default", params={"preemption": True}),
        solve=solve,
    )
    plan = planner.plan()
    assert len(calls) == 2
    assert sum(1 for movable in calls[1].values() if not movable) == 1  # one guarded pod frozen
    assert plan.status == "planned", plan.reason
    leaving = [
        a for a in plan.actions if a.pod.startswith("default/guarded") and a.source is not None
    ]
    assert len(leaving) <= 1
    assert planner.act(plan).status == "applied"
