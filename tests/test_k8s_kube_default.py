"""kube-default's queue and DefaultPreemption, by hand: the rules the KWOK comparison measures."""

from optkit.backends.heuristics.pod_packing import kube_schedule
from optkit.problems.pod_packing import PodPacking


def problem(nodes, pods):
    """nodes: {name: cpu millicores}; pods: [(name, cpu, priority)] in creation order, pending."""
    return PodPacking.from_dict(
        {
            "problem": "pod-packing",
            "nodes": [{"name": n, "capacity": {"cpu": c}} for n, c in nodes.items()],
            "pods": [
                {"name": n, "requests": {"cpu": c}, "priority": p, "owner": f"ReplicaSet/{n}"}
                for n, c, p in pods
            ],
        }
    )


def placed(p, where):
    return {
        p.pods[i].name: (p.nodes[j].name if j is not None else None) for i, j in enumerate(where)
    }


def test_unschedulable_pod_is_retried_after_a_preemption_frees_room():
    # a fills n1; b does not fit and cannot preempt its equal; c preempts a and leaves room for b
    p = problem({"n1": 2000}, [("a", 1500, 1), ("b", 1000, 1), ("c", 1000, 5)])
    with_retry = placed(p, kube_schedule(p, order="arrival", preemption=True))
    assert with_retry == {"a": None, "b": "n1", "c": "n1"}
    without = placed(p, kube_schedule(p, order="arrival", preemption=True, retry=False))
    assert without == {"a": None, "b": None, "c": "n1"}
    # no preemption, nothing is ever deleted: retrying changes nothing
    assert kube_schedule(p, order="arrival") == kube_schedule(p, order="arrival", retry=False)


def test_priority_sort_pops_higher_priority_first_then_creation_order():
    p = problem({"n1": 1000}, [("low", 1000, 1), ("high", 1000, 9), ("high2", 1000, 9)])
    assert placed(p, kube_schedule(p, order="priority")) == {
        "low": None,
        "high": "n1",
        "high2": None,
    }
    assert placed(p, kube_schedule(p, order="arrival")) == {
        "low": "n1",
        "high": None,
        "high2": None,
    }


def test_preemption_victims_are_the_lowest_priority_pods_and_the_fewest():
    # n1 runs p1 (prio 1) and p2 (prio 2); n2 runs q3 (prio 3). x (prio 9) needs one pod's room:
    # the node whose top victim has the lowest priority (n1), and there only p1 goes
    p = problem(
        {"n1": 2000, "n2": 2000},
        [("p1", 1000, 1), ("p2", 1000, 2), ("q3", 1500, 3), ("x", 1000, 9)],
    )
    data = p.to_dict()
    for pod, node in zip(data["pods"], ("n1", "n1", "n2", None)):
        if node:
            pod["node"] = node
    p = PodPacking.from_dict(data)
    where = placed(p, kube_schedule(p, order="arrival", preemption=True))
    assert where["x"] == "n1" and where["p2"] == "n1" and where["q3"] == "n2"
    assert where["p1"] is None  # no room left anywhere for the victim
