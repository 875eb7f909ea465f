"""Cluster JSON (as `kubectl get -o json` prints it) -> pod-packing instance."""

import copy

import pytest

from optkit.errors import InputError
from optkit.k8s.snapshot import build_snapshot, pod_requests, split_list
from optkit.problem import Problem

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "kind-worker",
        "resourceVersion": "5081",
        "uid": "0c6e3f0e-5b4c-4a4d-9f55-3c1b0b7a7f10",
        "labels": {
            "beta.kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": "kind-worker",
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": "a",
        },
        "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
    },
    "spec": {
        "podCIDR": "10.244.1.0/24",
        "providerID": "kind://docker/kind/kind-worker",
        "taints": [
            {"key": "gpu", "value": "true", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"},
        ],
    },
    "status": {
        "allocatable": {
            "cpu": "3920m",
            "ephemeral-storage": "47093746742",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
            "memory": "15890580Ki",
            "nvidia.com/gpu": "2",
            "pods": "110",
        },
        "capacity": {"cpu": "4", "memory": "15992980Ki", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "nodeInfo": {"kubeletVersion": "v1.31.0"},
    },
}

CONTROL_PLANE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "kind-control-plane",
        "labels": {"node-role.kubernetes.io/control-plane": ""},
    },
    "spec": {
        "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        "unschedulable": True,
    },
    "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
}

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-7d9f8b6c5d-x2x7k",
        "generateName": "web-7d9f8b6c5d-",
        "namespace": "shop",
        "uid": "7f1c2a9e-3f55-4b8e-9c6e-2d1f0b9a8c71",
        "resourceVersion": "48213",
        "creationTimestamp": "2026-11-20T09:12:44Z",
        "labels": {"app": "web", "pod-template-hash": "7d9f8b6c5d"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d9f8b6c5d",
                "uid": "c0a9c2f1-1d5e-4c0b-8b8e-5d2f4e3a1b90",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "initContainers": [
            {
                "name": "migrate",
                "image": "web:1",
                "resources": {"requests": {"cpu": "2", "memory": "64Mi"}},
            },
            {
                "name": "proxy",
                "image": "envoy:1",
                "restartPolicy": "Always",
                "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}},
            },
        ],
        "containers": [
            {
                "name": "app",
                "image": "web:1",
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
            },
            {"name": "log", "image": "fluent-bit:3", "resources": {"requests": {"cpu": "50m"}}},
        ],
        "overhead": {"cpu": "10m", "memory": "1Mi"},
        "nodeName": "kind-worker",
        "priority": 1000,
        "priorityClassName": "shop-high",
        "schedulerName": "default-scheduler",
        "preemptionPolicy": "PreemptLowerPriority",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "topology.kubernetes.io/zone",
                                    "operator": "In",
                                    "values": ["a", "b"],
                                },
                                {"key": "spot", "operator": "DoesNotExist"},
                            ]
                        },
                        {"matchExpressions": [{"key": "pool", "operator": "Exists"}]},
                    ]
                },
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "preference": {
                            "matchExpressions": [{"key": "x", "operator": "In", "values": ["y"]}]
                        },
                    }
                ],
            }
        },
        "tolerations": [
            {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {"operator": "Exists", "effect": "PreferNoSchedule"},
        ],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
        "qosClass": "Burstable",
    },
}


def pod(name, **changes):
    p = copy.deepcopy(POD)
    p["metadata"]["name"] = name
    p["metadata"]["uid"] = "uid-" + name
    for path, value in changes.items():
        obj = p
        keys = path.split("__")
        for k in keys[:-1]:
            obj = obj.setdefault(k, {})
        if value is None:
            obj.pop(keys[-1], None)
        else:
            obj[keys[-1]] = value
    return p


def test_requests_sum_containers_max_init_plus_sidecars_plus_overhead():
    # containers 250m + 50m, sidecar 100m -> 400m; init 'migrate' 2000m runs with no sidecar yet -> 2000m;
    # max(400, 2000) + 10m overhead
    assert pod_requests(POD) == {"cpu": 2010, "memory": (256 + 32) * 2**20 + 2**20}


def test_snapshot_of_realistic_objects_validates_as_pod_packing():
    snap = build_snapshot([NODE, CONTROL_PLANE], [POD], [], name="kind")
    problem = Problem.from_dict(snap.instance)
    assert problem.kind == "pod-packing"
    node = snap.instance["nodes"][0]
    assert node["capacity"]["cpu"] == 3920
    assert node["capacity"]["memory"] == 15890580 * 1024
    assert node["capacity"]["nvidia.com/gpu"] == 2
    assert node["capacity"]["pods"] == 110
    assert {t["key"] for t in node["taints"]} == {"gpu", "soft"}
    assert snap.instance["nodes"][1]["unschedulable"] is True
    p = snap.instance["pods"][0]
    assert p["name"] == "shop/web-7d9f8b6c5d-x2x7k"
    assert p["priority"] == 1000 and p["node"] == "kind-worker"
    assert p["owner"] == "ReplicaSet/web-7d9f8b6c5d"
    assert p["node_selector"] == {"kubernetes.io/os": "linux"}
    assert p["node_affinity"][0][0] == {
        "key": "topology.kubernetes.io/zone",
        "operator": "In",
        "values": ["a", "b"],
    }
    assert p["node_affinity"][1] == [{"key": "pool", "operator": "Exists", "values": []}]
    assert {"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in p[
        "tolerations"
    ]
    assert "movable" not in p  # a ReplicaSet pod in an ordinary namespace may move
    assert problem.check(problem.current_solution()).feasible


def test_pods_that_never_move():
    daemon = pod(
        "ds",
        metadata__ownerReferences=[{"kind": "DaemonSet", "name": "fluentd", "controller": True}],
    )
    mirror = pod(
        "etcd",
        metadata__annotations={"kubernetes.io/config.mirror": "abc"},
        metadata__ownerReferences=[{"kind": "Node", "name": "kind-worker", "controller": True}],
    )
    system = pod("coredns", metadata__namespace="kube-system")
    bare = pod("bare", metadata__ownerReferences=None)
    gt = pod(
        "gt",
        spec__affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["2"]}]}
                    ]
                }
            }
        },
    )
    snap = build_snapshot([NODE], [daemon, mirror, system, bare, gt])
    movable = {p["name"]: p.get("movable", True) for p in snap.instance["pods"]}
    assert movable == {
        "shop/ds": False,
        "shop/etcd": False,
        "kube-system/coredns": False,
        "shop/bare": False,
        "shop/gt": False,
    }


def test_terminating_finished_and_foreign_pods_left_out():
    gone = pod("gone", metadata__deletionTimestamp="2026-11-20T10:00:00Z")
    done = pod("done", status__phase="Succeeded")
    failed = pod("failed", status__phase="Failed")
    foreign = pod("foreign", spec__nodeName=None, spec__schedulerName="my-scheduler")
    pending_gt = pod(
        "pgt",
        spec__nodeName=None,
        spec__affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {
                                    "key": "metadata.name",
                                    "operator": "In",
                                    "values": ["kind-worker"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
    )
    snap = build_snapshot([NODE], [gone, done, failed, foreign, pending_gt, pod("ok")])
    assert [p["name"] for p in snap.instance["pods"]] == ["shop/ok"]
    assert set(snap.skipped) == {"shop/foreign", "shop/pgt"}


def test_pending_unschedulable_pods_are_the_trigger():
    waiting = pod(
        "waiting",
        spec__nodeName=None,
        status={
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available",
                }
            ],
        },
    )
    fresh = pod("fresh", spec__nodeName=None, status={"phase": "Pending"})
    snap = build_snapshot([NODE], [waiting, fresh])
    assert snap.pending_unschedulable() == ["shop/waiting"]
    assert all(p["node"] is None for p in snap.instance["pods"])


def test_pdb_without_allowed_disruptions_freezes_its_pods():
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        "status": {
            "currentHealthy": 2,
            "desiredHealthy": 2,
            "disruptionsAllowed": 0,
            "expectedPods": 2,
        },
    }
    other = pod("other", metadata__labels={"app": "api"})
    snap = build_snapshot([NODE], [pod("a"), pod("b"), other], [pdb])
    movable = {p["name"]: p.get("movable", True) for p in snap.instance["pods"]}
    assert movable == {"shop/a": False, "shop/b": False, "shop/other": True}
    assert snap.budgets[0].pods == ["shop/a", "shop/b"]


def test_bad_quantity_names_pod_and_field():
    bad = pod(
        "bad", spec__containers=[{"name": "app", "resources": {"requests": {"cpu": "1 core"}}}]
    )
    with pytest.raises(InputError, match=r"pod shop/bad: spec.containers.0.resources.requests.cpu"):
        build_snapshot([NODE], [bad])
    node = copy.deepcopy(NODE)
    node["status"]["allocatable"]["memory"] = "16GB"
    with pytest.raises(InputError, match="node kind-worker: status.allocatable.memory"):
        build_snapshot([node], [])


def test_kubectl_list_dump_is_split_by_kind():
    dump = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [NODE, POD, {"kind": "PodDisruptionBudget", "metadata": {"name": "x"}}],
    }
    nodes, pods, pdbs = split_list([dump])
    assert (len(nodes), len(pods), len(pdbs)) == (1, 1, 1)
    with pytest.raises(InputError, match="Service"):
        split_list([{"kind": "Service"}])
